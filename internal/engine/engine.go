package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// Limits.
const (
	MaxKeyLen           = 1024
	DefaultMaxValueSize = 16 << 20
)

// Errors. Branch on them with errors.Is (ErrConflict also with errors.As on
// *ConflictError).
var (
	ErrNotFound           = errors.New("replica: not found")
	ErrConflict           = errors.New("replica: key has concurrent versions")
	ErrClosed             = errors.New("replica: closed")
	ErrNotInitialized     = errors.New("replica: no replica in this directory (run init)")
	ErrAlreadyInitialized = errors.New("replica: directory already holds a replica")
	ErrInvalidKey         = errors.New("replica: invalid key")
	ErrValueTooLarge      = errors.New("replica: value too large")
	ErrLocked             = store.ErrLocked
)

// ConflictError is returned by Get when the policy surfaces siblings (mv).
// It matches ErrConflict with errors.Is.
type ConflictError struct {
	Key      string
	Versions []Version
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("replica: key %q has %d concurrent versions", e.Key, len(e.Versions))
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Version is one concurrent version of a key, as Versions returns it.
type Version struct {
	Value   []byte
	Deleted bool
	Replica clock.ReplicaID
	Counter uint64
	Time    clock.HLC
	// Winner: the key's policy reads this version.
	Winner bool
}

// Options configures a replica. nil means defaults.
type Options struct {
	// Durability: store.Sync (default; a write returns after fsync) or
	// store.Relaxed.
	Durability store.Durability
	// LowMemory selects the small-footprint Badger profile for edge devices.
	LowMemory bool
	// InMemory keeps the database in memory (tests); dir is only used for
	// nothing then and may be "".
	InMemory bool
	// Engine, when set, is used instead of Badger (the simulator's
	// map-backed engine). dir is ignored.
	Engine store.Engine
	// Create makes Open initialise a new replica when dir holds none.
	Create bool
	// RemoteURL is the remote URL recorded by a new replica.
	RemoteURL string
	// ID, when non-zero, is the id given to a new replica (tests, simulator).
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
	// Backend is the shared remote that Push, Pull and Sync use (nil: local
	// only; they return ErrNoRemote).
	Backend remote.Backend
	// SegmentCap is the raw segment size at which a push starts a new
	// segment, written into the manifest by the first replica of a store
	// (DefaultSegmentCap when 0). Later replicas use the manifest's.
	SegmentCap int
	// Codec of new segments, written into the manifest: "zstd" (default) or "raw".
	Codec string
	// Hooks are for the simulator and the engine's tests; the facade
	// (package replica) never sets them.
	Hooks *Hooks
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
	// Keys is this device's key for an encrypted store (seal.go); nil:
	// the key file recorded at init is read when the store is encrypted.
	Keys *sealremote.Keys
	// KeyFile is recorded by a new replica (an absolute path; the key
	// itself is never stored) and read when Keys is nil.
	KeyFile string
	// Encrypt: the store this replica creates (the first of a store) is
	// encrypted, its first data key wrapped for Keys.
	Encrypt bool
	// ListEvery bounds how long an idle pull's one GET (log/<cursor+1>
	// not found) is trusted without listing log/ (protocol.PlanPoll): a
	// pull lists when its last listing is older (RegistryRefresh when 0;
	// negative: every pull lists).
	ListEvery time.Duration
}

// DefaultAckInterval is how often pulls publish acks at most.
const DefaultAckInterval = time.Minute

// DefaultRegistryRefresh is how often an idle replica rewrites its
// registry at least (DefaultRetireAfter is 30 days).
const DefaultRegistryRefresh = 24 * time.Hour

// Hooks let the simulator and tests interrupt the sync protocol at named
// steps, and run it under another rule set. Step is called at each; a non-nil error aborts the operation there
// with that error, as if the process had died at that point (the caller then
// crashes the engine and reopens). Steps:
//
//	push:staged       segments staged, registry not yet swapped
//	registry:swapped  the registry object swapped, its ETag not yet persisted
//	push:fenced       registry swapped, nothing uploaded
//	push:uploaded     a segment created on the remote, registry not yet re-read
//	push:checked      registry re-read (not retired), segment not yet committed
//	push:committed    a segment committed locally
//	pull:listed       log listed, nothing applied
//	pull:chunk        one transaction of a segment applied (cursor may lag)
//	pull:applied      one segment applied with its cursor
//	compact:pushed    compaction pushed and pulled, own ack not yet written
//	compact:acks      every registry read (the acks), not yet pulled to a tip
//	compact:collected records collected, snapshot not yet written
//	compact:snapshot  snapshot index written, nobody retired yet
//	compact:retired   silent replicas retired, log not yet pruned
//	rebase:kept       dirty values kept, nothing discarded
//	rebase:loaded     records discarded and the snapshot loaded, not pulled
//	rebase:restamped  kept values written again, registry not yet un-retired
//
// Steps are where the simulator crashes a replica, or pauses it (runs
// other replicas' operations and moves the clocks on, then returns).
//
// Rules, when set, replaces the protocol's rules (protocol.Default): the
// simulator restores the rules of earlier drafts of the protocol this way,
// one function at a time, to show that its schedules catch each.
type Hooks struct {
	Step func(step string) error
	// Rules replaces protocol.Default() when set.
	Rules *protocol.Rules
	// ApplyChunk, when positive, replaces the records (or keys) one
	// transaction of a multi-transaction step handles (2000), so that
	// small runs take several transactions per step.
	ApplyChunk int
}

// progress reports a long operation's advance to Options.Progress: stage
// "bootstrap" (records loaded of the snapshot's), "push" (bytes of the
// staged segments committed), "pull" (log segments applied of those
// listed).
func (r *Engine) progress(stage string, done, total int64) {
	if r.opts.Progress != nil {
		r.opts.Progress(stage, done, total)
	}
}

func (r *Engine) step(name string) error {
	if r.opts.Hooks == nil || r.opts.Hooks.Step == nil {
		return nil
	}
	return r.opts.Hooks.Step(name)
}

func (o *Options) validate() (Options, error) {
	var out Options
	if o != nil {
		out = *o
	}
	if out.MaxValueSize == 0 {
		out.MaxValueSize = DefaultMaxValueSize
	}
	if out.MaxValueSize < 0 {
		return out, errors.New("replica: MaxValueSize must not be negative")
	}
	if out.Durability != store.Sync && out.Durability != store.Relaxed {
		return out, fmt.Errorf("replica: unknown durability %d", out.Durability)
	}
	if out.MaxDrift < 0 {
		return out, errors.New("replica: MaxDrift must not be negative")
	}
	if out.SegmentCap == 0 {
		out.SegmentCap = DefaultSegmentCap
	}
	if out.SegmentCap < 0 {
		return out, errors.New("replica: SegmentCap must not be negative")
	}
	if out.Codec == "" {
		out.Codec = "zstd"
	}
	if _, err := segment.ParseCodec(out.Codec); err != nil {
		return out, fmt.Errorf("replica: %w", err)
	}
	return out, nil
}

// Engine is one local replica. Safe for concurrent use.
type Engine struct {
	dir   string
	opts  Options
	st    *store.Store
	idp   atomic.Pointer[clock.ReplicaID]
	close sync.Once

	rules protocol.Rules // the protocol (Hooks.Rules in the simulator)

	syncMu   sync.Mutex // serialises Push, Pull, Sync and registry writes
	manifest *Manifest  // set once connected
	reg      regState
	rebasing bool
	listed   bool // this pull listed log/ (endPull records when: m/listed_at)
	// rebasePending: m/rebasing is set (a rebase began and has not
	// finished): reads and CRDT updates consult the kept keys (pending.go).
	rebasePending atomic.Bool
}

const dataDir = "data"

// Init creates a new replica in dir, bound to the remote URL. It fails with
// ErrAlreadyInitialized when dir already holds one.
func Init(dir, remoteURL string, opts *Options) (*Engine, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Engine == nil && !o.InMemory && exists(dir) {
		// A directory whose init crashed before the id was written holds
		// a database but no replica: init may finish it.
		probe := o
		probe.Create = false
		r, err := Open(dir, &probe)
		if err == nil {
			r.Close()
			return nil, fmt.Errorf("%w: %s", ErrAlreadyInitialized, dir)
		}
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s (and it is in use by another process)", ErrAlreadyInitialized, dir)
		}
		if !errors.Is(err, ErrNotInitialized) {
			return nil, err
		}
	}
	o.Create = true
	o.RemoteURL = remoteURL
	r, err := Open(dir, &o)
	if err != nil {
		return nil, err
	}
	if got, _ := r.meta("remote"); string(got) != remoteURL {
		r.Close()
		return nil, fmt.Errorf("%w: %s", ErrAlreadyInitialized, dir)
	}
	return r, nil
}

func exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, dataDir, "MANIFEST"))
	return err == nil
}

// Open opens the replica in dir. Without opts.Create, a directory that
// holds no replica gives ErrNotInitialized and is left untouched. A second
// process opening the same directory gets ErrLocked.
func Open(dir string, opts *Options) (*Engine, error) {
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	eng := o.Engine
	if eng == nil {
		if eng, err = openBadger(dir, o); err != nil {
			return nil, err
		}
	}
	givenPolicies := o.Policies != nil
	if !givenPolicies {
		if o.Policies, err = recordedPolicies(eng, o.Funcs); err != nil {
			eng.Close()
			return nil, err
		}
	}
	rules := protocol.Default()
	if o.Hooks != nil && o.Hooks.Rules != nil {
		rules = *o.Hooks.Rules
	}
	st, err := store.Open(eng, &store.Options{
		Durability: o.Durability, Wall: o.Wall, MaxDrift: o.MaxDrift, Policies: o.Policies,
		WriteStart: rules.WriteStart,
	})
	if err != nil {
		eng.Close()
		return nil, err
	}
	r := &Engine{dir: dir, opts: o, st: st, rules: rules}
	id, err := st.ReplicaID()
	if errors.Is(err, store.ErrNoReplica) {
		id, err = createReplica(st, dir, o)
	}
	if err == nil && givenPolicies {
		err = samePolicies(eng, o)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	r.idp.Store(&id)
	if mark, err := r.meta("rebasing"); err != nil {
		st.Close()
		return nil, err
	} else if mark != nil {
		r.rebasePending.Store(true)
	}
	return r, nil
}

// openBadger opens the Badger database in dir (in memory with InMemory).
func openBadger(dir string, o Options) (store.Engine, error) {
	if !o.InMemory && !o.Create && !exists(dir) {
		return nil, fmt.Errorf("%w: %s", ErrNotInitialized, dir)
	}
	path := ""
	if !o.InMemory {
		path = filepath.Join(dir, dataDir)
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fmt.Errorf("replica: %w", err)
		}
	}
	b, err := store.OpenBadger(path, store.BadgerOptions{InMemory: o.InMemory, LowMemory: o.LowMemory, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// createReplica makes st a new replica (with Options.Create), with id
// o.ID or a fresh one, in one synced transaction: a crash leaves no
// replica or a whole one.
func createReplica(st *store.Store, dir string, o Options) (clock.ReplicaID, error) {
	if !o.Create {
		return clock.ReplicaID{}, fmt.Errorf("%w: %s", ErrNotInitialized, dir)
	}
	id := o.ID
	if id.IsZero() {
		id = clock.NewReplicaID()
	}
	names, _ := json.Marshal(o.Policies.Names())
	err := st.UpdateSync(context.Background(), func(tx *store.Tx) error {
		if _, err := tx.ReplicaID(); err == nil {
			return store.ErrReplicaExists
		}
		tx.SetMeta("remote", []byte(o.RemoteURL))
		tx.SetMeta("policies", names)
		if o.KeyFile != "" {
			tx.SetMeta(metaKeyFile, []byte(o.KeyFile))
		}
		tx.ChangeReplicaID(id)
		return nil
	})
	return id, err
}

// samePolicies checks that the policies given are the ones the replica
// recorded: a replica reads its state one way for life.
func samePolicies(eng store.Engine, o Options) error {
	rec, err := recordedPolicies(eng, o.Funcs)
	if err != nil {
		return nil
	}
	if a, b := o.Policies.Names(), rec.Names(); !maps.Equal(a, b) {
		return fmt.Errorf("%w: this replica was created with %v, Open was given %v", ErrPolicyMismatch, b, a)
	}
	return nil
}

// recordedPolicies rebuilds the policy registry from the names a replica
// recorded at init (lww for all when none).
func recordedPolicies(eng store.Engine, funcs map[string]merge.Policy) (*merge.Registry, error) {
	var raw []byte
	err := eng.View(func(rd store.Reader) error {
		var err error
		raw, _, err = rd.Get([]byte("m/policies"))
		return err
	})
	if err != nil {
		return nil, err
	}
	reg := merge.NewRegistry()
	if raw == nil {
		return reg, nil
	}
	var names map[string]string
	if err := json.Unmarshal(raw, &names); err != nil {
		return nil, fmt.Errorf("%w: m/policies: %v", store.ErrCorrupt, err)
	}
	for prefix, name := range names {
		p, ok := merge.Builtin(name)
		if !ok {
			p, ok = funcs[name]
		}
		if !ok {
			return nil, &merge.UnknownPolicyError{Name: name, Prefix: prefix}
		}
		reg.Set(prefix, p)
	}
	return reg, nil
}

// Policies returns the policy registry in force.
func (r *Engine) Policies() *merge.Registry { return r.opts.Policies }

// SetBackend binds the replica to a remote after Open (the command line
// opens the replica first, then the remote it recorded).
func (r *Engine) SetBackend(b remote.Backend) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.opts.Backend = b
	r.manifest = nil
}

// ID returns the replica id.
func (r *Engine) ID() clock.ReplicaID { return *r.idp.Load() }

// Dir returns the replica's directory.
func (r *Engine) Dir() string { return r.dir }

// Store returns the local store (the sync layer and tests use it).
func (r *Engine) Store() *store.Store { return r.st }

// RemoteURL returns the remote URL recorded at init.
func (r *Engine) RemoteURL() string {
	v, _ := r.meta("remote")
	return string(v)
}

func (r *Engine) meta(name string) ([]byte, error) {
	var out []byte
	err := r.st.View(func(v *store.View) error {
		b, _, err := v.Meta(name)
		out = b
		return err
	})
	return out, wrapClosed(err)
}

func wrapClosed(err error) error {
	if errors.Is(err, store.ErrClosed) {
		return ErrClosed
	}
	return err
}

// ValidateKey checks a key: not empty, at most MaxKeyLen bytes, valid UTF-8.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key of %d bytes is longer than %d", ErrInvalidKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrInvalidKey)
	}
	return nil
}

