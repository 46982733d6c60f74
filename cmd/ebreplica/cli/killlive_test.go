package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

// notifier counts events and wakes whoever waits for the count to move.
type notifier struct {
	mu   sync.Mutex
	n    int
	wake chan struct{}
}

func newNotifier() *notifier { return &notifier{wake: make(chan struct{})} }

func (n *notifier) bump() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n++
	close(n.wake)
	n.wake = make(chan struct{})
}

// state returns the count and a channel closed at the next bump.
func (n *notifier) state() (int, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.n, n.wake
}

// watchLife is one run of `watch` on B: what it was started with and the
// complete lines it printed before it was killed.
type watchLife struct {
	since  uint64
	kill   int // killed once it printed this many lines (0: at once)
	mu     sync.Mutex
	lines  []replica.Change
	bad    []string // lines that did not decode
	torn   string   // a last line cut short by the kill (not delivered)
	events *notifier
	eof    chan struct{}
}

func (l *watchLife) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// read reads the process's stdout until it closes.
// seen (when set) is told each key printed as put.
func (l *watchLife) read(r io.Reader, progress *notifier, seen func(key string)) {
	defer close(l.eof)
	br := bufio.NewReader(r)
	for {
		s, err := br.ReadString('\n')
		if err != nil {
			l.mu.Lock()
			l.torn = s
			l.mu.Unlock()
			l.events.bump()
			return
		}
		var c replica.Change
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		l.mu.Lock()
		if err := dec.Decode(&c); err != nil {
			l.bad = append(l.bad, s)
		} else {
			l.lines = append(l.lines, c)
			if seen != nil && c.Op == "put" {
				seen(c.Key)
			}
		}
		l.mu.Unlock()
		l.events.bump()
		progress.bump()
	}
}

// ackedOp is a write that was acknowledged: a Put or Delete that returned
// nil, or a put or del command that exited 0.
type ackedOp struct {
	key, value string
	deleted    bool
}

