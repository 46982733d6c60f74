// Package replica is the public API of ebreplica: one local replica of a
// multi-writer replicated key-value store.
//
// Every read and write is local (Badger on disk) and needs no network. Each
// write is stamped with a fresh dot and hybrid-logical-clock time, replaces
// every concurrent version of its key (it has seen them all), and marks the
// key in the outbox in the same transaction, so a later push sends only
// changed keys. Concurrent writes from other replicas are kept as siblings
// and projected to one read value by the key's policy (lww by default).
//
// Push, Pull, Sync and Compact exchange changes through a shared remote
// store (S3 or an S3-compatible service, Google Cloud Storage, Azure Blob
// Storage, or a directory), named by a URL recorded at Init. The remote is opened on first use, by Options.OpenRemote
// (remoteurl.Open by default), unless Options.Backend gives it.
//
// A Replica is safe for concurrent use. Writes from many goroutines are
// grouped into shared transactions (group commit); with Durability Sync a
// write returns after its group's fsync.
//
// Names: the remote is the shared store (the command line and the bucket's
// formats call it "the store": store.json, store_id, created_store); the
// package store is the local database; the outbox is the set of keys
// changed here and not yet pushed (Pending, Status.Pending).
//
// This package is a facade. The protocol's rules are pure functions in
// internal/protocol, whose documentation states the safety argument; the
// engine that carries them out between the local store and the remote is
// internal/engine. Neither is reachable from here: a Replica has no test
// hooks and no raw access to its store.
package replica

