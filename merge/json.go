package merge

// The json policy: JSON documents that merge field by field.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/vmihailenco/msgpack/v5"
)

// Names of the JSON document policies: json settles concurrent
// assignments of a field by the HLC rule, json-mv keeps them for the
// application (JSON.Siblings).
const (
	NameJSON   = "json"
	NameJSONMV = "json-mv"
)

// ErrBadPatch: a JSON document write that is not a JSON object (a patch,
// or a whole document put on a json key), or a patch whose operations are
// malformed (see JSON).
var ErrBadPatch = errors.New("merge: a json document write must be a JSON object")

// ErrFieldKind: a patch operation on a field of another kind, such as $inc
// on a field that is not a counter. It also matches ErrBadPatch.
var ErrFieldKind = errors.New("merge: the json field is of another kind")

// patchError is an error of a patch's content: its own message, matching
// ErrBadPatch (and ErrFieldKind when kind is set).
type patchError struct {
	msg  string
	kind bool
}

func (e *patchError) Error() string { return "merge: " + e.msg }

func (e *patchError) Is(target error) bool {
	return target == ErrBadPatch || e.kind && target == ErrFieldKind
}

func badPatch(format string, a ...any) error {
	return &patchError{msg: fmt.Sprintf(format, a...)}
}

// JSON is the json policy: Version.Value holds a DocState, a JSON document
// that merges field by field. A read joins the states of the live siblings
// (as Counter and Set do) and returns the merged document as compact JSON
// with its object keys in byte order; Winner is -1. A key whose siblings
// are all tombstones, or whose document has no fields, reads as deleted. A
// value that is not a valid state makes the read fail (ErrBadState).
//
// Writes are JSON Merge Patches (RFC 7396, DocState.Patch): only the
// fields a patch names are stamped, so two replicas that change different
// fields of one document concurrently both keep their change. A whole
// document written at once (DocState.Replace, Replica.Put) is the patch
// from the document read here to the new one: the fields whose value
// changes, and null for the fields it drops.
//
// The merge, field by field:
//
//   - A field holding a value that is not an object (a string, a number,
//     a boolean, an array — arrays are values, as in RFC 7396) is a
//     register. Concurrent assignments are settled by the HLC rule, as
//     lww settles concurrent writes: the assignment with the larger HLC
//     wins, then the larger dot.
//   - A field holding an object is a nested map, merged field by field in
//     turn. An object assigned concurrently with a value that is not one
//     is settled by the HLC rule too, between the two assignments.
//   - Removing a field (null in a patch) removes what the remover had
//     seen of it. An edit made concurrently with the removal, anywhere
//     inside the field, wins (add-wins, as in the set policy): the field
//     comes back holding the concurrent edit, without the parts that the
//     removal saw and the edit did not touch.
//   - Deleting the key (Replica.Delete) clears the document the same way:
//     it removes what this replica had seen, and concurrent patches
//     survive.
//
// With Siblings (the json-mv policy), concurrent assignments of a field
// are not settled: while a field that the document shows holds two or more
// different values assigned concurrently, the key reads as a conflict
// (Result.Conflict, as under mv), and a patch of the field, which replaces
// every assignment its writer saw, settles it. The merge is the same.
//
// Counters and sets. A field may also be a counter (a PN-counter, as the
// counter policy's) or an add-wins set of strings (as the set policy's).
// RFC 7396 has no way to write them, so a patch may hold operations: an
// object whose only member has a name starting with "$" is an operation
// on the field that holds it, never a value:
//
//	{"visits": {"$inc": 3}}            add 3 (an integer, negative to subtract)
//	{"visits": {"$counter": 10}}       make the field a counter reading 10
//	{"tags": {"$add": ["a", "b"]}}     add members (an array of strings)
//	{"tags": {"$remove": ["b"]}}       remove members
//	{"tags": {"$set": ["a"]}}          make the field a set of exactly these
//
// $inc and $add create the counter or set when the field is absent;
// $remove of an absent field makes it an empty set. $inc on a field that
// is not a counter, and $add or $remove on one that is not a set, fail
// (ErrFieldKind): $counter and $set, which assign the field whatever it
// held, convert it. Member names starting with "$" are reserved in a
// patch, at every level: an object holding one together with other
// members, or an unknown operation, is refused (ErrBadPatch), and so is an
// operation at the top level. A literal field name starting with "$" is
// written doubled: {"$$ref": 1} writes the field "$ref". A whole-document
// write (Replace, Replica.Put) holds data, not operations: its names are
// taken as they are, so a document read back can be put back.
//
// A read renders a counter as a JSON number (its value) and a set as a JSON
// array of its members in byte order ([] when empty).
//
// The merge of counters and sets is the counter and set policies' (see
// Counter): increments of one field on different replicas all count; a
// member added concurrently with its removal stays. An assignment of the
// field ($counter, $set, a plain value, an object, or null) removes what
// its writer had seen of it, and concurrent increments and adds survive
// it (as Counter documents for Clear, the running total of a replica that
// incremented concurrently survives whole, including what the assignment
// saw of that replica). A field that is a counter on one replica and
// assigned something else (a value, an object, a set) concurrently on
// another is settled by the HLC rule like any two concurrent assignments:
// the kind of the latest write of the field wins (every increment and
// every add or remove is a write of the field, stamped with its HLC); what
// the loser holds stays in the state, unseen, until a write of the field
// replaces it. Under json-mv such a field reads as a conflict.
//
// A whole-document write keeps counter and set fields whose value it
// leaves unchanged. Given a different integer for a counter field, it sets
// the counter to it (as $counter); given a different array of strings for a
// set field, it adds the members that are new and removes the missing ones
// (an observed-remove, as $add and $remove do: concurrent adds survive).
// Anything else replaces the field with the value, as for any field.
type JSON struct {
	// Siblings keeps concurrent assignments of a field (json-mv).
	Siblings bool
}

// Name returns "json", or "json-mv" with Siblings.
func (p JSON) Name() string {
	if p.Siblings {
		return NameJSONMV
	}
	return NameJSON
}

