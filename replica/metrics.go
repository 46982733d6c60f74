package replica

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// ConflictScanInterval bounds how often a scrape of the metrics scans
// the keys for ebreplica_conflicted_keys: a scrape rescans only when the
// store has committed since the last scan and that scan is at least this
// old (by Options.Wall), so the value may be this much behind the data.
// A scan of 100,000 in-memory keys takes about 60 ms on a small server; a
// scrape that does not rescan, about 40 µs (BenchmarkMetricsScrape).
const ConflictScanInterval = 10 * time.Second

// NewMetricsRegistry returns a new Prometheus registry with the Go
// runtime and process collectors, for an application that has none of
// its own: give it as Options.Metrics and serve it (promhttp.HandlerFor).
func NewMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metrics is a replica's counters, kept always (cheap atomics), and its
// Prometheus collector, registered on Options.Metrics when given.
type metrics struct {
	pushes, pulls, syncErrors atomic.Uint64
	lastSync                  atomic.Int64 // unix nanoseconds of the last success; 0: none
	now                       func() time.Time

	r atomic.Pointer[Replica] // set once the replica is open

	mu  sync.Mutex
	reg prometheus.Registerer // nil when not (or no longer) registered

	conflicts conflictCache
}

// conflictCache is the last count of conflicted keys.
type conflictCache struct {
	mu      sync.Mutex
	scanned bool
	at      time.Time
	commits int64
	n       int64
}

var (
	descPushes     = prometheus.NewDesc("ebreplica_pushes_total", "Pushes (Push, PushAll, Sync, and the live syncer's), failed ones included.", nil, nil)
	descPulls      = prometheus.NewDesc("ebreplica_pulls_total", "Pulls (Pull, Sync, and the live syncer's), failed ones included.", nil, nil)
	descSyncErrors = prometheus.NewDesc("ebreplica_sync_errors_total", "Pushes, pulls and syncs that returned an error.", nil, nil)
	descRequests   = prometheus.NewDesc("ebreplica_remote_requests_total", "Requests to the remote store, by verb (get, put, list, delete).", []string{"verb"}, nil)
	descBytes      = prometheus.NewDesc("ebreplica_remote_bytes_total", "Bytes moved to and from the remote store: in (GET bodies), out (PUT bodies).", []string{"dir"}, nil)
	descKeys       = prometheus.NewDesc("ebreplica_keys", "Live keys in the local replica.", nil, nil)
	descPending    = prometheus.NewDesc("ebreplica_pending_keys", "Keys changed here and not yet pushed (the outbox).", nil, nil)
	descLag        = prometheus.NewDesc("ebreplica_log_lag_positions", "Log positions the live syncer knew it was behind after its last pull (0 when not running live).", nil, nil)
	descConflicted = prometheus.NewDesc("ebreplica_conflicted_keys", "Keys whose policy reads them as a conflict (concurrent versions surfaced, as mv does); recounted at most every 10s.", nil, nil)
	descCapped     = prometheus.NewDesc("ebreplica_clock_capped_total", "Remote clock readings capped because they were too far ahead of the wall clock.", nil, nil)
	descLastSync   = prometheus.NewDesc("ebreplica_last_sync_timestamp_seconds", "Unix time of the last successful push, pull or sync since the replica was opened (0 before any).", nil, nil)
)

// newMetrics makes a replica's counters and, when o.Metrics is set,
// registers its collector there. A failed registration leaves nothing
// registered.
func newMetrics(o *Options) (*metrics, error) {
	m := &metrics{now: time.Now}
	if o == nil {
		return m, nil
	}
	if o.Wall != nil {
		m.now = o.Wall
	}
	if o.Metrics == nil {
		return m, nil
	}
	if err := o.Metrics.Register(m); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil, fmt.Errorf("replica: metrics already registered on this registry (another open replica? wrap the registry with prometheus.WrapRegistererWith to tell replicas apart): %w", err)
		}
		return nil, fmt.Errorf("replica: register metrics: %w", err)
	}
	m.reg = o.Metrics
	return m, nil
}

