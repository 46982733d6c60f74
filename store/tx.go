package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/vmihailenco/msgpack/v5"
)

var (
	prefixRecord = []byte("r/")
	prefixLog    = []byte("l/")
	keyQueueLow  = []byte("m/qlow")
	keyLogSeq    = []byte("m/lseq")
	keyFormat    = []byte("m/format")
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
func metaKey(n string) []byte   { return append(append([]byte(nil), prefixMeta...), n...) }

// logKey is the outbox log entry of a group commit: l/<8-byte sequence>.
func logKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixLog...), seq)
}

// Stored is a record as kept locally: the merged state of the key and pos,
// the highest log position whose application changed it here (0 when only
// local writes did).
type Stored struct {
	merge.Record
	Pos uint64
}

// appendHeader appends a record entry's header: pos and the outbox mark
// (noMark: none), as uvarints; the mark is stored plus one, 0 meaning none
// (a mark may be 0: PushAll marks with the current counter).
func appendHeader(dst []byte, pos, mark uint64) []byte {
	dst = binary.AppendUvarint(dst, pos)
	return binary.AppendUvarint(dst, mark+1) // noMark+1 == 0
}

// splitRecord splits a record entry into its header and encoded record.
func splitRecord(key string, v []byte) (pos, mark uint64, body []byte, err error) {
	pos, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, 0, nil, fmt.Errorf("%w: record %q: bad header", ErrCorrupt, key)
	}
	m, k := binary.Uvarint(v[n:])
	if k <= 0 {
		return 0, 0, nil, fmt.Errorf("%w: record %q: bad header", ErrCorrupt, key)
	}
	return pos, m - 1, v[n+k:], nil
}

func encodeStored(st Stored, mark uint64) []byte {
	out := appendHeader(make([]byte, 0, 20+merge.RecordSizeHint(st.Record)), st.Pos, mark)
	return appendBody(out, st.Record)
}

func decodeStored(key string, v []byte) (Stored, uint64, error) {
	pos, mark, body, err := splitRecord(key, v)
	if err != nil {
		return Stored{}, 0, err
	}
	r, err := decodeBody(key, body)
	if err != nil {
		return Stored{}, 0, err
	}
	return Stored{Record: r, Pos: pos}, mark, nil
}

// compactBody starts a record body in the compact form: a record of one
// version whose clock is exactly that version's dot (what a local write
// of a key leaves, the common case), stored without the clock and without
// msgpack framing:
//
//	0x01, flags (1: deleted), replica id (16 bytes), counter (uvarint),
//	HLC (uvarint), then the value to the end
//
// Every other record is stored in its canonical form (merge.AppendRecord),
// which starts with 0x92 (a msgpack array of 2), never 0x01. Only the
// local store uses this form: segments carry the canonical one.
const compactBody = 0x01

// appendBody appends the stored form of r.
func appendBody(dst []byte, r merge.Record) []byte {
	lazy := lazyClock(r)
	if len(r.Versions) != 1 || len(r.Clock) != 1 && !lazy {
		return merge.AppendRecord(dst, r)
	}
	v := r.Versions[0]
	if v.Dot.Counter == 0 || v.Dot.Replica.IsZero() || !lazy && r.Clock[v.Dot.Replica] != v.Dot.Counter ||
		v.Deleted && len(v.Value) > 0 {
		if lazy { // not a local write's version: the canonical form, its clock spelled out
			r.Clock = clock.Vector{v.Dot.Replica: v.Dot.Counter}
		}
		return merge.AppendRecord(dst, r)
	}
	var flags byte
	if v.Deleted {
		flags = 1
	}
	dst = append(dst, compactBody, flags)
	dst = append(dst, v.Dot.Replica[:]...)
	dst = binary.AppendUvarint(dst, v.Dot.Counter)
	dst = binary.AppendUvarint(dst, uint64(v.Time))
	return append(dst, v.Value...)
}

// decodeBody decodes a stored record body (either form). The record never
// aliases b.
func decodeBody(key string, b []byte) (merge.Record, error) {
	if len(b) == 0 || b[0] != compactBody {
		r, err := merge.DecodeRecord(b)
		if err != nil {
			return merge.Record{}, fmt.Errorf("%w: record %q: %v", ErrCorrupt, key, err)
		}
		return r, nil
	}
	v, err := decodeCompact(key, b, false)
	if err != nil {
		return merge.Record{}, err
	}
	return merge.Record{Clock: clock.Vector{v.Dot.Replica: v.Dot.Counter}, Versions: []merge.Version{v}}, nil
}

