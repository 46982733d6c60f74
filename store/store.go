// Package store is the local state of one replica, kept in an ordered
// key-value Engine (Badger on disk; a map in the simulator).
//
// Key space:
//
//	r/<key>          record entry: pos (uvarint), the outbox mark plus one (uvarint; 0: clean),
//	                 then the canonical record (merge.EncodeRecord)
//	l/<seq>          outbox log: one entry per group commit that marked keys (8-byte big-endian
//	                 sequence), listing each (key, mark) it set; stale listings are skipped
//	m/lseq           the last outbox log sequence used
//	m/qlow           the outbox log position below which every entry is consumed (deleted)
//	m/format         the layout's version (formatVersion); absent: format 1 (o/<key> marks and
//	                 q/<mark><key> queue entries), which Open migrates (migrate.go)
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
// to readers once the group commits. A request whose writes would take its
// group past the engine's transaction limit commits alone, right after the
// group; it fails with ErrTooBig (applying nothing) only when it cannot fit
// even alone, and the others are unaffected either way.
//
// Profiling: the writer runs each request under the pprof labels of the
// request's context, and commits a group under those of its first request,
// so a CPU profile charges the writer's work to the caller's labels
// (pprof.Do, then pass its context to Update) and not to whoever opened
// the store.
//
// Durability: with Sync (the default) a write returns after the group's
// fsync; with Relaxed it returns after the engine commit, and a power loss
// may lose the latest writes (never tear one). UpdateSync always fsyncs,
// whatever the option: the sync layer stages segments with it, so no dot
// leaves the machine before it is durable and a dot is never reused.
//
// What a power loss leaves, as internal/engine/powerloss_test.go checks it on
// internal/lazyfs (a file system that drops everything not fsynced): under
// Sync, every acknowledged write; under Relaxed, a prefix of the commit
// order — every group up to some point, none after — that includes every
// group committed before the last fsync returned (a Sync write, an
// UpdateSync: a push's staging, an empty UpdateSync as a barrier). Dot
// counters grow in commit order, so the persisted counter names the last
// group kept. A real disk may also keep some unsynced writes: Badger
// replays each memtable log up to its first damaged entry, so the prefix
// holds within a log, but when Badger moved to a new memtable after the
// last fsync, the newer log can survive where the older one's tail did
// not. BENCHMARKS.md ("Power loss") has the findings and schedules.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/pprof"
	"slices"
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
	// ErrReadOnly: a local write to a read-only store (a restored copy,
	// marked by MetaReadOnly when it was made).
	ErrReadOnly = errors.New("replica: this replica is a read-only restored copy: writes are refused")
)

// MetaReadOnly is the meta name (m/readonly) whose presence, read at Open,
// makes every local write fail with ErrReadOnly.
const MetaReadOnly = "readonly"

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
	// when it reports one); a single request may exceed them. A request
	// whose writes would take its group past the engine's limit is
	// committed on its own, after the rest of its group, and fails with
	// ErrTooBig only when it alone exceeds the engine's limit: the other
	// requests of its group are not affected.
	GroupBytes   int
	GroupEntries int
	// GCInterval is how often, at most, MaybeCollectGarbage collects the
	// value log (DefaultGCInterval when zero; negative: never).
	GCInterval time.Duration
	// WriteStart is the clock a local write of a key with no record
	// starts from, given G (the engine passes the protocol's rule, which
	// returns G; nil means the same).
	WriteStart func(g clock.Vector) clock.Vector
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

	readOnly bool // MetaReadOnly was set at Open

	// Writer-owned state, mirrored into atomics for readers.
	id      atomic.Pointer[clock.ReplicaID]
	counter uint64
	live    atomic.Int64
	pending atomic.Int64
	lseq    uint64       // the last outbox log sequence used
	feedLow uint64       // where flushFeed's scan for old entries starts (feed.go)
	commits atomic.Int64 // engine commits (group commits)
	// changed is closed (and replaced) after each commit that wrote
	// something: change-feed readers wait on it (Changed).
	changed atomic.Pointer[chan struct{}]

	// Pipelined fsync (engines that allow Sync during commits): nil
	// syncWake means the writer fsyncs itself.
	syncWake chan struct{}
	syncDone chan struct{}
	syncMu   sync.Mutex
	syncJobs []syncJob

	// limit is the engine's transaction limit; nil when it has none.
	limit *txLimit

	// watch is the running RecordWatch (a push's), nil when none.
	watch atomic.Pointer[RecordWatch]
}