// checkPlainKey validates a key written with a raw value: CRDT keys take
// their updates through their own methods.
func (r *Engine) checkPlainKey(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if p := r.opts.Policies.For(key); crdtKind(p) != "" {
		return fmt.Errorf("%w: key %q is a %s: write it with %s", ErrWrongPolicy, key, p.Name(),
			map[string]string{merge.NameCounter: "Add (incr)", merge.NameSet: "SetAdd/SetRemove (sadd/srem)", merge.NameJSON: "Put or Patch"}[crdtKind(p)])
	}
	return nil
}

func (r *Engine) checkValue(key string, v []byte) error {
	if len(v) > r.opts.MaxValueSize {
		return fmt.Errorf("%w: value of %q is %d bytes, limit %d", ErrValueTooLarge, key, len(v), r.opts.MaxValueSize)
	}
	return nil
}

// Put writes value under key. Counter and set keys are written through
// Add, SetAdd and SetRemove only (ErrWrongPolicy). A json key takes a JSON
// object, written as the merge patch from the document read here to it
// (only the fields it changes are stamped; see Patch); anything else gives
// ErrBadPatch and writes nothing.
func (r *Engine) Put(ctx context.Context, key string, value []byte) error {
	if crdtKind(r.opts.Policies.For(key)) == merge.NameJSON {
		return r.docWrite(ctx, key, value, merge.DocState.Replace)
	}
	if err := r.checkPlainKey(key); err != nil {
		return err
	}
	if err := r.checkValue(key, value); err != nil {
		return err
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.Write(key, value, false)
		return err
	}))
}

