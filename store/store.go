// Package store is the local state of one replica, kept in an ordered
// key-value Engine (Badger on disk; a map in the simulator).
//
// Key space:
//
//	r/<key>          record: 8-byte big-endian pos, then the canonical record (merge.EncodeRecord)
//	o/<key>          outbox mark: 8-byte dot counter of the key's last local change
//	m/replica        ReplicaID (16 bytes)
//	m/counter        last dot counter issued (never below the highest own dot seen in pulled data)
//	m/hlc            last HLC issued or observed
//	m/live           number of live keys (a key is live when its policy's read is not deleted)
//	m/pending        number of outbox marks
//	m/gc             G: the join of the clocks of every record collected here
//	m/...            other metadata owned by the sync layer (cursor, tip, registry, own/, stage/)
//
// Every write goes through one writer goroutine that groups concurrent
// requests into shared engine transactions (group commit): local writes and
// pull merges alike. That makes counters (dot counter, live count, pending
// count) consistent without conflicts, and lets one fsync cover many writes.
// A request is a function over a Tx; if it returns an error, none of its
// writes are applied and the others in its group are unaffected. A
// request's writes become visible to later requests of the same group, and
// to readers once the group commits.
//
// Durability: with Sync (the default) a write returns after the group's
// fsync; with Relaxed it returns after the engine commit, and a power loss
// may lose the latest writes (never tear one). UpdateSync always fsyncs,
// whatever the option: the sync layer stages segments with it, so no dot
// leaves the machine before it is durable and a dot is never reused.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// Durability says when a write is acknowledged.
type Durability int

const (
	// Sync: a write returns after fsync (default).
	Sync Durability = iota
	// Relaxed: a write returns after commit; a power loss may lose the
	// latest writes.
	Relaxed
)

func (d Durability) String() string {
	if d == Relaxed {
		return "relaxed"
	}
	return "sync"
}

// Errors.
var (
	ErrClosed        = errors.New("store: closed")
	ErrNoReplica     = errors.New("store: no replica initialised here")
	ErrReplicaExists = errors.New("store: a replica is already initialised here")
	ErrCorrupt       = errors.New("store: corrupt local data")
)

// Options configures a Store. The zero value (or nil) is valid.
type Options struct {
	// Durability: Sync (default) or Relaxed.
	Durability Durability
	// Wall is the wall clock (time.Now when nil); the simulator and the
	// CLI's --clock-offset inject their own.
	Wall func() time.Time
	// MaxDrift caps how far a remote HLC may drag the local clock ahead of
	// wall time (clock.DefaultMaxDrift when zero).
	MaxDrift time.Duration
	// Policies decide liveness for the live-key count (lww for all when nil).
	Policies *merge.Registry
	// GroupBytes and GroupEntries cap one group commit (default 4 MiB and
	// 65536 entries, lowered to a quarter of the engine's transaction limit
	// when it reports one); a single request may exceed them, and fails
	// with ErrTooBig only when it alone exceeds the engine's limit.
	GroupBytes   int
	GroupEntries int
	// WriteIgnoresG is a test knob: local writes of keys with no record
	// start from an empty clock instead of G (an old, divergent rule).
	WriteIgnoresG bool
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Policies == nil {
		out.Policies = merge.NewRegistry()
	}
	if out.GroupBytes <= 0 {
		out.GroupBytes = 4 << 20
	}
	if out.GroupEntries <= 0 {
		out.GroupEntries = 1 << 16
	}
	return out
}

// Store is one replica's local state. Safe for concurrent use.
type Store struct {
	eng   Engine
	opts  Options
	clock *clock.Clock

	reqs      chan *request
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeMu   sync.RWMutex // held for reading while submitting
	closed    bool
	views     sync.WaitGroup // running Views

	// Writer-owned state, mirrored into atomics for readers.
	id      atomic.Pointer[clock.ReplicaID]
	counter uint64
	live    atomic.Int64
	pending atomic.Int64
	commits atomic.Int64 // engine commits (group commits)

	// Pipelined fsync (engines that allow Sync during commits): nil
	// syncWake means the writer fsyncs itself.
	syncWake chan struct{}
	syncDone chan struct{}
	syncMu   sync.Mutex
	syncJobs []syncJob
}

// concurrentSyncer is an engine whose Sync may run while Apply commits
// (Badger): the store then pipelines commit and fsync. Engines without it
// (Mem, the simulator's) keep the writer's sequential commit-then-fsync.
type concurrentSyncer interface {
	concurrentSync() bool
}

