//go:build linux || darwin

package engine_test

// Sync benchmarks: push cost against store size, pull-merge throughput
// against raw Badger writes, push and pull on the local S3 server, and
// bootstrap of a large store from a snapshot. Results and commands are in
// docs/bench-sync.md. Every benchmark here uses b.Loop, so its (heavy) setup
// runs once per -count, and nothing here runs without -bench.
//
//	go test -run '^$' -bench '^BenchmarkPushChanged$' -benchtime 20x -timeout 60m ./internal/engine/
//	go test -run '^$' -bench '^BenchmarkPullMerge$' -benchtime 5x -count 3 ./internal/engine/
//	eval "$(scripts/s3server.sh start)"
//	go test -run '^$' -bench '^BenchmarkS3PushPull10k$' -benchtime 5x ./internal/engine/
//	go test -run '^$' -bench '^BenchmarkBootstrapS3$' -benchtime 3x -timeout 60m ./internal/engine/
//	scripts/s3server.sh stop
//
// Timed sections run under pprof labels (phase=...), so a -cpuprofile can be
// narrowed to one of them with -tagfocus, e.g. 'phase=^pull-mem$'.
//
// Sizes can be lowered for a quick look: EBREPLICA_BENCH_PUSH_BIG (keys of
// the large store of BenchmarkPushChanged, default 1000000),
// EBREPLICA_BENCH_PULL_N (default 100000), EBREPLICA_BENCH_BOOT_KEYS
// (default 1000000).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/internal/stats"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/store"
)

// bsValueSize is the size of every benchmark value.
const bsValueSize = 100

// bsLoadBatch is the number of keys written per Batch while loading.
const bsLoadBatch = 10_000

func bsKey(i int) string { return fmt.Sprintf("bench/%08d", i) }

// bsValue returns a fresh incompressible value.
func bsValue(rng *rand.Rand) []byte {
	v := make([]byte, bsValueSize)
	for i := 0; i < len(v); i += 8 {
		x := rng.Uint64()
		for j := 0; j < 8 && i+j < len(v); j++ {
			v[i+j] = byte(x >> (8 * j))
		}
	}
	return v
}

func bsEnvInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// bsOpen opens (creating) an on-disk replica in dir with Relaxed durability.
func bsOpen(b *testing.B, dir string, be remote.Backend, segCap int) *engine.Engine {
	b.Helper()
	r, err := engine.Open(dir, &engine.Options{
		Create: true, Backend: be, Durability: store.Relaxed, SegmentCap: segCap,
	})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// bsLoad writes keys [0, n) with random values in batches of bsLoadBatch.
func bsLoad(b *testing.B, r *engine.Engine, n int, rng *rand.Rand) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += bsLoadBatch {
		err := r.Batch(ctx, func(bt *engine.Batch) error {
			for i := start; i < min(start+bsLoadBatch, n); i++ {
				bt.Put(bsKey(i), bsValue(rng))
			}
			return nil
		})
		if err != nil {
			b.Fatalf("load keys from %d: %v", start, err)
		}
	}
}

// bsPushEvery is how many loaded keys bsLoadPush writes between pushes. A
// push of more changed keys than about 47k (100 B values) fails: the push
// commits a whole segment's keys in one transaction (commitStaged: one mark
// delete and one record rewrite per key), which then exceeds Badger's
// transaction limit (ErrTooBig), and the segment, already uploaded, is
// uploaded again at the next position by every later push. With the default
// 8 MiB SegmentCap a segment holds about 60k such records, so the loader
// pushes every 40k keys; see docs/bench-sync.md.
const bsPushEvery = 40_000

// bsLoadPush loads keys [0, n) like bsLoad, pushing after every bsPushEvery
// keys and at the end, and returns the pushes' summed stats.
func bsLoadPush(b *testing.B, r *engine.Engine, n int, rng *rand.Rand) engine.PushStats {
	b.Helper()
	var sum engine.PushStats
	for start := 0; start < n; start += bsPushEvery {
		end := min(start+bsPushEvery, n)
		ctx := context.Background()
		for s := start; s < end; s += bsLoadBatch {
			err := r.Batch(ctx, func(bt *engine.Batch) error {
				for i := s; i < min(s+bsLoadBatch, end); i++ {
					bt.Put(bsKey(i), bsValue(rng))
				}
				return nil
			})
			if err != nil {
				b.Fatalf("load keys from %d: %v", s, err)
			}
		}
		ps := bsPush(b, r)
		sum.Segments += ps.Segments
		sum.Records += ps.Records
		sum.Bytes += ps.Bytes
		bsAddCounts(&sum.Requests, ps.Requests)
	}
	return sum
}