// decodeCompact decodes the one version of a compact body (b[0] ==
// compactBody; its clock is the version's dot). With own set the value
// aliases b (the caller owns b and gives it up: a read's fresh copy);
// otherwise it is a copy. Either way a value is never nil.
func decodeCompact(key string, b []byte, own bool) (merge.Version, error) {
	var v merge.Version
	if len(b) < 2+16 || b[1] > 1 {
		return v, fmt.Errorf("%w: record %q: compact form cut short", ErrCorrupt, key)
	}
	v.Deleted = b[1] == 1
	copy(v.Dot.Replica[:], b[2:18])
	b = b[18:]
	c, n := binary.Uvarint(b)
	if n <= 0 {
		return merge.Version{}, fmt.Errorf("%w: record %q: compact form: bad counter", ErrCorrupt, key)
	}
	h, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return merge.Version{}, fmt.Errorf("%w: record %q: compact form: bad HLC", ErrCorrupt, key)
	}
	b = b[n+m:]
	v.Dot.Counter, v.Time = c, clock.HLC(h)
	if c == 0 || v.Dot.Replica.IsZero() || v.Deleted && len(b) > 0 {
		return merge.Version{}, fmt.Errorf("%w: record %q: compact form: bad version", ErrCorrupt, key)
	}
	if !v.Deleted {
		if own {
			v.Value = b[:len(b):len(b)] // never nil: b is not (len(b) >= 18 above)
		} else {
			v.Value = append([]byte{}, b...) // as the canonical form decodes: never nil
		}
	}
	return v, nil
}

// getter is what the typed accessors need.
type getter interface {
	get(k []byte) ([]byte, bool, error)
}

// readMark reads the outbox mark of key from its record's header.
func readMark(g getter, key string) (uint64, bool, error) {
	v, ok, err := g.get(recordKey(key))
	if err != nil || !ok {
		return 0, false, err
	}
	_, mark, _, err := splitRecord(key, v)
	if err != nil || mark == noMark {
		return 0, false, err
	}
	return mark, true, nil
}

// appendListing appends one (key, mark) pair of an outbox log entry.
func appendListing(dst []byte, key string, mark uint64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return binary.AppendUvarint(dst, mark)
}

// eachListing calls fn for each (key, mark) pair of an outbox log entry.
func eachListing(v []byte, fn func(key string, mark uint64) (bool, error)) (bool, error) {
	for len(v) > 0 {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return false, fmt.Errorf("%w: outbox log entry", ErrCorrupt)
		}
		key := string(v[k : k+int(n)])
		v = v[k+int(n):]
		m, j := binary.Uvarint(v)
		if j <= 0 {
			return false, fmt.Errorf("%w: outbox log entry", ErrCorrupt)
		}
		v = v[j:]
		if more, err := fn(key, m); err != nil || !more {
			return false, err
		}
	}
	return true, nil
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
	cache   map[string]*recState // records (with their marks) read or written by this request
	slab    []recState           // where load takes new cache entries from (fewer allocations)
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

func (t *Tx) set(k, v []byte) { t.touch(k); t.group.put(k, v) }
func (t *Tx) del(k []byte)    { t.touch(k); t.group.del(k) }

// touch notes a write of k in the running RecordWatch, if any.
func (t *Tx) touch(k []byte) {
	if w := t.s.watch.Load(); w != nil && bytes.HasPrefix(k, prefixRecord) {
		w.keys[string(k[len(prefixRecord):])] = struct{}{}
	}
}

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

// recState is a key's record entry as this request sees it: the record
// (had false: none), its outbox mark (noMark: none) and the encoded record
// (so a change of pos or mark alone does not encode it again).
type recState struct {
	st   Stored
	had  bool
	mark uint64
	body []byte
	rkey []byte // r/<key>
}

