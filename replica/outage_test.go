package replica_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/internal/stats"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/replica"
)

// BenchmarkLiveOutage measures (a benchmark: it asserts convergence and no
// loss, not time) two live replicas writing through a 30 s outage of the
// S3 server (every connection reset at a proxy in front of versitygw):
// how long after the server returns both hold every write, and the error
// count and backoff Status showed. One iteration is one run (one outage);
// the metrics are the medians over the iterations (-benchtime 3x: 3 runs).
// The figures go to BENCHMARKS.md ("Live sync"). Needs the S3 test server
// (scripts/s3server.sh), like the S3 tests:
//
//	go test -count=1 -run '^$' -bench '^BenchmarkLiveOutage$' -benchtime 1x ./replica
func BenchmarkLiveOutage(b *testing.B) {
	var conv, errsA, errsB, backA, backB []float64
	for b.Loop() {
		r := liveOutageRun(b)
		conv = append(conv, r.converged.Seconds())
		errsA, errsB = append(errsA, float64(r.errorsA)), append(errsB, float64(r.errorsB))
		backA, backB = append(backA, r.backoffA.Seconds()), append(backB, r.backoffB.Seconds())
	}
	b.ReportMetric(stats.Median(conv), "s-converge")
	b.ReportMetric(stats.Median(errsA), "errors-A")
	b.ReportMetric(stats.Median(errsB), "errors-B")
	b.ReportMetric(stats.Median(backA), "s-backoff-A")
	b.ReportMetric(stats.Median(backB), "s-backoff-B")
}

// outageResult is what one run of liveOutageRun saw.
type outageResult struct {
	converged          time.Duration // from the server's return to both replicas holding every write
	errorsA, errorsB   int64         // Status().Live.Errors at the end of the outage
	backoffA, backoffB time.Duration // Status().Live.Backoff then
}

// liveOutageRun is one run of BenchmarkLiveOutage. It fails t when the
// replicas have not converged 5 minutes after the server returned.
func liveOutageRun(t testing.TB) outageResult {
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
		replicas = append(replicas, r)
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := open("a"), open("b")
	for _, r := range []*replica.Replica{a, b} {
		running.Go(func() { _ = r.Run(ctx, replica.LiveOptions{Interval: time.Second, MaxBackoff: maxBackoff}) })
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
	return outageResult{took, int64(sa.Live.Errors), int64(sb.Live.Errors), sa.Live.Backoff, sb.Live.Backoff}
}