// Resolve joins the live siblings' states and reads the document.
func (p JSON) Resolve(_ string, vs []Version) (Result, error) {
	s, err := joinDocs(vs)
	if err != nil {
		return Result{}, err
	}
	if p.Siblings && s.Conflicted() {
		return Result{Conflict: true, Winner: -1}, nil
	}
	doc, ok := s.Document()
	if !ok {
		return Result{Deleted: true, Winner: -1}, nil
	}
	return Result{Value: doc, Winner: -1}, nil
}

func joinDocs(vs []Version) (DocState, error) {
	var s DocState
	first := true
	for _, v := range vs {
		if v.Deleted {
			continue
		}
		o, err := DecodeDoc(v.Value)
		if err != nil {
			return DocState{}, fmt.Errorf("version %s: %w", v.Dot, err)
		}
		if first {
			s, first = o, false // the join with the empty state is the state
			continue
		}
		s = s.Join(o)
	}
	return s, nil
}

// DocOf returns the state a read of the record sees and a local write of
// the key starts from, as CounterOf does for counters.
func DocOf(r Record) (DocState, error) {
	s, err := joinDocs(r.Versions)
	if err != nil {
		return DocState{}, err
	}
	s.ctx = s.ctx.Join(r.Clock)
	return s, nil
}

// DocState is the state of a JSON document: a causal map CRDT stored flat.
// Every field path (a sequence of object keys from the root) holds its live
// entries, each tagged with the dot of the write that made it and that
// write's HLC: an assignment (a JSON value that is not an object, or the
// mark that the path holds an object), a counter entry (one replica's
// running totals of increments and decrements, as in CounterState), a set
// mark (the path holds a set) or a set member (as in SetState, one entry
// per member and dot). The context holds every dot the state has seen. A
// write replaces the entries it assigns or removes and those of everything
// below them; they stay in the context, so the replacement wins over every
// entry it saw, while a concurrent one, whose dot it has not seen, survives
// (see Counter for the join and the causal contexts).
//
// The zero DocState is the empty document. States are values: methods
// never modify their receiver.
type DocState struct {
	ctx   clock.Vector
	paths map[string][]docEntry // encoded path -> entries sorted by id, never empty
}

// entryKind is what a docEntry holds.
type entryKind uint8

const (
	kindValue   entryKind = iota // an assignment: value is compact JSON, or empty for the object mark
	kindCounter                  // a counter entry: p and n
	kindSet                      // the set mark
	kindMember                   // a set member: value is the member
)

// docEntry is one entry of a path. Its id is its dot, kind and (for a
// member) value: one write makes at most one entry of each id per path.
type docEntry struct {
	dot   clock.Dot
	time  clock.HLC
	kind  entryKind
	value []byte
	p, n  uint64
}

// compareID orders entries by id: dot, kind, then member.
func (e docEntry) compareID(o docEntry) int {
	if c := e.dot.Compare(o.dot); c != 0 {
		return c
	}
	if e.kind != o.kind {
		return cmpInt(int(e.kind), int(o.kind))
	}
	if e.kind == kindMember {
		return bytes.Compare(e.value, o.value)
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// less is the HLC rule between entries (time, then dot), made total.
func (e docEntry) less(o docEntry) bool {
	if e.time != o.time {
		return e.time < o.time
	}
	if c := e.compareID(o); c != 0 {
		return c < 0
	}
	return bytes.Compare(e.value, o.value) < 0
}

// combine joins two entries of one id: a dot names one write, so both
// hold the same entry; taking the larger of each part keeps the join a
// join even for states that break that rule.
func combine(e, f docEntry) docEntry {
	switch e.kind {
	case kindValue:
		if e.less(f) {
			return f
		}
		return e
	case kindCounter:
		e.p, e.n = max(e.p, f.p), max(e.n, f.n)
	}
	e.time = max(e.time, f.time)
	return e
}

// joinEntries joins the entries of one path (both sorted by id).
func joinEntries(a, b []docEntry, actx, bctx clock.Vector) []docEntry {
	var out []docEntry
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = a[i].compareID(b[j])
		}
		switch {
		case c == 0:
			out = append(out, combine(a[i], b[j]))
			i, j = i+1, j+1
		case c < 0:
			if !bctx.Covers(a[i].dot) {
				out = append(out, a[i])
			}
			i++
		default:
			if !actx.Covers(b[j].dot) {
				out = append(out, b[j])
			}
			j++
		}
	}
	return out
}

func sortEntries(es []docEntry) {
	slices.SortFunc(es, func(x, y docEntry) int { return x.compareID(y) })
}

// Paths are encoded as their keys, each preceded by its length as a
// uvarint: no encoded path is a byte prefix of another unless it is an
// ancestor, so a subtree is a range of keys.
func pathChild(p, key string) string {
	return p + string(binary.AppendUvarint(nil, uint64(len(key)))) + key
}

// splitPath decodes an encoded path; ok is false when it is malformed.
func splitPath(p string) (keys []string, ok bool) {
	for len(p) > 0 {
		n, w := binary.Uvarint([]byte(p))
		if w <= 0 || n > uint64(len(p)-w) {
			return nil, false
		}
		keys = append(keys, p[w:w+int(n)])
		p = p[w+int(n):]
	}
	return keys, true
}

// fieldName is the path as a field name for messages: its keys joined by "/".
func fieldName(p string) string {
	keys, _ := splitPath(p)
	return strings.Join(keys, "/")
}

// Empty reports whether the document has no fields (it reads as deleted).
func (s DocState) Empty() bool {
	_, ok := s.Document()
	return !ok
}

// Context returns a copy of the state's causal context.
func (s DocState) Context() clock.Vector { return s.ctx.Clone() }

// Clear returns the empty document with s's context: it removes every
// field s holds, and loses to concurrent writes.
func (s DocState) Clear() DocState {
	return DocState{ctx: s.ctx.Clone(), paths: map[string][]docEntry{}}
}