// load returns key's record entry, read from the engine at most once per
// request: its record and its mark are one entry.
func (t *Tx) load(key string) (*recState, error) {
	if rs, ok := t.cache[key]; ok {
		return rs, nil
	}
	if len(t.slab) == 0 {
		t.slab = make([]recState, 32)
	}
	rs := &t.slab[0]
	t.slab = t.slab[1:]
	rs.mark, rs.rkey = noMark, recordKey(key)
	v, ok, err := t.get(rs.rkey)
	if err != nil {
		return nil, err
	}
	if ok {
		pos, mark, body, err := splitRecord(key, v)
		if err != nil {
			return nil, err
		}
		r, err := decodeBody(key, body)
		if err != nil {
			return nil, err
		}
		rs.st, rs.had, rs.mark, rs.body = Stored{Record: r, Pos: pos}, true, mark, body
	}
	if t.cache == nil {
		t.cache = map[string]*recState{}
	}
	t.cache[key] = rs
	return rs, nil
}

// store writes key's record entry as rs holds it: one r/ mutation (the
// group's overlay keeps the last of a request's writes of a key).
func (t *Tx) store(key string, rs *recState) {
	v := appendHeader(make([]byte, 0, 20+len(rs.body)), rs.st.Pos, rs.mark)
	t.set(rs.rkey, append(v, rs.body...))
}

// Record returns the stored record of key.
func (t *Tx) Record(key string) (Stored, bool, error) {
	rs, err := t.load(key)
	if err != nil || !rs.had {
		return Stored{}, false, err
	}
	if lazyClock(rs.st.Record) {
		d := rs.st.Versions[0].Dot
		rs.st.Clock = clock.Vector{d.Replica: d.Counter}
	}
	return rs.st, true, nil
}

// lazyClock reports whether r is a record whose clock is left out: one
// version and no clock, which stands for the clock holding exactly that
// version's dot. A local write of a new key from an empty G puts such a
// record (no clock map to build for a key written once per request);
// appendBody encodes it in the compact form, the clock implied, and
// Tx.Record fills the clock in before any caller sees the record.
// A record of versions has a clock covering them, so no other record
// has this shape.
func lazyClock(r merge.Record) bool { return r.Clock == nil && len(r.Versions) == 1 }

// PutRecord stores the record of key and keeps the live count right. The
// key's outbox mark stays as it was.
func (t *Tx) PutRecord(key string, st Stored) error {
	return t.putRecord(key, st, false, 0)
}

