package replica_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/replica"
)

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// advance moves the clock by d once Run waits on it, and fires the
// waits that are due.
func (c *fakeClock) advance(t *testing.T, d time.Duration) {
	t.Helper()
	c.waitBlocked(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// waitBlocked returns once Run waits on the clock (no wall-clock sleep:
// it yields until the goroutine got there).
func (c *fakeClock) waitBlocked(t *testing.T) {
	t.Helper()
	for range 50_000_000 {
		c.mu.Lock()
		n := len(c.waiters)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("Run never waited on the clock")
}

// failing fails every request while on.
type failing struct {
	remote.Backend
	mu sync.Mutex
	on bool
}

func (f *failing) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.on {
		return errors.Join(remote.ErrTransient, errors.New("test: outage"))
	}
	return nil
}

func (f *failing) set(on bool) { f.mu.Lock(); f.on = on; f.mu.Unlock() }

func (f *failing) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := f.err(); err != nil {
		return remote.Object{}, err
	}
	return f.Backend.Get(ctx, key)
}

func (f *failing) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if err := f.err(); err != nil {
		return "", err
	}
	return f.Backend.PutIfMatch(ctx, key, data, etag)
}

// TestRunLive drives Run on a fake clock: it pulls at once and then every
// Interval, pushes within Debounce of a local write, backs off
// exponentially up to the cap during an outage (visible in Status), comes
// back, and stops cleanly when ctx is cancelled.
func TestRunLive(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("live")
	fb := &failing{Backend: mem}
	a, err := replica.Init("", "mem://live", &replica.Options{InMemory: true, Backend: fb})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := replica.Init("", "mem://live", &replica.Options{InMemory: true, Backend: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rounds := make(chan replica.Round, 100)
	opts := replica.LiveOptions{Interval: 5 * time.Second, Debounce: 200 * time.Millisecond,
		MinBackoff: time.Second, MaxBackoff: 8 * time.Second, Clock: clk,
		Jitter:  func() float64 { return 0.5 }, // no jitter: exactly the interval
		OnRound: func(r replica.Round) { rounds <- r }}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, opts) }()
	next := func() replica.Round {
		t.Helper()
		select {
		case r := <-rounds:
			return r
		case err := <-done:
			t.Fatalf("Run returned %v", err)
		}
		return replica.Round{}
	}

	// The first round pulls at once.
	if r := next(); r.Pull == nil || r.Err != nil {
		t.Fatalf("first round: %+v", r)
	}
	if err := a.Run(ctx, opts); !errors.Is(err, replica.ErrRunning) {
		t.Fatalf("a second Run: %v", err)
	}
	// B writes and pushes; A sees it at its next pull, one Interval on.
	if err := b.Put(ctx, "from-b", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(ctx); err != nil {
		t.Fatal(err)
	}
	clk.advance(t, 4800*time.Millisecond)
	clk.advance(t, 200*time.Millisecond)
	if r := next(); r.Pull == nil || r.Pull.Records != 1 {
		t.Fatalf("pull after the interval: %+v", r)
	}
	if v, err := a.Get("from-b"); err != nil || string(v) != "1" {
		t.Fatalf("A reads from-b = %q, %v", v, err)
	}
	// A writes: pushed within one Debounce, without a pull.
	if err := a.Put(ctx, "from-a", []byte("2")); err != nil {
		t.Fatal(err)
	}
	clk.advance(t, 200*time.Millisecond)
	if r := next(); r.Push == nil || r.Push.Records != 1 || r.Pull != nil || r.Push.Pending != 0 {
		t.Fatalf("push after a write: %+v", r)
	}
	if _, err := b.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get("from-a"); err != nil || string(v) != "2" {
		t.Fatalf("B reads from-a = %q, %v", v, err)
	}

	// An outage: each failed round doubles the backoff up to the cap.
	fb.set(true)
	if err := a.Put(ctx, "during", []byte("3")); err != nil {
		t.Fatal(err)
	}
	var backoffs []time.Duration
	wait := 200 * time.Millisecond
	for range 5 {
		clk.advance(t, wait)
		r := next()
		if r.Err == nil {
			t.Fatalf("round during the outage: %+v", r)
		}
		backoffs = append(backoffs, r.Backoff)
		wait = r.Backoff
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	for i := range want {
		if backoffs[i] != want[i] {
			t.Fatalf("backoffs %v, want %v", backoffs, want)
		}
	}
	st, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Live == nil || st.Live.Online || st.Live.ErrorsInRow != 5 || st.Live.Backoff != 8*time.Second || st.Live.LastError == "" {
		t.Fatalf("status during the outage: %+v", st.Live)
	}
	// Back: the next round (after the backoff) pulls and pushes the write.
	fb.set(false)
	clk.advance(t, wait)
	if r := next(); r.Err != nil || r.Pull == nil || r.Push == nil || r.Push.Records != 1 {
		t.Fatalf("round after the outage: %+v", r)
	}
	st, _ = a.Status()
	if !st.Live.Online || st.Live.ErrorsInRow != 0 || st.Live.Errors != 5 || st.Pending != 0 {
		t.Fatalf("status after the outage: %+v pending %d", st.Live, st.Pending)
	}

	// A clean stop: Run returns nil, and Status shows no syncer.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if st, _ := a.Status(); st.Live != nil {
		t.Fatalf("Live after Run returned: %+v", st.Live)
	}
}

// failKeys fails Get of the keys in it.
type failKeys struct {
	remote.Backend
	mu   sync.Mutex
	keys map[string]bool
}

func (f *failKeys) set(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = map[string]bool{}
	for _, k := range keys {
		f.keys[k] = true
	}
}

func (f *failKeys) Get(ctx context.Context, key string) (remote.Object, error) {
	f.mu.Lock()
	fail := f.keys[key]
	f.mu.Unlock()
	if fail {
		return remote.Object{}, errors.Join(remote.ErrTransient, errors.New("test: "+key+" unreadable"))
	}
	return f.Backend.Get(ctx, key)
}

// TestRunLag: Status().Live.Lag, as status --json and GET /v1/status show
// it ("lag"), is the number of log positions a live replica listed and
// could not apply (a segment it cannot read stops its pull there), and 0
// once a pull reaches the tip.
func TestRunLag(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("lag")
	fb := &failKeys{Backend: mem}
	a, err := replica.Init("", "mem://lag", &replica.Options{InMemory: true, Backend: fb})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := replica.Init("", "mem://lag", &replica.Options{InMemory: true, Backend: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// B pushes four segments; A cannot read the second of them.
	for i := range 4 {
		if err := b.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var pos []uint64
	for info, err := range mem.List(ctx, remote.LogPrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := remote.ParseLogKey(info.Key); ok {
			pos = append(pos, p)
		}
	}
	if len(pos) != 4 || pos[3] != pos[0]+3 {
		t.Fatalf("B's pushes at %v, want four positions in a row", pos)
	}
	fb.set(remote.LogKey(pos[1]))

	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rounds := make(chan replica.Round, 100)
	opts := replica.LiveOptions{Interval: 5 * time.Second, MinBackoff: time.Second, MaxBackoff: time.Second,
		Clock: clk, Jitter: func() float64 { return 0.5 }, OnRound: func(r replica.Round) { rounds <- r }}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, opts) }()
	defer func() { cancel(); <-done }()
	lag := func() uint64 {
		t.Helper()
		st, err := a.Status()
		if err != nil || st.Live == nil {
			t.Fatalf("status: %+v, %v", st.Live, err)
		}
		js, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Live *struct {
				Lag *uint64 `json:"lag"`
			} `json:"live"`
		}
		if err := json.Unmarshal(js, &m); err != nil || m.Live == nil || m.Live.Lag == nil || *m.Live.Lag != st.Live.Lag {
			t.Fatalf("status JSON %s: no live lag %d (%v)", js, st.Live.Lag, err)
		}
		return st.Live.Lag
	}

	// The first round applies the first segment and stops at the second:
	// three positions listed and not applied.
	r := <-rounds
	if r.Err == nil || r.Pull == nil || r.Pull.Records != 1 {
		t.Fatalf("round with an unreadable segment: %+v", r)
	}
	if got := lag(); got != 3 {
		t.Fatalf("lag %d with three segments unapplied, want 3", got)
	}
	if v, err := a.Get("k0"); err != nil || string(v) != "v" {
		t.Fatalf("k0 = %q, %v", v, err)
	}
	// Readable again: the next round (after the backoff) reaches the tip.
	fb.set()
	clk.advance(t, time.Second)
	if r := <-rounds; r.Err != nil || r.Pull == nil || r.Pull.Records != 3 {
		t.Fatalf("round after the segment came back: %+v", r)
	}
	if got := lag(); got != 0 {
		t.Fatalf("lag %d at the tip, want 0", got)
	}
}
