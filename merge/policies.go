package merge

// The built-in policies besides LWW: mv, the Func adapter for user
// callbacks, the CRDT values counter and set, Builtin and ParsePolicies.

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/vmihailenco/msgpack/v5"
)

// Built-in policy names, as persisted in the store manifest.
const (
	NameLWW     = "lww"
	NameMV      = "mv"
	NameCounter = "counter"
	NameSet     = "set"
)

// (NameJSON, the json document policy's name, is in json.go.)

// Builtin returns the built-in policy called name: "lww", "mv", "counter",
// "set", "json" or "json-mv".
func Builtin(name string) (Policy, bool) {
	switch name {
	case NameLWW:
		return LWW{}, true
	case NameMV:
		return MV{}, true
	case NameCounter:
		return Counter{}, true
	case NameSet:
		return Set{}, true
	case NameJSON:
		return JSON{}, true
	case NameJSONMV:
		return JSON{Siblings: true}, true
	}
	return nil, false
}

// BuiltinNames returns the names of the built-in policies, sorted.
func BuiltinNames() []string {
	return []string{NameCounter, NameJSON, NameJSONMV, NameLWW, NameMV, NameSet}
}

// ParsePolicies builds a registry from PREFIX=NAME specs (the form of the
// command line's --policy). The name is after the last "=", so a prefix may
// hold "="; an empty prefix sets the default (lww when no spec sets it).
// A name is a built-in (see Builtin) or a key of funcs, whose policies
// must carry that key as their Name and may not reuse a built-in's name.
// Giving one prefix two different policies is an error; an unknown name
// gives an error wrapping ErrUnknownPolicy that names it.
func ParsePolicies(specs []string, funcs map[string]Policy) (*Registry, error) {
	for name, p := range funcs {
		switch {
		case p == nil:
			return nil, fmt.Errorf("merge: policy %q is nil", name)
		case p.Name() != name:
			return nil, fmt.Errorf("merge: policy registered as %q is named %q", name, p.Name())
		}
		if _, ok := Builtin(name); ok {
			return nil, fmt.Errorf("merge: policy %q reuses the name of a built-in policy", name)
		}
	}
	reg := NewRegistry()
	chosen := map[string]string{}
	for _, spec := range specs {
		i := strings.LastIndexByte(spec, '=')
		if i < 0 {
			return nil, fmt.Errorf("merge: policy spec %q: want PREFIX=NAME (an empty PREFIX sets the default)", spec)
		}
		prefix, name := spec[:i], spec[i+1:]
		if !utf8.ValidString(prefix) {
			return nil, fmt.Errorf("merge: policy spec %q: prefix is not valid UTF-8", spec)
		}
		p, ok := Builtin(name)
		if !ok {
			p, ok = funcs[name]
		}
		if !ok {
			known := BuiltinNames()
			known = append(known, slices.Sorted(maps.Keys(funcs))...)
			return nil, fmt.Errorf("%w %q in spec %q (known: %s)", ErrUnknownPolicy, name, spec, strings.Join(known, ", "))
		}
		if prev, dup := chosen[prefix]; dup && prev != name {
			return nil, fmt.Errorf("merge: prefix %q given two policies, %s and %s", prefix, prev, name)
		}
		chosen[prefix] = name
		reg.Set(prefix, p)
	}
	return reg, nil
}

// MV is the multi-value policy: it never chooses between concurrent
// versions. One version reads as itself (a tombstone as not found, Winner
// 0). Two or more read as a conflict (Conflict, Winner -1) that the
// application settles by writing — unless every one is a tombstone:
// concurrent deletes agree, so the key reads as deleted. A tombstone beside
// a live version is a conflict: one replica deleted what another changed,
// and only the application can say which should win.
type MV struct{}

// Name returns "mv".
func (MV) Name() string { return NameMV }

// Resolve surfaces the siblings.
func (MV) Resolve(_ string, vs []Version) (Result, error) {
	if len(vs) == 1 {
		v := vs[0]
		if v.Deleted {
			return Result{Deleted: true, Winner: 0}, nil
		}
		return Result{Value: v.Value, Winner: 0}, nil
	}
	for _, v := range vs {
		if !v.Deleted {
			return Result{Conflict: true, Winner: -1}, nil
		}
	}
	return Result{Deleted: true, Winner: -1}, nil
}