type request struct {
	ctx  context.Context
	fn   func(*Tx) error
	sync bool
	err  chan error
}

// Open starts a Store on eng. It reads the persisted counters; it does not
// require a replica id (see Init).
func Open(eng Engine, o *Options) (*Store, error) {
	opts := o.withDefaults()
	if l, ok := eng.(interface{ Limits() (int64, int64) }); ok {
		// Badger's own size estimate counts per-entry overhead that ours
		// does not: keep groups well inside its limits.
		b, n := l.Limits()
		opts.GroupBytes = int(min(int64(opts.GroupBytes), b/4))
		opts.GroupEntries = int(min(int64(opts.GroupEntries), n/4))
	}
	s := &Store{
		eng:  eng,
		opts: opts,
		reqs: make(chan *request, 1024),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	var hlc uint64
	err := eng.View(func(r Reader) error {
		if v, ok, err := r.Get(keyReplica); err != nil {
			return err
		} else if ok {
			if len(v) != 16 {
				return fmt.Errorf("%w: replica id of %d bytes", ErrCorrupt, len(v))
			}
			var id clock.ReplicaID
			copy(id[:], v)
			s.id.Store(&id)
		}
		var err error
		var n uint64
		if s.counter, err = getUint(r, keyCounter); err != nil {
			return err
		}
		if hlc, err = getUint(r, keyHLC); err != nil {
			return err
		}
		if n, err = getUint(r, keyLive); err != nil {
			return err
		}
		s.live.Store(int64(n))
		if n, err = getUint(r, keyPending); err != nil {
			return err
		}
		s.pending.Store(int64(n))
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.clock = clock.NewClock(s.opts.Wall, clock.HLC(hlc), s.opts.MaxDrift)
	if err := eng.View(func(r Reader) error {
		v, ok, err := r.Get(keySkew)
		if err == nil && ok && len(v) == 16 {
			s.clock.SeedSkewStats(binary.BigEndian.Uint64(v), time.Duration(binary.BigEndian.Uint64(v[8:])))
		}
		return err
	}); err != nil {
		return nil, err
	}
	if cs, ok := eng.(concurrentSyncer); ok && cs.concurrentSync() {
		s.syncWake = make(chan struct{}, 1)
		s.syncDone = make(chan struct{})
		go s.syncer()
	}
	go s.writer()
	return s, nil
}

// Engine returns the engine under the store.
func (s *Store) Engine() Engine { return s.eng }

// Clock returns the replica's hybrid logical clock.
func (s *Store) Clock() *clock.Clock { return s.clock }

// Policies returns the policy registry in force.
func (s *Store) Policies() *merge.Registry { return s.opts.Policies }

// Durability returns the durability option.
func (s *Store) Durability() Durability { return s.opts.Durability }

// ReplicaID returns the replica id, or ErrNoReplica before Init.
func (s *Store) ReplicaID() (clock.ReplicaID, error) {
	p := s.id.Load()
	if p == nil {
		return clock.ReplicaID{}, ErrNoReplica
	}
	return *p, nil
}

// Len returns the number of live keys: O(1).
func (s *Store) Len() int64 { return s.live.Load() }

// Pending returns the number of outbox marks: O(1).
func (s *Store) Pending() int64 { return s.pending.Load() }

// Commits returns how many engine transactions the writer has committed.
func (s *Store) Commits() int64 { return s.commits.Load() }

// Init records the replica id of a new replica (synced). It fails with
// ErrReplicaExists when one is already recorded.
func (s *Store) Init(ctx context.Context, id clock.ReplicaID) error {
	if id.IsZero() {
		return errors.New("store: zero replica id")
	}
	return s.UpdateSync(ctx, func(tx *Tx) error {
		if _, err := s.ReplicaID(); err == nil {
			return ErrReplicaExists
		}
		tx.set(keyReplica, id[:])
		tx.newID = &id
		return nil
	})
}

// Update runs fn in the writer with the store's durability.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	return s.submit(ctx, fn, s.opts.Durability == Sync)
}

// UpdateRelaxed runs fn in the writer without waiting for an fsync,
// whatever the durability option (pull merges that will be re-applied if
// lost use it).
func (s *Store) UpdateRelaxed(ctx context.Context, fn func(*Tx) error) error {
	return s.submit(ctx, fn, false)
}

// UpdateSync runs fn in the writer and fsyncs before returning, whatever
// the durability option.
func (s *Store) UpdateSync(ctx context.Context, fn func(*Tx) error) error {
	return s.submit(ctx, fn, true)
}

func (s *Store) submit(ctx context.Context, fn func(*Tx) error, sync bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, fn: fn, sync: sync, err: make(chan error, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	s.reqs <- r
	s.closeMu.RUnlock()
	// Once queued, a request is always answered: a local write is not left
	// in doubt because its caller's context ended.
	return <-r.err
}

// View runs fn against a consistent snapshot of committed state. fn may
// write through the store (a Put inside a Scan loop); Close waits for
// running views before it closes the engine.
func (s *Store) View(fn func(*View) error) error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	s.views.Add(1)
	s.closeMu.RUnlock()
	defer s.views.Done()
	return s.eng.View(func(r Reader) error { return fn(&View{r: r, s: s}) })
}

// Close stops the writer (after answering every queued request) and closes
// the engine. Later calls return ErrClosed.
func (s *Store) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.quit)
		<-s.done
		s.views.Wait()
		err = s.eng.Close()
	})
	return err
}

