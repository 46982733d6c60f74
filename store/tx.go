package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/vmihailenco/msgpack/v5"
)

var (
	prefixRecord = []byte("r/")
	prefixOutbox = []byte("o/")
	prefixQueue  = []byte("q/")
	keyQueueLow  = []byte("m/qlow")
	prefixMeta   = []byte("m/")
	keyReplica   = []byte("m/replica")
	keyCounter   = []byte("m/counter")
	keyHLC       = []byte("m/hlc")
	keyLive      = []byte("m/live")
	keyPending   = []byte("m/pending")
	keyG         = []byte("m/gc")
	keySkew      = []byte("m/skew")
)

func recordKey(k string) []byte { return append(append([]byte(nil), prefixRecord...), k...) }
func outboxKey(k string) []byte { return append(append([]byte(nil), prefixOutbox...), k...) }
func metaKey(n string) []byte   { return append(append([]byte(nil), prefixMeta...), n...) }

// queueKey orders the outbox by mark: q/<8-byte mark><key>.
func queueKey(c uint64, k string) []byte {
	b := binary.BigEndian.AppendUint64(append([]byte(nil), prefixQueue...), c)
	return append(b, k...)
}

// Stored is a record as kept locally: the merged state of the key and pos,
// the highest log position whose application changed it here (0 when only
// local writes did).
type Stored struct {
	merge.Record
	Pos uint64
}

func encodeStored(st Stored) ([]byte, error) {
	out := make([]byte, 8, 8+merge.RecordSizeHint(st.Record))
	binary.BigEndian.PutUint64(out, st.Pos)
	return merge.AppendRecord(out, st.Record), nil
}

func decodeStored(key string, v []byte) (Stored, error) {
	if len(v) < 8 {
		return Stored{}, fmt.Errorf("%w: record %q truncated", ErrCorrupt, key)
	}
	r, err := merge.DecodeRecord(v[8:])
	if err != nil {
		return Stored{}, fmt.Errorf("%w: record %q: %v", ErrCorrupt, key, err)
	}
	return Stored{Record: r, Pos: binary.BigEndian.Uint64(v)}, nil
}

// getter is what the typed accessors need.
type getter interface {
	get(k []byte) ([]byte, bool, error)
}

func readRecord(g getter, key string) (Stored, bool, error) {
	v, ok, err := g.get(recordKey(key))
	if err != nil || !ok {
		return Stored{}, false, err
	}
	st, err := decodeStored(key, v)
	return st, err == nil, err
}