// OnConflict merges two concurrent versions of key into one. NewFunc folds
// it over a key's siblings in canonical dot order: a is the result so far
// (the first sibling to begin with), b the next sibling.
//
// The callback must be deterministic: the same inputs give the same output
// on every replica, every run, every build — no clocks, randomness, map
// iteration order, global state or environment. It must be safe for
// concurrent use, do no I/O and not block: it runs inside every read of the
// key, and inside the store's single writer (which keeps the live-key
// count), so a slow callback stalls every write of the replica. It must not
// modify a, b or their Values.
//
// The Value and Deleted of the returned version are what the read returns
// (a Deleted result reads as not found and its Value is ignored). Its Dot
// and Time are only passed on as a to the next call; return a or b
// unchanged to mark that input as the winner (Result.Winner). An error
// makes the read fail with a *PolicyError naming the key and the policy;
// stored state is never touched.
//
// Determinism alone makes every replica read the same value from the same
// state. A callback that is also commutative (fn(a, b) ≈ fn(b, a)),
// associative (fn(fn(a, b), c) ≈ fn(a, fn(b, c))) and idempotent
// (fn(a, a) ≈ a), where ≈ compares Value and Deleted, reads the same
// whatever the dot order, that is, whatever replica ids the writers
// happened to draw; proptest.CheckPolicy tests these laws.
type OnConflict func(key string, a, b Version) (Version, error)

// Func is the policy NewFunc makes: a user OnConflict callback folded over
// the siblings.
type Func struct {
	name string
	fn   OnConflict
}

var _ Policy = (*Func)(nil)

// NewFunc returns a policy that folds fn over the siblings in canonical dot
// order. A single version reads as itself without calling fn.
//
// name is the policy's Name, persisted in the store manifest: give every
// different callback its own name, and change the name whenever the
// callback's results change, so that replicas running different callbacks
// refuse to open the same store instead of reading different values. It
// must be 1 to 64 bytes of letters, digits and ".-_:/", and not the name of
// a built-in policy; NewFunc panics otherwise, or when fn is nil.
func NewFunc(name string, fn OnConflict) Policy {
	if err := checkFuncName(name); err != nil {
		panic(err)
	}
	if fn == nil {
		panic("merge: NewFunc with a nil callback")
	}
	return &Func{name: name, fn: fn}
}

func checkFuncName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("merge: policy name %q must be 1 to 64 bytes", name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_:/", c)
		if !ok {
			return fmt.Errorf("merge: policy name %q: only letters, digits and .-_:/ are allowed", name)
		}
	}
	if _, ok := Builtin(name); ok {
		return fmt.Errorf("merge: policy name %q is the name of a built-in policy", name)
	}
	return nil
}

// Name returns the name given to NewFunc.
func (f *Func) Name() string { return f.name }

// Fold calls the callback once: the merge of a and b. A panic in the
// callback is returned as an error.
func (f *Func) Fold(key string, a, b Version) (v Version, err error) {
	if f == nil || f.fn == nil {
		return Version{}, errors.New("merge: Func without a callback (use NewFunc)")
	}
	defer func() {
		if p := recover(); p != nil {
			v, err = Version{}, fmt.Errorf("merge: on-conflict callback panicked: %v", p)
		}
	}()
	return f.fn(key, a, b)
}

// Resolve folds the callback over vs in order. Winner is the index of the
// input the result equals exactly, or -1.
func (f *Func) Resolve(key string, vs []Version) (Result, error) {
	acc := vs[0]
	for _, v := range vs[1:] {
		var err error
		if acc, err = f.Fold(key, acc, v); err != nil {
			return Result{}, err
		}
	}
	res := Result{Deleted: acc.Deleted, Winner: -1}
	if !acc.Deleted {
		res.Value = acc.Value
	}
	for i, v := range vs {
		if acc.Equal(v) {
			res.Winner = i
			break
		}
	}
	return res, nil
}