// writer is the single goroutine that applies every write.
func (s *Store) writer() {
	defer close(s.done)
	if s.syncWake != nil {
		defer func() {
			close(s.syncWake) // the syncer answers what is left, then ends
			<-s.syncDone
		}()
	}
	var queue []*request
	for {
		if len(queue) == 0 {
			select {
			case r := <-s.reqs:
				queue = append(queue, r)
			case <-s.quit:
				// Drain what was queued before Close took the lock.
				for {
					select {
					case r := <-s.reqs:
						queue = append(queue, r)
					default:
						if len(queue) > 0 {
							queue = s.group(queue)
							continue
						}
						return
					}
				}
			}
		}
	drain:
		for len(queue) < 4096 {
			select {
			case r := <-s.reqs:
				queue = append(queue, r)
			default:
				break drain
			}
		}
		queue = s.group(queue)
	}
}

// group runs requests from the head of queue in one engine transaction and
// returns the requests left for the next group.
func (s *Store) group(queue []*request) []*request {
	reader, release := s.eng.Reader()
	defer release()
	g := newOverlay()
	startCounter := s.counter
	startLive, startPending := s.live.Load(), s.pending.Load()
	live, pending := startLive, startPending
	taken := make([]*request, 0, min(len(queue), 64))
	errs := make([]error, 0, cap(taken))
	needSync := false
	var newID *clock.ReplicaID
	n := 0
	for ; n < len(queue); n++ {
		r := queue[n]
		if n > 0 && (g.bytes >= s.opts.GroupBytes || len(g.muts) >= s.opts.GroupEntries) {
			break
		}
		taken = append(taken, r)
		if err := r.ctx.Err(); err != nil {
			errs = append(errs, err)
			continue
		}
		g.begin()
		tx := &Tx{s: s, reader: reader, group: g, counter: s.counter, live: live, pending: pending}
		err := r.fn(tx)
		if err != nil {
			g.rollback()
			errs = append(errs, err)
			continue
		}
		errs = append(errs, nil)
		s.counter, live, pending = tx.counter, tx.live, tx.pending
		if tx.newID != nil {
			newID = tx.newID
		}
		if r.sync {
			needSync = true
		}
	}
	g.begin() // nothing below is undone
	if len(g.muts) > 0 {
		g.put(keyCounter, putUint(s.counter))
		g.put(keyHLC, putUint(uint64(s.clock.Last())))
		capped, ahead := s.clock.SkewStats()
		g.put(keySkew, binary.BigEndian.AppendUint64(putUint(capped), uint64(max(ahead, 0))))
		g.put(keyLive, putUint(uint64(live)))
		g.put(keyPending, putUint(uint64(pending)))
	}
	// Commit, then fsync separately: when the fsync fails the commit has
	// still happened (the writes are visible and may well be durable), so
	// the counters must follow it — rolling the dot counter back would
	// reissue dots that name committed versions. The writers get the error.
	err := s.eng.Apply(g.mutations(), false)
	if err != nil {
		s.counter = startCounter
	} else {
		if len(g.muts) > 0 {
			s.commits.Add(1)
		}
		s.live.Store(live)
		s.pending.Store(pending)
		if newID != nil {
			s.id.Store(newID)
		}
		if needSync {
			if s.syncWake != nil {
				// Pipelined: the syncer answers these requests after an
				// fsync that starts after this commit, while the writer
				// goes on with the next group.
				s.syncMu.Lock()
				s.syncJobs = append(s.syncJobs, syncJob{taken, errs})
				s.syncMu.Unlock()
				select {
				case s.syncWake <- struct{}{}:
				default:
				}
				return queue[n:]
			}
			err = s.eng.Sync()
		}
	}
	answer(taken, errs, err)
	return queue[n:]
}