// putRecord is PutRecord; with setMark, it also marks key dirty at c in
// the same write (SetOutboxMark).
func (t *Tx) putRecord(key string, st Stored, setMark bool, c uint64) error {
	rs, err := t.load(key)
	if err != nil {
		return err
	}
	pol := t.s.opts.Policies.For(key)
	wasLive := rs.had && merge.Live(pol, key, rs.st.Record)
	isLive := merge.Live(pol, key, st.Record)
	switch {
	case isLive && !wasLive:
		t.live++
	case wasLive && !isLive:
		t.live--
	}
	skip := t.noFeed[key]
	delete(t.noFeed, key)
	if !skip && (isLive || wasLive) && !(rs.had && sameVersions(rs.st.Record, st.Record)) {
		t.addFeed(FeedEntry{Key: key, Deleted: !isLive, Local: t.local, Conflict: len(st.Record.Versions) > 1})
	}
	rs.st, rs.had = st, true
	if setMark {
		t.mark(key, rs, c)
	}
	// One buffer: the entry written, and the body kept for a later change
	// of pos or mark alone.
	v := appendHeader(make([]byte, 0, 20+merge.RecordSizeHint(st.Record)), st.Pos, rs.mark)
	h := len(v)
	v = appendBody(v, st.Record)
	rs.body = v[h:len(v):len(v)]
	t.set(rs.rkey, v)
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

// DeleteRecord removes the record of key whole (collection, rebase). Its
// outbox mark, kept in the record, goes with it.
func (t *Tx) DeleteRecord(key string) error {
	rs, err := t.load(key)
	if err != nil || !rs.had {
		return err
	}
	if merge.Live(t.s.opts.Policies.For(key), key, rs.st.Record) {
		t.live--
	}
	if rs.mark != noMark {
		t.pending--
	}
	t.del(recordKey(key))
	t.cache[key] = &recState{mark: noMark, rkey: rs.rkey}
	return nil
}

// noMark: no outbox mark. (Marks are dot counters, which never reach it.)
const noMark = ^uint64(0)

// OutboxMark returns the outbox mark of key: from its record entry, which
// a request reads from the engine at most once.
func (t *Tx) OutboxMark(key string) (uint64, bool, error) {
	rs, err := t.load(key)
	if err != nil || rs.mark == noMark {
		return 0, false, err
	}
	return rs.mark, true, nil
}

// mark sets rs's mark to c and lists (key, c) in the group's outbox log
// entry; the caller writes rs.
func (t *Tx) mark(key string, rs *recState, c uint64) {
	if rs.mark == noMark {
		t.pending++
	}
	rs.mark = c
	t.group.list(key, c)
}

// SetOutboxMark records that key, which must have a record, changed locally
// at dot counter c. The mark lives in the key's record entry (r/<key>:
// pos, mark, record), and the group commit lists (key, c) in its outbox
// log entry (l/<sequence>), so a push finds the dirty keys by reading the
// log from its low position instead of stepping over every key: staging
// costs O(changed keys), not O(store). A listing is stale once the key's
// record carries another mark (or none); OutboxOrder skips those.
func (t *Tx) SetOutboxMark(key string, c uint64) error {
	rs, err := t.load(key)
	if err != nil {
		return err
	}
	if !rs.had {
		return fmt.Errorf("store: outbox mark for %q, which has no record", key)
	}
	t.mark(key, rs, c)
	t.store(key, rs)
	return nil
}

// ClearOutboxMark removes the outbox mark of key.
func (t *Tx) ClearOutboxMark(key string) error {
	rs, err := t.load(key)
	if err != nil || rs.mark == noMark {
		return err
	}
	t.pending--
	rs.mark = noMark
	if rs.had {
		t.store(key, rs)
	}
	return nil
}

// RecordWatch notes, from its start until it stops, every key whose record
// entry a request writes (every change of a record or of its mark goes
// through a request's writes, on the writer goroutine; a request that
// fails, or a group that does not commit, counts too). A push starts one
// before staging, keeps each staged key's entry (RecordEntry), and at the
// commit uses the kept entry for a key the watch saw no write of, instead
// of reading it again (Tx.Reuse). One watch runs at a time: starting one
// stops the previous.
type RecordWatch struct {
	s    *Store
	keys map[string]struct{} // written only by the writer goroutine
}

// RecordEntry is a key's record entry as a request read it (Tx.Entry).
type RecordEntry struct{ rs recState }

// WatchRecords starts a RecordWatch, stopping any running one.
func (t *Tx) WatchRecords() *RecordWatch {
	w := &RecordWatch{s: t.s, keys: map[string]struct{}{}}
	t.s.watch.Store(w)
	return w
}

// Stop stops w (a no-op when it is no longer running). Safe from any
// goroutine.
func (w *RecordWatch) Stop() {
	if w != nil {
		w.s.watch.CompareAndSwap(w, nil)
	}
}

// Entry returns key's record entry as this request sees it (nil when it
// has none), to reuse in a later request of the same watch (Reuse).
func (t *Tx) Entry(key string) (*RecordEntry, error) {
	rs, err := t.load(key)
	if err != nil || !rs.had {
		return nil, err
	}
	return &RecordEntry{rs: recState{st: rs.st, had: true, mark: rs.mark, body: rs.body, rkey: rs.rkey}}, nil
}

// Reuse makes e, read under the running watch w, this request's view of
// key's record entry (its Record, OutboxMark, ClearOutboxMark and
// RaisePos then read no engine), but only when no request has written
// the entry since w started, w still runs and this request has not read
// key yet. It reports whether it did; when not, the request reads key as
// usual.
func (t *Tx) Reuse(w *RecordWatch, key string, e *RecordEntry) bool {
	if w == nil || e == nil || t.s.watch.Load() != w {
		return false
	}
	if _, ok := w.keys[key]; ok {
		return false
	}
	if _, ok := t.cache[key]; ok {
		return false
	}
	if t.cache == nil {
		t.cache = map[string]*recState{}
	}
	rs := e.rs
	t.cache[key] = &rs
	return true
}

// RaisePos raises the pos of key's record to pos (no record, or one at
// pos or above: nothing), keeping the encoded record as it is.
func (t *Tx) RaisePos(key string, pos uint64) error {
	rs, err := t.load(key)
	if err != nil || !rs.had || rs.st.Pos >= pos {
		return err
	}
	rs.st.Pos = pos
	t.store(key, rs)
	return nil
}

// OutboxLow returns the outbox log position below which every entry is
// consumed (OutboxOrder's from).
func (t *Tx) OutboxLow() (uint64, error) { return getUintG(t, keyQueueLow) }

// SetOutboxLow records that every outbox log entry below position p is
// consumed (each mark it lists is cleared, or superseded by a later
// entry's: a push sets it after committing every key OutboxOrder gave it
// from a View whose OutboxNext was p), and deletes those entries. It never
// lowers the position.
func (t *Tx) SetOutboxLow(p uint64) error {
	low, err := t.OutboxLow()
	if err != nil || p <= low {
		return err
	}
	var dead [][]byte
	if err := t.reader.Scan(prefixLog, logKey(low), func(k, _ []byte) (bool, error) {
		if len(k) != len(prefixLog)+8 || binary.BigEndian.Uint64(k[len(prefixLog):]) >= p {
			return false, nil
		}
		dead = append(dead, append([]byte(nil), k...))
		return true, nil
	}); err != nil {
		return err
	}
	for _, k := range dead {
		t.del(k)
	}
	t.set(keyQueueLow, putUint(p))
	return nil
}

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
	v, _, err := t.write(key, nil, nil, value, deleted)
	return v, err
}