// ErrBadState: a counter or set value that does not decode to a valid
// state (for instance, bytes written by a plain Put).
var ErrBadState = errors.New("merge: malformed CRDT state")

func badState(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadState, fmt.Sprintf(format, a...))
}

// Counter is the counter policy: Version.Value holds a CounterState. A
// read joins the states of the live siblings; Result.Value is the decimal
// text of the counter's value (for instance "-3") and Winner -1. A key
// whose siblings are all tombstones, or whose joined state has no entries
// (see CounterState.Clear), reads as deleted. A value that is not a valid
// state makes the read fail (ErrBadState).
//
// How CRDT values (Counter and Set) work:
//
// A counter or set key stores a CRDT state inside Version.Value. Merging
// never looks at it: the record keeps concurrent states as siblings like
// any other values, and a read joins the states of the live (non-deleted)
// siblings. A local update starts from the state CounterOf or SetOf
// returns for the key's record (the join of its live siblings), applies
// the change and writes one new version, which supersedes every sibling
// its writer saw; siblings it did not see stay and are joined at read time.
//
// Both states are causal CRDTs (Almeida, Shoker, Baquero, "Delta state
// replicated data types", 2018): a set of entries, each tagged with the dot
// of the write that made it, plus a causal context — every dot the state's
// writer had seen. The context is the writer's record clock (which covers
// exactly the writes of the key it has seen, and G), joined with the
// contexts of the states it joined. The join keeps an entry when both
// states hold it, or when one holds it and the other's context does not
// cover its dot (the other has not seen it; had it seen it and dropped it,
// the entry was removed). For every single dot this is the maximum in the
// chain unseen < present < removed, so the join is commutative,
// associative and idempotent for any states whose entries their contexts
// cover, and an update (new entries under a fresh dot, dropped entries
// still in the context) is an inflation: it dominates every state it was
// derived from.
//
// Tagging entries with the record dot of the write that made them (not a
// per-key counter of the CRDT's own) makes entry dots unique forever,
// across deletes: a replica that restarts a key from zero after a delete
// can never reissue an entry dot that a concurrent sibling still carries,
// which would lose the new entry (a PN-counter keyed by replica alone
// loses increments exactly that way).
//
// A CRDT key with no entries — a counter no replica has changed, a set with
// no members — reads as deleted (as Redis drops an empty set), so an
// update that empties it deletes it, and Clear is an observed-remove
// delete.
//
// Deletes. A tombstone (Replica.Delete) carries no state, and a read joins only the
// live siblings, so:
//
//   - A replica that has seen the delete, and no update concurrent with
//     it, starts from the empty state (a counter from zero). Its context is
//     its record clock, which covers everything the delete saw, so when its
//     update later meets an update made concurrently with the delete, the
//     entries the delete saw are dropped from the join.
//   - An update concurrent with a delete survives it whole: a replica that
//     holds both reads the update's state, including what its writer had
//     seen before the delete, and an update made after seeing both starts
//     from that state. This can bring back a member that was removed just
//     before the delete, since the tombstone replaced the state that
//     recorded the removal.
//
// Writing the cleared state (CounterOf/SetOf, then Clear) instead of a
// tombstone deletes with observed-remove semantics, exactly: the delete
// wins over every change it saw, a concurrent change wins over the delete,
// nothing else comes back. (A counter entry is its replica's running
// total, so the total of a replica that changed the counter concurrently
// with the clear survives whole.)
type Counter struct{}

// Name returns "counter".
func (Counter) Name() string { return NameCounter }

// Resolve joins the live siblings' states.
func (Counter) Resolve(_ string, vs []Version) (Result, error) {
	s, err := joinCounters(vs)
	if err != nil {
		return Result{}, err
	}
	if s.Empty() {
		return Result{Deleted: true, Winner: -1}, nil
	}
	return Result{Value: strconv.AppendInt(nil, s.Value(), 10), Winner: -1}, nil
}

func joinCounters(vs []Version) (CounterState, error) {
	var s CounterState
	for _, v := range vs {
		if v.Deleted {
			continue
		}
		o, err := DecodeCounter(v.Value)
		if err != nil {
			return CounterState{}, fmt.Errorf("version %s: %w", v.Dot, err)
		}
		s = s.Join(o)
	}
	return s, nil
}