func bsAddCounts(x *remote.Counts, y remote.Counts) {
	x.Put += y.Put
	x.Get += y.Get
	x.List += y.List
	x.Delete += y.Delete
	x.BytesIn += y.BytesIn
	x.BytesOut += y.BytesOut
}

func bsPush(b *testing.B, r *engine.Engine) engine.PushStats {
	b.Helper()
	ps, err := r.Push(context.Background())
	if err != nil {
		b.Fatalf("push: %v", err)
	}
	return ps
}

func bsPull(b *testing.B, r *engine.Engine) engine.PullStats {
	b.Helper()
	ps, err := r.Pull(context.Background())
	if err != nil {
		b.Fatalf("pull: %v", err)
	}
	return ps
}

// bsLabel runs fn with the pprof label phase=name. Goroutines started inside
// fn inherit it (Badger's own, among them), so `go tool pprof -tagfocus
// phase=NAME` isolates one phase of a -cpuprofile from the setup around it.
// The store's writer goroutine, which does a write's work and commits it,
// takes the labels of each request's context: use bsLabelCtx and pass its
// ctx to the writes (Batch, Push, Pull) to charge them to the phase.
func bsLabel(name string, fn func()) {
	pprof.Do(context.Background(), pprof.Labels("phase", name), func(context.Context) { fn() })
}

// bsLabelCtx is bsLabel with the labelled context for fn's calls.
func bsLabelCtx(name string, fn func(ctx context.Context)) {
	pprof.Do(context.Background(), pprof.Labels("phase", name), fn)
}

// bsCPU returns the CPU time (user + system) this process has used so far.
// Comparing it with wall time shows how much of a slow figure is waiting
// (for I/O, or for a CPU the machine's other work holds).
func bsCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func bsMean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t / time.Duration(len(d))
}

