//go:build linux || darwin

package engine_test

// BenchmarkHistoryRestore: the cost of History and Restore (issue 22;
// BENCHMARKS.md, "History and restore") on a store of n keys (default
// 100,000, values of 100 bytes) whose snapshot is followed by m log
// segments (default 1,000, each a push of 10 updated keys, one of them the
// key whose history is read), on a directory remote. Building the store
// is not timed. Three rounds of: History of the hot key; Restore at the
// tip (the snapshot plus every segment); Restore halfway up the log. The
// log gives each one's requests (Backend.Stats) and min and median time.
//
//	go test -run '^$' -bench '^BenchmarkHistoryRestore$' -benchtime 1x -timeout 30m ./internal/engine/
//
// EBREPLICA_BENCH_HIST_N and EBREPLICA_BENCH_HIST_SEGS set n and m.

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/stats"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/store"
)

func BenchmarkHistoryRestore(b *testing.B) {
	n := bsEnvInt(b, "EBREPLICA_BENCH_HIST_N", 100_000)
	segs := bsEnvInt(b, "EBREPLICA_BENCH_HIST_SEGS", 1_000)
	ctx := context.Background()
	be, err := fileremote.New(b.TempDir(), &fileremote.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	w, err := engine.Open(filepath.Join(b.TempDir(), "w"), &engine.Options{Create: true, Backend: be, Durability: store.Relaxed, AckInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	val := make([]byte, 100)
	for i := 0; i < n; i += 5000 {
		if err := w.Batch(ctx, func(bt *engine.Batch) error {
			for j := i; j < min(i+5000, n); j++ {
				copy(val, fmt.Sprintf("value-%08d", j))
				bt.Put(fmt.Sprintf("key%08d", j), val)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Push(ctx); err != nil {
		b.Fatal(err)
	}
	cs, err := w.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
	if err != nil {
		b.Fatal(err)
	}
	hot := fmt.Sprintf("key%08d", n/2)
	for s := range segs {
		if err := w.Batch(ctx, func(bt *engine.Batch) error {
			bt.Put(hot, fmt.Appendf(nil, "hot-%d", s))
			for j := range 9 {
				bt.Put(fmt.Sprintf("key%08d", (s*9+j)*7919%n), fmt.Appendf(nil, "update-%d", s))
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if _, err := w.Push(ctx); err != nil {
			b.Fatal(err)
		}
	}
	tip := cs.Position + uint64(segs)
	b.Logf("store: %d keys, snapshot at %d (%d parts), %d log segments above it, tip %d", n, cs.Position, cs.Parts, segs, tip)
	type measure struct {
		name  string
		times []time.Duration
		reqs  remote.Counts
	}
	ms := []*measure{{name: "history"}, {name: "restore tip"}, {name: "restore mid"}}
	for b.Loop() {
		for round := range 3 {
			for _, m := range ms {
				before := be.Stats().Snapshot()
				start := time.Now()
				switch m.name {
				case "history":
					hs, _, err := w.History(ctx, hot)
					if err != nil || len(hs) != segs+1 {
						b.Fatalf("history: %d versions, %v", len(hs), err)
					}
				default:
					pos := tip
					if m.name == "restore mid" {
						pos = cs.Position + uint64(segs/2)
					}
					rs, err := w.Restore(ctx, engine.RestoreOptions{Into: filepath.Join(b.TempDir(), fmt.Sprint(round)), ByPosition: true, Position: pos})
					if err != nil || rs.Keys != int64(n) {
						b.Fatalf("restore at %d: %+v, %v", pos, rs, err)
					}
				}
				m.times = append(m.times, time.Since(start))
				m.reqs = be.Stats().Snapshot().Sub(before)
			}
		}
	}
	for _, m := range ms {
		b.Logf("%-12s requests GET %d LIST %d PUT %d DELETE %d; time min %s median %s",
			m.name, m.reqs.Get, m.reqs.List, m.reqs.Put, m.reqs.Delete, minDur(m.times).Round(time.Millisecond), stats.Median(m.times).Round(time.Millisecond))
	}
}

func minDur(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d[1:] {
		m = min(m, x)
	}
	return m
}
