package replica_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/replica"
)

// TestLivePropagation measures (a benchmark, not a timed test: it asserts
// nothing about time) how long a write on replica A takes to appear in
// replica B's Watch when both run live (Run: A pushes within Debounce, B
// pulls every Interval) against the real S3 server. Only with
// EBREPLICA_BENCH_LIVE=1; the figures go to BENCHMARKS.md ("Live sync").
func TestLivePropagation(t *testing.T) {
	if os.Getenv("EBREPLICA_BENCH_LIVE") != "1" {
		t.Skip("a benchmark: set EBREPLICA_BENCH_LIVE=1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
		t.Cleanup(func() { r.Close() })
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := open("a"), open("b")
	interval := time.Second
	for _, r := range []*replica.Replica{a, b} {
		go func() { _ = r.Run(ctx, replica.LiveOptions{Interval: interval}) }()
	}
	seen := make(chan string, 100)
	go func() {
		for c, err := range b.Watch(ctx, "p/", replica.WatchFromNow) {
			if err != nil {
				return
			}
			seen <- c.Key
		}
	}()
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
	p := func(q float64) time.Duration { return lat[min(int(q*float64(n)), n-1)].Round(time.Millisecond) }
	t.Logf("propagation A write -> B Watch, %d writes, interval %v: min %v p50 %v p99 %v max %v",
		n, interval, lat[0].Round(time.Millisecond), p(0.5), p(0.99), lat[n-1].Round(time.Millisecond))
}