import (
	"context"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits and defaults.
const (
	MaxKeyLen           = engine.MaxKeyLen
	DefaultMaxValueSize = engine.DefaultMaxValueSize
	// DefaultSegmentCap is the raw size at which a push starts a new segment.
	DefaultSegmentCap = engine.DefaultSegmentCap
	// DefaultAckInterval is how often pulls publish acks at most.
	DefaultAckInterval = engine.DefaultAckInterval
	// DefaultRegistryRefresh is how often an idle replica rewrites its
	// registry at least (DefaultRetireAfter is 30 days).
	DefaultRegistryRefresh = engine.DefaultRegistryRefresh
	DefaultPartSize        = engine.DefaultPartSize
	DefaultGrace           = engine.DefaultGrace
	DefaultRetireAfter     = engine.DefaultRetireAfter
	// FormatVersion is the store format this build writes and reads.
	FormatVersion = engine.FormatVersion
	// ProbeMaxAge is how long a successful probe of the remote's
	// conditional writes is trusted.
	ProbeMaxAge = engine.ProbeMaxAge
)

// WatchFromNow as Watch's since: only changes from now on.
const WatchFromNow = engine.WatchFromNow

// Errors. Branch on them with errors.Is (ErrConflict also with errors.As on
// *ConflictError).
var (
	ErrFeedTooOld         = engine.ErrFeedTooOld
	ErrNotFound           = engine.ErrNotFound
	ErrConflict           = engine.ErrConflict
	ErrClosed             = engine.ErrClosed
	ErrNotInitialized     = engine.ErrNotInitialized
	ErrAlreadyInitialized = engine.ErrAlreadyInitialized
	ErrInvalidKey         = engine.ErrInvalidKey
	ErrValueTooLarge      = engine.ErrValueTooLarge
	ErrLocked             = engine.ErrLocked
	ErrWrongPolicy        = engine.ErrWrongPolicy
	// ErrBadPatch: a write of a json key that is not a JSON object.
	ErrBadPatch = engine.ErrBadPatch
	// ErrFieldKind: a patch operation on a json field of another kind
	// ($inc on a field holding an object); it also matches ErrBadPatch.
	ErrFieldKind = engine.ErrFieldKind

	// Sync errors.
	ErrNoRemote       = engine.ErrNoRemote
	ErrCloned         = engine.ErrCloned
	ErrDuplicateID    = engine.ErrDuplicateID
	ErrNewerFormat    = engine.ErrNewerFormat
	ErrPolicyMismatch = engine.ErrPolicyMismatch
	// ErrKeyRequired, ErrNotEncrypted, ErrNoKey: see Options.Keys.
	ErrKeyRequired   = engine.ErrKeyRequired
	ErrNotEncrypted  = engine.ErrNotEncrypted
	ErrNoKey         = engine.ErrNoKey
	ErrForeignRemote = engine.ErrForeignRemote
	ErrGap           = engine.ErrGap
	ErrRetired       = engine.ErrRetired
)

// Types the engine defines and this package shows as they are.
type (
	// Batch is a set of writes applied atomically by Replica.Batch.
	Batch = engine.Batch
	// ConflictError is returned by Get when the policy surfaces siblings
	// (mv). It matches ErrConflict with errors.Is.
	ConflictError = engine.ConflictError
	// Version is one concurrent version of a key, as Versions returns it.
	Version = engine.Version
	// Item is one live key yielded by Scan.
	Item = engine.Item
	// PendingKey is a key changed here and not yet pushed.
	PendingKey = engine.PendingKey
	// Status describes the replica.
	Status = engine.Status
	// Change is one change-feed entry, as Watch yields it.
	Change = engine.Change
	// PushStats reports one push.
	PushStats = engine.PushStats
	// PullStats reports one pull.
	PullStats = engine.PullStats
	// SyncStats reports one sync.
	SyncStats = engine.SyncStats
	// CompactOptions configures Compact.
	CompactOptions = engine.CompactOptions
	// CompactStats reports a Compact.
	CompactStats = engine.CompactStats
	// VerifyOptions configures Verify.
	VerifyOptions = engine.VerifyOptions
	// VerifyReport is what Verify found.
	VerifyReport = engine.VerifyReport
	// Problem is one finding of Verify, about one object.
	Problem = engine.Problem
)

// Problem kinds (Problem.Kind).
const (
	KindCorrupt      = engine.KindCorrupt
	KindUnreadable   = engine.KindUnreadable
	KindUnstable     = engine.KindUnstable
	KindMissing      = engine.KindMissing
	KindForeign      = engine.KindForeign
	KindVersion      = engine.KindVersion
	KindOrphan       = engine.KindOrphan
	KindUnregistered = engine.KindUnregistered
	KindQuarantine   = engine.KindQuarantine
	KindProbe        = engine.KindProbe
	KindPlaceholder  = engine.KindPlaceholder
	KindUnchecked    = engine.KindUnchecked
	// LocalObject prefixes the Problem.Object of a finding about the
	// local store.
	LocalObject = engine.LocalObject
)

// Options configures a replica. nil means defaults.
type Options struct {
	// Durability: store.Sync (default; a write returns after fsync) or
	// store.Relaxed.
	Durability store.Durability
	// LowMemory selects the small-footprint Badger profile for edge devices.
	LowMemory bool
	// SoftMemoryLimit, when > 0, makes Init and Open set the Go runtime's
	// soft memory limit to this many bytes (runtime/debug.SetMemoryLimit).
	// The limit is the whole process's, so the library never sets it on
	// its own: an application on a small device asks for it here (the
	// command line sets SmallMemoryLimit under the small profile unless
	// $GOMEMLIMIT is set). 0 leaves the runtime's limit alone.
	SoftMemoryLimit int64
	// InMemory keeps the database in memory; dir is not used and may be "".
	InMemory bool
	// Create makes Open initialise a new replica when dir holds none.
	Create bool
	// RemoteURL is the remote URL recorded by a new replica (Init's
	// argument).
	RemoteURL string
	// ID, when non-zero, is the id given to a new replica.
	ID clock.ReplicaID
	// MaxValueSize caps a value (DefaultMaxValueSize when 0).
	MaxValueSize int
	// Wall is the wall clock (time.Now when nil).
	Wall func() time.Time
	// MaxDrift caps how far a remote HLC can drag the local clock ahead of
	// wall time (clock.DefaultMaxDrift when 0).
	MaxDrift time.Duration
	// Policies maps key prefixes to merge policies. A new replica records
	// the names; when nil, Open rebuilds the registry from the recorded
	// names (built-ins, or Funcs), so every later open reads the state the
	// same way. lww for all when nothing is recorded.
	Policies *merge.Registry
	// Funcs provides user policies (merge.NewFunc) by name, for recorded
	// names that are not built-ins.
	Funcs map[string]merge.Policy
	// Backend is the remote that Push, Pull, Sync and Compact use. When
	// nil, the recorded remote URL is opened on first use by OpenRemote.
	Backend remote.Backend
	// OpenRemote opens a remote URL (remoteurl.Open when nil), in the
	// manner of gocloud's URL openers: give it to serve other schemes or
	// to configure clients.
	OpenRemote func(ctx context.Context, url string) (remote.Backend, error)
	// SegmentCap is the raw segment size at which a push starts a new
	// segment, written into the manifest by the first replica of a store
	// (DefaultSegmentCap when 0). Later replicas use the manifest's.
	SegmentCap int
	// Codec of new segments, written into the manifest: "zstd" (default)
	// or "raw".
	Codec string
	// Progress, when set, is called as long operations advance: stage
	// "bootstrap" (records loaded of the snapshot's), "push" (bytes of the
	// staged segments sent and committed, of their total), "pull" (log
	// segments applied, of those listed), "compact" (records written to
	// the snapshot, of the live keys at first: the total grows when
	// records that read as deleted pass it).
	Progress func(stage string, done, total int64)
	// AckInterval bounds how often a pull rewrites the registry to publish
	// its ack (DefaultAckInterval when 0; negative: after every pull that
	// moved the cursor).
	AckInterval time.Duration
	// Logger receives the local store's (Badger's) log lines; nil
	// discards them.
	Logger *slog.Logger
	// RegistryRefresh is how old this replica's registry write may grow
	// before a pull rewrites it even though nothing moved, so that an
	// online, idle replica is never retired (DefaultRegistryRefresh when
	// 0). Keep it far below the store's retirement age.
	RegistryRefresh time.Duration
	// RequestTimeout bounds every request to a remote this replica opens
	// from its URL (remote.DefaultTimeout, 30s, when 0; negative: no
	// bound): a server that never answers fails the request with an
	// error wrapping remote.ErrTimeout that names the remote. A Backend
	// or OpenRemote given here is used as it is (wrap it with
	// remote.WithTimeout to bound it).
	RequestTimeout time.Duration
	// Metrics, when set, is where Open and Init register this replica's
	// Prometheus collector, before they touch dir: ebreplica_pushes_total,
	// _pulls_total, _sync_errors_total, _remote_requests_total{verb},
	// _remote_bytes_total{dir}, _keys, _pending_keys,
	// _log_lag_positions, _conflicted_keys (recounted at most every
	// ConflictScanInterval), _clock_capped_total and
	// _last_sync_timestamp_seconds, read at scrape time. A registration
	// that fails (another open replica registered there: wrap the
	// registry with prometheus.WrapRegistererWith to tell them apart)
	// fails the call and changes nothing. Close unregisters it.
	// NewMetricsRegistry makes a registry with the Go runtime collectors.
	Metrics prometheus.Registerer
	// Keys is this device's key for an encrypted store (an age X25519
	// identity, sealremote.LoadKeyFile). When nil, the key file recorded
	// at init (KeyFile) is read when the store turns out to be encrypted.
	Keys *sealremote.Keys
	// KeyFile, given to Init, is recorded in the replica directory (the
	// path, never the key) and read by later opens that give no Keys.
	KeyFile string
	// Encrypt makes the store this replica creates (the first replica of
	// a store) encrypted: every object body it and later replicas write
	// is sealed (see remote/sealremote), the data key wrapped for Keys.
	Encrypt bool
}

func (o *Options) engine() *engine.Options {
	if o == nil {
		return &engine.Options{}
	}
	return &engine.Options{
		Durability: o.Durability, LowMemory: o.LowMemory, InMemory: o.InMemory,
		Create: o.Create, RemoteURL: o.RemoteURL, ID: o.ID, MaxValueSize: o.MaxValueSize,
		Wall: o.Wall, MaxDrift: o.MaxDrift, Policies: o.Policies, Funcs: o.Funcs,
		Backend: o.Backend, SegmentCap: o.SegmentCap, Codec: o.Codec,
		Keys: o.Keys, KeyFile: o.KeyFile, Encrypt: o.Encrypt,
		Progress: o.Progress, AckInterval: o.AckInterval, Logger: o.Logger,
		RegistryRefresh: o.RegistryRefresh,
	}
}

// Replica is one local replica. Safe for concurrent use.
type Replica struct {
	e    *engine.Engine
	open func(ctx context.Context, url string) (remote.Backend, error)

	mu      sync.Mutex
	backend remote.Backend
	// sealChecked: backend was checked against the store's encryption
	// (engine.Seal), and sealed if it needed to be.
	sealChecked bool

	live live // Run's state (live.go)

	m *metrics // counters and the Prometheus collector (metrics.go)
}

func wrap(e *engine.Engine, o *Options, m *metrics) *Replica {
	var timeout time.Duration
	if o != nil {
		timeout = o.RequestTimeout
		setSoftMemoryLimit(o.SoftMemoryLimit)
	}
	r := &Replica{e: e, m: m, open: func(ctx context.Context, url string) (remote.Backend, error) {
		return remoteurl.OpenOptions(ctx, url, &remoteurl.Options{Timeout: timeout})
	}}
	if o != nil {
		r.backend = o.Backend
		if o.OpenRemote != nil {
			r.open = o.OpenRemote
		}
	}
	m.attach(r)
	return r
}

// Init creates a new replica in dir, bound to the remote URL. It fails with
// ErrAlreadyInitialized when dir already holds one.
func Init(dir, remoteURL string, opts *Options) (*Replica, error) {
	m, err := newMetrics(opts)
	if err != nil {
		return nil, err
	}
	e, err := engine.Init(dir, remoteURL, opts.engine())
	if err != nil {
		m.unregister()
		return nil, err
	}
	return wrap(e, opts, m), nil
}

// Open opens the replica in dir. Without opts.Create, a directory that
// holds none fails with ErrNotInitialized.
func Open(dir string, opts *Options) (*Replica, error) {
	m, err := newMetrics(opts)
	if err != nil {
		return nil, err
	}
	e, err := engine.Open(dir, opts.engine())
	if err != nil {
		m.unregister()
		return nil, err
	}
	return wrap(e, opts, m), nil
}

// Backend returns the remote this replica syncs with, opening its recorded
// URL on first use (ErrNoRemote when none is recorded). The error of the
// opener is returned as it is.
func (r *Replica) Backend(ctx context.Context) (remote.Backend, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backend == nil {
		url := r.e.RemoteURL()
		if url == "" {
			return nil, ErrNoRemote
		}
		b, err := r.open(ctx, url)
		if err != nil {
			return nil, err
		}
		r.backend = b
		r.e.SetBackend(b)
	}
	if !r.sealChecked {
		// An encrypted store is read and written through its seal.
		sb, decided, err := r.e.Seal(ctx, r.backend)
		if err != nil {
			return nil, err
		}
		if sb != r.backend {
			r.backend = sb
			r.e.SetBackend(sb)
		}
		r.sealChecked = decided
	}
	return r.backend, nil
}

// bind makes sure the engine has its backend before a remote operation.
func (r *Replica) bind(ctx context.Context) error {
	_, err := r.Backend(ctx)
	return err
}

// Close closes the replica (and unregisters its metrics); later calls
// return ErrClosed.
func (r *Replica) Close() error {
	r.m.unregister()
	return r.e.Close()
}

// ID returns the replica id.
func (r *Replica) ID() clock.ReplicaID { return r.e.ID() }

// Dir returns the replica's directory.
func (r *Replica) Dir() string { return r.e.Dir() }

// RemoteURL returns the remote URL recorded at init.
func (r *Replica) RemoteURL() string { return r.e.RemoteURL() }

// Policies returns the policy registry in force.
func (r *Replica) Policies() *merge.Registry { return r.e.Policies() }

// Watch yields every change to a key under prefix after sequence number
// since (WatchFromNow: from now on), local writes and changes merged by a
// pull alike, in order, then waits for more until ctx ends; see
// engine.Engine.Watch for the guarantees (ErrFeedTooOld past the kept
// window of store.FeedRetention changes).
func (r *Replica) Watch(ctx context.Context, prefix string, since uint64) iter.Seq2[Change, error] {
	return r.e.Watch(ctx, prefix, since)
}

// Status returns the replica's status; Live is Run's state while it
// runs.
func (r *Replica) Status() (Status, error) {
	s, err := r.e.Status()
	s.Live = r.live.status()
	return s, err
}

// Len returns the number of live keys, in O(1).
func (r *Replica) Len() int64 { return r.e.Len() }

// Get returns the value of key as its policy reads it: ErrNotFound when the
// key is not live, a *ConflictError when the policy surfaces siblings.
func (r *Replica) Get(key string) ([]byte, error) { return r.e.Get(key) }

// Versions returns every concurrent version of key (tombstones included),
// the one the policy reads marked Winner.
func (r *Replica) Versions(key string) ([]Version, error) { return r.e.Versions(key) }

// Put writes value under key. Counter and set keys are written through
// CounterAdd, SetAdd and SetRemove only (ErrWrongPolicy). A key under the
// json policy takes a JSON object (ErrBadPatch otherwise), written as the
// merge patch from the document read here to it: only the fields it
// changes are stamped (see Patch).
func (r *Replica) Put(ctx context.Context, key string, value []byte) error {
	return r.e.Put(ctx, key, value)
}

// Patch applies the JSON Merge Patch (RFC 7396) patch to the document key,
// whose policy must be json (ErrWrongPolicy otherwise): only the fields
// the patch names are written, a null removes a field, and concurrent
// patches of different fields on other replicas all survive (see
// merge.JSON). A patch that is not a JSON object (ErrBadPatch) or is over
// the value limit (ErrValueTooLarge) writes nothing.
func (r *Replica) Patch(ctx context.Context, key string, patch []byte) error {
	return r.e.Patch(ctx, key, patch)
}

// Delete deletes key. A key that is not live here gives ErrNotFound and
// writes nothing.
func (r *Replica) Delete(ctx context.Context, key string) error { return r.e.Delete(ctx, key) }

// Batch calls fn to queue writes, then applies them all in one
// transaction: all or nothing.
func (r *Replica) Batch(ctx context.Context, fn func(b *Batch) error) error {
	return r.e.Batch(ctx, fn)
}

// Resolve collapses the concurrent versions of key into one, as a local
// write of the value its policy reads.
func (r *Replica) Resolve(ctx context.Context, key string) error { return r.e.Resolve(ctx, key) }

// CounterAdd adds delta (which may be negative) to the counter key and
// returns the new value.
func (r *Replica) CounterAdd(ctx context.Context, key string, delta int64) (int64, error) {
	return r.e.CounterAdd(ctx, key, delta)
}

// CounterValue returns the value of the counter key: ErrNotFound when the
// key has no live counter.
func (r *Replica) CounterValue(key string) (int64, error) { return r.e.CounterValue(key) }

// SetAdd adds members to the set key. An add wins over a concurrent remove
// of the same member.
func (r *Replica) SetAdd(ctx context.Context, key string, members ...string) error {
	return r.e.SetAdd(ctx, key, members...)
}

// SetRemove removes members from the set key: the adds of them this
// replica has seen. A set whose last member goes reads as deleted.
func (r *Replica) SetRemove(ctx context.Context, key string, members ...string) error {
	return r.e.SetRemove(ctx, key, members...)
}

// SetMembers returns the members of the set key in byte order: ErrNotFound
// when the key has no live set.
func (r *Replica) SetMembers(key string) ([]string, error) { return r.e.SetMembers(key) }

// DocOperations returns the json key's document in operation form
// (counters {"$counter":N}, sets {"$set":[...]}, "$x" fields as "$$x"),
// which Batch.PutDoc writes back with every field's kind: ErrNotFound when
// the key has no live document.
func (r *Replica) DocOperations(key string) ([]byte, error) { return r.e.DocOperations(key) }

// Clear deletes the counter, set or json key with observed-remove semantics.
func (r *Replica) Clear(ctx context.Context, key string) error { return r.e.Clear(ctx, key) }

// Scan yields the live keys with the prefix, in key order, from one
// consistent view.
func (r *Replica) Scan(prefix string) iter.Seq2[Item, error] { return r.e.Scan(prefix) }

// ScanFrom is Scan starting at key start (inclusive).
func (r *Replica) ScanFrom(prefix, start string) iter.Seq2[Item, error] {
	return r.e.ScanFrom(prefix, start)
}

// Keys yields every key that has a record here, live or reading as
// deleted, in key order.
func (r *Replica) Keys(prefix string) iter.Seq2[string, error] { return r.e.Keys(prefix) }

// Pending yields the keys changed here and not yet pushed (the outbox), in
// key order.
func (r *Replica) Pending() iter.Seq2[PendingKey, error] { return r.e.Pending() }

// Connect binds the replica to its remote: it reads (or, for the first
// replica of a store, writes) the manifest and this replica's registry.
// created reports that this call created the remote store.
func (r *Replica) Connect(ctx context.Context) (created bool, err error) {
	if err := r.bind(ctx); err != nil {
		return false, err
	}
	return r.e.Connect(ctx)
}

// Push sends local changes (see the engine's push for the protocol).
func (r *Replica) Push(ctx context.Context) (_ PushStats, err error) {
	defer r.m.count(&r.m.pushes, &err)
	if err := r.bind(ctx); err != nil {
		return PushStats{}, err
	}
	return r.e.Push(ctx)
}

// PushAll re-sends every record this replica holds.
func (r *Replica) PushAll(ctx context.Context) (_ PushStats, err error) {
	defer r.m.count(&r.m.pushes, &err)
	if err := r.bind(ctx); err != nil {
		return PushStats{}, err
	}
	return r.e.PushAll(ctx)
}

// Pull receives and merges what other replicas pushed.
func (r *Replica) Pull(ctx context.Context) (_ PullStats, err error) {
	defer r.m.count(&r.m.pulls, &err)
	if err := r.bind(ctx); err != nil {
		return PullStats{}, err
	}
	return r.e.Pull(ctx)
}

// Sync pulls, then pushes.
func (r *Replica) Sync(ctx context.Context) (_ SyncStats, err error) {
	defer r.m.synced(&err)
	if err := r.bind(ctx); err != nil {
		return SyncStats{}, err
	}
	return r.e.Sync(ctx)
}

// Compact collects what may be collected, writes a snapshot of this
// replica's state and, with Prune, deletes what the snapshot covers.
func (r *Replica) Compact(ctx context.Context, o CompactOptions) (CompactStats, error) {
	if err := r.bind(ctx); err != nil {
		return CompactStats{}, err
	}
	return r.e.Compact(ctx, o)
}

// Verify checks every object of the store on the replica's remote, and the
// local store's records.
func (r *Replica) Verify(ctx context.Context, o VerifyOptions) (VerifyReport, error) {
	if err := r.bind(ctx); err != nil {
		return VerifyReport{}, err
	}
	return r.e.Verify(ctx, o)
}

// Reidentify gives this directory a new replica id, for a directory that
// was copied (Push and Pull stop with ErrCloned until it is done). It keeps
// the data and re-stamps the unpushed changes.
func (r *Replica) Reidentify(ctx context.Context) (clock.ReplicaID, error) {
	if err := r.bind(ctx); err != nil {
		return clock.ReplicaID{}, err
	}
	return r.e.Reidentify(ctx)
}

// Verify checks every object of the remote store b, with no replica.
func Verify(ctx context.Context, b remote.Backend, o VerifyOptions) (VerifyReport, error) {
	return engine.Verify(ctx, b, o)
}

// ValidateKey checks a key: not empty, at most MaxKeyLen bytes, valid UTF-8.
func ValidateKey(key string) error { return engine.ValidateKey(key) }