// Delete deletes key. A key that is not live here gives ErrNotFound and
// writes nothing. A counter or set key is cleared instead (Clear): the
// empty state reads as deleted and removes exactly what this replica had
// observed, while increments and adds made concurrently survive.
func (r *Engine) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if crdtKind(r.opts.Policies.For(key)) != "" {
		return r.Clear(ctx, key)
	}
	return r.deleteLive(ctx, key, func(tx *store.Tx) error {
		_, err := tx.Write(key, nil, true)
		return err
	})
}

// deleteLive runs write, the tombstone's write, in one transaction with the
// check that key is live here (a pending rebase's kept value counted); a
// key that is not gives ErrNotFound and writes nothing.
func (r *Engine) deleteLive(ctx context.Context, key string, write func(tx *store.Tx) error) error {
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		cur, ok, err := tx.Record(key)
		if err != nil {
			return err
		}
		rec, ok, err := r.withKept(tx, key, cur.Record, ok)
		if err != nil {
			return err
		}
		if !ok || !merge.Live(r.opts.Policies.For(key), key, rec) {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		return write(tx)
	}))
}

// Batch is a set of writes applied atomically by Replica.Batch.
type Batch struct {
	r   *Engine
	ops []batchOp
	err error
}

type batchOp struct {
	key   string
	value []byte
	del   bool
	ops   bool // a json key's document in operation form (PutDoc)
}