// CounterOf returns the state a read of the record sees and a local update
// of the key starts from: the join of the states of r's live versions,
// with r's clock joined into its context (the writer has seen every dot
// the clock covers). For a key with no record, pass Record{Clock: G}, as a
// local write starts from G. The key reads as deleted when the state is
// Empty.
func CounterOf(r Record) (CounterState, error) {
	s, err := joinCounters(r.Versions)
	if err != nil {
		return CounterState{}, err
	}
	s.ctx = s.ctx.Join(r.Clock)
	return s, nil
}

// CounterState is the state of a counter: a PN-counter whose per-replica
// totals are causal entries. Each entry holds one replica's total
// increments P and decrements N, tagged with the dot of the write that
// last changed them; the context holds every dot the state has seen. A
// state written by a real history has at most one entry per replica.
//
// The zero CounterState is the empty counter (value 0). States are values:
// methods never modify their receiver.
type CounterState struct {
	ctx     clock.Vector
	entries map[clock.Dot]pn
}

type pn struct{ p, n uint64 }

// DecodeCounter parses the bytes Encode produces, and only those: anything
// else (including a valid state in a non-canonical form) is an error
// wrapping ErrBadState.
func DecodeCounter(b []byte) (CounterState, error) {
	r := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r)
	sd := stateDec{dec: dec, r: r}
	if err := sd.header(tagCounter); err != nil {
		return CounterState{}, err
	}
	ctx, err := sd.vector()
	if err != nil {
		return CounterState{}, err
	}
	n, err := sd.count(minCounterEntry)
	if err != nil {
		return CounterState{}, err
	}
	s := CounterState{ctx: ctx, entries: make(map[clock.Dot]pn, n)}
	for range n {
		if _, err := sd.arrayLen(4); err != nil {
			return CounterState{}, err
		}
		d, err := sd.dot(ctx)
		if err != nil {
			return CounterState{}, err
		}
		var e pn
		if e.p, err = dec.DecodeUint64(); err != nil {
			return CounterState{}, badState("increments: %v", err)
		}
		if e.n, err = dec.DecodeUint64(); err != nil {
			return CounterState{}, badState("decrements: %v", err)
		}
		if _, dup := s.entries[d]; dup {
			return CounterState{}, badState("duplicate entry %s", d)
		}
		s.entries[d] = e
	}
	if err := stateEnd(r, b, s.Encode()); err != nil {
		return CounterState{}, err
	}
	return s, nil
}

// Encode returns the canonical bytes of s (equal states, equal bytes):
//
//	[ "pn1", [ [replica bin16, counter]... sorted ],
//	  [ [replica bin16, counter, P, N]... sorted by dot ] ]
func (s CounterState) Encode() []byte {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	// Writes to memory cannot fail.
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeString(tagCounter)
	_ = EncodeVector(enc, s.ctx)
	_ = enc.EncodeArrayLen(len(s.entries))
	for _, d := range slices.SortedFunc(maps.Keys(s.entries), clock.Dot.Compare) {
		e := s.entries[d]
		_ = enc.EncodeArrayLen(4)
		_ = enc.EncodeBytes(d.Replica[:])
		_ = enc.EncodeUint(d.Counter)
		_ = enc.EncodeUint(e.p)
		_ = enc.EncodeUint(e.n)
	}
	return buf.Bytes()
}

// Value returns the counter's value: the sum of every entry's P - N, in
// two's-complement int64 arithmetic (it wraps around like int64 addition,
// whatever the order of the entries).
func (s CounterState) Value() int64 {
	var sum uint64
	for _, e := range s.entries {
		sum += e.p - e.n
	}
	return int64(sum)
}

// Context returns a copy of the state's causal context.
func (s CounterState) Context() clock.Vector { return s.ctx.Clone() }

// Empty reports whether s has no entries: no replica has changed the
// counter since it was created or cleared. An empty counter reads as
// deleted.
func (s CounterState) Empty() bool { return len(s.entries) == 0 }