// answer replies to the requests of a group: err (a failed commit or
// fsync) goes to every request that did not fail on its own.
func answer(taken []*request, errs []error, err error) {
	for i, r := range taken {
		if errs[i] == nil {
			errs[i] = err
		}
		r.err <- errs[i]
	}
}

// syncJob is a committed group waiting for an fsync.
type syncJob struct {
	taken []*request
	errs  []error
}

// syncer fsyncs for the writer when the engine allows a Sync concurrent
// with commits (pipelining): one Sync covers every group committed before
// it starts, so while it runs the writer commits the next groups, and the
// next Sync covers all of them. On a failed fsync the commits stand (the
// writer never rolls back counters for it) and the waiting writers get the
// error. It returns when the writer has closed syncWake and every job is
// answered.
func (s *Store) syncer() {
	defer close(s.syncDone)
	for {
		_, ok := <-s.syncWake
		s.syncMu.Lock()
		jobs := s.syncJobs
		s.syncJobs = nil
		s.syncMu.Unlock()
		if len(jobs) > 0 {
			err := s.eng.Sync()
			for _, j := range jobs {
				answer(j.taken, j.errs, err)
			}
		}
		if !ok {
			return
		}
	}
}

// overlay holds a group's writes in the order first written (an
// insertion-ordered map: idx finds a key's mutation). A request writes
// straight into it; begin/rollback undo a failed request's writes.
type overlay struct {
	idx   map[string]int
	muts  []Mutation
	bytes int

	// The undo state of the running request.
	base      int        // len(muts) when it began
	baseBytes int        // bytes when it began
	undo      []undoItem // earlier mutations it overwrote

	// G as decoded in this group; gOK false when not (yet) known.
	g   clock.Vector
	gOK bool
}

type undoItem struct {
	i int
	m Mutation
}

func newOverlay() *overlay { return &overlay{idx: map[string]int{}} }

func (o *overlay) get(k []byte) (Mutation, bool) {
	i, ok := o.idx[string(k)]
	if !ok {
		return Mutation{}, false
	}
	return o.muts[i], true
}

func (o *overlay) write(m Mutation) {
	if string(m.Key) == string(keyG) {
		o.gOK, o.g = false, nil
	}
	if i, ok := o.idx[string(m.Key)]; ok {
		if i < o.base {
			o.undo = append(o.undo, undoItem{i, o.muts[i]})
		}
		m.Key = o.muts[i].Key
		o.muts[i] = m
	} else {
		o.idx[string(m.Key)] = len(o.muts)
		o.muts = append(o.muts, m)
	}
	o.bytes += len(m.Key) + len(m.Value)
}

func (o *overlay) put(k, v []byte) { o.write(Mutation{Key: k, Value: v}) }
func (o *overlay) del(k []byte)    { o.write(Mutation{Key: k, Delete: true}) }

// begin starts a request.
func (o *overlay) begin() {
	o.base, o.baseBytes, o.undo = len(o.muts), o.bytes, o.undo[:0]
}

// rollback undoes every write since begin.
func (o *overlay) rollback() {
	for j := len(o.undo) - 1; j >= 0; j-- {
		o.muts[o.undo[j].i] = o.undo[j].m
	}
	for _, m := range o.muts[o.base:] {
		delete(o.idx, string(m.Key))
	}
	clear(o.muts[o.base:])
	o.muts = o.muts[:o.base]
	o.bytes = o.baseBytes
	o.undo = o.undo[:0]
	o.gOK, o.g = false, nil
}

// mutations returns the group's writes, in the order first written
// (engines do not need them sorted, and the order is deterministic).
func (o *overlay) mutations() []Mutation { return o.muts }

func putUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getUint(r Reader, k []byte) (uint64, error) {
	v, ok, err := r.Get(k)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s is %d bytes", ErrCorrupt, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