func (s DocState) clone() DocState {
	out := DocState{ctx: s.ctx.Clone(), paths: make(map[string][]docEntry, len(s.paths)+1)}
	maps.Copy(out.paths, s.paths) // entry slices are never modified in place
	return out
}

// Join returns the join of s and o: commutative, associative, idempotent.
func (s DocState) Join(o DocState) DocState {
	out := DocState{ctx: s.ctx.Join(o.ctx), paths: make(map[string][]docEntry, max(len(s.paths), len(o.paths)))}
	for p, a := range s.paths {
		if es := joinEntries(a, o.paths[p], s.ctx, o.ctx); len(es) > 0 {
			out.paths[p] = es
		}
	}
	for p, b := range o.paths {
		if _, done := s.paths[p]; done {
			continue
		}
		if es := joinEntries(nil, b, s.ctx, o.ctx); len(es) > 0 {
			out.paths[p] = es
		}
	}
	return out
}

// removeTree drops the entries of p and of every path below it.
func (s *DocState) removeTree(p string) {
	for q := range s.paths {
		if strings.HasPrefix(q, p) {
			delete(s.paths, q)
		}
	}
}

// removeBelow drops the entries of every path below p.
func (s *DocState) removeBelow(p string) {
	for q := range s.paths {
		if len(q) > len(p) && strings.HasPrefix(q, p) {
			delete(s.paths, q)
		}
	}
}

// fieldKind is what a path reads as.
type fieldKind int

const (
	fieldAbsent fieldKind = iota
	fieldValue            // a value that is not an object
	fieldObject
	fieldCounter
	fieldSet
)

func (k fieldKind) String() string {
	return [...]string{"absent", "a value", "an object", "a counter", "a set"}[k]
}

// kindOf is what a path with entries es reads as: the kind of the entry
// the HLC rule picks.
func kindOf(es []docEntry) fieldKind {
	w := winner(es)
	switch w.kind {
	case kindCounter:
		return fieldCounter
	case kindSet, kindMember:
		return fieldSet
	}
	if len(w.value) == 0 {
		return fieldObject
	}
	return fieldValue
}

// kind reports what path p reads as; an object when it has no entries but
// something below it does.
func (s DocState) kind(p string) fieldKind {
	if es := s.paths[p]; len(es) > 0 {
		return kindOf(es)
	}
	for q := range s.paths {
		if len(q) > len(p) && strings.HasPrefix(q, p) {
			return fieldObject
		}
	}
	return fieldAbsent
}

func winner(es []docEntry) docEntry {
	w := es[0]
	for _, e := range es[1:] {
		if w.less(e) {
			w = e
		}
	}
	return w
}

// Patch returns s with the JSON Merge Patch (RFC 7396) patch applied by
// the write named by dot d at HLC t: every field the patch names is
// assigned (a nested object is merged into the field when the field holds
// an object, and replaces it otherwise), a null removes the field, and an
// operation ($inc, $counter, $add, $remove, $set: see JSON) changes a
// counter or set field. Only the named fields get d. patch must be a JSON
// object with well-formed operations (ErrBadPatch otherwise); an operation
// on a field of another kind fails with ErrFieldKind. d must be a fresh
// dot, as for CounterState.Add; Patch panics on a zero dot.
func (s DocState) Patch(d clock.Dot, t clock.HLC, patch []byte) (DocState, error) {
	if d.Counter == 0 || d.Replica.IsZero() {
		panic("merge: DocState.Patch with a zero dot")
	}
	obj, err := parseObject(patch)
	if err != nil {
		return DocState{}, err
	}
	out := s.clone()
	if err := out.apply("", obj, docEntry{dot: d, time: t}, false); err != nil {
		return DocState{}, err
	}
	out.ctx.Add(d)
	return out, nil
}

// parseObject parses a JSON object into its fields (the last of repeated
// keys wins, as in encoding/json).
func parseObject(b []byte) (map[string]json.RawMessage, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w, not %s", ErrBadPatch, describeJSON(b))
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrBadPatch)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPatch, err)
	}
	return obj, nil
}

func describeJSON(b []byte) string {
	switch {
	case len(b) == 0:
		return "empty input"
	case !utf8.Valid(b):
		return "invalid UTF-8"
	case !json.Valid(b):
		return "not valid JSON"
	case b[0] == '[':
		return "an array"
	case b[0] == '"':
		return "a string"
	case b[0] == 'n':
		return "null"
	case b[0] == 't' || b[0] == 'f':
		return "a boolean"
	case b[0] == '{':
		return "an object"
	}
	return "a number"
}

// The patch operations.
const (
	opInc     = "$inc"
	opCounter = "$counter"
	opAdd     = "$add"
	opRemove  = "$remove"
	opSet     = "$set"
)

var patchOps = []string{opInc, opCounter, opAdd, opRemove, opSet}

// reserved reports whether a member name of a patch is reserved (starts
// with "$" and is not an escaped "$$").
func reserved(key string) bool {
	return strings.HasPrefix(key, "$") && !strings.HasPrefix(key, "$$")
}