// Clear returns s without entries (value 0, reads as deleted). The
// entries' dots stay in the context, so the clear wins over every change
// it saw; a replica's concurrent change survives with its running total.
func (s CounterState) Clear() CounterState {
	return CounterState{ctx: s.ctx.Clone(), entries: map[clock.Dot]pn{}}
}

// Join returns the join of s and o: commutative, associative, idempotent.
func (s CounterState) Join(o CounterState) CounterState {
	out := CounterState{ctx: s.ctx.Join(o.ctx), entries: make(map[clock.Dot]pn, max(len(s.entries), len(o.entries)))}
	for d, e := range s.entries {
		if f, ok := o.entries[d]; ok {
			// A dot names one write, so both hold the same totals; the
			// maximum keeps the join a join even for states that break
			// that rule.
			out.entries[d] = pn{max(e.p, f.p), max(e.n, f.n)}
		} else if !o.ctx.Covers(d) {
			out.entries[d] = e
		}
	}
	for d, f := range o.entries {
		if _, ok := s.entries[d]; !ok && !s.ctx.Covers(d) {
			out.entries[d] = f
		}
	}
	return out
}

// Add returns s with delta added by the write named by dot d: the entries
// of d.Replica are folded into one new entry tagged d (their totals plus
// delta), and d joins the context. d must be a fresh dot — the dot of the
// write that will store the result — or the change may be lost; Add panics
// on a zero dot.
func (s CounterState) Add(d clock.Dot, delta int64) CounterState {
	if d.Counter == 0 || d.Replica.IsZero() {
		panic("merge: CounterState.Add with a zero dot")
	}
	out := CounterState{ctx: s.ctx.Clone(), entries: make(map[clock.Dot]pn, len(s.entries)+1)}
	var mine pn
	for k, e := range s.entries {
		if k.Replica == d.Replica {
			mine.p += e.p
			mine.n += e.n
			continue
		}
		out.entries[k] = e
	}
	if delta >= 0 {
		mine.p += uint64(delta)
	} else {
		mine.n += uint64(-(delta + 1)) + 1 // -delta without overflowing at MinInt64
	}
	out.entries[d] = mine
	out.ctx.Add(d)
	return out
}

// Equal reports whether s and o are the same state.
func (s CounterState) Equal(o CounterState) bool { return bytes.Equal(s.Encode(), o.Encode()) }