// txLimited is an engine that cannot commit a transaction past a size
// (Badger): Limits reports the limit in bytes and in entries (Apply fails
// with ErrTooBig at or past either), and mutationCost is what one mutation
// counts toward the byte limit, as the engine counts it, or more (never
// less).
type txLimited interface {
	Limits() (bytes, entries int64)
	mutationCost(m Mutation) int64
}

// txLimit is what the writer knows of the engine's transaction limit: a
// group's writes plus its counter keys (reserve) must stay below it.
type txLimit struct {
	bytes, entries int64
	cost           func(Mutation) int64
	reserveBytes   int64 // cost of the counter keys the group adds
	reserveEntries int64
}

// fits reports whether the overlay's writes, plus the counter keys the
// group adds before committing, stay inside the engine's limit.
func (l *txLimit) fits(g *overlay) bool {
	return l == nil ||
		g.cost+l.reserveBytes < l.bytes && int64(len(g.muts))+l.reserveEntries < l.entries
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
	var limit *txLimit
	if l, ok := eng.(txLimited); ok {
		// Badger's own size estimate counts per-entry overhead that ours
		// does not: keep groups well inside its limits.
		b, n := l.Limits()
		opts.GroupBytes = int(min(int64(opts.GroupBytes), b/4))
		opts.GroupEntries = int(min(int64(opts.GroupEntries), n/4))
		limit = &txLimit{bytes: b, entries: n, cost: l.mutationCost}
		for _, m := range groupCounterKeys(0, 0, 0, 0, 0, 0, 0) {
			limit.reserveBytes += l.mutationCost(m)
			limit.reserveEntries++
		}
		// The group's outbox log entry: its listings count as they are
		// added (overlay.list), its key and overhead here.
		limit.reserveBytes += l.mutationCost(Mutation{Key: logKey(0)})
		limit.reserveEntries++
	}
	s := &Store{
		eng:   eng,
		opts:  opts,
		reqs:  make(chan *request, 1024),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		limit: limit,
	}
	if err := migrate(eng); err != nil {
		return nil, err
	}
	if f, ok := eng.(formatFencer); ok {
		// Format 2 now: keep earlier ebreplica binaries out (fence.go).
		if err := f.fenceFormat(); err != nil {
			return nil, err
		}
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
		if _, ro, err := r.Get(metaKey(MetaReadOnly)); err != nil {
			return err
		} else {
			s.readOnly = ro
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
		if s.lseq, err = getUint(r, keyLogSeq); err != nil {
			return err
		}
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

// OutboxLen returns the number of outbox marks: O(1).
func (s *Store) OutboxLen() int64 { return s.pending.Load() }

// Commits returns how many engine transactions the writer has committed.
func (s *Store) Commits() int64 { return s.commits.Load() }

// Changed returns a channel closed at the next commit that writes
// anything (a change-feed reader that caught up waits on it). Safe for
// concurrent use; it never blocks the writer.
func (s *Store) Changed() <-chan struct{} {
	for {
		if c := s.changed.Load(); c != nil {
			return *c
		}
		c := make(chan struct{})
		s.changed.CompareAndSwap(nil, &c)
	}
}

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
//
// When the engine has a transaction limit, a request whose writes take the
// group past it is taken out of the group (its writes undone in the
// overlay but kept aside), the group commits without it, and then it
// commits alone, in a transaction of its own: it ran against the group's
// writes, which are then committed, so its writes stay valid and it runs
// only once. Alone, it fails with ErrTooBig only when it cannot fit by
// itself; the rest of its group is unaffected either way.
func (s *Store) group(queue []*request) []*request {
	reader, release := s.eng.Reader()
	defer release()
	g := newOverlay(s.limit)
	startCounter, startLseq := s.counter, s.lseq
	startLive, startPending := s.live.Load(), s.pending.Load()
	live, pending := startLive, startPending
	taken := make([]*request, 0, min(len(queue), 64))
	errs := make([]error, 0, cap(taken))
	needSync := false
	var newID *clock.ReplicaID
	var alone *aloneRequest
	n := 0
	for ; n < len(queue); n++ {
		r := queue[n]
		if n > 0 && (g.bytes >= s.opts.GroupBytes || len(g.muts) >= s.opts.GroupEntries || !s.limit.fits(g)) {
			break
		}
		if err := r.ctx.Err(); err != nil {
			taken = append(taken, r)
			errs = append(errs, err)
			continue
		}
		// Profile labels: the request's work is charged to the labels
		// of its context (pprof.Do), not to whoever opened the store.
		pprof.SetGoroutineLabels(r.ctx)
		g.begin()
		tx := &Tx{s: s, reader: reader, group: g, counter: s.counter, live: live, pending: pending}
		err := r.fn(tx)
		if err == nil {
			err = tx.flushFeed() // the request's changes: one feed entry
		}
		if err != nil {
			g.rollback()
			taken = append(taken, r)
			errs = append(errs, err)
			continue
		}
		if g.base > 0 && !s.limit.fits(g) {
			// Earlier requests wrote, and this one takes the group past
			// the engine's limit: it commits alone, after the group.
			muts, listing := g.takeOut()
			alone = &aloneRequest{r: r, muts: muts, listing: listing, counter: tx.counter,
				live: tx.live, pending: tx.pending, newID: tx.newID}
			n++
			break
		}
		taken = append(taken, r)
		errs = append(errs, nil)
		s.counter, live, pending = tx.counter, tx.live, tx.pending
		if tx.newID != nil {
			newID = tx.newID
		}
		if r.sync {
			needSync = true
		}
	}
	defer pprof.SetGoroutineLabels(context.Background())
	// The commit (and its fsync) is charged to the labels of the group's
	// first request: one engine transaction serves them all.
	pprof.SetGoroutineLabels(queue[0].ctx)
	err := s.commit(g, startCounter, startLseq, live, pending, newID, needSync, taken, errs)
	if alone != nil {
		pprof.SetGoroutineLabels(alone.r.ctx)
		if err != nil {
			// It ran against the group's writes, which did not commit.
			answer([]*request{alone.r}, []error{nil}, err)
		} else {
			s.commitAlone(alone)
		}
	}
	return queue[n:]
}

// aloneRequest is a request taken out of its group to commit on its own:
// its writes and the counters after it.
type aloneRequest struct {
	r             *request
	muts          []Mutation
	listing       []byte // its outbox log listings
	counter       uint64
	live, pending int64
	newID         *clock.ReplicaID
}

// commitAlone commits a request taken out of its group in a transaction of
// its own. The group before it has committed: the state it ran against.
func (s *Store) commitAlone(a *aloneRequest) {
	g := newOverlay(s.limit)
	for _, m := range a.muts {
		g.write(m)
	}
	g.listing = a.listing
	startCounter := s.counter
	s.counter = a.counter
	s.commit(g, startCounter, s.lseq, a.live, a.pending, a.newID, a.r.sync, []*request{a.r}, []error{nil})
}

// groupCounterKeys are the writes of the counters that every group with
// writes commits.
func groupCounterKeys(counter, hlc, capped uint64, ahead time.Duration, live, pending int64, lseq uint64) []Mutation {
	return []Mutation{
		{Key: keyLogSeq, Value: putUint(lseq)},
		{Key: keyCounter, Value: putUint(counter)},
		{Key: keyHLC, Value: putUint(hlc)},
		{Key: keySkew, Value: binary.BigEndian.AppendUint64(putUint(capped), uint64(max(ahead, 0)))},
		{Key: keyLive, Value: putUint(uint64(live))},
		{Key: keyPending, Value: putUint(uint64(pending))},
	}
}

// commit commits the group's writes in g with the counters (s.counter is
// already the value after the group; startCounter the value before it),
// answers the taken requests (or hands them to the syncer), and returns the
// engine's commit error (nil when the commit happened, whether or not the
// fsync then failed).
func (s *Store) commit(g *overlay, startCounter, startLseq uint64, live, pending int64, newID *clock.ReplicaID,
	needSync bool, taken []*request, errs []error) error {
	g.begin() // nothing below is undone
	if len(g.listing) > 0 {
		// The group's outbox log entry: every (key, mark) it set.
		s.lseq++
		g.write(Mutation{Key: logKey(s.lseq), Value: g.listing})
	}
	if len(g.muts) > 0 {
		capped, ahead := s.clock.SkewStats()
		for _, m := range groupCounterKeys(s.counter, uint64(s.clock.Last()), capped, ahead, live, pending, s.lseq) {
			g.write(m)
		}
	}
	// Commit, then fsync separately: when the fsync fails the commit has
	// still happened (the writes are visible and may well be durable), so
	// the counters must follow it — rolling the dot counter back would
	// reissue dots that name committed versions. The writers get the error.
	err := s.eng.Apply(g.mutations(), false)
	if err != nil {
		s.counter, s.lseq = startCounter, startLseq
		answer(taken, errs, err)
		return err
	}
	if len(g.muts) > 0 {
		s.commits.Add(1)
		next := make(chan struct{})
		if old := s.changed.Swap(&next); old != nil {
			close(*old)
		}
	}
	s.live.Store(live)
	s.pending.Store(pending)
	if newID != nil {
		s.id.Store(newID)
	}
	var syncErr error
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
			return nil
		}
		syncErr = s.eng.Sync()
	}
	answer(taken, errs, syncErr)
	return nil
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

	// cost is what muts count toward the engine's transaction limit
	// (limit.cost); 0 when the engine has none.
	limit *txLimit
	cost  int64

	// The undo state of the running request.
	base      int        // len(muts) when it began
	baseBytes int        // bytes when it began
	baseCost  int64      // cost when it began
	undo      []undoItem // earlier mutations it overwrote

	// listing: the outbox log listings of the group's marks
	// (appendListing); baseListing: its length when the request began.
	listing     []byte
	baseListing int

	// G as decoded in this group; gOK false when not (yet) known.
	g   clock.Vector
	gOK bool
}

type undoItem struct {
	i int
	m Mutation
}

func newOverlay(l *txLimit) *overlay { return &overlay{idx: map[string]int{}, limit: l} }

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
	if o.limit != nil {
		o.cost += o.limit.cost(m)
	}
	if i, ok := o.idx[string(m.Key)]; ok {
		if i < o.base {
			o.undo = append(o.undo, undoItem{i, o.muts[i]})
		}
		if o.limit != nil {
			o.cost -= o.limit.cost(o.muts[i])
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

// list adds (key, mark) to the group's outbox log entry.
func (o *overlay) list(key string, mark uint64) {
	n := len(o.listing)
	o.listing = appendListing(o.listing, key, mark)
	d := len(o.listing) - n
	o.bytes += d
	if o.limit != nil {
		o.cost += int64(d) // a large entry goes to the value log: less
	}
}

// begin starts a request.
func (o *overlay) begin() {
	o.base, o.baseBytes, o.baseCost, o.undo = len(o.muts), o.bytes, o.cost, o.undo[:0]
	o.baseListing = len(o.listing)
}

// takeOut undoes every write since begin, like rollback, and returns them:
// the final value of each key the running request wrote, and its outbox
// log listings.
func (o *overlay) takeOut() ([]Mutation, []byte) {
	out := make([]Mutation, 0, len(o.muts)-o.base+len(o.undo))
	seen := map[int]bool{}
	for _, u := range o.undo {
		if !seen[u.i] {
			seen[u.i] = true
			out = append(out, o.muts[u.i])
		}
	}
	out = append(out, o.muts[o.base:]...)
	listing := slices.Clone(o.listing[o.baseListing:])
	o.rollback()
	return out, listing
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
	o.cost = o.baseCost
	o.undo = o.undo[:0]
	o.listing = o.listing[:o.baseListing]
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