// operation returns the operation an object of a patch holds, if it holds
// one: its only member, with a reserved name.
func operation(q string, obj map[string]json.RawMessage) (op string, arg json.RawMessage, ok bool, err error) {
	var names []string
	for k := range obj {
		if reserved(k) {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return "", nil, false, nil
	}
	slices.Sort(names)
	if len(obj) > 1 {
		return "", nil, false, badPatch("field %q: %s must be the only member of the field's object (it has %d; write a field named %s as %q)",
			fieldName(q), names[0], len(obj), names[0], "$"+names[0])
	}
	op = names[0]
	if !slices.Contains(patchOps, op) {
		return "", nil, false, badPatch("field %q: unknown operation %q (known: %s; write a field named %s as %q)",
			fieldName(q), op, strings.Join(patchOps, ", "), op, "$"+op)
	}
	return op, bytes.TrimSpace(obj[op]), true, nil
}

// apply assigns the fields of obj below path p with the dot and time of w.
// Unless literal, member names starting with "$" are operations or
// escapes (see JSON).
func (s *DocState) apply(p string, obj map[string]json.RawMessage, w docEntry, literal bool) error {
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		raw := bytes.TrimSpace(obj[key])
		name := key
		if !literal && strings.HasPrefix(key, "$") {
			if !reserved(key) {
				name = key[1:]
			} else if p == "" {
				return badPatch("%s at the top of the patch: an operation is the value of a field, as in {\"visits\":{\"$inc\":1}} (write a field named %s as %q)",
					key, key, "$"+key)
			} else {
				// Unreachable: the object holding it was taken as an operation.
				return badPatch("field %q: %s is reserved", fieldName(p), key)
			}
		}
		q := pathChild(p, name)
		switch {
		case string(raw) == "null":
			s.removeTree(q)
		case len(raw) > 0 && raw[0] == '{':
			sub, err := parseObject(raw)
			if err != nil {
				return err
			}
			if !literal {
				op, arg, ok, err := operation(q, sub)
				if err != nil {
					return err
				}
				if ok {
					if err := s.applyOp(q, op, arg, w); err != nil {
						return err
					}
					continue
				}
			}
			if s.kind(q) != fieldObject {
				s.removeTree(q)
			}
			s.paths[q] = []docEntry{w} // the object mark
			if err := s.apply(q, sub, w, literal); err != nil {
				return err
			}
		default:
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return fmt.Errorf("%w: field %q: %v", ErrBadPatch, fieldName(q), err)
			}
			s.removeTree(q)
			e := w
			e.value = buf.Bytes()
			s.paths[q] = []docEntry{e}
		}
	}
	return nil
}

// applyOp applies the operation op with argument arg to the field at q.
func (s *DocState) applyOp(q, op string, arg json.RawMessage, w docEntry) error {
	switch op {
	case opInc, opCounter:
		n, err := parseInt(arg)
		if err != nil {
			return badPatch("field %q: %s takes an integer from -2^63 to 2^63-1, not %s", fieldName(q), op, describeArg(arg))
		}
		if op == opCounter {
			s.setCounter(q, w, n)
			return nil
		}
		if k := s.kind(q); k != fieldAbsent && k != fieldCounter {
			return &patchError{kind: true, msg: fmt.Sprintf("field %q is %s, not a counter: $inc needs a counter or an absent field (make it one with {\"$counter\": N})",
				fieldName(q), k)}
		}
		s.addCounter(q, w, n)
	default:
		members, ok := parseStrings(arg)
		if !ok {
			return badPatch("field %q: %s takes an array of strings, not %s", fieldName(q), op, describeArg(arg))
		}
		if op == opSet {
			s.removeTree(q)
			s.writeSet(q, w, members, nil)
			return nil
		}
		if k := s.kind(q); k != fieldAbsent && k != fieldSet {
			return &patchError{kind: true, msg: fmt.Sprintf("field %q is %s, not a set: %s needs a set or an absent field (make it one with {\"$set\": [...]})",
				fieldName(q), k, op)}
		}
		if op == opAdd {
			s.writeSet(q, w, members, nil)
		} else {
			s.writeSet(q, w, nil, members)
		}
	}
	return nil
}

// describeArg names an operation's argument for a message: the argument
// itself when short.
func describeArg(arg json.RawMessage) string {
	if len(arg) <= 40 {
		return string(arg)
	}
	return describeJSON(arg)
}

// parseInt parses a JSON integer (no fraction, no exponent) in int64.
func parseInt(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if s == "" || strings.ContainsAny(s, ".eE") || !json.Valid(raw) {
		return 0, errors.New("not an integer")
	}
	return strconv.ParseInt(s, 10, 64)
}

// totals is the counter entry of value v: v as increments or decrements.
func totals(v int64) (p, n uint64) {
	if v >= 0 {
		return uint64(v), 0
	}
	return 0, uint64(-(v + 1)) + 1 // -v without overflowing at MinInt64
}

// setCounter makes q a counter reading v: the write's own entry holds v,
// and every entry it saw at q and below is gone.
func (s *DocState) setCounter(q string, w docEntry, v int64) {
	s.removeTree(q)
	e := w
	e.kind = kindCounter
	e.p, e.n = totals(v)
	s.paths[q] = []docEntry{e}
}

// addCounter adds delta to the counter at q (absent: a new counter): the
// entries of w's replica are folded into one new entry tagged w's dot, as
// CounterState.Add does; other replicas' entries stay; entries of other
// kinds, which lost to the counter, are replaced.
func (s *DocState) addCounter(q string, w docEntry, delta int64) {
	s.removeBelow(q)
	mine := w
	mine.kind = kindCounter
	var out []docEntry
	for _, e := range s.paths[q] {
		switch {
		case e.kind != kindCounter:
		case e.dot.Replica == w.dot.Replica:
			mine.p += e.p
			mine.n += e.n
		default:
			out = append(out, e)
		}
	}
	dp, dn := totals(delta)
	mine.p += dp
	mine.n += dn
	out = append(out, mine)
	sortEntries(out)
	s.paths[q] = out
}

// writeSet writes the set at q (absent: a new set) with add added and
// remove removed: a new set mark tagged w's dot replaces the marks and the
// entries of other kinds there; each added member's entries are replaced
// by one tagged w's dot; a removed member's entries are dropped.
func (s *DocState) writeSet(q string, w docEntry, add, remove []string) {
	s.removeBelow(q)
	drop := map[string]bool{}
	for _, m := range add {
		drop[m] = true
	}
	for _, m := range remove {
		drop[m] = true
	}
	mark := w
	mark.kind = kindSet
	out := []docEntry{mark}
	for _, e := range s.paths[q] {
		if e.kind == kindMember && !drop[string(e.value)] {
			out = append(out, e)
		}
	}
	seen := map[string]bool{}
	for _, m := range add {
		if seen[m] {
			continue
		}
		seen[m] = true
		e := w
		e.kind = kindMember
		e.value = []byte(m)
		out = append(out, e)
	}
	sortEntries(out)
	s.paths[q] = out
}