// BenchmarkPushChanged times "write 1k random existing keys (one Batch) +
// Push" in a 10k-key store and in a 1M-key store, both on-disk Badger with
// Relaxed durability and a memremote backend, loaded in big batches and
// pushed as they load (see bsPushEvery) so the outbox starts empty. Each
// b.Loop iteration does one round on each store, alternately, so machine load
// hits both alike. Metrics: mean and median ms per round for each size, the
// push part alone, process CPU per round (all goroutines, Badger's background
// compaction of both stores included), and the ratios big/small (goal:
// within 1.2x).
func BenchmarkPushChanged(b *testing.B) {
	const changed = 1000
	small, big := 10_000, bsEnvInt(b, "EBREPLICA_BENCH_PUSH_BIG", 1_000_000)
	type fixture struct {
		n     int
		r     *engine.Engine
		round []time.Duration // batch + push
		push  []time.Duration // push alone
		cpu   time.Duration   // process CPU during the rounds
	}
	var fx []*fixture
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{small, big} {
		start := time.Now()
		var r *engine.Engine
		bsLabel(fmt.Sprintf("push-store-%d", n), func() {
			r = bsOpen(b, b.TempDir(), memremote.New(fmt.Sprintf("push-%d", n)), 0)
		})
		b.Cleanup(func() { r.Close() })
		ps := bsLoadPush(b, r, n, rng)
		if ps.Records != n || r.Len() != int64(n) || r.Store().OutboxLen() != 0 {
			b.Fatalf("loading %d keys pushed %d records; Len %d, pending %d", n, ps.Records, r.Len(), r.Store().OutboxLen())
		}
		b.Logf("store of %d keys: load and push %v (%d segments, %d bytes)",
			n, time.Since(start).Round(time.Millisecond), ps.Segments, ps.Bytes)
		fx = append(fx, &fixture{n: n, r: r})
	}
	for b.Loop() {
		for _, f := range fx {
			var t0, t1, t2 time.Time
			var ps engine.PushStats
			c0 := bsCPU()
			bsLabelCtx(fmt.Sprintf("push-round-%d", f.n), func(ctx context.Context) {
				t0 = time.Now()
				err := f.r.Batch(ctx, func(bt *engine.Batch) error {
					for range changed {
						bt.Put(bsKey(rng.IntN(f.n)), bsValue(rng))
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				t1 = time.Now()
				var err2 error
				if ps, err2 = f.r.Push(ctx); err2 != nil {
					b.Fatalf("push: %v", err2)
				}
				t2 = time.Now()
			})
			f.cpu += bsCPU() - c0
			if ps.Records == 0 || ps.Records > changed || ps.Segments != 1 {
				b.Fatalf("push of %d changes in a %d-key store: %+v", changed, f.n, ps)
			}
			f.round = append(f.round, t2.Sub(t0))
			f.push = append(f.push, t2.Sub(t1))
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	for _, f := range fx {
		tag := fmt.Sprintf("%dk", f.n/1000)
		if f.n%1_000_000 == 0 {
			tag = fmt.Sprintf("%dM", f.n/1_000_000)
		}
		b.ReportMetric(ms(bsMean(f.round)), "ms/round@"+tag)
		b.ReportMetric(ms(stats.Median(f.round)), "ms-median/round@"+tag)
		b.ReportMetric(ms(stats.Median(f.push)), "ms-median/push@"+tag)
		b.ReportMetric(ms(f.cpu)/float64(len(f.round)), "ms-cpu/round@"+tag)
	}
	b.ReportMetric(float64(bsMean(fx[1].round))/float64(bsMean(fx[0].round)), "ratio-mean")
	b.ReportMetric(float64(stats.Median(fx[1].round))/float64(stats.Median(fx[0].round)), "ratio-median")
	b.ReportMetric(float64(stats.Median(fx[1].push))/float64(stats.Median(fx[0].push)), "ratio-median-push")
}

// BenchmarkPullMerge measures a fresh on-disk replica pulling N=100k records
// (100 B values, pushed by one replica in segments of the default cap) from
// memremote and from fileremote (a byte-for-byte copy of the same store), and
// a raw Badger WriteBatch of the same keys and values into a fresh database
// opened with the same options (store.OpenBadger with BadgerOptions{}). Each
// b.Loop iteration runs all three, in a rotating order; only the pull (or
// the batch write and its Flush) is timed. Metrics: records/s of each, the
// pull/raw ratios (goals: >= 100k records/s and >= 0.5x), and process CPU
// per record.
func BenchmarkPullMerge(b *testing.B) {
	n := bsEnvInt(b, "EBREPLICA_BENCH_PULL_N", 100_000)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2, 2))
	mem := memremote.New("pull")
	src := bsOpen(b, b.TempDir(), mem, 0)
	b.Cleanup(func() { src.Close() })
	ps := bsLoadPush(b, src, n, rng)
	if ps.Records != n {
		b.Fatalf("pushed %d records, want %d", ps.Records, n)
	}
	// The same objects, in a directory.
	fileRoot := b.TempDir()
	file, err := fileremote.New(fileRoot, &fileremote.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	for k, v := range mem.Objects() {
		if _, err := file.Put(ctx, k, v); err != nil {
			b.Fatal(err)
		}
	}
	// The raw baseline writes the same keys and values as the loader.
	keys := make([][]byte, n)
	vals := make([][]byte, n)
	err = src.Store().View(func(v *store.View) error {
		i := 0
		return v.Records("", "", func(key string, _ store.Stored) (bool, error) {
			val, err := src.Get(key)
			if err != nil {
				return false, err
			}
			keys[i], vals[i] = []byte(key), val
			i++
			return true, nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d records in %d segments, %d bytes", ps.Records, ps.Segments, ps.Bytes)

	scratch := b.TempDir()
	var raw, onMem, onFile time.Duration
	var cpuRaw, cpuPull time.Duration
	var pullReq [2]remote.Counts
	iter := 0
	runRaw := func() {
		b.StopTimer()
		dir := filepath.Join(scratch, fmt.Sprintf("raw-%d", iter))
		var bg *store.Badger
		var err error
		bsLabel("raw", func() { bg, err = store.OpenBadger(dir, store.BadgerOptions{}) })
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := bsCPU()
		bsLabel("raw", func() {
			t0 := time.Now()
			wb := bg.DB().NewWriteBatch()
			for i := range keys {
				if err := wb.Set(keys[i], vals[i]); err != nil {
					b.Fatal(err)
				}
			}
			if err := wb.Flush(); err != nil {
				b.Fatal(err)
			}
			raw += time.Since(t0)
		})
		cpuRaw += bsCPU() - c0
		b.StopTimer()
		bg.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	runPull := func(j int) {
		be := []remote.Backend{mem, file}[j]
		label := []string{"pull-mem", "pull-file"}[j]
		b.StopTimer()
		dir := filepath.Join(scratch, fmt.Sprintf("pull-%d-%d", iter, j))
		var r *engine.Engine
		bsLabel(label, func() { r = bsOpen(b, dir, be, 0) })
		if _, err := r.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var ps engine.PullStats
		var d time.Duration
		c0 := bsCPU()
		bsLabelCtx(label, func(ctx context.Context) {
			t0 := time.Now()
			var err error
			if ps, err = r.Pull(ctx); err != nil {
				b.Fatalf("pull: %v", err)
			}
			d = time.Since(t0)
		})
		cpuPull += bsCPU() - c0
		b.StopTimer()
		if ps.Records != n || r.Len() != int64(n) {
			b.Fatalf("pull from %s: %d records, Len %d, want %d", be, ps.Records, r.Len(), n)
		}
		pullReq[j] = ps.Requests
		if j == 0 {
			onMem += d
		} else {
			onFile += d
		}
		r.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	steps := []func(){runRaw, func() { runPull(0) }, func() { runPull(1) }}
	for b.Loop() {
		// The three in a rotating order, so none always runs right after
		// another's clean-up.
		for k := range steps {
			steps[(iter+k)%len(steps)]()
		}
		iter++
	}
	rate := func(d time.Duration) float64 { return float64(n) * float64(b.N) / d.Seconds() }
	b.ReportMetric(rate(raw), "rec/s-raw")
	b.ReportMetric(rate(onMem), "rec/s-mem")
	b.ReportMetric(rate(onFile), "rec/s-file")
	b.ReportMetric(cpuRaw.Seconds()*1e6/float64(n*b.N), "us-cpu/rec-raw")
	b.ReportMetric(cpuPull.Seconds()*1e6/float64(2*n*b.N), "us-cpu/rec-pull")
	b.ReportMetric(rate(onMem)/rate(raw), "ratio-mem/raw")
	b.ReportMetric(rate(onFile)/rate(raw), "ratio-file/raw")
	b.Logf("one pull's requests: mem %+v; file %+v", pullReq[0], pullReq[1])
}

// bsS3 returns a backend on a fresh bucket of the local S3 server, with the
// client and bucket for listing.
func bsS3(b *testing.B, prefix string) (*s3remote.Backend, *s3.Client, string) {
	b.Helper()
	client, bucket := s3test.NewBucket(b)
	be, err := s3remote.New(client, bucket, prefix, nil)
	if err != nil {
		b.Fatal(err)
	}
	return be, client, bucket
}

// bsListBucket counts the objects and bytes under prefix/.
func bsListBucket(b *testing.B, client *s3.Client, bucket, prefix string) (objects, bytes int64) {
	b.Helper()
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range page.Contents {
			objects++
			bytes += aws.ToInt64(o.Size)
		}
	}
	return objects, bytes
}

// BenchmarkS3PushPull10k pushes 10k changed keys from one replica and pulls
// them into another, through s3remote on the local S3 server. Both replicas
// are on-disk, connected and in sync before the loop; each iteration rewrites
// the same 10k keys (untimed), then times the push and the pull. Metrics:
// wall ms, requests and bytes of each.
func BenchmarkS3PushPull10k(b *testing.B) {
	const n = 10_000
	be, _, _ := bsS3(b, "bench")
	rng := rand.New(rand.NewPCG(3, 3))
	a := bsOpen(b, b.TempDir(), be, 0)
	b.Cleanup(func() { a.Close() })
	c := bsOpen(b, b.TempDir(), be, 0)
	b.Cleanup(func() { c.Close() })
	bsLoad(b, a, n, rng)
	bsPush(b, a)
	bsPull(b, c)
	if c.Len() != n {
		b.Fatalf("warm-up: Len %d, want %d", c.Len(), n)
	}
	var push, pull, cpuPush, cpuPull time.Duration
	var pushReq, pullReq remote.Counts
	for b.Loop() {
		b.StopTimer()
		bsLoad(b, a, n, rng)
		b.StartTimer()
		c0 := bsCPU()
		t0 := time.Now()
		ps := bsPush(b, a)
		t1 := time.Now()
		c1 := bsCPU()
		ls := bsPull(b, c)
		t2 := time.Now()
		cpuPush += c1 - c0
		cpuPull += bsCPU() - c1
		if ps.Records != n || ls.Records != n || ls.Changed != n {
			b.Fatalf("push %+v, pull %+v: want %d records", ps, ls, n)
		}
		push += t1.Sub(t0)
		pull += t2.Sub(t1)
		bsAddCounts(&pushReq, ps.Requests)
		bsAddCounts(&pullReq, ls.Requests)
	}
	per := func(v int64) float64 { return float64(v) / float64(b.N) }
	b.ReportMetric(float64(push)/1e6/float64(b.N), "ms/push")
	b.ReportMetric(float64(pull)/1e6/float64(b.N), "ms/pull")
	b.ReportMetric(float64(cpuPush)/1e6/float64(b.N), "ms-cpu/push")
	b.ReportMetric(float64(cpuPull)/1e6/float64(b.N), "ms-cpu/pull")
	b.ReportMetric(per(pushReq.Requests()), "req/push")
	b.ReportMetric(per(pushReq.BytesOut+pushReq.BytesIn), "B/push")
	b.ReportMetric(per(pullReq.Requests()), "req/pull")
	b.ReportMetric(per(pullReq.BytesIn+pullReq.BytesOut), "B/pull")
	b.Logf("per push: %+v; per pull: %+v (sums over %d iterations)", pushReq, pullReq, b.N)
}

// BenchmarkBootstrapS3 builds a store of 1M keys x 100 B on the local S3
// server (one on-disk replica loads it with Relaxed durability in big
// batches and pushes), compacts it into a snapshot with pruning, then times
// a fresh on-disk replica's first Pull, which bootstraps from the snapshot
// (goal: <= 30 s). It reports the setup times and the objects and bytes
// under the store's prefix before and after the Compact.
func BenchmarkBootstrapS3(b *testing.B) {
	n := bsEnvInt(b, "EBREPLICA_BENCH_BOOT_KEYS", 1_000_000)
	const prefix = "boot"
	be, client, bucket := bsS3(b, prefix)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	a := bsOpen(b, b.TempDir(), be, 0)
	b.Cleanup(func() { a.Close() })
	t0 := time.Now()
	ps := bsLoadPush(b, a, n, rng)
	t1 := time.Now()
	objBefore, bytesBefore := bsListBucket(b, client, bucket, prefix)
	t3 := time.Now()
	cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
	if err != nil {
		b.Fatalf("compact: %v", err)
	}
	t4 := time.Now()
	objAfter, bytesAfter := bsListBucket(b, client, bucket, prefix)
	b.Logf("setup of %d keys: load and push %v (%d segments, %d bytes, requests %+v), compact %v (%d parts, %d records, pruned %d, requests %+v)",
		n, t1.Sub(t0).Round(time.Millisecond), ps.Segments, ps.Bytes, ps.Requests,
		t4.Sub(t3).Round(time.Millisecond), cs.Parts, cs.Records, cs.Pruned, cs.Requests)
	b.Logf("under %s/: before compact %d objects, %d bytes; after %d objects, %d bytes", prefix, objBefore, bytesBefore, objAfter, bytesAfter)
	if cs.Records != int64(n) {
		b.Fatalf("snapshot of %d records, want %d", cs.Records, n)
	}

	scratch := b.TempDir()
	var boot, open, cpu time.Duration
	var last engine.PullStats
	iter := 0
	for b.Loop() {
		iter++
		dir := filepath.Join(scratch, fmt.Sprintf("boot-%d", iter))
		var s0, s1, s2 time.Time
		var c1, c2 time.Duration
		var r *engine.Engine
		bsLabel("bootstrap", func() {
			s0 = time.Now()
			r = bsOpen(b, dir, be, 0)
			if _, err := r.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			s1, c1 = time.Now(), bsCPU()
			last = bsPull(b, r)
			s2, c2 = time.Now(), bsCPU()
		})
		b.StopTimer()
		if r.Len() != int64(n) {
			b.Fatalf("bootstrapped replica has %d keys, want %d", r.Len(), n)
		}
		open += s1.Sub(s0)
		boot += s2.Sub(s1)
		cpu += c2 - c1
		r.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(boot.Seconds()/float64(b.N), "s/bootstrap-pull")
	b.ReportMetric(open.Seconds()/float64(b.N), "s/open+connect")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "s-cpu/bootstrap-pull")
	b.ReportMetric(float64(n)*float64(b.N)/boot.Seconds(), "rec/s")
	b.ReportMetric(float64(objBefore), "objects-before")
	b.ReportMetric(float64(bytesBefore), "bytes-before")
	b.ReportMetric(float64(objAfter), "objects-after")
	b.ReportMetric(float64(bytesAfter), "bytes-after")
	b.ReportMetric(t1.Sub(t0).Seconds(), "s-load+push")
	b.ReportMetric(t4.Sub(t3).Seconds(), "s-compact")
	b.Logf("bootstrap pull: %+v", last)
}
