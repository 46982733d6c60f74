package faultremote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// fakeSleep records the durations it is asked to sleep, and never sleeps.
type fakeSleep struct {
	mu    sync.Mutex
	slept []time.Duration
	err   error // returned if set
}

func (f *fakeSleep) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slept = append(f.slept, d)
	if f.err != nil {
		return f.err
	}
	return ctx.Err()
}

func TestConformanceNoFaults(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return faultremote.New(memremote.New(t.Name()), seeded(1), faultremote.Options{})
	})
}

func TestConformanceLatencyOnly(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		var fs fakeSleep
		return faultremote.New(memremote.New(t.Name()), seeded(1), faultremote.Options{
			LatencyMin: time.Millisecond, LatencyMax: 50 * time.Millisecond, Sleep: fs.Sleep,
		})
	})
}

func TestConformanceHealed(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		b := faultremote.New(memremote.New(t.Name()), seeded(1), allFaults())
		b.Heal()
		return b
	})
}

// allFaults turns on every kind of fault at a moderate rate.
func allFaults() faultremote.Options {
	return faultremote.Options{
		ErrorRate:         faultremote.EveryOp(0.15),
		LatencyMin:        time.Millisecond,
		LatencyMax:        time.Second,
		AmbiguousRate:     0.1,
		TornReadRate:      0.1,
		CorruptReadRate:   0.1,
		LateDuplicateRate: 0.2,
		LateDuplicateOps:  []faultremote.Op{faultremote.OpPut, faultremote.OpPutIfAbsent},
	}
}

// workload runs a fixed pseudo-random sequence of calls against a faulty
// memremote seeded with seed, and returns a trace of the faults and of
// every call's outcome, and the final content of the store.
func workload(t *testing.T, seed uint64) (trace []string, final map[string][]byte) {
	t.Helper()
	inner := memremote.New("w")
	var fs fakeSleep
	opts := allFaults()
	opts.Sleep = fs.Sleep
	opts.OnFault = func(f faultremote.Fault) { trace = append(trace, "fault "+f.String()) }
	b := faultremote.New(inner, seeded(seed), opts)
	ctx := context.Background()
	ops := rand.New(rand.NewPCG(99, 99)) // the call sequence, the same for every seed
	etags := map[string]string{}
	for i := range 400 {
		key := fmt.Sprintf("k/%d", ops.IntN(8))
		data := []byte(fmt.Sprintf("call %d", i))
		var out string
		switch ops.IntN(6) {
		case 0:
			obj, err := b.Get(ctx, key)
			out = fmt.Sprintf("get %s: %q %v", key, obj.Data, err)
		case 1:
			etag, err := b.Put(ctx, key, data)
			if err == nil {
				etags[key] = etag
			}
			out = fmt.Sprintf("put %s: %s %v", key, etag, err)
		case 2:
			etag, err := b.PutIfAbsent(ctx, key, data)
			if err == nil {
				etags[key] = etag
			}
			out = fmt.Sprintf("put-if-absent %s: %s %v", key, etag, err)
		case 3:
			etag, err := b.PutIfMatch(ctx, key, data, etags[key])
			if err == nil {
				etags[key] = etag
			}
			out = fmt.Sprintf("put-if-match %s: %s %v", key, etag, err)
		case 4:
			out = fmt.Sprintf("delete %s: %v", key, b.Delete(ctx, key))
		case 5:
			var keys []string
			for info, err := range b.List(ctx, "k/", "") {
				if err != nil {
					keys = append(keys, err.Error())
					break
				}
				keys = append(keys, info.Key)
			}
			out = fmt.Sprintf("list: %q", keys)
		}
		trace = append(trace, out)
	}
	trace = append(trace, fmt.Sprintf("faults %+v", b.Faults()), fmt.Sprintf("slept %v", fs.slept))
	return trace, inner.Objects()
}