// WriteFunc is Write for a value computed from the state the write starts
// from and the dot it will carry (CRDT states tag their entries with it).
// fn gets the key's record, or one holding only G when the key has none,
// and the write's dot; it returns the value, whether it is a tombstone, and
// whether to write at all (when not, no dot is issued and nothing changes).
// fn must not keep start.
func (t *Tx) WriteFunc(key string, fn func(start merge.Record, dot clock.Dot) (value []byte, deleted, write bool, err error)) (merge.Version, bool, error) {
	return t.write(key, nil, fn, nil, false)
}

// write is WriteFunc, or with fn nil Write of value (deleted: a
// tombstone), which builds no start record for an fn. With seen non-nil
// the write supersedes only the versions seen covers (merge.ContextWrite,
// see WriteWithContext).
func (t *Tx) write(key string, seen *clock.Vector, fn func(start merge.Record, dot clock.Dot) (value []byte, deleted, write bool, err error),
	value []byte, deleted bool) (merge.Version, bool, error) {
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
	var at clock.HLC
	if fn != nil {
		start := cur.Record
		if cur.IsZero() {
			start = merge.Record{Clock: g.Clone()} // fn must not reach the shared G
		}
		t.writeTime, t.writing = 0, true
		var write bool
		value, deleted, write, err = fn(start, dot)
		at = t.writeTime
		t.writeTime, t.writing = 0, false
		if err != nil || !write {
			t.counter-- // the dot was not used: nothing else ran since NextDot
			return merge.Version{}, false, err
		}
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
	switch {
	case seen != nil:
		rec = merge.ContextWrite(cur.Record, g, *seen, v)
	case cur.IsZero() && len(g) == 0:
		// merge.LocalWrite's record from an empty G (a new key's usual
		// case): its clock is exactly the dot, left out (nil) until a
		// read of this request asks for it (lazyClock).
		rec = merge.Record{Versions: []merge.Version{v}}
	default:
		rec = merge.LocalWrite(cur.Record, g, v)
	}
	t.local = true
	err = t.putRecord(key, Stored{Record: rec, Pos: cur.Pos}, true, dot.Counter)
	t.local = false
	if err != nil {
		return merge.Version{}, false, err
	}
	return v, true, nil
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
func (v *View) Record(key string) (Stored, bool, error) {
	b, ok, err := v.r.Get(recordKey(key))
	if err != nil || !ok {
		return Stored{}, false, err
	}
	pos, _, body, err := splitRecord(key, b)
	if err != nil {
		return Stored{}, false, err
	}
	if len(body) == 0 || body[0] != compactBody {
		r, err := decodeBody(key, body)
		return Stored{Record: r, Pos: pos}, err == nil, err
	}
	ver, err := decodeCompact(key, body, true) // b is this read's own copy (Reader.Get)
	if err != nil {
		return Stored{}, false, err
	}
	rec := merge.Record{Clock: clock.Vector{ver.Dot.Replica: ver.Dot.Counter}, Versions: []merge.Version{ver}}
	return Stored{Record: rec, Pos: pos}, true, nil
}

// RecordVersions returns the versions of key's record (what a policy
// reads: Record's Versions), without decoding its clock or pos: a Get's
// read. ok is false when key has no record.
func (v *View) RecordVersions(key string) (vs []merge.Version, ok bool, err error) {
	b, ok, err := v.r.Get(recordKey(key))
	if err != nil || !ok {
		return nil, false, err
	}
	_, _, body, err := splitRecord(key, b)
	if err != nil {
		return nil, false, err
	}
	if len(body) == 0 || body[0] != compactBody {
		r, err := decodeBody(key, body)
		return r.Versions, err == nil, err
	}
	ver, err := decodeCompact(key, body, true) // b is this read's own copy (Reader.Get)
	if err != nil {
		return nil, false, err
	}
	return []merge.Version{ver}, true, nil
}

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
		st, _, err := decodeStored(key, val)
		if err != nil {
			return false, err
		}
		return fn(key, st)
	})
}

