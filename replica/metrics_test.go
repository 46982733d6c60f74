package replica_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// apiMetricNames are the names of /work/shared/API.md ("Metrics").
var apiMetricNames = []string{
	"ebreplica_pushes_total", "ebreplica_pulls_total", "ebreplica_sync_errors_total",
	"ebreplica_remote_requests_total", "ebreplica_remote_bytes_total",
	"ebreplica_keys", "ebreplica_pending_keys", "ebreplica_log_lag_positions",
	"ebreplica_conflicted_keys", "ebreplica_clock_capped_total",
	"ebreplica_last_sync_timestamp_seconds",
}

// wall is an Options.Wall that moves only when the test moves it.
type wall struct {
	mu sync.Mutex
	t  time.Time
}

func newWall() *wall { return &wall{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (w *wall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.t
}

func (w *wall) add(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t = w.t.Add(d)
}

// scrape gathers g into name{label=value} -> value.
func scrape(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			case strings.HasPrefix(name, "ebreplica_"):
				t.Fatalf("%s: neither counter nor gauge", name)
			}
		}
	}
	return out
}

// expect fails for every name of want whose scraped value differs.
func expect(t *testing.T, when string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for name, v := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %s missing", when, name)
		} else if g != v {
			t.Errorf("%s: %s = %v, want %v", when, name, g, v)
		}
	}
}