// Replace returns s with its document replaced by doc (a JSON object,
// ErrBadPatch otherwise) by the write named by dot d at HLC t. Only what
// changes is written, with d: the fields doc drops are removed, the fields
// whose value changes are assigned, and an object field that stays an
// object is replaced field by field. A field holding concurrent
// assignments (or entries of different kinds) is written too, which
// settles them. doc is data: member names starting with "$" are fields
// like any other. A counter field given a different integer is set to it,
// a set field given a different array of strings gets the members added
// and removed that make it so (see JSON). A null field in doc is not
// stored (it removes the field).
func (s DocState) Replace(d clock.Dot, t clock.HLC, doc []byte) (DocState, error) {
	if d.Counter == 0 || d.Replica.IsZero() {
		panic("merge: DocState.Replace with a zero dot")
	}
	obj, err := parseObject(doc)
	if err != nil {
		return DocState{}, err
	}
	out := s.clone()
	if _, err := out.replaceObject("", s.tree(), obj, docEntry{dot: d, time: t}, false); err != nil {
		return DocState{}, err
	}
	out.ctx.Add(d)
	return out, nil
}

// settled reports whether the entries of a path need no write to settle
// them: at most one assignment, or entries of one counter or one set.
func settled(es []docEntry) bool {
	units := 0
	counter, set := false, false
	for _, e := range es {
		switch e.kind {
		case kindValue:
			units++
		case kindCounter:
			counter = true
		default:
			set = true
		}
	}
	if counter {
		units++
	}
	if set {
		units++
	}
	return units <= 1
}

// ReplaceOps returns s with its document replaced by doc, a document in
// operation form (as Operations writes it), by the write named by dot d at
// HLC t. It is Replace with the field kinds given by doc rather than taken
// from s: {"$counter":N} makes the field a counter reading N,
// {"$set":[...]} a set of exactly these members, "$$name" is the field
// "$name", and any other value (an integer or an array of strings too) is
// a register, or an object. As for Replace, only what changes is written:
// the fields doc drops are removed, a counter given its value and a set
// given its members are left as they are (a set given other members gets
// the members added and removed that make it so, observed-remove), and a
// field holding concurrent assignments is written, which settles them.
// doc is a state, not a change: $inc, $add and $remove are refused, as are
// an unknown operation and a malformed one (ErrBadPatch), and nothing
// depends on what s holds, so a doc that ReplaceOps accepts on the empty
// document it accepts on any.
func (s DocState) ReplaceOps(d clock.Dot, t clock.HLC, doc []byte) (DocState, error) {
	if d.Counter == 0 || d.Replica.IsZero() {
		panic("merge: DocState.ReplaceOps with a zero dot")
	}
	obj, err := parseObject(doc)
	if err != nil {
		return DocState{}, err
	}
	out := s.clone()
	if _, err := out.replaceObject("", s.tree(), obj, docEntry{dot: d, time: t}, true); err != nil {
		return DocState{}, err
	}
	out.ctx.Add(d)
	return out, nil
}

// unescapeNames returns the fields of obj, an object of a document in
// operation form below path p, by field name: "$$name" is "$name"; any
// other name starting with "$" is refused (an operation is the only member
// of a field's object, which the caller takes as one before this).
func unescapeNames(p string, obj map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(obj))
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		name := key
		if strings.HasPrefix(key, "$") {
			if reserved(key) {
				if p == "" {
					return nil, badPatch("%s at the top of the document: an operation is the value of a field, as in {\"visits\":{\"$counter\":1}} (write a field named %s as %q)",
						key, key, "$"+key)
				}
				return nil, badPatch("field %q: %s is reserved (write a field named %s as %q)", fieldName(p), key, key, "$"+key)
			}
			name = key[1:]
		}
		out[name] = obj[key]
	}
	return out, nil
}

// restoreOp makes the field at q (read from s as c, nil when absent) hold
// what the operation op of a document in operation form says, and reports
// whether it wrote anything.
func (s *DocState) restoreOp(q string, c *docNode, op string, arg json.RawMessage, w docEntry) (bool, error) {
	k := c.kind()
	same := k != fieldAbsent && settled(c.entries)
	switch op {
	case opCounter:
		n, err := parseInt(arg)
		if err != nil {
			return false, badPatch("field %q: %s takes an integer from -2^63 to 2^63-1, not %s", fieldName(q), op, describeArg(arg))
		}
		if same && k == fieldCounter && counterValue(c.entries) == n {
			return false, nil
		}
		s.setCounter(q, w, n)
		return true, nil
	case opSet:
		want, ok := parseStrings(arg)
		if !ok {
			return false, badPatch("field %q: %s takes an array of strings, not %s", fieldName(q), op, describeArg(arg))
		}
		if k != fieldSet {
			s.removeTree(q)
			s.writeSet(q, w, want, nil)
			return true, nil
		}
		have := members(c.entries)
		var add, remove []string
		for _, m := range want {
			if !slices.Contains(have, m) {
				add = append(add, m)
			}
		}
		for _, m := range have {
			if !slices.Contains(want, m) {
				remove = append(remove, m)
			}
		}
		if same && len(add) == 0 && len(remove) == 0 {
			return false, nil
		}
		s.writeSet(q, w, add, remove)
		return true, nil
	}
	return false, badPatch("field %q: %s is a change, not a state: a whole document holds a counter as {%q: N} and a set as {%q: [...]} (write a field named %s as %q)",
		fieldName(q), op, opCounter, opSet, op, "$"+op)
}