// Put queues a write. Invalid input makes the whole batch fail.
func (b *Batch) Put(key string, value []byte) {
	if b.err == nil {
		if crdtKind(b.r.opts.Policies.For(key)) == merge.NameJSON {
			// A json key: the document, written as by Put.
			if b.err = ValidateKey(key); b.err == nil {
				if b.err = b.r.checkValue(key, value); b.err == nil {
					b.err = checkDocInput(key, value)
				}
			}
		} else if b.err = b.r.checkPlainKey(key); b.err == nil {
			b.err = b.r.checkValue(key, value)
		}
	}
	b.ops = append(b.ops, batchOp{key: key, value: value})
}

// Delete queues a delete; deleting a key that is not live is a no-op.
func (b *Batch) Delete(key string) {
	if b.err == nil {
		b.err = ValidateKey(key)
	}
	b.ops = append(b.ops, batchOp{key: key, del: true})
}

// Len returns the number of queued operations.
func (b *Batch) Len() int { return len(b.ops) }

// Batch calls fn to queue writes, then applies them all in one transaction:
// every write lands, or none does. Later operations on the same key win.
func (r *Engine) Batch(ctx context.Context, fn func(b *Batch) error) error {
	b := &Batch{r: r}
	if err := fn(b); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	if len(b.ops) == 0 {
		return nil
	}
	keys := make([]string, len(b.ops))
	for i, op := range b.ops {
		keys[i] = op.key
	}
	err := r.st.Update(ctx, func(tx *store.Tx) error {
		// A batch of new keys (a bulk load, an append) looks none of them
		// up: one seek instead (not worth it for a few keys).
		if len(keys) >= 16 {
			if _, err := tx.ProbeAbsent(keys); err != nil {
				return err
			}
		}
		for _, op := range b.ops {
			p := r.opts.Policies.For(op.key)
			isDoc := crdtKind(p) == merge.NameJSON
			if isDoc && !op.del {
				if err := r.docUpdate(tx, op.key, p, op.value, docPut(op.ops)); err != nil {
					return err
				}
				continue
			}
			if op.del {
				cur, ok, err := tx.Record(op.key)
				if err != nil {
					return err
				}
				rec, ok, err := r.withKept(tx, op.key, cur.Record, ok)
				if err != nil {
					return err
				}
				if !ok || !merge.Live(p, op.key, rec) {
					continue
				}
				if isDoc {
					// A json key is cleared (observed-remove), as Delete does.
					if err := r.docUpdate(tx, op.key, p, nil, clearDoc); err != nil {
						return err
					}
					continue
				}
			}
			if _, err := tx.Write(op.key, op.value, op.del); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrTooBig) {
		return fmt.Errorf("replica: batch of %d operations is too large for one transaction: split it: %w", len(b.ops), err)
	}
	return wrapClosed(err)
}

// Get returns the value of key as its policy reads it: ErrNotFound when the
// key is absent or reads as deleted, *ConflictError (ErrConflict) when the
// policy surfaces concurrent versions.
func (r *Engine) Get(key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	var out []byte
	err := r.st.View(func(v *store.View) error {
		// The versions alone (a policy reads nothing else): no clock to
		// decode. While a rebase is pending the whole record, for its
		// kept value.
		vs, ok, err := v.RecordVersions(key)
		if err != nil {
			return err
		}
		rec := merge.Record{Versions: vs}
		if r.rebasePending.Load() {
			st, found, err := v.Record(key)
			if err != nil {
				return err
			}
			if rec, ok, err = r.withKept(v, key, st.Record, found); err != nil { // a pending rebase's kept value
				return err
			}
		}
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		res, err := merge.Read(r.opts.Policies.For(key), key, rec)
		if err != nil {
			return err
		}
		switch {
		case res.Conflict:
			return &ConflictError{Key: key, Versions: versions(rec, res)}
		case res.Deleted:
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		out = res.Value
		return nil
	})
	return out, wrapClosed(err)
}

func versions(rec merge.Record, res merge.Result) []Version {
	out := make([]Version, len(rec.Versions))
	for i, v := range rec.Versions {
		out[i] = Version{Value: v.Value, Deleted: v.Deleted, Replica: v.Dot.Replica,
			Counter: v.Dot.Counter, Time: v.Time, Winner: i == res.Winner}
	}
	return out
}

// Versions returns every concurrent version of key (tombstones included) in
// canonical order; ErrNotFound when the key has no record.
func (r *Engine) Versions(key string) ([]Version, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	var out []Version
	err := r.st.View(func(v *store.View) error {
		st, ok, err := v.Record(key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		res, err := merge.Read(r.opts.Policies.For(key), key, st.Record)
		if err != nil {
			res = merge.Result{Winner: -1}
		}
		out = versions(st.Record, res)
		return nil
	})
	return out, wrapClosed(err)
}

// Item is one live key yielded by Scan.
type Item struct {
	Key   string
	Value []byte // nil when Conflict
	// NumVersions is the number of concurrent versions stored.
	NumVersions int
	// Conflict: the policy surfaces the siblings (see Replica.Versions).
	Conflict bool
}

// Scan yields the live keys with the prefix, in key order, from one
// consistent snapshot. Stop early by breaking out of the loop. A read error
// (or a policy error) is yielded once, as the last pair.
func (r *Engine) Scan(prefix string) iter.Seq2[Item, error] {
	return r.ScanFrom(prefix, "")
}

// ScanFrom is Scan starting at key start (inclusive).
func (r *Engine) ScanFrom(prefix, start string) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		stopped := false
		err := r.st.View(func(v *store.View) error {
			return v.Records(prefix, start, func(key string, st store.Stored) (bool, error) {
				res, err := merge.Read(r.opts.Policies.For(key), key, st.Record)
				if err != nil {
					return false, err
				}
				if res.Deleted {
					return true, nil
				}
				it := Item{Key: key, NumVersions: len(st.Versions), Conflict: res.Conflict}
				if !res.Conflict {
					it.Value = res.Value
				}
				if !yield(it, nil) {
					stopped = true
					return false, nil
				}
				return true, nil
			})
		})
		if err != nil && !stopped {
			yield(Item{}, wrapClosed(err))
		}
	}
}

// Keys yields every key that has a record here, live or reading as deleted
// (a tombstone not yet collected), in key order.
func (r *Engine) Keys(prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		stopped := false
		err := r.st.View(func(v *store.View) error {
			return v.Records(prefix, "", func(key string, _ store.Stored) (bool, error) {
				if !yield(key, nil) {
					stopped = true
					return false, nil
				}
				return true, nil
			})
		})
		if err != nil && !stopped {
			yield("", wrapClosed(err))
		}
	}
}

// Len returns the number of live keys, in O(1).
func (r *Engine) Len() int64 { return r.st.Len() }

// PendingKey is a key changed here and not yet pushed.
type PendingKey struct {
	Key     string
	Deleted bool // the key currently reads as deleted here
}

// Pending yields the keys changed here and not yet pushed, in key order.
func (r *Engine) Pending() iter.Seq2[PendingKey, error] {
	return func(yield func(PendingKey, error) bool) {
		stopped := false
		err := r.st.View(func(v *store.View) error {
			return v.OutboxMarks("", func(key string, _ uint64) (bool, error) {
				st, ok, err := v.Record(key)
				if err != nil {
					return false, err
				}
				del := !ok || !merge.Live(r.opts.Policies.For(key), key, st.Record)
				if !yield(PendingKey{Key: key, Deleted: del}, nil) {
					stopped = true
					return false, nil
				}
				return true, nil
			})
		})
		if err != nil && !stopped {
			yield(PendingKey{}, wrapClosed(err))
		}
	}
}

// Status describes the replica.
type Status struct {
	ReplicaID  string        `json:"replica_id"`
	RemoteURL  string        `json:"remote"`
	Dir        string        `json:"dir"`
	Keys       int64         `json:"keys"`
	Pending    int64         `json:"pending"`
	Cursor     uint64        `json:"cursor"`
	LastPush   *time.Time    `json:"last_push"`
	LastPull   *time.Time    `json:"last_pull"`
	Counter    uint64        `json:"counter"`
	HLC        string        `json:"hlc"`
	SkewCapped uint64        `json:"skew_capped"`
	MaxSkew    time.Duration `json:"max_skew_ns"`
	Durability string        `json:"durability"`
	Commits    int64         `json:"commits"`
	// Profile is the local store's sizing: "default" or "small" (see
	// store.Profile); "" on a map engine.
	Profile string `json:"profile"`
	// Live is the state of the live syncer (replica.Run), nil when none
	// runs.
	Live *LiveStatus `json:"live,omitempty"`
}

// LiveStatus is the state of a running live syncer (replica.Run).
type LiveStatus struct {
	Running     bool          `json:"running"`
	Online      bool          `json:"online"` // the last round succeeded
	Rounds      int64         `json:"rounds"`
	LastSuccess *time.Time    `json:"last_success"`
	LastError   string        `json:"last_error,omitempty"`
	LastErrorAt *time.Time    `json:"last_error_at,omitempty"`
	ErrorsInRow int64         `json:"errors_in_row"`
	Errors      int64         `json:"errors"`     // since Run started
	Backoff     time.Duration `json:"backoff_ns"` // the wait after the last round's error
	// Lag is how many log positions the replica knew it was behind when
	// its last pull ended: 0 after a pull that reached the tip it found.
	Lag uint64 `json:"lag"`
}

// Status returns the replica's status.
func (r *Engine) Status() (Status, error) {
	capped, ahead := r.st.Clock().SkewStats()
	s := Status{
		ReplicaID: r.ID().String(), Dir: r.dir, Keys: r.st.Len(), Pending: r.st.OutboxLen(),
		HLC: r.st.Clock().Last().String(), SkewCapped: capped, MaxSkew: ahead,
		Durability: r.st.Durability().String(), Commits: r.st.Commits(),
		Profile: string(r.st.Profile()),
	}
	err := r.st.View(func(v *store.View) error {
		if b, _, err := v.Meta("remote"); err != nil {
			return err
		} else {
			s.RemoteURL = string(b)
		}
		if b, ok, err := v.Meta("cursor"); err != nil {
			return err
		} else if ok && len(b) == 8 {
			s.Cursor = beUint(b)
		}
		for name, dst := range map[string]**time.Time{"last_push": &s.LastPush, "last_pull": &s.LastPull} {
			if b, ok, err := v.Meta(name); err != nil {
				return err
			} else if ok && len(b) == 8 {
				t := time.UnixMilli(int64(beUint(b))).UTC()
				*dst = &t
			}
		}
		if b, ok, err := v.Meta("counter"); err != nil {
			return err
		} else if ok && len(b) == 8 {
			s.Counter = beUint(b)
		}
		return nil
	})
	return s, wrapClosed(err)
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Close closes the replica; later calls return ErrClosed.
func (r *Engine) Close() error {
	err := ErrClosed
	r.close.Do(func() { err = r.st.Close() })
	return err
}