// String describes the state deterministically, e.g.
// "pn{ctx {0a1b2c3d:4} 0a1b2c3d:4=+5-2}".
func (s CounterState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pn{ctx %s", s.ctx)
	for _, d := range slices.SortedFunc(maps.Keys(s.entries), clock.Dot.Compare) {
		e := s.entries[d]
		fmt.Fprintf(&b, " %s=+%d-%d", d, e.p, e.n)
	}
	b.WriteByte('}')
	return b.String()
}

// Set is the set policy: Version.Value holds a SetState, an add-wins
// observed-remove set. A read joins the states of the live siblings;
// Result.Value is the members in byte order joined by newlines (ambiguous
// for members holding a newline: SetState.Members and replica's
// SetMembers give the exact list) and Winner -1. A key whose siblings are
// all tombstones, or whose joined state has no members, reads as deleted.
// A value that is not a valid state makes the read fail (ErrBadState).
// Updates, joins and deletes work as described at Counter.
type Set struct{}

// Name returns "set".
func (Set) Name() string { return NameSet }

// Resolve joins the live siblings' states.
func (Set) Resolve(_ string, vs []Version) (Result, error) {
	s, err := joinSets(vs)
	if err != nil {
		return Result{}, err
	}
	if s.Len() == 0 {
		return Result{Deleted: true, Winner: -1}, nil
	}
	return Result{Value: []byte(strings.Join(s.Members(), "\n")), Winner: -1}, nil
}

func joinSets(vs []Version) (SetState, error) {
	var s SetState
	for _, v := range vs {
		if v.Deleted {
			continue
		}
		o, err := DecodeSet(v.Value)
		if err != nil {
			return SetState{}, fmt.Errorf("version %s: %w", v.Dot, err)
		}
		s = s.Join(o)
	}
	return s, nil
}

// SetOf returns the state a read of the record sees and a local update of
// the key starts from, as CounterOf does for counters. The key reads as
// deleted when the state has no members.
func SetOf(r Record) (SetState, error) {
	s, err := joinSets(r.Versions)
	if err != nil {
		return SetState{}, err
	}
	s.ctx = s.ctx.Join(r.Clock)
	return s, nil
}

// SetState is the state of an add-wins observed-remove set without
// per-element tombstones (ORSWOT; Bieniusa et al., "An optimized
// conflict-free replicated set", 2012): every member carries the dots of
// the adds that put it there, and the context holds every dot the state
// has seen. Adding a member tags it with the write's fresh dot, replacing
// its older dots; removing it drops its dots, which stay in the context,
// so the removal wins over every add it saw while a concurrent add, whose
// dot it has not seen, survives.
//
// The zero SetState is the empty set. States are values: methods never
// modify their receiver.
type SetState struct {
	ctx     clock.Vector
	entries map[string][]clock.Dot // sorted, never empty
}

// DecodeSet parses the bytes Encode produces, and only those: anything else
// is an error wrapping ErrBadState.
func DecodeSet(b []byte) (SetState, error) {
	r := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r)
	sd := stateDec{dec: dec, r: r}
	if err := sd.header(tagSet); err != nil {
		return SetState{}, err
	}
	ctx, err := sd.vector()
	if err != nil {
		return SetState{}, err
	}
	n, err := sd.count(minSetMember)
	if err != nil {
		return SetState{}, err
	}
	s := SetState{ctx: ctx, entries: make(map[string][]clock.Dot, n)}
	for range n {
		if _, err := sd.arrayLen(2); err != nil {
			return SetState{}, err
		}
		elem, err := sd.member()
		if err != nil {
			return SetState{}, err
		}
		if _, dup := s.entries[elem]; dup {
			return SetState{}, badState("duplicate member %q", elem)
		}
		m, err := sd.count(minDot)
		if err != nil {
			return SetState{}, err
		}
		if m == 0 {
			return SetState{}, badState("member %q without dots", elem)
		}
		dots := make([]clock.Dot, 0, m)
		for range m {
			if _, err := sd.arrayLen(2); err != nil {
				return SetState{}, err
			}
			d, err := sd.dot(ctx)
			if err != nil {
				return SetState{}, err
			}
			if len(dots) > 0 && dots[len(dots)-1].Compare(d) >= 0 {
				return SetState{}, badState("dots of member %q out of order or repeated", elem)
			}
			dots = append(dots, d)
		}
		s.entries[elem] = dots
	}
	if err := stateEnd(r, b, s.Encode()); err != nil {
		return SetState{}, err
	}
	return s, nil
}

// Encode returns the canonical bytes of s (equal states, equal bytes):
//
//	[ "orswot1", [ [replica bin16, counter]... sorted ],
//	  [ [member str, [ [replica bin16, counter]... sorted ]]... sorted by member ] ]
func (s SetState) Encode() []byte {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeString(tagSet)
	_ = EncodeVector(enc, s.ctx)
	_ = enc.EncodeArrayLen(len(s.entries))
	for _, elem := range slices.Sorted(maps.Keys(s.entries)) {
		dots := s.entries[elem]
		_ = enc.EncodeArrayLen(2)
		_ = enc.EncodeString(elem)
		_ = enc.EncodeArrayLen(len(dots))
		for _, d := range dots {
			_ = enc.EncodeArrayLen(2)
			_ = enc.EncodeBytes(d.Replica[:])
			_ = enc.EncodeUint(d.Counter)
		}
	}
	return buf.Bytes()
}

// Members returns the members in byte order (an empty, non-nil slice for
// the empty set).
func (s SetState) Members() []string {
	out := slices.Collect(maps.Keys(s.entries))
	if out == nil {
		out = []string{}
	}
	sort.Strings(out)
	return out
}

// Contains reports whether elem is a member.
func (s SetState) Contains(elem string) bool { _, ok := s.entries[elem]; return ok }

// Len returns the number of members.
func (s SetState) Len() int { return len(s.entries) }

// Context returns a copy of the state's causal context.
func (s SetState) Context() clock.Vector { return s.ctx.Clone() }