// replaceObject makes the object at p (read from s as n, nil when absent)
// hold obj, and reports whether it wrote anything. With ops, obj is in
// operation form (see ReplaceOps); otherwise it is data (see Replace).
func (s *DocState) replaceObject(p string, n *docNode, obj map[string]json.RawMessage, w docEntry, ops bool) (bool, error) {
	if ops {
		var err error
		if obj, err = unescapeNames(p, obj); err != nil {
			return false, err
		}
	}
	changed := false
	if n != nil {
		for k, c := range n.children {
			if v, ok := obj[k]; (!ok || string(bytes.TrimSpace(v)) == "null") && c.present() {
				s.removeTree(pathChild(p, k))
				changed = true
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		raw := bytes.TrimSpace(obj[key])
		if string(raw) == "null" {
			continue
		}
		q := pathChild(p, key)
		var c *docNode
		if n != nil {
			c = n.children[key]
		}
		k := c.kind()
		if len(raw) > 0 && raw[0] == '{' {
			sub, err := parseObject(raw)
			if err != nil {
				return false, err
			}
			if ops {
				op, arg, isOp, err := operation(q, sub)
				if err != nil {
					return false, err
				}
				if isOp {
					ch, err := s.restoreOp(q, c, op, arg, w)
					if err != nil {
						return false, err
					}
					changed = changed || ch
					continue
				}
			}
			if k == fieldObject {
				ch, err := s.replaceObject(q, c, sub, w, ops)
				if err != nil {
					return false, err
				}
				if ch || !settled(c.entries) {
					s.paths[q] = []docEntry{w}
					changed = true
				}
				continue
			}
			s.removeTree(q)
			s.paths[q] = []docEntry{w}
			if ops {
				_, err = s.replaceObject(q, nil, sub, w, true)
			} else {
				err = s.apply(q, sub, w, true)
			}
			if err != nil {
				return false, err
			}
			changed = true
			continue
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return false, fmt.Errorf("%w: field %q: %v", ErrBadPatch, fieldName(q), err)
		}
		v := buf.Bytes()
		same := k != fieldAbsent && settled(c.entries)
		switch {
		case !ops && k == fieldCounter && isInt(v):
			n, _ := parseInt(v)
			if same && n == counterValue(c.entries) {
				continue
			}
			s.setCounter(q, w, n)
		case !ops && k == fieldSet && isStrings(v):
			want, _ := parseStrings(v)
			have := members(c.entries)
			var add, remove []string
			for _, m := range want {
				if !slices.Contains(have, m) {
					add = append(add, m)
				}
			}
			for _, m := range have {
				if !slices.Contains(want, m) {
					remove = append(remove, m)
				}
			}
			if same && len(add) == 0 && len(remove) == 0 {
				continue
			}
			s.writeSet(q, w, add, remove)
		default:
			if same && k == fieldValue && bytes.Equal(winner(c.entries).value, v) {
				continue
			}
			s.removeTree(q)
			e := w
			e.value = v
			s.paths[q] = []docEntry{e}
		}
		changed = true
	}
	return changed, nil
}

func isStrings(v []byte) bool {
	_, ok := parseStrings(v)
	return ok
}

func isInt(v []byte) bool {
	_, err := parseInt(v)
	return err == nil
}

// parseStrings parses a JSON array of strings (no nulls).
func parseStrings(v []byte) ([]string, bool) {
	var raws []json.RawMessage
	if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &raws) != nil {
		return nil, false
	}
	out := make([]string, 0, len(raws))
	for _, r := range raws {
		var m string
		if len(r) == 0 || r[0] != '"' || json.Unmarshal(r, &m) != nil {
			return nil, false
		}
		out = append(out, m)
	}
	return out, true
}

// counterValue is the value of the counter entries among es.
func counterValue(es []docEntry) int64 {
	var sum uint64
	for _, e := range es {
		if e.kind == kindCounter {
			sum += e.p - e.n
		}
	}
	return int64(sum)
}

// members returns the set members among es, sorted and distinct.
func members(es []docEntry) []string {
	var out []string
	for _, e := range es {
		if e.kind == kindMember {
			out = append(out, string(e.value))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// docNode is a path of the document during a read.
type docNode struct {
	entries  []docEntry
	children map[string]*docNode
}

// kind is what the node reads as (absent for nil).
func (n *docNode) kind() fieldKind {
	switch {
	case n == nil:
		return fieldAbsent
	case len(n.entries) > 0:
		return kindOf(n.entries)
	case n.present():
		return fieldObject
	}
	return fieldAbsent
}

// present reports whether the node has entries, or some node below it has.
func (n *docNode) present() bool {
	if len(n.entries) > 0 {
		return true
	}
	for _, c := range n.children {
		if c.present() {
			return true
		}
	}
	return false
}

// Document returns the document s reads as, as compact JSON with object
// keys in byte order; ok is false when it has no fields (it reads as
// deleted).
func (s DocState) Document() (doc []byte, ok bool) {
	var buf bytes.Buffer
	if !s.tree().writeObject(&buf, false) {
		return nil, false
	}
	return buf.Bytes(), true
}

// Operations returns the document s reads as in operation form, the form
// ReplaceOps takes: as Document, but a counter field is written
// {"$counter":N}, a set field {"$set":[members in byte order]}, and a
// field whose name starts with "$" is written with the "$" doubled ("$ref"
// as "$$ref"), at every level of objects (values, such as arrays, are
// written as they are). ReplaceOps of it on the empty document gives a
// state that reads as s does, field kinds included. ok is false when the
// document has no fields.
func (s DocState) Operations() (doc []byte, ok bool) {
	var buf bytes.Buffer
	if !s.tree().writeObject(&buf, true) {
		return nil, false
	}
	return buf.Bytes(), true
}

// tree builds the paths into a tree of nodes.
func (s DocState) tree() *docNode {
	root := &docNode{}
	for p, es := range s.paths {
		keys, _ := splitPath(p)
		n := root
		for _, k := range keys {
			if n.children == nil {
				n.children = map[string]*docNode{}
			}
			c := n.children[k]
			if c == nil {
				c = &docNode{}
				n.children[k] = c
			}
			n = c
		}
		n.entries = es
	}
	return root
}

// Conflicted reports whether a field that the document shows holds two or
// more different values assigned concurrently (an object counts as one
// value, and so do a counter's entries and a set's): what json-mv reads as
// a conflict.
func (s DocState) Conflicted() bool {
	return s.tree().conflicted()
}

// conflicted walks the paths the document shows.
func (n *docNode) conflicted() bool {
	var first []byte
	values, counter, set := 0, false, false
	for _, e := range n.entries {
		switch e.kind {
		case kindValue:
			if values == 0 || !bytes.Equal(e.value, first) {
				values++
			}
			if values == 1 {
				first = e.value
			}
		case kindCounter:
			counter = true
		default:
			set = true
		}
	}
	kinds := min(values, 1)
	if counter {
		kinds++
	}
	if set {
		kinds++
	}
	if values > 1 || kinds > 1 {
		return true
	}
	if len(n.entries) > 0 && kindOf(n.entries) != fieldObject {
		return false // not an object: what lies below it is not shown
	}
	for _, c := range n.children {
		if c.conflicted() {
			return true
		}
	}
	return false
}

// write appends the node's value (in operation form with ops, see
// Operations); false when the path is absent.
func (n *docNode) write(buf *bytes.Buffer, ops bool) bool {
	if len(n.entries) == 0 {
		return n.writeObject(buf, ops)
	}
	switch kindOf(n.entries) {
	case fieldValue:
		buf.Write(winner(n.entries).value)
	case fieldCounter:
		if ops {
			buf.WriteString(`{"` + opCounter + `":`)
		}
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), counterValue(n.entries), 10))
		if ops {
			buf.WriteByte('}')
		}
	case fieldSet:
		if ops {
			buf.WriteString(`{"` + opSet + `":`)
		}
		buf.WriteByte('[')
		for i, m := range members(n.entries) {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeKey(buf, m)
		}
		buf.WriteByte(']')
		if ops {
			buf.WriteByte('}')
		}
	default:
		if !n.writeObject(buf, ops) {
			buf.WriteString("{}") // an object mark: an object, empty or not
		}
	}
	return true
}

// writeObject appends the object of the node's children; false (nothing
// appended) when none is present. With ops, names starting with "$" are
// escaped (doubled).
func (n *docNode) writeObject(buf *bytes.Buffer, ops bool) bool {
	start := buf.Len()
	any := false
	for _, k := range slices.Sorted(maps.Keys(n.children)) {
		at := buf.Len()
		if any {
			buf.WriteByte(',')
		} else {
			buf.WriteByte('{')
		}
		if ops && strings.HasPrefix(k, "$") {
			writeKey(buf, "$"+k)
		} else {
			writeKey(buf, k)
		}
		buf.WriteByte(':')
		if !n.children[k].write(buf, ops) {
			buf.Truncate(at)
			continue
		}
		any = true
	}
	if !any {
		buf.Truncate(start)
		return false
	}
	buf.WriteByte('}')
	return true
}

// writeKey appends k as a JSON string, as encoding/json writes it: plain
// strings as they are, others through json.Marshal.
func writeKey(buf *bytes.Buffer, k string) {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(k)
	buf.WriteByte('"')
}

// Reidentify returns s with old's unpublished entries (dots of old above
// published) re-tagged d, as CounterState.Reidentify and
// SetState.Reidentify do. Per path: of several assignments, the one the
// HLC rule picks stays; counter entries fold into one holding their
// totals; set marks become one; each member keeps one entry.
func (s DocState) Reidentify(old clock.ReplicaID, published uint64, d clock.Dot) DocState {
	out := DocState{ctx: lowered(s.ctx, old, published), paths: make(map[string][]docEntry, len(s.paths))}
	any := false
	for p, es := range s.paths {
		var keep []docEntry
		moved := map[string]docEntry{} // by kind and member
		for _, e := range es {
			if e.dot.Replica != old || e.dot.Counter <= published {
				keep = append(keep, e)
				continue
			}
			id := string(rune('0'+e.kind)) + string(e.value)
			if e.kind != kindMember {
				id = string(rune('0' + e.kind))
			}
			e.dot = d
			m, ok := moved[id]
			switch {
			case !ok:
				moved[id] = e
			case e.kind == kindValue:
				if m.less(e) {
					moved[id] = e
				}
			case e.kind == kindCounter:
				m.p += e.p
				m.n += e.n
				m.time = max(m.time, e.time)
				moved[id] = m
			default:
				m.time = max(m.time, e.time)
				moved[id] = m
			}
		}
		for _, m := range moved {
			if i := slices.IndexFunc(keep, func(k docEntry) bool { return k.compareID(m) == 0 }); i >= 0 {
				keep[i] = combine(keep[i], m)
			} else {
				keep = append(keep, m)
			}
			any = true
		}
		sortEntries(keep)
		out.paths[p] = keep
	}
	if any {
		out.ctx.Add(d)
	}
	return out
}

// Equal reports whether s and o are the same state.
func (s DocState) Equal(o DocState) bool { return bytes.Equal(s.Encode(), o.Encode()) }

// String describes the state deterministically, e.g.
// `doc{ctx {0a1b2c3d:4} /name[0a1b2c3d:4@5="x"] /n[0a1b2c3d:4@5=+3-1]
// /tags[0a1b2c3d:4@5=set 0a1b2c3d:4@5=member"a"]}`.
func (s DocState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "doc{ctx %s", s.ctx)
	for _, p := range slices.Sorted(maps.Keys(s.paths)) {
		keys, _ := splitPath(p)
		fmt.Fprintf(&b, " /%s[", strings.Join(keys, "/"))
		for i, e := range s.paths[p] {
			if i > 0 {
				b.WriteByte(' ')
			}
			var v string
			switch e.kind {
			case kindCounter:
				v = fmt.Sprintf("+%d-%d", e.p, e.n)
			case kindSet:
				v = "set"
			case kindMember:
				v = fmt.Sprintf("member%q", e.value)
			default:
				v = string(e.value)
				if v == "" {
					v = "{}"
				}
			}
			fmt.Fprintf(&b, "%s@%d=%s", e.dot, uint64(e.time), v)
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.String()
}

const tagDoc = "jsondoc1"

// minDocEntry is the fewest bytes an entry takes: [replica, counter, time, value].
const (
	minDocEntry = 1 + 18 + 1 + 1 + 1
	minDocPath  = 1 + 1 + 1 + minDocEntry // [path bin, [entry, ...]]
)

// Encode returns the canonical bytes of s (equal states, equal bytes):
//
//	[ "jsondoc1", [ [replica bin16, counter]... sorted ],
//	  [ [path bin, [ entry... sorted by dot, kind, member ]]... sorted by path ] ]
//
// where a path is its keys, each preceded by its length as a uvarint, and
// an entry is
//
//	[replica bin16, counter, hlc, value bin]         an assignment (an empty value: the object mark)
//	[replica bin16, counter, hlc, 1, [P, N]]         a counter entry
//	[replica bin16, counter, hlc, 2, bin ""]         a set mark
//	[replica bin16, counter, hlc, 3, member bin]     a set member
//
// A state without counters and sets encodes as it did before they existed,
// so states written then decode unchanged.
func (s DocState) Encode() []byte {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeString(tagDoc)
	_ = EncodeVector(enc, s.ctx)
	_ = enc.EncodeArrayLen(len(s.paths))
	for _, p := range slices.Sorted(maps.Keys(s.paths)) {
		es := s.paths[p]
		_ = enc.EncodeArrayLen(2)
		_ = enc.EncodeBytes([]byte(p))
		_ = enc.EncodeArrayLen(len(es))
		for _, e := range es {
			if e.kind == kindValue {
				_ = enc.EncodeArrayLen(4)
			} else {
				_ = enc.EncodeArrayLen(5)
			}
			_ = enc.EncodeBytes(e.dot.Replica[:])
			_ = enc.EncodeUint(e.dot.Counter)
			_ = enc.EncodeUint(uint64(e.time))
			switch e.kind {
			case kindValue:
				_ = enc.EncodeBytes(orEmpty(e.value)) // nil would encode as msgpack nil
			case kindCounter:
				_ = enc.EncodeUint(uint64(e.kind))
				_ = enc.EncodeArrayLen(2)
				_ = enc.EncodeUint(e.p)
				_ = enc.EncodeUint(e.n)
			default:
				_ = enc.EncodeUint(uint64(e.kind))
				_ = enc.EncodeBytes(orEmpty(e.value))
			}
		}
	}
	return buf.Bytes()
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// DecodeDoc parses the bytes Encode produces, and only those: anything
// else is an error wrapping ErrBadState.
func DecodeDoc(b []byte) (DocState, error) {
	r := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r)
	sd := stateDec{dec: dec, r: r}
	if err := sd.header(tagDoc); err != nil {
		return DocState{}, err
	}
	ctx, err := sd.vector()
	if err != nil {
		return DocState{}, err
	}
	n, err := sd.count(minDocPath)
	if err != nil {
		return DocState{}, err
	}
	s := DocState{ctx: ctx, paths: make(map[string][]docEntry, n)}
	for range n {
		if _, err := sd.arrayLen(2); err != nil {
			return DocState{}, err
		}
		p, err := sd.member()
		if err != nil {
			return DocState{}, err
		}
		if _, ok := splitPath(p); !ok || p == "" {
			return DocState{}, badState("malformed path %q", p)
		}
		if _, dup := s.paths[p]; dup {
			return DocState{}, badState("duplicate path %q", p)
		}
		m, err := sd.count(minDocEntry)
		if err != nil {
			return DocState{}, err
		}
		if m == 0 {
			return DocState{}, badState("path %q without entries", p)
		}
		es := make([]docEntry, 0, m)
		for range m {
			e, err := sd.docEntry(p, ctx)
			if err != nil {
				return DocState{}, err
			}
			if len(es) > 0 && es[len(es)-1].compareID(e) >= 0 {
				return DocState{}, badState("entries of path %q out of order or repeated", p)
			}
			es = append(es, e)
		}
		s.paths[p] = es
	}
	if err := stateEnd(r, b, s.Encode()); err != nil {
		return DocState{}, err
	}
	return s, nil
}

// docEntry reads one entry of path p.
func (sd stateDec) docEntry(p string, ctx clock.Vector) (docEntry, error) {
	l, err := sd.dec.DecodeArrayLen()
	if err != nil {
		return docEntry{}, badState("%v", err)
	}
	if l != 4 && l != 5 {
		return docEntry{}, badState("entry of %d elements, want 4 or 5", l)
	}
	d, err := sd.dot(ctx)
	if err != nil {
		return docEntry{}, err
	}
	t, err := sd.dec.DecodeUint64()
	if err != nil {
		return docEntry{}, badState("time: %v", err)
	}
	e := docEntry{dot: d, time: clock.HLC(t)}
	if l == 4 {
		v, err := sd.member()
		if err != nil {
			return docEntry{}, err
		}
		if v != "" && (!json.Valid([]byte(v)) || v[0] == '{') {
			return docEntry{}, badState("path %q: value %q is not JSON other than an object", p, v)
		}
		if v != "" {
			e.value = []byte(v)
		}
		return e, nil
	}
	k, err := sd.dec.DecodeUint64()
	if err != nil {
		return docEntry{}, badState("kind: %v", err)
	}
	switch entryKind(k) {
	case kindCounter:
		if _, err := sd.arrayLen(2); err != nil {
			return docEntry{}, err
		}
		if e.p, err = sd.dec.DecodeUint64(); err != nil {
			return docEntry{}, badState("increments: %v", err)
		}
		if e.n, err = sd.dec.DecodeUint64(); err != nil {
			return docEntry{}, badState("decrements: %v", err)
		}
	case kindSet, kindMember:
		v, err := sd.member()
		if err != nil {
			return docEntry{}, err
		}
		if entryKind(k) == kindSet && v != "" {
			return docEntry{}, badState("path %q: a set mark with a value", p)
		}
		if !utf8.ValidString(v) {
			return docEntry{}, badState("path %q: member %q is not UTF-8", p, v)
		}
		if v != "" {
			e.value = []byte(v)
		}
	default:
		return docEntry{}, badState("path %q: entry kind %d", p, k)
	}
	e.kind = entryKind(k)
	return e, nil
}
