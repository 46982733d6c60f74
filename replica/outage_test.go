package replica_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/replica"
)

// TestLiveOutage measures (a benchmark: it asserts convergence and no
// loss, not time) two live replicas writing through a 30 s outage of the
// S3 server (every connection reset at a proxy in front of versitygw):
// how long after the server returns both hold every write, and the error
// count and backoff Status showed. Only with EBREPLICA_BENCH_LIVE=1; the
// figures go to BENCHMARKS.md ("Live sync").
func TestLiveOutage(t *testing.T) {
	if os.Getenv("EBREPLICA_BENCH_LIVE") != "1" {
		t.Skip("a benchmark: set EBREPLICA_BENCH_LIVE=1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := s3test.Config(t)
	_, bucket := srv.NewBucket(t)
	var down atomic.Bool
	p := srv.NewProxy(t, func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
		if down.Load() {
			s3test.ResetConnection(w)
			return true
		}
		return false
	})
	pc := p.Client(t)
	maxBackoff := 10 * time.Second
	open := func(name string) *replica.Replica {
		b, err := s3remote.New(pc, bucket, "outage", &s3remote.Options{MaxAttempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		r, err := replica.Init(t.TempDir()+"/"+name, "s3://"+bucket+"/outage", &replica.Options{Backend: b})
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
	for _, r := range []*replica.Replica{a, b} {
		go func() { _ = r.Run(ctx, replica.LiveOptions{Interval: time.Second, MaxBackoff: maxBackoff}) }()
	}
	down.Store(true)
	start := time.Now()
	for i := 0; time.Since(start) < 30*time.Second; i++ {
		if err := a.Put(ctx, fmt.Sprintf("a/%03d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, fmt.Sprintf("b/%03d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // the writers' pace during the outage (a benchmark)
	}
	sa, _ := a.Status()
	sb, _ := b.Status()
	down.Store(false)
	back := time.Now()
	want := a.Len() + b.Len()
	for a.Len() != want || b.Len() != want {
		if time.Since(back) > 5*time.Minute {
			t.Fatalf("not converged 5 min after the outage: %d and %d of %d keys", a.Len(), b.Len(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(back)
	t.Logf("outage 30 s, %d writes; at its end A: %d errors, backoff %v; B: %d errors, backoff %v; converged %v after the server returned (backoff cap %v)",
		want, sa.Live.Errors, sa.Live.Backoff.Round(time.Millisecond), sb.Live.Errors, sb.Live.Backoff.Round(time.Millisecond), took.Round(time.Millisecond), maxBackoff)
}