func bucketURL(t *testing.T, root string) string {
	t.Helper()
	bucket := filepath.Join(root, "bucket")
	if err := os.Mkdir(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	return "file://" + bucket
}

// TestMetricsCounts: writes, a push, a pull and a sync against a real
// directory remote move the counters by exactly what happened; the
// request and byte counts are the bound backend's own (0 before it is
// bound); pending drops to 0 after the push; last sync is the wall time
// of the last success; failed pushes, pulls and syncs count as errors
// and leave the last sync time alone.
func TestMetricsCounts(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	url := bucketURL(t, root)
	w := newWall()
	reg := prometheus.NewRegistry()
	a, err := replica.Init(filepath.Join(root, "a"), url, &replica.Options{Metrics: reg, Wall: w.now, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	zero := map[string]float64{}
	for _, n := range []string{"ebreplica_pushes_total", "ebreplica_pulls_total", "ebreplica_sync_errors_total",
		"ebreplica_keys", "ebreplica_pending_keys", "ebreplica_log_lag_positions", "ebreplica_conflicted_keys",
		"ebreplica_clock_capped_total", "ebreplica_last_sync_timestamp_seconds",
		"ebreplica_remote_requests_total{verb=get}", "ebreplica_remote_requests_total{verb=put}",
		"ebreplica_remote_requests_total{verb=list}", "ebreplica_remote_requests_total{verb=delete}",
		"ebreplica_remote_bytes_total{dir=in}", "ebreplica_remote_bytes_total{dir=out}"} {
		zero[n] = 0
	}
	expect(t, "new, unbound", scrape(t, reg), zero)

	for i := range 3 {
		if err := a.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, "after 3 writes", scrape(t, reg), map[string]float64{
		"ebreplica_keys": 3, "ebreplica_pending_keys": 3, "ebreplica_pushes_total": 0})

	pushedAt := w.now()
	if _, err := a.Push(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, "after a push", scrape(t, reg), map[string]float64{
		"ebreplica_pushes_total": 1, "ebreplica_pulls_total": 0, "ebreplica_sync_errors_total": 0,
		"ebreplica_keys": 3, "ebreplica_pending_keys": 0,
		"ebreplica_last_sync_timestamp_seconds": float64(pushedAt.UnixNano()) / 1e9})

	// Another replica (no metrics) writes; a's pull brings it in.
	b, err := replica.Init(filepath.Join(root, "b"), url, &replica.Options{Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Put(ctx, "from-b", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	w.add(time.Minute)
	pulledAt := w.now()
	if ps, err := a.Pull(ctx); err != nil || ps.Records != 1 {
		t.Fatalf("pull: %+v, %v", ps, err)
	}
	got := scrape(t, reg)
	expect(t, "after a pull", got, map[string]float64{
		"ebreplica_pushes_total": 1, "ebreplica_pulls_total": 1, "ebreplica_sync_errors_total": 0,
		"ebreplica_keys": 4, "ebreplica_pending_keys": 0,
		"ebreplica_last_sync_timestamp_seconds": float64(pulledAt.UnixNano()) / 1e9})

	be, err := a.Backend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := be.Stats()
	want := map[string]float64{
		"ebreplica_remote_requests_total{verb=get}":    float64(s.Gets.Load()),
		"ebreplica_remote_requests_total{verb=put}":    float64(s.Puts.Load()),
		"ebreplica_remote_requests_total{verb=list}":   float64(s.Lists.Load()),
		"ebreplica_remote_requests_total{verb=delete}": float64(s.Deletes.Load()),
		"ebreplica_remote_bytes_total{dir=in}":         float64(s.BytesIn.Load()),
		"ebreplica_remote_bytes_total{dir=out}":        float64(s.BytesOut.Load()),
	}
	expect(t, "requests", got, want)
	for _, n := range []string{"ebreplica_remote_requests_total{verb=get}", "ebreplica_remote_requests_total{verb=put}",
		"ebreplica_remote_bytes_total{dir=in}", "ebreplica_remote_bytes_total{dir=out}"} {
		if got[n] == 0 {
			t.Errorf("%s is 0 after a push and a pull", n)
		}
	}
	if n := testutil.CollectAndCount(reg, "ebreplica_remote_requests_total"); n != 4 {
		t.Errorf("%d request series, want 4 (get, put, list, delete)", n)
	}
	if n := testutil.CollectAndCount(reg, "ebreplica_remote_bytes_total"); n != 2 {
		t.Errorf("%d byte series, want 2 (in, out)", n)
	}

	// A Sync is one pull and one push.
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, "after a sync", scrape(t, reg), map[string]float64{
		"ebreplica_pushes_total": 2, "ebreplica_pulls_total": 2, "ebreplica_sync_errors_total": 0})

	// Failures: a replica with no remote counts each attempt and its error,
	// and has never synced.
	reg2 := prometheus.NewRegistry()
	c, err := replica.Init(filepath.Join(root, "c"), "", &replica.Options{Metrics: reg2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Pull(ctx); !errors.Is(err, replica.ErrNoRemote) {
		t.Fatalf("pull: %v", err)
	}
	if _, err := c.Push(ctx); !errors.Is(err, replica.ErrNoRemote) {
		t.Fatalf("push: %v", err)
	}
	if _, err := c.Sync(ctx); !errors.Is(err, replica.ErrNoRemote) {
		t.Fatalf("sync: %v", err)
	}
	expect(t, "after failures", scrape(t, reg2), map[string]float64{
		"ebreplica_pushes_total": 1, "ebreplica_pulls_total": 2, "ebreplica_sync_errors_total": 3,
		"ebreplica_last_sync_timestamp_seconds": 0})
}

// TestMetricsNames: the registered names are exactly API.md's, each with
// a HELP text, the _total ones counters and the others gauges.
func TestMetricsNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := replica.Init(filepath.Join(t.TempDir(), "a"), "", &replica.Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if mf.GetHelp() == "" {
			t.Errorf("%s has no HELP", mf.GetName())
		}
		counter := strings.HasSuffix(mf.GetName(), "_total")
		if isCounter := mf.GetType().String() == "COUNTER"; isCounter != counter {
			t.Errorf("%s is a %v", mf.GetName(), mf.GetType())
		}
	}
	want := slices.Clone(apiMetricNames)
	slices.Sort(want)
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("names %v\nwant (API.md) %v", names, want)
	}

	// The helper registry adds the Go runtime collectors beside them.
	full := replica.NewMetricsRegistry()
	r2, err := replica.Init(filepath.Join(t.TempDir(), "b"), "", &replica.Options{Metrics: full})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got := scrape(t, full)
	for _, n := range []string{"go_goroutines", "ebreplica_keys"} {
		if _, ok := got[n]; !ok {
			t.Errorf("NewMetricsRegistry: no %s", n)
		}
	}
}

// TestMetricsConflicts: an mv key with concurrent versions counts as
// conflicted (an lww one does not); after a write settles it the count stays at most
// ConflictScanInterval behind (by Options.Wall), then drops.
func TestMetricsConflicts(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	bucket := filepath.Join(root, "bucket")
	if err := os.Mkdir(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	be, err := fileremote.New(bucket, nil)
	if err != nil {
		t.Fatal(err)
	}
	policies := func() *merge.Registry {
		reg := merge.NewRegistry()
		mv, ok := merge.Builtin("mv")
		if !ok {
			t.Fatal("no mv policy")
		}
		reg.Set("c/", mv)
		return reg
	}
	w := newWall()
	reg := prometheus.NewRegistry()
	a, err := replica.Init(filepath.Join(root, "a"), "file://unused", &replica.Options{
		Backend: be, Policies: policies(), Metrics: reg, Wall: w.now, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := replica.Init(filepath.Join(root, "b"), "file://unused", &replica.Options{
		Backend: be, Policies: policies(), Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, r := range []*replica.Replica{a, b} {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Concurrent writes of c/k (mv: a conflict); a plain key beside it,
	// and an lww key written on both (concurrent, but no conflict).
	for _, kv := range [][3]string{{"a", "c/k", "from a"}, {"b", "c/k", "from b"}, {"a", "plain", "x"},
		{"a", "l", "1"}, {"b", "l", "2"}} {
		r := map[string]*replica.Replica{"a": a, "b": b}[kv[0]]
		if err := r.Put(ctx, kv[1], []byte(kv[2])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get("c/k"); !errors.Is(err, replica.ErrConflict) {
		t.Fatalf("c/k reads %v, want a conflict", err)
	}
	expect(t, "after the conflict", scrape(t, reg), map[string]float64{"ebreplica_conflicted_keys": 1, "ebreplica_keys": 3})

	if err := a.Put(ctx, "c/k", []byte("settled")); err != nil { // a write replaces every version it saw
		t.Fatal(err)
	}
	// The count is cached: at most ConflictScanInterval behind.
	expect(t, "settled, same instant", scrape(t, reg), map[string]float64{"ebreplica_conflicted_keys": 1})
	w.add(replica.ConflictScanInterval)
	expect(t, "settled, an interval on", scrape(t, reg), map[string]float64{"ebreplica_conflicted_keys": 0})
}

// TestMetricsRegistration: a second replica on the same registry fails
// with a clear error, leaves nothing registered and changes nothing on
// disk; Close unregisters, so the replica can be opened again with the
// same registry; a failed Open unregisters too.
func TestMetricsRegistration(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	reg := prometheus.NewRegistry()
	dirA := filepath.Join(root, "a")
	a, err := replica.Init(dirA, "", &replica.Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	dirB := filepath.Join(root, "b")
	_, err = replica.Init(dirB, "", &replica.Options{Metrics: reg})
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("a second replica on the registry: %v", err)
	}
	if _, serr := os.Stat(dirB); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("the failed Init left %s: %v", dirB, serr)
	}
	_, err = replica.Open(dirB, &replica.Options{Metrics: reg, Create: true})
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("a second replica on the registry (Open): %v", err)
	}
	if n := testutil.CollectAndCount(reg, "ebreplica_keys"); n != 1 {
		t.Fatalf("%d ebreplica_keys series, want a's only", n)
	}
	expect(t, "after the refused one", scrape(t, reg), map[string]float64{"ebreplica_keys": 1, "ebreplica_pending_keys": 1})

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, replica.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if got := scrape(t, reg); len(got) != 0 {
		t.Fatalf("after Close the registry still has %v", got)
	}
	// An Open that fails (no replica there) registers nothing either.
	if _, err := replica.Open(dirB, &replica.Options{Metrics: reg}); !errors.Is(err, replica.ErrNotInitialized) {
		t.Fatalf("Open of nothing: %v", err)
	}
	if got := scrape(t, reg); len(got) != 0 {
		t.Fatalf("after a failed Open the registry has %v", got)
	}

	a, err = replica.Open(dirA, &replica.Options{Metrics: reg})
	if err != nil {
		t.Fatalf("reopen on the same registry: %v", err)
	}
	defer a.Close()
	expect(t, "reopened", scrape(t, reg), map[string]float64{"ebreplica_keys": 1, "ebreplica_pushes_total": 0})
}

// TestMetricsLive: the live syncer's rounds count like the app's calls:
// its first round is one pull, a round after a write one push, a failed
// round one error.
func TestMetricsLive(t *testing.T) {
	ctx := context.Background()
	fb := &failing{Backend: memremote.New("live")}
	reg := prometheus.NewRegistry()
	a, err := replica.Init("", "mem://live", &replica.Options{InMemory: true, Backend: fb, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rounds := make(chan replica.Round, 100)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- a.Run(runCtx, replica.LiveOptions{Interval: time.Hour, Debounce: 200 * time.Millisecond,
			Clock: clk, Jitter: func() float64 { return 0.5 }, OnRound: func(r replica.Round) { rounds <- r }})
	}()
	next := func() replica.Round {
		t.Helper()
		select {
		case r := <-rounds:
			return r
		case err := <-done:
			t.Fatalf("Run returned %v", err)
		}
		return replica.Round{}
	}
	if r := next(); r.Pull == nil || r.Push != nil || r.Err != nil {
		t.Fatalf("first round: %+v", r)
	}
	expect(t, "first round", scrape(t, reg), map[string]float64{
		"ebreplica_pulls_total": 1, "ebreplica_pushes_total": 0, "ebreplica_sync_errors_total": 0})
	if err := a.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	clk.advance(t, 200*time.Millisecond)
	if r := next(); r.Push == nil || r.Pull != nil || r.Err != nil {
		t.Fatalf("push round: %+v", r)
	}
	expect(t, "push round", scrape(t, reg), map[string]float64{
		"ebreplica_pulls_total": 1, "ebreplica_pushes_total": 1, "ebreplica_sync_errors_total": 0,
		"ebreplica_pending_keys": 0, "ebreplica_log_lag_positions": 0})
	fb.set(true)
	if err := a.Put(ctx, "k2", []byte("v")); err != nil {
		t.Fatal(err)
	}
	clk.advance(t, 200*time.Millisecond)
	if r := next(); r.Err == nil {
		t.Fatalf("round during the outage: %+v", r)
	}
	expect(t, "failed round", scrape(t, reg), map[string]float64{
		"ebreplica_pulls_total": 1, "ebreplica_pushes_total": 2, "ebreplica_sync_errors_total": 1,
		"ebreplica_pending_keys": 1})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMetricsScrape gathers the metrics of a replica of 100,000
// keys: "cached" is a scrape with nothing committed since the last (all
// O(1) reads), "rescan" the worst case, a scrape that recounts the
// conflicted keys (a commit and ConflictScanInterval since the last
// scan), which happens at most once per ConflictScanInterval.
func BenchmarkMetricsScrape(b *testing.B) {
	ctx := context.Background()
	w := newWall()
	reg := prometheus.NewRegistry()
	r, err := replica.Init("", "", &replica.Options{InMemory: true, Durability: store.Relaxed, Metrics: reg, Wall: w.now})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const keys, batch = 100_000, 2000
	for i := 0; i < keys; i += batch {
		if err := r.Batch(ctx, func(bt *replica.Batch) error {
			for j := i; j < i+batch; j++ {
				bt.Put(fmt.Sprintf("key/%06d", j), []byte("value"))
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if r.Len() != keys {
		b.Fatalf("%d keys", r.Len())
	}
	if _, err := reg.Gather(); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rescan", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if err := r.Put(ctx, "key/000000", []byte("again")); err != nil {
				b.Fatal(err)
			}
			w.add(replica.ConflictScanInterval)
			b.StartTimer()
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
