package engine_test

// Benchmarks of the local replica against raw Badger, measured in the same
// run. Each comparison reports a "ratio" metric: our throughput divided by
// raw Badger's (for Len: the time at 1M keys divided by the time at 1k).
// See BENCHMARKS.md for the figures and the commands.
//
// The raw Badger side is opened with the options our store uses
// (store.OpenBadger, then DB()), except where a benchmark says otherwise.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

const benchValueSize = 100

func benchKey(i int) string { return fmt.Sprintf("%016d", i) } // 16 bytes

func benchValue(i int) []byte {
	v := make([]byte, benchValueSize)
	for j := range v {
		v[j] = byte(i + j*7)
	}
	return v
}

func benchReplica(b *testing.B, dur store.Durability, low bool) *engine.Engine {
	b.Helper()
	r, err := engine.Init(b.TempDir(), "mem://bench", &engine.Options{Durability: dur, LowMemory: low})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// rawBadger opens Badger in dir with exactly the options of store.OpenBadger.
func rawBadger(b *testing.B) *badger.DB {
	b.Helper()
	e, err := store.OpenBadger(b.TempDir(), store.BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e.DB()
}

// rawBadgerSyncWrites opens Badger with the store's options plus
// SyncWrites=true: every commit is fsynced by Badger itself.
func rawBadgerSyncWrites(b *testing.B) *badger.DB {
	b.Helper()
	opts := badger.DefaultOptions(b.TempDir()).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(nil).
		WithValueThreshold(256 << 10).
		WithNumCompactors(2)
	db, err := badger.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkBatchPut: engine.Batch of 1000 stamped puts (16-byte keys,
// 100-byte values) against a raw Badger WriteBatch of the same keys and
// values with the same sync setting (sync: one fsync per batch, as the
// store does). The two run interleaved, batch by batch, so load on the
// machine hits both alike. One op = one batch on each. Goal: ratio >= 0.5.
func BenchmarkBatchPut(b *testing.B) {
	for _, dur := range []store.Durability{store.Sync, store.Relaxed} {
		b.Run(dur.String(), func(b *testing.B) {
			ctx := context.Background()
			const batch = 1000
			r := benchReplica(b, dur, false)
			db := rawBadger(b)
			vals := make([][]byte, batch)
			for j := range vals {
				vals[j] = benchValue(j)
			}
			var ours, raw time.Duration
			i := 0
			for b.Loop() {
				t0 := time.Now()
				err := r.Batch(ctx, func(bt *engine.Batch) error {
					for j := range batch {
						bt.Put(benchKey(i*batch+j), vals[j])
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				wb := db.NewWriteBatch()
				for j := range batch {
					if err := wb.Set([]byte(benchKey(i*batch+j)), vals[j]); err != nil {
						b.Fatal(err)
					}
				}
				if err := wb.Flush(); err != nil {
					b.Fatal(err)
				}
				if dur == store.Sync {
					if err := db.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				t2 := time.Now()
				ours += t1.Sub(t0)
				raw += t2.Sub(t1)
				i++
			}
			puts := float64(b.N * batch)
			b.ReportMetric(puts/ours.Seconds(), "puts/s")
			b.ReportMetric(puts/raw.Seconds(), "raw-puts/s")
			b.ReportMetric(raw.Seconds()/ours.Seconds(), "ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// runWorkers runs fn(i) for i in [from, to) from workers goroutines and
// returns the elapsed time.
func runWorkers(workers, from, to int, fn func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	t0 := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := fn(i); err != nil {
					errMu.Lock()
					firstErr = errors.Join(firstErr, err)
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(t0), firstErr
}

// BenchmarkParallelDurablePut: single durable (Sync) puts from 32
// goroutines, grouped by the store's group commit, against raw Badger
// single-key db.Update with SyncWrites=true from 32 goroutines (Badger
// groups concurrent commits too). One op = 1000 puts on each, interleaved.
// Goal: >= 10k puts/s on 2 cores; the ratio is reported.
func BenchmarkParallelDurablePut(b *testing.B) {
	ctx := context.Background()
	const workers, chunk = 32, 1000
	r := benchReplica(b, store.Sync, false)
	db := rawBadgerSyncWrites(b)
	val := benchValue(1)
	var ours, raw time.Duration
	commits0 := r.Store().Commits()
	from := 0
	for b.Loop() {
		d, err := runWorkers(workers, from, from+chunk, func(i int) error {
			return r.Put(ctx, benchKey(i), val)
		})
		if err != nil {
			b.Fatal(err)
		}
		ours += d
		d, err = runWorkers(workers, from, from+chunk, func(i int) error {
			return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(benchKey(i)), val) })
		})
		if err != nil {
			b.Fatal(err)
		}
		raw += d
		from += chunk
	}
	n := float64(from)
	b.ReportMetric(n/ours.Seconds(), "puts/s")
	b.ReportMetric(n/raw.Seconds(), "raw-puts/s")
	b.ReportMetric(raw.Seconds()/ours.Seconds(), "ratio")
	b.ReportMetric(n/float64(max(1, r.Store().Commits()-commits0)), "puts/commit")
	b.ReportMetric(0, "ns/op")
}

// loadReplica writes keys [0, n) with Relaxed durability in big batches.
func loadReplica(b *testing.B, r *engine.Engine, n int) {
	b.Helper()
	ctx := context.Background()
	const batch = 10000
	for from := 0; from < n; from += batch {
		err := r.Batch(ctx, func(bt *engine.Batch) error {
			for i := from; i < min(from+batch, n); i++ {
				bt.Put(benchKey(i), benchValue(i))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Store().Engine().Sync(); err != nil {
		b.Fatal(err)
	}
	if r.Len() != int64(n) {
		b.Fatalf("Len %d after loading %d keys", r.Len(), n)
	}
}

// BenchmarkLen: Len at 1k keys and at 1M keys, interleaved in blocks of
// 1024 calls (goal: within 2x, i.e. O(1)). It reports ns per Len at each
// size, "ratio" = 1M over 1k, and "recount-ms", the time of one full
// recount (View.CountLive) at 1M that an O(N) Len would cost. Loading 1M
// keys takes a while; benchmarks only run under -bench.
func BenchmarkLen(b *testing.B) {
	small := benchReplica(b, store.Relaxed, false)
	loadReplica(b, small, 1000)
	big := benchReplica(b, store.Relaxed, false)
	loadReplica(b, big, 1_000_000)
	t0 := time.Now()
	var c int64
	if err := big.Store().View(func(v *store.View) error {
		var err error
		c, err = v.CountLive()
		return err
	}); err != nil || c != 1_000_000 {
		b.Fatalf("recount %d %v", c, err)
	}
	recount := time.Since(t0)
	const block = 1024
	var tSmall, tBig time.Duration
	var sink int64
	for b.Loop() {
		t0 := time.Now()
		for range block {
			sink += small.Len()
		}
		t1 := time.Now()
		for range block {
			sink += big.Len()
		}
		tSmall += t1.Sub(t0)
		tBig += time.Since(t1)
	}
	if sink == 0 {
		b.Fatal("no Len")
	}
	calls := float64(b.N * block)
	b.ReportMetric(float64(tSmall.Nanoseconds())/calls, "ns/len@1k")
	b.ReportMetric(float64(tBig.Nanoseconds())/calls, "ns/len@1M")
	b.ReportMetric(tBig.Seconds()/tSmall.Seconds(), "ratio")
	b.ReportMetric(float64(recount.Milliseconds()), "recount-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkGet: random Gets of existing keys on the same data (200k keys,
// 16-byte keys, 100-byte values): raw Badger (db.View + Get + ValueCopy)
// and engine.Get (View + record decode + lww read), interleaved in blocks
// of 256 Gets of the same keys. "ratio" = raw time over ours (goal >= 0.8).
// Sub-benchmark memtable reads the data as loaded (still in Badger's
// memtable); sst reads it after a close and reopen of both databases has
// flushed it to tables. EBREPLICA_BENCH_GET_N lowers the key count (make
// bench uses 100k).
func BenchmarkGet(b *testing.B) {
	n := 200_000
	if s := os.Getenv("EBREPLICA_BENCH_GET_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("EBREPLICA_BENCH_GET_N=%q: want a positive integer", s)
		}
	}
	dir, rawDir := b.TempDir(), b.TempDir()
	r, err := engine.Init(dir, "mem://bench", &engine.Options{Durability: store.Relaxed})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { r.Close() }()
	loadReplica(b, r, n)
	rawEngine, err := store.OpenBadger(rawDir, store.BadgerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { rawEngine.Close() }()
	for from := 0; from < n; from += 10000 {
		wb := rawEngine.DB().NewWriteBatch()
		for i := from; i < min(from+10000, n); i++ {
			if err := wb.Set([]byte(benchKey(i)), benchValue(i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	keys := make([]string, 1<<16)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range keys {
		keys[i] = benchKey(rng.IntN(n))
	}
	run := func(b *testing.B) {
		db := rawEngine.DB()
		const block = 256
		var ours, raw time.Duration
		next := 0
		for b.Loop() {
			t0 := time.Now()
			for j := range block {
				k := []byte(keys[(next+j)&(len(keys)-1)])
				err := db.View(func(txn *badger.Txn) error {
					it, err := txn.Get(k)
					if err != nil {
						return err
					}
					v, err := it.ValueCopy(nil)
					if len(v) != benchValueSize {
						return fmt.Errorf("value of %d bytes", len(v))
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			t1 := time.Now()
			for j := range block {
				k := keys[(next+j)&(len(keys)-1)]
				v, err := r.Get(k)
				if err != nil || len(v) != benchValueSize {
					b.Fatalf("get %s: %d bytes, %v", k, len(v), err)
				}
			}
			raw += t1.Sub(t0)
			ours += time.Since(t1)
			next += block
		}
		gets := float64(b.N * block)
		b.ReportMetric(float64(ours.Nanoseconds())/gets, "ns/get")
		b.ReportMetric(float64(raw.Nanoseconds())/gets, "raw-ns/get")
		b.ReportMetric(raw.Seconds()/ours.Seconds(), "ratio")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("memtable", run)
	// Close and reopen both: Badger flushes the memtable to tables.
	if err := r.Close(); err != nil {
		b.Fatal(err)
	}
	if r, err = engine.Open(dir, &engine.Options{Durability: store.Relaxed}); err != nil {
		b.Fatal(err)
	}
	if err := rawEngine.Close(); err != nil {
		b.Fatal(err)
	}
	if rawEngine, err = store.OpenBadger(rawDir, store.BadgerOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Run("sst", run)
}
