package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// TestLowMemoryLargeOutbox: under the small profile (Badger's transaction
// limit 614 KiB), a replica pushes an outbox of over 8 MiB of
// incompressible values, 1 KiB to 4 MiB each (11 MiB), and another small-profile
// replica pulls it: staging (each segment one transaction, its bytes a
// value-log value), the commit that clears the marks and the pulled
// segments' application all fit, and the pulled values are the pushed
// ones. Before the fix both failed with ErrTooBig once a staged or pulled
// segment passed about 600 KiB.
func TestLowMemoryLargeOutbox(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("t")
	open := func() *engine.Engine {
		r, err := engine.Init(t.TempDir(), "mem://t", &engine.Options{LowMemory: true, Backend: mem, Durability: store.Relaxed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if p := r.Store().Profile(); p != store.ProfileSmall {
			t.Fatalf("profile %q", p)
		}
		return r
	}
	a := open()
	rng := rand.New(rand.NewPCG(19, 1))
	want := map[string][]byte{}
	var total int
	put := func(key string, size int) {
		v := make([]byte, size)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		if err := a.Put(ctx, key, v); err != nil {
			t.Fatalf("put %s (%d bytes): %v", key, size, err)
		}
		want[key] = v
		total += size
	}
	for i := range 6000 { // 6000 × 1 KiB: more than a chunk's worth of marks
		put(fmt.Sprintf("small/%05d", i), 1<<10)
	}
	for i := range 20 { // tree values just under the 64 KiB threshold
		put(fmt.Sprintf("mid/%02d", i), 63<<10)
	}
	for i := range 1 { // a value-log value
		put(fmt.Sprintf("big/%d", i), 4<<20-i)
	}
	if total <= 8<<20 {
		t.Fatalf("outbox of only %d bytes", total)
	}
	ps, err := a.Push(ctx)
	if err != nil {
		t.Fatalf("push of %d MiB: %v", total>>20, err)
	}
	// One segment of 11 MiB: the 4 MiB value joins the first 7.3 MiB,
	// under the 8 MiB cap when it is added.
	if ps.Bytes < 8<<20 || a.Store().OutboxLen() != 0 {
		t.Fatalf("push: %+v, pending %d", ps, a.Store().OutboxLen())
	}
	b := open()
	start := time.Now()
	pl, err := b.Pull(ctx)
	if err != nil {
		t.Fatalf("pull of %d MiB: %v", total>>20, err)
	}
	t.Logf("pushed %d MiB in %d segments (%d bytes), pulled %d records in %s", total>>20, ps.Segments, ps.Bytes, pl.Records, time.Since(start).Round(time.Millisecond))
	if b.Len() != int64(len(want)) {
		t.Fatalf("pulled %d keys, want %d", b.Len(), len(want))
	}
	for k, v := range want {
		got, err := b.Get(k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("%s: %d bytes, %v; want %d bytes", k, len(got), err, len(v))
		}
	}
	// And back: b rewrites every small key, a pulls.
	for k := range want {
		if len(want[k]) == 1<<10 {
			want[k] = append(want[k][:0:0], 'b')
			if err := b.Put(ctx, k, want[k]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got, err := a.Get(k); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("a: %s: %d bytes, %v; want %d bytes", k, len(got), err, len(v))
		}
	}
}

// TestSyncCollectsValueLog: a replica that keeps rewriting large values
// (in the value log) and pushing, on an injected clock that moves past the
// GC interval each round, keeps its disk within a bound of its live data:
// Push runs the value-log GC when due. The value-log files are 4 MiB here
// (the small profile's are 64 MiB) so that the test writes little.
func TestSyncCollectsValueLog(t *testing.T) {
	ctx := context.Background()
	const (
		keys     = 16
		size     = 128 << 10
		rounds   = 25
		vlogFile = 4 << 20
	)
	dir := t.TempDir()
	b, err := store.OpenBadger(dir+"/data", store.BadgerOptions{LowMemory: true, ValueLogFileSize: vlogFile})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, err := engine.Init(dir, "mem://t", &engine.Options{
		Engine: b, Backend: memremote.New("t"), Durability: store.Relaxed,
		Wall: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(19, 2))
	var peak int64
	for range rounds {
		for k := range keys {
			v := make([]byte, size)
			for i := range v {
				v[i] = byte(rng.Uint32())
			}
			if err := r.Put(ctx, fmt.Sprintf("k%02d", k), v); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(store.DefaultGCInterval)
		if _, err := r.Push(ctx); err != nil {
			t.Fatal(err)
		}
		lsm, vlog := b.DiskSize()
		peak = max(peak, lsm+vlog)
	}
	live := int64(keys * size)
	// Every round also stages (and drops) a 2 MiB segment in the value
	// log: 100 MiB went through it in all.
	bound := 3*live + 2*vlogFile + 4<<20
	lsm, vlog := b.DiskSize()
	t.Logf("live %d KiB, disk at the end %d KiB (lsm %d, vlog %d), peak %d KiB", live>>10, (lsm+vlog)>>10, lsm>>10, vlog>>10, peak>>10)
	if peak > bound {
		t.Errorf("peak disk %d bytes, bound %d (live %d)", peak, bound, live)
	}
}