// TestKillLive (issue 12): a kill -9 of a live process at random moments
// loses no acknowledged write and no change-feed entry past the last one
// it delivered. Replica A writes (puts and deletes, through the library in
// this process) and syncs live; replica B runs `ebreplica watch` as a
// real process (syncing live, on the same file:// remote) and is killed
// with SIGKILL once it has printed a random number of changes, several
// times, each time after a few acknowledged put and del commands of its
// own; it is restarted with --since the last sequence number it printed.
// Checked at the end, after a final sync: every acknowledged write (A's and
// B's) reads the same on both replicas; each run of watch printed exactly
// the feed's entries after its --since, in order (seqs strictly increasing,
// none skipped, none repeated), so together they printed the feed with no
// gap; and the feed agrees with what Get returns. EBREPLICA_KILL_SEED=N
// repeats a run.
func TestKillLive(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EBREPLICA_KILL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("EBREPLICA_KILL_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (EBREPLICA_KILL_SEED=%d repeats it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 12))
	const lives = 20
	deadline := time.Now().Add(90 * time.Second)

	url := "file://" + filepath.ToSlash(t.TempDir())
	aDir, bDir := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", aDir, "--remote", url)
	ok(t, nil, "init", "--dir", bDir, "--remote", url)
	ok(t, nil, "sync", "--dir", aDir)
	ok(t, nil, "sync", "--dir", bDir)

	ctx := context.Background()
	a, err := replica.Open(aDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	var runErr error
	go func() {
		defer close(runDone)
		runErr = a.Run(runCtx, replica.LiveOptions{Interval: 30 * time.Millisecond, Debounce: 10 * time.Millisecond,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	}()
	defer func() { stopRun(); <-runDone }() // also when the test fails midway

	// A's writer: a put of a new key, or (one in four) a delete of one of
	// its live keys that B printed (so that every write shows in B's feed:
	// a put and a delete that leave in one push cancel out); at most
	// `window` writes ahead of B's printed lines, so that it keeps pace
	// with B instead of racing ahead.
	var (
		ackMu  sync.Mutex
		acked  []ackedOp
		seenMu sync.Mutex
		seenA  = map[string]bool{}
	)
	markSeen := func(key string) { seenMu.Lock(); seenA[key] = true; seenMu.Unlock() }
	isSeen := func(key string) bool { seenMu.Lock(); defer seenMu.Unlock(); return seenA[key] }
	ack := func(o ackedOp) { ackMu.Lock(); acked = append(acked, o); ackMu.Unlock() }
	progress := newNotifier()
	writerCtx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	writerDone := make(chan error, 1)
	wrng := rand.New(rand.NewPCG(seed, 34))
	go func() {
		const window = 6
		var live []string
		lastSeen, _ := progress.state()
		ahead := 0
		for i := 0; ; i++ {
			for ahead >= window {
				n, wake := progress.state()
				if n != lastSeen {
					lastSeen, ahead = n, 0
					break
				}
				select {
				case <-writerCtx.Done():
					writerDone <- nil
					return
				case <-wake:
				}
			}
			if writerCtx.Err() != nil {
				writerDone <- nil
				return
			}
			if j := wrng.IntN(max(len(live), 1)); len(live) > 0 && wrng.IntN(4) == 0 && isSeen(live[j]) {
				key := live[j]
				if err := a.Delete(ctx, key); err != nil {
					writerDone <- fmt.Errorf("A: delete %s: %w", key, err)
					return
				}
				live = append(live[:j], live[j+1:]...)
				ack(ackedOp{key: key, deleted: true})
			} else {
				key, val := fmt.Sprintf("a/%05d", i), fmt.Sprintf("va%d", i)
				if err := a.Put(ctx, key, []byte(val)); err != nil {
					writerDone <- fmt.Errorf("A: put %s: %w", key, err)
					return
				}
				live = append(live, key)
				ack(ackedOp{key: key, value: val})
			}
			ahead++
		}
	}()

	var history []*watchLife
	killedPending := 0
	var bLive []string
	since := uint64(0)
	for life := range lives {
		// B's own writes while no process holds it: acknowledged by the
		// command's exit 0; the next watch pushes them live.
		for j := range rng.IntN(4) {
			key, val := fmt.Sprintf("b/%d-%d", life, j), fmt.Sprintf("vb%d-%d", life, j)
			ok(t, nil, "put", "--dir", bDir, key, val)
			bLive = append(bLive, key)
			ack(ackedOp{key: key, value: val})
		}
		if len(bLive) > 0 && rng.IntN(3) == 0 {
			j := rng.IntN(len(bLive))
			key := bLive[j]
			ok(t, nil, "del", "--dir", bDir, key)
			bLive = append(bLive[:j], bLive[j+1:]...)
			ack(ackedOp{key: key, deleted: true})
		}

		l := &watchLife{since: since, events: newNotifier(), eof: make(chan struct{})}
		if rng.IntN(8) != 0 {
			l.kill = 1 + rng.IntN(16)
		}
		history = append(history, l)
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "watch", "--since", strconv.FormatUint(since, 10), "--interval", "30ms", "--json", "--dir", bDir)
		cmd.Env = append(os.Environ(), execEnv+"=1")
		var stderr lockedBuffer
		cmd.Stdout, cmd.Stderr = pw, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		go l.read(pr, progress, markSeen)
		exited := make(chan error, 1)
		go func() { <-l.eof; exited <- cmd.Wait() }()
		for {
			_, wake := l.events.state()
			if l.count() >= l.kill {
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("life %d: watch exited before the kill: %v; stderr %q; printed %d", life, err, stderr.String(), l.count())
			case <-wake:
			case <-time.After(time.Until(deadline)):
				cmd.Process.Kill()
				t.Fatalf("life %d: watch printed %d lines of the %d awaited by the deadline; stderr %q", life, l.count(), l.kill, stderr.String())
			}
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		err = <-exited
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("life %d: watch ended with %v, want killed by the signal; stderr %q", life, err, stderr.String())
		}
		pr.Close()
		if len(l.bad) > 0 {
			t.Fatalf("life %d: lines that are not changes: %q", life, l.bad)
		}
		// Where the kill landed, roughly: B's own writes not yet pushed
		// (pending), or a line cut short.
		st := decodeOne(t, ok(t, nil, "status", "--json", "--dir", bDir).stdout)
		if st["pending"] != json.Number("0") {
			killedPending++
		}
		t.Logf("life %d: --since %d, killed after %d lines (awaited %d), %v of B's writes pending%s", life, since, len(l.lines), l.kill,
			st["pending"], map[bool]string{true: ", a torn last line", false: ""}[l.torn != ""])
		if e := stderr.String(); e != "" {
			t.Logf("life %d: stderr %q", life, e)
		}
		for i, c := range l.lines {
			if prev := since; i > 0 {
				prev = l.lines[i-1].Seq
				if c.Seq <= prev {
					t.Fatalf("life %d: seq %d after %d: not increasing", life, c.Seq, prev)
				}
			}
		}
		if n := len(l.lines); n > 0 {
			since = l.lines[n-1].Seq
		}
	}

	// The end: stop A, sync both to the tip, compare.
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	stopRun()
	<-runDone
	if runErr != nil {
		t.Fatal(runErr)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ok(t, nil, "sync", "--dir", bDir)
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := replica.Open(bDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	want := map[string]ackedOp{}
	nLive := 0
	for _, o := range acked {
		want[o.key] = o
	}
	for _, o := range want {
		if !o.deleted {
			nLive++
		}
	}
	for name, r := range map[string]*replica.Replica{"A": a, "B": b} {
		for key, o := range want {
			v, err := r.Get(key)
			switch {
			case o.deleted && !errors.Is(err, replica.ErrNotFound):
				t.Errorf("%s: %s was deleted (acknowledged), reads %q, %v", name, key, v, err)
			case !o.deleted && (err != nil || string(v) != o.value):
				t.Errorf("%s: %s = %q, %v; acknowledged %q", name, key, v, err, o.value)
			}
		}
		if n := r.Len(); n != int64(nLive) {
			t.Errorf("%s holds %d keys, want the %d acknowledged", name, n, nLive)
		}
		st, err := r.Status()
		if err != nil || st.Pending != 0 {
			t.Errorf("%s: pending %d after the final sync (%v)", name, st.Pending, err)
		}
	}

	// B's whole feed, as it is now (a cancelled context: what is there).
	done, cancel := context.WithCancel(ctx)
	cancel()
	var feed []replica.Change
	for c, err := range b.Watch(done, "", 0) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Seq != uint64(len(feed))+1 {
			t.Fatalf("B's feed: seq %d after %d", c.Seq, len(feed))
		}
		feed = append(feed, c)
	}
	// Each run of watch printed exactly the feed after its --since, up to
	// where it was killed.
	kills, printed := 0, 0
	for i, l := range history {
		kills++
		printed += len(l.lines)
		for j, c := range l.lines {
			at := l.since + uint64(j) + 1
			if at > uint64(len(feed)) || c != feed[at-1] {
				var w any = "nothing"
				if at <= uint64(len(feed)) {
					w = feed[at-1]
				}
				t.Fatalf("life %d (--since %d): printed %+v as its line %d, the feed holds %+v there", i, l.since, c, j+1, w)
			}
		}
	}
	// The feed agrees with what Get returns: each key's last change.
	last := map[string]replica.Change{}
	for _, c := range feed {
		last[c.Key] = c
	}
	for key, o := range want {
		c, seen := last[key]
		switch {
		case o.deleted && seen && c.Op != "delete":
			t.Errorf("feed: %s's last change is %+v, it reads as deleted", key, c)
		case !o.deleted && (!seen || c.Op != "put"):
			t.Errorf("feed: %s's last change is %+v (seen %v), it reads %q", key, c, seen, o.value)
		}
	}
	for key := range last {
		if _, ok := want[key]; !ok {
			t.Errorf("feed: %s, never written", key)
		}
	}
	t.Logf("seed %d: %d kills (%d with B's writes pending), %d acknowledged writes (%d keys live), %d lines printed of the %d in B's feed (through seq %d when last killed)",
		seed, kills, killedPending, len(acked), nLive, printed, len(feed), since)
}