// OutboxMarks calls fn for each outbox mark of a key with the prefix, in
// key order. It reads the outbox log (every mark is listed there, at or
// after OutboxLow), not every record: O(dirty keys), which it holds in
// memory to sort them.
func (v *View) OutboxMarks(prefix string, fn func(key string, counter uint64) (bool, error)) error {
	low, err := v.OutboxLow()
	if err != nil {
		return err
	}
	type km struct {
		key  string
		mark uint64
	}
	var dirty []km
	if err := v.OutboxOrder(low, func(key string, mark uint64) (bool, error) {
		if strings.HasPrefix(key, prefix) {
			dirty = append(dirty, km{key, mark})
		}
		return true, nil
	}); err != nil {
		return err
	}
	slices.SortFunc(dirty, func(a, b km) int { return strings.Compare(a.key, b.key) })
	for _, d := range dirty {
		if more, err := fn(d.key, d.mark); err != nil || !more {
			return err
		}
	}
	return nil
}

// ScanMarks calls fn for each outbox mark of a key with the prefix, in key
// order, read from the records themselves: O(store). (fsck and tests check
// it against OutboxMarks and the pending count.)
func (v *View) ScanMarks(prefix string, fn func(key string, counter uint64) (bool, error)) error {
	return v.r.Scan(recordKey(prefix), nil, func(k, val []byte) (bool, error) {
		key := string(k[len(prefixRecord):])
		_, mark, _, err := splitRecord(key, val)
		if err != nil || mark == noMark {
			return err == nil, err
		}
		return fn(key, mark)
	})
}

// OutboxLow returns the outbox log position below which every entry is
// consumed.
func (v *View) OutboxLow() (uint64, error) { return getUintG(v, keyQueueLow) }

// OutboxNext returns the position the next outbox log entry will take:
// every entry of this view is below it (a push passes it to SetOutboxLow
// once it has committed what OutboxOrder gave it).
func (v *View) OutboxNext() (uint64, error) {
	n, err := getUintG(v, keyLogSeq)
	return n + 1, err
}

// OutboxOrder calls fn for each dirty key listed in the outbox log at or
// after position from, in the order the keys were marked (commit order,
// which is mark order but for PushAll's re-marks), with its mark, until fn
// returns false or an error. A listing whose key's record no longer
// carries its mark (cleared, or marked again since: the later listing
// counts) is skipped, and each key comes once.
func (v *View) OutboxOrder(from uint64, fn func(key string, mark uint64) (bool, error)) error {
	seen := map[string]bool{}
	return v.r.Scan(prefixLog, logKey(from), func(k, val []byte) (bool, error) {
		if len(k) != len(prefixLog)+8 {
			return false, fmt.Errorf("%w: outbox log entry %q", ErrCorrupt, k)
		}
		return eachListing(val, func(key string, mark uint64) (bool, error) {
			if seen[key] {
				return true, nil
			}
			now, ok, err := readMark(v, key)
			if err != nil || !ok || now != mark {
				return err == nil, err
			}
			seen[key] = true
			return fn(key, mark)
		})
	})
}

// OutboxListings calls fn for each (key, mark) listing of the outbox log
// at or after position from, in log order, as listed: without reading
// the records, so stale listings (the key cleared or marked again since)
// come too, and a key marked again comes again. A push's staging, which
// reads each record anyway, checks the mark there (OutboxOrder is the
// checked form).
func (v *View) OutboxListings(from uint64, fn func(key string, mark uint64) (bool, error)) error {
	return v.r.Scan(prefixLog, logKey(from), func(k, val []byte) (bool, error) {
		if len(k) != len(prefixLog)+8 {
			return false, fmt.Errorf("%w: outbox log entry %q", ErrCorrupt, k)
		}
		return eachListing(val, fn)
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