// Join returns the join of s and o: commutative, associative, idempotent.
func (s SetState) Join(o SetState) SetState {
	out := SetState{ctx: s.ctx.Join(o.ctx), entries: make(map[string][]clock.Dot, max(len(s.entries), len(o.entries)))}
	for elem, a := range s.entries {
		b := o.entries[elem]
		var dots []clock.Dot
		for _, d := range a {
			if slices.Contains(b, d) || !o.ctx.Covers(d) {
				dots = append(dots, d)
			}
		}
		for _, d := range b {
			if !slices.Contains(a, d) && !s.ctx.Covers(d) {
				dots = append(dots, d)
			}
		}
		if len(dots) > 0 {
			slices.SortFunc(dots, clock.Dot.Compare)
			out.entries[elem] = dots
		}
	}
	for elem, b := range o.entries {
		if _, done := s.entries[elem]; done {
			continue
		}
		var dots []clock.Dot
		for _, d := range b {
			if !s.ctx.Covers(d) {
				dots = append(dots, d)
			}
		}
		if len(dots) > 0 {
			out.entries[elem] = dots
		}
	}
	return out
}

// Add returns s with elems added by the write named by dot d: each one's
// dots are replaced by d, and d joins the context. d must be a fresh dot —
// the dot of the write that will store the result — or the add may be
// lost; Add panics on a zero dot.
func (s SetState) Add(d clock.Dot, elems ...string) SetState {
	if d.Counter == 0 || d.Replica.IsZero() {
		panic("merge: SetState.Add with a zero dot")
	}
	out := s.clone()
	for _, elem := range elems {
		out.entries[elem] = []clock.Dot{d}
	}
	out.ctx.Add(d)
	return out
}

// Remove returns s without elems. Their dots stay in the context, so the
// removal wins over the adds it has seen, but not over concurrent ones.
func (s SetState) Remove(elems ...string) SetState {
	out := s.clone()
	for _, elem := range elems {
		delete(out.entries, elem)
	}
	return out
}

// Clear returns s without members (it reads as deleted), with
// observed-remove semantics: it wins over every add it saw, and a
// concurrent add survives.
func (s SetState) Clear() SetState {
	return SetState{ctx: s.ctx.Clone(), entries: map[string][]clock.Dot{}}
}

func (s SetState) clone() SetState {
	out := SetState{ctx: s.ctx.Clone(), entries: make(map[string][]clock.Dot, len(s.entries)+1)}
	maps.Copy(out.entries, s.entries) // dot slices are never modified in place
	return out
}

// Equal reports whether s and o are the same state.
func (s SetState) Equal(o SetState) bool { return bytes.Equal(s.Encode(), o.Encode()) }

// String describes the state deterministically, e.g.
// `orswot{ctx {0a1b2c3d:4} "x"[0a1b2c3d:4]}`.
func (s SetState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "orswot{ctx %s", s.ctx)
	for _, elem := range slices.Sorted(maps.Keys(s.entries)) {
		fmt.Fprintf(&b, " %q%v", elem, s.entries[elem])
	}
	b.WriteByte('}')
	return b.String()
}

// The shared strict decoding of CRDT states.

const (
	tagCounter = "pn1"
	tagSet     = "orswot1"
)

// stateDec reads a CRDT state from memory. Every length header is checked
// against the bytes left (r.Len(): dec reads r directly, bytes.Reader being
// a byte scanner) before anything is allocated for it, so a few bytes
// claiming a million entries or a 4 GiB member fail at once instead of
// allocating what they claim.
type stateDec struct {
	dec *msgpack.Decoder
	r   *bytes.Reader
}

// The fewest bytes each repeated element of a state takes in its canonical
// form: a bin16 replica id is 18 bytes, an integer at least 1, an array
// header 1.
const (
	minDot          = 1 + 18 + 1         // [replica, counter] (a context entry too)
	minCounterEntry = 1 + 18 + 1 + 1 + 1 // [replica, counter, P, N]
	minSetMember    = 1 + 1 + 1 + minDot // [member str, [dot, ...]]
)