// attach makes the collector read r.
func (m *metrics) attach(r *Replica) *metrics {
	m.r.Store(r)
	return m
}

// unregister removes the collector from its registry, once.
func (m *metrics) unregister() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reg != nil {
		m.reg.Unregister(m)
		m.reg = nil
	}
}

// count counts one push or pull (n) and its error, when *err is set. It
// is deferred by the methods that push or pull.
func (m *metrics) count(n *atomic.Uint64, err *error) {
	n.Add(1)
	m.done(*err)
}

// synced counts a Sync: one pull and, when it succeeded, one push (a
// failed Sync counts one pull and one error: the push may not have run).
func (m *metrics) synced(err *error) {
	m.pulls.Add(1)
	if *err == nil {
		m.pushes.Add(1)
	}
	m.done(*err)
}

func (m *metrics) done(err error) {
	if err != nil {
		m.syncErrors.Add(1)
		return
	}
	m.lastSync.Store(m.now().UnixNano())
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPushes, descPulls, descSyncErrors, descRequests, descBytes,
		descKeys, descPending, descLag, descConflicted, descCapped, descLastSync} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the counters, the
// bound remote's request counts (0 before the remote is bound), the
// store's O(1) sizes, the live syncer's lag and the clock's skew count at
// scrape time; only the conflicted keys take a scan, cached (see
// ConflictScanInterval).
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	r := m.r.Load()
	if r == nil {
		return // registered ahead of the open, which has not finished
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descPushes, float64(m.pushes.Load()))
	counter(descPulls, float64(m.pulls.Load()))
	counter(descSyncErrors, float64(m.syncErrors.Load()))

	var get, put, list, del, in, out int64
	r.mu.Lock()
	b := r.backend
	r.mu.Unlock()
	if b != nil {
		if s := b.Stats(); s != nil {
			get, put, list, del = s.Gets.Load(), s.Puts.Load(), s.Lists.Load(), s.Deletes.Load()
			in, out = s.BytesIn.Load(), s.BytesOut.Load()
		}
	}
	counter(descRequests, float64(get), "get")
	counter(descRequests, float64(put), "put")
	counter(descRequests, float64(list), "list")
	counter(descRequests, float64(del), "delete")
	counter(descBytes, float64(in), "in")
	counter(descBytes, float64(out), "out")

	st := r.e.Store()
	gauge(descKeys, float64(st.Len()))
	gauge(descPending, float64(st.OutboxLen()))
	var lag uint64
	if ls := r.live.status(); ls != nil {
		lag = ls.Lag
	}
	gauge(descLag, float64(lag))
	if n, err := m.conflicted(r); errors.Is(err, ErrClosed) {
		// closing while scraped: leave it out
	} else if err != nil {
		ch <- prometheus.NewInvalidMetric(descConflicted, err)
	} else {
		gauge(descConflicted, float64(n))
	}
	capped, _ := st.Clock().SkewStats()
	counter(descCapped, float64(capped))
	var last float64
	if ns := m.lastSync.Load(); ns != 0 {
		last = float64(ns) / 1e9
	}
	gauge(descLastSync, last)
}

// conflicted returns the number of keys read as a conflict: the cached
// count while the store has not committed since it was taken or it is
// younger than ConflictScanInterval, else a fresh scan.
func (m *metrics) conflicted(r *Replica) (int64, error) {
	c := &m.conflicts
	c.mu.Lock()
	defer c.mu.Unlock()
	commits := r.e.Store().Commits() // before the scan: a commit during it is seen next time
	now := m.now()
	if c.scanned && (commits == c.commits || now.Sub(c.at) < ConflictScanInterval) {
		return c.n, nil
	}
	var n int64
	for it, err := range r.e.Scan("") {
		if err != nil {
			return 0, err
		}
		if it.Conflict {
			n++
		}
	}
	c.scanned, c.at, c.commits, c.n = true, now, commits, n
	return n, nil
}