func readMark(g getter, key string) (uint64, bool, error) {
	v, ok, err := g.get(outboxKey(key))
	if err != nil || !ok {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("%w: outbox mark %q", ErrCorrupt, key)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

func readVector(g getter, k []byte) (clock.Vector, error) {
	v, ok, err := g.get(k)
	if err != nil || !ok {
		return clock.Vector{}, err
	}
	vec, err := merge.DecodeVector(msgpack.NewDecoder(bytes.NewReader(v)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, k, err)
	}
	return vec, nil
}

func encodeVector(v clock.Vector) []byte { return merge.AppendVector(nil, v) }

// Tx is one request running in the writer. It sees committed state, the
// writes of earlier requests in its group, and its own writes. A Tx is only
// valid during its function.
type Tx struct {
	s       *Store
	reader  Reader
	group   *overlay // the group's writes; this request's are undone if it fails
	counter uint64
	live    int64
	pending int64
	newID   *clock.ReplicaID
	cache   map[string]*Stored // decoded records read or written by this request
	marks   map[string]uint64  // outbox marks read or written by this request (noMark: none)
	// writeTime is the HLC of the write WriteFunc is making, once its fn
	// asked for it (WriteTime); zero otherwise. writing: inside that fn.
	writeTime clock.HLC
	writing   bool
	local     bool            // PutRecord is a local write's (the change feed's origin)
	feed      []FeedEntry     // this request's changes (feed.go)
	noFeed    map[string]bool // SkipFeed's keys
}

func (t *Tx) get(k []byte) ([]byte, bool, error) {
	if m, ok := t.group.get(k); ok {
		return m.Value, !m.Delete, nil
	}
	return t.reader.Get(k)
}

func (t *Tx) set(k, v []byte) { t.group.put(k, v) }
func (t *Tx) del(k []byte)    { t.group.del(k) }

// Full reports whether this request's writes so far take half of the
// engine's transaction limit (in bytes, as the engine counts them, or in
// entries), or more: a multi-transaction step (a pull applying a segment,
// a push clearing the marks of a committed one) then leaves the rest of
// its chunk to its next transaction. Half leaves room for one more item
// of any size: a mutation counts at most its key and the value threshold
// (larger values count their value-log pointer), a few KiB under the
// default profile's 4.8 MiB and 64 KiB under the small profile's 307 KiB.
// Always false on an engine without a limit (the simulator's map).
func (t *Tx) Full() bool {
	l, g := t.s.limit, t.group
	if l == nil {
		return false
	}
	return 2*(g.cost-g.baseCost) >= l.bytes || 2*int64(len(g.muts)-g.base) >= l.entries
}

// ReplicaID returns this replica's id (ErrNoReplica before Init).
func (t *Tx) ReplicaID() (clock.ReplicaID, error) {
	if t.newID != nil {
		return *t.newID, nil
	}
	return t.s.ReplicaID()
}

// Record returns the stored record of key.
func (t *Tx) Record(key string) (Stored, bool, error) {
	if st, ok := t.cache[key]; ok {
		if st == nil {
			return Stored{}, false, nil
		}
		return *st, true, nil
	}
	st, ok, err := readRecord(t, key)
	if err != nil {
		return Stored{}, false, err
	}
	if t.cache == nil {
		t.cache = map[string]*Stored{}
	}
	if ok {
		t.cache[key] = &st
	} else {
		t.cache[key] = nil
	}
	return st, ok, nil
}

// PutRecord stores the record of key and keeps the live count right.
func (t *Tx) PutRecord(key string, st Stored) error {
	old, had, err := t.Record(key)
	if err != nil {
		return err
	}
	b, err := encodeStored(st)
	if err != nil {
		return err
	}
	pol := t.s.opts.Policies.For(key)
	wasLive := had && merge.Live(pol, key, old.Record)
	isLive := merge.Live(pol, key, st.Record)
	switch {
	case isLive && !wasLive:
		t.live++
	case wasLive && !isLive:
		t.live--
	}
	skip := t.noFeed[key]
	delete(t.noFeed, key)
	if !skip && (isLive || wasLive) && !(had && sameVersions(old.Record, st.Record)) {
		t.addFeed(FeedEntry{Key: key, Deleted: !isLive, Local: t.local, Conflict: len(st.Record.Versions) > 1})
	}
	t.set(recordKey(key), b)
	cp := st
	t.cache[key] = &cp
	return nil
}

// SkipFeed makes the next PutRecord of key in this request (a WriteFunc's
// fn may call it) record no change-feed entry: for a write that leaves
// what a read of the key returns as it was (a re-stamp).
func (t *Tx) SkipFeed(key string) {
	if t.noFeed == nil {
		t.noFeed = map[string]bool{}
	}
	t.noFeed[key] = true
}

// DeleteRecord removes the record of key whole (collection).
func (t *Tx) DeleteRecord(key string) error {
	old, had, err := t.Record(key)
	if err != nil || !had {
		return err
	}
	if merge.Live(t.s.opts.Policies.For(key), key, old.Record) {
		t.live--
	}
	t.del(recordKey(key))
	t.cache[key] = nil
	return nil
}

// noMark in Tx.marks: the key has no outbox mark. (Marks are dot
// counters, which never reach it.)
const noMark = ^uint64(0)

// OutboxMark returns the outbox mark of key. A request reads each key's
// mark from the engine at most once: SetOutboxMark and ClearOutboxMark
// after it (a push's commit clears the mark it has just compared) read it
// from the request's cache.
func (t *Tx) OutboxMark(key string) (uint64, bool, error) {
	if c, ok := t.marks[key]; ok {
		return c, c != noMark, nil
	}
	c, ok, err := readMark(t, key)
	if err != nil {
		return 0, false, err
	}
	t.cacheMark(key, c, ok)
	return c, ok, nil
}

func (t *Tx) cacheMark(key string, c uint64, ok bool) {
	if t.marks == nil {
		t.marks = map[string]uint64{}
	}
	if !ok {
		c = noMark
	}
	t.marks[key] = c
}

// SetOutboxMark records that key changed locally at dot counter c. Marks are
// kept twice: o/<key> (by key) and q/<c><key> (by mark, the outbox queue),
// so a push finds the dirty keys by seeking past everything already pushed
// (QueueLow) instead of stepping over the deleted marks of every key ever
// pushed: staging costs O(changed keys), not O(store). A mark must never be
// below QueueLow (marks are dot counters, which only grow).
func (t *Tx) SetOutboxMark(key string, c uint64) error {
	old, had, err := t.OutboxMark(key)
	if err != nil {
		return err
	}
	if !had {
		t.pending++
	} else {
		t.del(queueKey(old, key))
	}
	t.set(outboxKey(key), putUint(c))
	t.set(queueKey(c, key), nil)
	t.cacheMark(key, c, true)
	return nil
}

// ClearOutboxMark removes the outbox mark of key.
func (t *Tx) ClearOutboxMark(key string) error {
	old, had, err := t.OutboxMark(key)
	if err != nil || !had {
		return err
	}
	t.pending--
	t.del(outboxKey(key))
	t.del(queueKey(old, key))
	t.cacheMark(key, 0, false)
	return nil
}

// OutboxLow returns the mark below which the outbox queue holds nothing.
func (t *Tx) OutboxLow() (uint64, error) { return getUintG(t, keyQueueLow) }

// SetOutboxLow records that the outbox queue holds nothing below c.
func (t *Tx) SetOutboxLow(c uint64) { t.set(keyQueueLow, putUint(c)) }

// NextDot issues the next dot of this replica.
func (t *Tx) NextDot() (clock.Dot, error) {
	if t.s.readOnly {
		return clock.Dot{}, ErrReadOnly
	}
	id, err := t.ReplicaID()
	if err != nil {
		return clock.Dot{}, err
	}
	t.counter++
	return clock.Dot{Replica: id, Counter: t.counter}, nil
}

// ChangeReplicaID gives the store a new replica id (reidentify). The dot
// counter restarts for the new id.
func (t *Tx) ChangeReplicaID(id clock.ReplicaID) {
	t.set(keyReplica, id[:])
	t.newID = &id
	t.counter = 0
	t.SetOutboxLow(0) // marks restart with the counter
}

// Counter returns the last dot counter issued.
func (t *Tx) Counter() uint64 { return t.counter }

// RaiseCounter makes sure no later dot reuses a counter up to c (a pulled
// clock entry for this replica's own id).
func (t *Tx) RaiseCounter(c uint64) {
	if c > t.counter {
		t.counter = c
	}
}

// Now issues an HLC timestamp.
func (t *Tx) Now() clock.HLC { return t.s.clock.Now() }

// Observe folds a remote HLC into the clock (see clock.Clock.Observe).
func (t *Tx) Observe(h clock.HLC) bool { return t.s.clock.Observe(h) }

// G returns the collected context (the caller's own copy).
func (t *Tx) G() (clock.Vector, error) {
	g, err := t.sharedG()
	return g.Clone(), err
}

// sharedG returns G as the group sees it, decoded once per group: the
// group overlay drops its copy whenever m/gc is written or a request is
// undone. The caller must not modify it.
func (t *Tx) sharedG() (clock.Vector, error) {
	if t.group.gOK {
		return t.group.g, nil
	}
	g, err := readVector(t, keyG)
	if err != nil {
		return nil, err
	}
	t.group.g, t.group.gOK = g, true
	return g, nil
}

// SetG stores the collected context.
func (t *Tx) SetG(v clock.Vector) { t.set(keyG, encodeVector(v)) }

// Meta returns the metadata value name (stored under m/<name>).
func (t *Tx) Meta(name string) ([]byte, bool, error) { return t.get(metaKey(name)) }

// SetMeta stores a metadata value.
func (t *Tx) SetMeta(name string, v []byte) { t.set(metaKey(name), v) }

// DeleteMeta removes a metadata value.
func (t *Tx) DeleteMeta(name string) { t.del(metaKey(name)) }

// Write applies a local write of key (the write rule of merge.LocalWrite):
// a fresh dot and HLC, replacing every sibling, starting from G when the key
// has no record, and marks the key dirty. It returns the new version.
func (t *Tx) Write(key string, value []byte, deleted bool) (merge.Version, error) {
	v, _, err := t.WriteFunc(key, func(merge.Record, clock.Dot) ([]byte, bool, bool, error) {
		return value, deleted, true, nil
	})
	return v, err
}

// WriteFunc is Write for a value computed from the state the write starts
// from and the dot it will carry (CRDT states tag their entries with it).
// fn gets the key's record, or one holding only G when the key has none,
// and the write's dot; it returns the value, whether it is a tombstone, and
// whether to write at all (when not, no dot is issued and nothing changes).
// fn must not keep start.
func (t *Tx) WriteFunc(key string, fn func(start merge.Record, dot clock.Dot) (value []byte, deleted, write bool, err error)) (merge.Version, bool, error) {
	return t.writeFunc(key, nil, fn)
}

// writeFunc is WriteFunc; with seen non-nil the write supersedes only the
// versions seen covers (merge.ContextWrite, see WriteWithContext).
func (t *Tx) writeFunc(key string, seen *clock.Vector, fn func(start merge.Record, dot clock.Dot) (value []byte, deleted, write bool, err error)) (merge.Version, bool, error) {
	cur, _, err := t.Record(key)
	if err != nil {
		return merge.Version{}, false, err
	}
	var g clock.Vector
	if cur.IsZero() {
		if g, err = t.sharedG(); err != nil { // LocalWrite clones it
			return merge.Version{}, false, err
		}
		if t.s.opts.WriteStart != nil {
			g = t.s.opts.WriteStart(g)
		}
	}
	dot, err := t.NextDot()
	if err != nil {
		return merge.Version{}, false, err
	}
	start := cur.Record
	if cur.IsZero() {
		start = merge.Record{Clock: g.Clone()} // fn must not reach the shared G
	}
	t.writeTime, t.writing = 0, true
	value, deleted, write, err := fn(start, dot)
	at := t.writeTime
	t.writeTime, t.writing = 0, false
	if err != nil || !write {
		t.counter-- // the dot was not used: nothing else ran since NextDot
		return merge.Version{}, false, err
	}
	if at == 0 {
		at = t.Now()
	}
	v := merge.Version{Dot: dot, Time: at, Deleted: deleted}
	if !deleted {
		v.Value = value
		if v.Value == nil {
			v.Value = []byte{}
		}
	}
	var rec merge.Record
	if seen != nil {
		rec = merge.ContextWrite(cur.Record, g, *seen, v)
	} else {
		rec = merge.LocalWrite(cur.Record, g, v)
	}
	t.local = true
	err = t.PutRecord(key, Stored{Record: rec, Pos: cur.Pos})
	t.local = false
	if err != nil {
		return merge.Version{}, false, err
	}
	return v, true, t.SetOutboxMark(key, dot.Counter)
}

// WriteTime returns the HLC the write WriteFunc is making will carry, for
// its fn (a JSON document stamps the fields it assigns with it); called
// outside a WriteFunc's fn, it returns zero. The clock is read on the
// first call, so a write whose fn does not ask reads it as before.
func (t *Tx) WriteTime() clock.HLC {
	if t.writeTime == 0 && t.writing {
		t.writeTime = t.Now()
	}
	return t.writeTime
}

// View reads committed state. Only valid during its function.
type View struct {
	r Reader
	s *Store
}

func (v *View) get(k []byte) ([]byte, bool, error) { return v.r.Get(k) }

// Record returns the stored record of key.
func (v *View) Record(key string) (Stored, bool, error) { return readRecord(v, key) }

// Mark returns the outbox mark of key.
func (v *View) OutboxMark(key string) (uint64, bool, error) { return readMark(v, key) }

// G returns the collected context.
func (v *View) G() (clock.Vector, error) { return readVector(v, keyG) }

// Meta returns a metadata value.
func (v *View) Meta(name string) ([]byte, bool, error) { return v.r.Get(metaKey(name)) }

// Records calls fn for each record whose key has the prefix, at or after
// start, in key order, until fn returns false or an error.
func (v *View) Records(prefix, start string, fn func(key string, st Stored) (bool, error)) error {
	var s []byte
	if start != "" {
		s = recordKey(start)
	}
	return v.r.Scan(recordKey(prefix), s, func(k, val []byte) (bool, error) {
		key := string(k[len(prefixRecord):])
		st, err := decodeStored(key, val)
		if err != nil {
			return false, err
		}
		return fn(key, st)
	})
}

// OutboxMarks calls fn for each outbox mark in key order.
func (v *View) OutboxMarks(prefix string, fn func(key string, counter uint64) (bool, error)) error {
	return v.r.Scan(outboxKey(prefix), nil, func(k, val []byte) (bool, error) {
		key := string(k[len(prefixOutbox):])
		if len(val) != 8 {
			return false, fmt.Errorf("%w: outbox mark %q", ErrCorrupt, key)
		}
		return fn(key, binary.BigEndian.Uint64(val))
	})
}

// OutboxLow returns the mark below which the outbox queue holds nothing.
func (v *View) OutboxLow() (uint64, error) { return getUintG(v, keyQueueLow) }

// OutboxOrder calls fn for each outbox mark at or above from, in mark order (then
// key order), until fn returns false or an error.
func (v *View) OutboxOrder(from uint64, fn func(key string, mark uint64) (bool, error)) error {
	return v.r.Scan(prefixQueue, queueKey(from, ""), func(k, _ []byte) (bool, error) {
		if len(k) < len(prefixQueue)+8 {
			return false, fmt.Errorf("%w: outbox queue entry %q", ErrCorrupt, k)
		}
		c := binary.BigEndian.Uint64(k[len(prefixQueue):])
		return fn(string(k[len(prefixQueue)+8:]), c)
	})
}

// MetaScan calls fn for each metadata entry whose name has the prefix.
func (v *View) MetaScan(prefix string, fn func(name string, val []byte) (bool, error)) error {
	return v.r.Scan(metaKey(prefix), nil, func(k, val []byte) (bool, error) {
		return fn(string(k[len(prefixMeta):]), val)
	})
}

// CountRecords counts live records by a full scan (tests and repair compare
// it with the O(1) Len).
func (v *View) CountLive() (int64, error) {
	var n int64
	err := v.Records("", "", func(key string, st Stored) (bool, error) {
		if merge.Live(v.s.opts.Policies.For(key), key, st.Record) {
			n++
		}
		return true, nil
	})
	return n, err
}

func getUintG(g getter, k []byte) (uint64, error) {
	v, ok, err := g.get(k)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s is %d bytes", ErrCorrupt, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