func TestDeterministic(t *testing.T) {
	a, finalA := workload(t, 1)
	b, finalB := workload(t, 1)
	if d := firstDiff(a, b); d >= 0 {
		t.Fatalf("same seed, traces differ at %d:\n%s\n%s", d, a[d], b[d])
	}
	if fmt.Sprint(finalA) != fmt.Sprint(finalB) {
		t.Fatal("same seed, final stores differ")
	}
	c, _ := workload(t, 2)
	if firstDiff(a, c) < 0 {
		t.Fatal("different seeds, identical traces")
	}
	// The workload met every kind of fault.
	all := strings.Join(a, "\n")
	for k := faultremote.KindInternal; k <= faultremote.KindLatency; k++ {
		if !strings.Contains(all, k.String()) {
			t.Errorf("the trace has no %v", k)
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

func TestErrorKinds(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []faultremote.Kind{faultremote.KindInternal, faultremote.KindSlowDown, faultremote.KindTimeout} {
		t.Run(kind.String(), func(t *testing.T) {
			inner := memremote.New("inner")
			if _, err := inner.Put(ctx, "there", []byte("x")); err != nil {
				t.Fatal(err)
			}
			before := inner.Stats().Snapshot()
			b := faultremote.New(inner, seeded(1), faultremote.Options{
				ErrorRate:  faultremote.EveryOp(1),
				ErrorKinds: []faultremote.Kind{kind},
			})
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, remote.ErrTransient) || !errors.Is(err, faultremote.ErrInjected) ||
					!strings.Contains(err.Error(), kind.String()) {
					t.Errorf("%s = %v, want an injected %v", what, err, kind)
				}
			}
			_, err := b.Get(ctx, "there")
			check("Get", err)
			_, err = b.Put(ctx, "new", []byte("x"))
			check("Put", err)
			_, err = b.PutIfAbsent(ctx, "new", []byte("x"))
			check("PutIfAbsent", err)
			_, err = b.PutIfMatch(ctx, "there", []byte("y"), `"x"`)
			check("PutIfMatch", err)
			check("Delete", b.Delete(ctx, "there"))
			n := 0
			for _, err := range b.List(ctx, "", "") {
				n++
				if err != nil {
					check("List", err)
				}
			}
			if n == 0 {
				t.Error("List injected nothing")
			}
			// Nothing reached the inner store except perhaps the List.
			if d := inner.Stats().Snapshot().Sub(before); d.Put+d.Get+d.Delete != 0 {
				t.Errorf("injected errors reached the inner store: %+v", d)
			}
			if got := inner.Keys(); len(got) != 1 || got[0] != "there" {
				t.Errorf("inner keys %q", got)
			}
			c := b.Faults()
			if c.Errors() != 6 {
				t.Errorf("Faults() = %+v, want 6 errors", c)
			}
			if want := map[faultremote.Kind]int64{faultremote.KindInternal: c.Internal, faultremote.KindSlowDown: c.SlowDown, faultremote.KindTimeout: c.Timeout}[kind]; want != 6 {
				t.Errorf("Faults() = %+v, want 6 of %v", c, kind)
			}
		})
	}
}

func TestErrorRatePerOp(t *testing.T) {
	ctx := context.Background()
	b := faultremote.New(memremote.New("x"), seeded(3), faultremote.Options{ErrorRate: faultremote.Rates{Put: 0.5}})
	failed := 0
	for i := range 1000 {
		if _, err := b.Put(ctx, fmt.Sprintf("k%d", i), nil); err != nil {
			failed++
		}
		if _, err := b.Get(ctx, fmt.Sprintf("k%d", i)); err != nil && !errors.Is(err, remote.ErrNotExist) {
			t.Fatalf("Get failed although its rate is 0: %v", err)
		}
	}
	if failed < 400 || failed > 600 {
		t.Errorf("%d of 1000 Puts failed at rate 0.5", failed)
	}
}

func TestListErrorPosition(t *testing.T) {
	ctx := context.Background()
	inner := memremote.New("x")
	for i := range 3000 {
		if err := inner.SetObject(fmt.Sprintf("k/%04d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	b := faultremote.New(inner, seeded(5), faultremote.Options{ErrorRate: faultremote.Rates{List: 1}})
	atStart, midway := 0, 0
	for range 50 {
		n := 0
		var last error
		for _, err := range b.List(ctx, "k/", "") {
			if err != nil {
				last = err
				break
			}
			n++
		}
		if !errors.Is(last, remote.ErrTransient) || n > 1000 {
			t.Fatalf("List: %d objects then %v", n, last)
		}
		if n == 0 {
			atStart++
		} else {
			midway++
		}
	}
	if atStart == 0 || midway == 0 {
		t.Errorf("List errors: %d at the start, %d midway; want both", atStart, midway)
	}
}

func TestLatency(t *testing.T) {
	ctx := context.Background()
	var fs fakeSleep
	b := faultremote.New(memremote.New("x"), seeded(1), faultremote.Options{
		LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond, Sleep: fs.Sleep,
	})
	for i := range 20 {
		if _, err := b.Put(ctx, fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	for range b.List(ctx, "", "") {
	}
	if len(fs.slept) != 21 {
		t.Fatalf("slept %d times, want 21", len(fs.slept))
	}
	var total time.Duration
	distinct := map[time.Duration]bool{}
	for _, d := range fs.slept {
		if d < 10*time.Millisecond || d > 20*time.Millisecond {
			t.Errorf("slept %v, outside [10ms, 20ms]", d)
		}
		total += d
		distinct[d] = true
	}
	if len(distinct) < 10 {
		t.Errorf("latencies hardly vary: %v", fs.slept)
	}
	if c := b.Faults(); c.Latency != 21 || c.Slept != total {
		t.Errorf("Faults() = %+v, want 21 latencies totalling %v", c, total)
	}

	// A sleep cut short by the context fails the call before it starts.
	fs.err = context.DeadlineExceeded
	inner := b.Inner().(*memremote.Backend)
	before := inner.Stats().Snapshot()
	if _, err := b.Put(ctx, "late", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put with an interrupted sleep = %v", err)
	}
	if d := inner.Stats().Snapshot().Sub(before); d != (remote.Counts{}) {
		t.Errorf("interrupted call reached the store: %+v", d)
	}
}

func TestDefaultSleepHonoursContext(t *testing.T) {
	sleeping := make(chan struct{})
	b := faultremote.New(memremote.New("x"), seeded(1), faultremote.Options{
		LatencyMin: time.Hour, LatencyMax: time.Hour,
		OnFault: func(f faultremote.Fault) {
			if f.Kind == faultremote.KindLatency {
				close(sleeping) // reported just before the sleep starts
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := b.Get(ctx, "k")
		done <- err
	}()
	<-sleeping
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Get during an hour of latency, cancelled = %v", err)
	}
}

func TestAmbiguousWrites(t *testing.T) {
	ctx := context.Background()
	inner := memremote.New("x")
	b := faultremote.New(inner, seeded(1), faultremote.Options{AmbiguousRate: 1})
	ambiguous := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, remote.ErrTransient) || !errors.Is(err, faultremote.ErrInjected) || !strings.Contains(err.Error(), "ambiguous") {
			t.Errorf("%s = %v, want an injected ambiguous error", what, err)
		}
	}
	_, err := b.Put(ctx, "k", []byte("v1"))
	ambiguous("Put", err)
	obj, err := inner.Get(ctx, "k")
	if err != nil || string(obj.Data) != "v1" {
		t.Fatalf("ambiguous Put not stored: %q %v", obj.Data, err)
	}
	_, err = b.PutIfMatch(ctx, "k", []byte("v2"), obj.ETag)
	ambiguous("PutIfMatch", err)
	if obj, _ = inner.Get(ctx, "k"); string(obj.Data) != "v2" {
		t.Fatalf("ambiguous PutIfMatch not stored: %q", obj.Data)
	}
	// A write the store refuses reports the refusal, not an ambiguity.
	if _, err := b.PutIfAbsent(ctx, "k", []byte("v3")); !errors.Is(err, remote.ErrExists) || errors.Is(err, faultremote.ErrInjected) {
		t.Errorf("losing PutIfAbsent = %v, want ErrExists", err)
	}
	if _, err := b.PutIfMatch(ctx, "k", []byte("v3"), obj.ETag+"x"); !errors.Is(err, remote.ErrPrecondition) {
		t.Errorf("losing PutIfMatch = %v, want ErrPrecondition", err)
	}
	_, err = b.PutIfAbsent(ctx, "k2", []byte("v"))
	ambiguous("PutIfAbsent", err)
	ambiguous("Delete", b.Delete(ctx, "k"))
	if got := inner.Keys(); len(got) != 1 || got[0] != "k2" {
		t.Errorf("inner keys %q, want [k2]", got)
	}
	// Reads are never ambiguous.
	if _, err := b.Get(ctx, "k2"); err != nil {
		t.Error(err)
	}
	if c := b.Faults(); c.Ambiguous != 4 {
		t.Errorf("Faults() = %+v, want 4 ambiguous", c)
	}
}

func TestDamagedReads(t *testing.T) {
	ctx := context.Background()
	data := remotetest.Content(1, 1000)
	for _, tc := range []struct {
		name string
		opts faultremote.Options
	}{
		{"torn", faultremote.Options{TornReadRate: 1}},
		{"corrupt", faultremote.Options{CorruptReadRate: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := memremote.New("x")
			etag, err := inner.Put(ctx, "k", data)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := inner.Put(ctx, "empty", nil); err != nil {
				t.Fatal(err)
			}
			b := faultremote.New(inner, seeded(1), tc.opts)
			for range 50 {
				obj, err := b.Get(ctx, "k")
				if err != nil {
					t.Fatal(err)
				}
				if obj.ETag != etag {
					t.Errorf("ETag changed to %s", obj.ETag)
				}
				switch tc.name {
				case "torn":
					if len(obj.Data) >= len(data) || !bytes.Equal(obj.Data, data[:len(obj.Data)]) {
						t.Fatalf("torn read: %d bytes, not a strict prefix", len(obj.Data))
					}
				case "corrupt":
					if len(obj.Data) != len(data) || diffBits(obj.Data, data) != 1 {
						t.Fatalf("corrupt read: %d bytes, %d bits differ; want one", len(obj.Data), diffBits(obj.Data, data))
					}
				}
			}
			// The stored object is intact, and an empty one cannot be damaged.
			if obj, _ := inner.Get(ctx, "k"); !bytes.Equal(obj.Data, data) {
				t.Error("the stored object was damaged")
			}
			if obj, err := b.Get(ctx, "empty"); err != nil || len(obj.Data) != 0 {
				t.Errorf("Get(empty) = %q, %v", obj.Data, err)
			}
			if c := b.Faults(); c.TornRead+c.CorruptRead != 50 {
				t.Errorf("Faults() = %+v, want 50 damaged reads", c)
			}
		})
	}
}

func diffBits(a, b []byte) int {
	n := 0
	for i := range a {
		n += bits.OnesCount8(a[i] ^ b[i])
	}
	return n
}

func TestLateDuplicate(t *testing.T) {
	ctx := context.Background()
	inner := memremote.New("x")
	var faults []faultremote.Fault
	b := faultremote.New(inner, seeded(1), faultremote.Options{
		LateDuplicateRate:     1,
		LateDuplicateMaxDelay: 3,
		OnFault:               func(f faultremote.Fault) { faults = append(faults, f) },
	})
	// Conditional writes are not duplicated by default.
	etag, err := b.PutIfAbsent(ctx, "other", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIfMatch(ctx, "other", []byte("y"), etag); err != nil {
		t.Fatal(err)
	}
	if b.Pending() != 0 {
		t.Fatalf("conditional writes were scheduled: Pending() = %d", b.Pending())
	}
	if _, err := b.Put(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if b.Pending() != 1 {
		t.Fatalf("Pending() = %d after a Put, want 1", b.Pending())
	}
	// Someone else overwrites k.
	if _, err := inner.Put(ctx, "k", []byte("new")); err != nil {
		t.Fatal(err)
	}
	// Within three calls of the Put, the old bytes come back.
	for range 3 {
		if _, err := b.Get(ctx, "other"); err != nil {
			t.Fatal(err)
		}
	}
	if obj, _ := inner.Get(ctx, "k"); string(obj.Data) != "old" {
		t.Fatalf("k = %q, want the late duplicate %q", obj.Data, "old")
	}
	if b.Pending() != 0 || b.Faults().LateDuplicate != 1 {
		t.Fatalf("Pending() = %d, Faults() = %+v", b.Pending(), b.Faults())
	}
	if len(faults) != 1 || faults[0].Kind != faultremote.KindLateDuplicate || faults[0].Of != 3 || faults[0].Key != "k" {
		t.Errorf("faults %v", faults)
	}

	// Heal drops what is pending.
	if _, err := b.Put(ctx, "k", []byte("again")); err != nil {
		t.Fatal(err)
	}
	b.Heal()
	if b.Pending() != 0 {
		t.Errorf("Pending() = %d after Heal", b.Pending())
	}
}

func TestLateDuplicateConditionalOptIn(t *testing.T) {
	ctx := context.Background()
	inner := memremote.New("x")
	b := faultremote.New(inner, seeded(1), faultremote.Options{
		LateDuplicateRate: 1,
		LateDuplicateOps:  []faultremote.Op{faultremote.OpPutIfAbsent},
	})
	if _, err := b.PutIfAbsent(ctx, "k", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		b.Get(ctx, "k")
	}
	if obj, err := inner.Get(ctx, "k"); err != nil || string(obj.Data) != "first" {
		t.Errorf("k = %q, %v; want the duplicate of the create", obj.Data, err)
	}
}

func TestSetEnabled(t *testing.T) {
	ctx := context.Background()
	b := faultremote.New(memremote.New("x"), seeded(1), faultremote.Options{ErrorRate: faultremote.EveryOp(1)})
	b.SetEnabled(false)
	if _, err := b.Put(ctx, "k", nil); err != nil {
		t.Fatalf("disabled: %v", err)
	}
	for _, err := range b.List(ctx, "", "") {
		if err != nil {
			t.Fatalf("disabled List: %v", err)
		}
	}
	b.SetEnabled(true)
	if _, err := b.Get(ctx, "k"); !errors.Is(err, faultremote.ErrInjected) {
		t.Fatalf("enabled again: %v", err)
	}
	if c := b.Faults(); c.Errors() != 1 {
		t.Errorf("Faults() = %+v", c)
	}
}

func TestOwnChecksInjectNothing(t *testing.T) {
	var faults int
	b := faultremote.New(memremote.New("x"), seeded(1), faultremote.Options{
		ErrorRate: faultremote.EveryOp(1),
		OnFault:   func(faultremote.Fault) { faults++ },
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Get = %v", err)
	}
	if _, err := b.Put(context.Background(), "bad//key", nil); !errors.Is(err, remote.ErrInvalidKey) {
		t.Errorf("Put(bad key) = %v", err)
	}
	if faults != 0 {
		t.Errorf("%d faults injected", faults)
	}
}

func TestBadOptionsPanic(t *testing.T) {
	for _, opts := range []faultremote.Options{
		{ErrorRate: faultremote.Rates{Get: 1.5}},
		{ErrorRate: faultremote.Rates{List: -0.1}},
		{AmbiguousRate: 2},
		{TornReadRate: 0.6, CorruptReadRate: 0.6},
		{ErrorKinds: []faultremote.Kind{faultremote.KindAmbiguous}},
		{LatencyMin: time.Second, LatencyMax: time.Millisecond},
		{LateDuplicateOps: []faultremote.Op{faultremote.OpDelete}},
		{LateDuplicateMaxDelay: -1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New accepted %+v", opts)
				}
			}()
			faultremote.New(memremote.New("x"), seeded(1), opts)
		}()
	}
}

func TestStatsAreInner(t *testing.T) {
	inner := memremote.New("x")
	b := faultremote.New(inner, seeded(1), faultremote.Options{})
	if b.Stats() != inner.Stats() {
		t.Error("Stats() is not the inner backend's")
	}
	if !strings.Contains(b.String(), inner.String()) {
		t.Errorf("String() = %q", b.String())
	}
}
