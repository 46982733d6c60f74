package replica_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/internal/stats"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/replica"
)

// BenchmarkLivePropagation measures (a benchmark, not a timed test: it
// asserts nothing about time) how long a write on replica A takes to
// appear in replica B's Watch when both run live (Run: A pushes within
// Debounce, B pulls every Interval) against the real S3 server: 30 writes
// one after another a run. One iteration is one run; the metrics are the
// medians over the iterations of each run's min, p50, p99 and max
// (-benchtime 3x: 3 runs). The figures go to BENCHMARKS.md ("Live sync").
// Needs the S3 test server (scripts/s3server.sh), like the S3 tests:
//
//	go test -count=1 -run '^$' -bench '^BenchmarkLivePropagation$' -benchtime 1x ./replica
func BenchmarkLivePropagation(b *testing.B) {
	var lo, p50, p99, hi []float64
	for b.Loop() {
		lat := livePropagationRun(b)
		lo, hi = append(lo, lat[0].Seconds()), append(hi, lat[len(lat)-1].Seconds())
		p50, p99 = append(p50, latencyAt(lat, 0.5).Seconds()), append(p99, latencyAt(lat, 0.99).Seconds())
	}
	b.ReportMetric(stats.Median(lo), "s-min")
	b.ReportMetric(stats.Median(p50), "s-p50")
	b.ReportMetric(stats.Median(p99), "s-p99")
	b.ReportMetric(stats.Median(hi), "s-max")
}

// latencyAt is the q quantile of the sorted lat.
func latencyAt(lat []time.Duration, q float64) time.Duration {
	return lat[min(int(q*float64(len(lat))), len(lat)-1)]
}

// livePropagationRun is one run of BenchmarkLivePropagation: the sorted
// latencies from A's Put to B's Watch of its 30 writes.
func livePropagationRun(t testing.TB) []time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	var replicas []*replica.Replica
	defer func() {
		cancel()
		running.Wait()
		for _, r := range replicas {
			r.Close()
		}
	}()
	client, bucket := s3test.NewBucket(t)
	open := func(name string) *replica.Replica {
		b, err := s3remote.New(client, bucket, "prop", nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := replica.Init(t.TempDir()+"/"+name, "s3://"+bucket+"/prop", &replica.Options{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, r)
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := open("a"), open("b")
	interval := time.Second
	for _, r := range []*replica.Replica{a, b} {
		running.Go(func() { _ = r.Run(ctx, replica.LiveOptions{Interval: interval}) })
	}
	seen := make(chan string, 100)
	running.Go(func() {
		for c, err := range b.Watch(ctx, "p/", replica.WatchFromNow) {
			if err != nil {
				return
			}
			select {
			case seen <- c.Key:
			case <-ctx.Done():
				return
			}
		}
	})
	const n = 30
	var lat []time.Duration
	for i := range n {
		key := fmt.Sprintf("p/%03d", i)
		start := time.Now()
		if err := a.Put(ctx, key, []byte("v")); err != nil {
			t.Fatal(err)
		}
		for k := range seen {
			if k == key {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("propagation A write -> B Watch, %d writes, interval %v: min %v p50 %v p99 %v max %v",
		n, interval, lat[0].Round(time.Millisecond), latencyAt(lat, 0.5).Round(time.Millisecond),
		latencyAt(lat, 0.99).Round(time.Millisecond), lat[n-1].Round(time.Millisecond))
	return lat
}