// arrayLen reads an array header of exactly want elements.
func (sd stateDec) arrayLen(want int) (int, error) {
	n, err := sd.dec.DecodeArrayLen()
	if err != nil {
		return 0, badState("%v", err)
	}
	if n != want {
		return 0, badState("array length %d, want %d", n, want)
	}
	return n, nil
}

// count reads the header of an array whose elements take at least size
// bytes each, and fails unless that many elements fit in the bytes left.
func (sd stateDec) count(size int) (int, error) {
	n, err := sd.dec.DecodeArrayLen()
	if err != nil {
		return 0, badState("%v", err)
	}
	if n < 0 || n > maxEntries || n > sd.r.Len()/size {
		return 0, badState("array length %d with %d bytes left", n, sd.r.Len())
	}
	return n, nil
}

func (sd stateDec) header(tag string) error {
	if _, err := sd.arrayLen(3); err != nil {
		return err
	}
	n, err := sd.dec.DecodeBytesLen()
	if err != nil {
		return badState("tag: %v", err)
	}
	if n != len(tag) {
		return badState("tag of %d bytes, want %q", n, tag)
	}
	var got [16]byte
	if err := sd.dec.ReadFull(got[:n]); err != nil {
		return badState("tag: %v", err)
	}
	if string(got[:n]) != tag {
		return badState("tag %q, want %q", got[:n], tag)
	}
	return nil
}

// member reads a set member: a string no longer than the bytes left.
func (sd stateDec) member() (string, error) {
	n, err := sd.dec.DecodeBytesLen()
	if err != nil {
		return "", badState("member: %v", err)
	}
	if n < 0 || n > sd.r.Len() {
		return "", badState("member of %d bytes with %d bytes left", n, sd.r.Len())
	}
	b := make([]byte, n)
	if err := sd.dec.ReadFull(b); err != nil {
		return "", badState("member: %v", err)
	}
	return string(b), nil
}

// replica reads a replica id; its length is checked before reading
// (DecodeBytes would allocate whatever length the header claims).
func (sd stateDec) replica() (clock.ReplicaID, error) {
	var id clock.ReplicaID
	n, err := sd.dec.DecodeBytesLen()
	if err != nil {
		return id, badState("replica: %v", err)
	}
	if n != len(id) {
		return id, badState("replica id of %d bytes", n)
	}
	if err := sd.dec.ReadFull(id[:]); err != nil {
		return id, badState("replica: %v", err)
	}
	if id.IsZero() {
		return id, badState("zero replica id")
	}
	return id, nil
}

func (sd stateDec) vector() (clock.Vector, error) {
	n, err := sd.count(minDot)
	if err != nil {
		return nil, err
	}
	v := make(clock.Vector, n)
	for range n {
		if _, err := sd.arrayLen(2); err != nil {
			return nil, err
		}
		id, err := sd.replica()
		if err != nil {
			return nil, err
		}
		c, err := sd.dec.DecodeUint64()
		if err != nil {
			return nil, badState("counter: %v", err)
		}
		if _, dup := v[id]; dup || c == 0 {
			return nil, badState("context entry %s:%d repeated or zero", id.Short(), c)
		}
		v[id] = c
	}
	return v, nil
}

// dot reads [replica, counter] (the array header already read) and checks
// that ctx covers it.
func (sd stateDec) dot(ctx clock.Vector) (clock.Dot, error) {
	id, err := sd.replica()
	if err != nil {
		return clock.Dot{}, err
	}
	c, err := sd.dec.DecodeUint64()
	if err != nil {
		return clock.Dot{}, badState("counter: %v", err)
	}
	d := clock.Dot{Replica: id, Counter: c}
	if !ctx.Covers(d) {
		return d, badState("entry %s not covered by context %s", d, ctx)
	}
	return d, nil
}

// stateEnd checks that nothing follows the state and that b is the
// canonical form (sorted, minimal integers, no repeats).
func stateEnd(r *bytes.Reader, b, canonical []byte) error {
	if r.Len() != 0 {
		return badState("%d bytes after the state", r.Len())
	}
	if !bytes.Equal(b, canonical) {
		return badState("not in canonical form")
	}
	return nil
}
