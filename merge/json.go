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
// or a whole document put on a json key).
var ErrBadPatch = errors.New("merge: a json document write must be a JSON object")

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
// Counters and sets inside a document are not provided: RFC 7396 has no
// way to write them.
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
// Every field path (a sequence of object keys from the root) holds the
// assignments of it that are live: each tagged with the dot of the write
// that made it and that write's HLC, and holding either a JSON value that
// is not an object or the mark that the path holds an object. The context
// holds every dot the state has seen. A write replaces the assignments it
// assigns or removes and those of everything below them; they stay in the
// context, so the replacement wins over every assignment it saw, while a
// concurrent one, whose dot it has not seen, survives (see Counter for the
// join and the causal contexts).
//
// The zero DocState is the empty document. States are values: methods
// never modify their receiver.
type DocState struct {
	ctx   clock.Vector
	paths map[string][]docEntry // encoded path -> entries sorted by dot, never empty
}

// docEntry is one assignment of a path: value is compact JSON that is not
// an object, or empty for the object mark.
type docEntry struct {
	dot   clock.Dot
	time  clock.HLC
	value []byte
}

func (e docEntry) less(o docEntry) bool {
	if e.time != o.time {
		return e.time < o.time
	}
	return e.dot.Compare(o.dot) < 0
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
		b := o.paths[p]
		var es []docEntry
		for _, e := range a {
			if i := slices.IndexFunc(b, func(f docEntry) bool { return f.dot == e.dot }); i >= 0 {
				// A dot names one write, so both hold the same entry; the
				// larger keeps the join a join for states that break that.
				if e.less(b[i]) || e.time == b[i].time && bytes.Compare(e.value, b[i].value) < 0 {
					e = b[i]
				}
				es = append(es, e)
			} else if !o.ctx.Covers(e.dot) {
				es = append(es, e)
			}
		}
		for _, f := range b {
			if !slices.ContainsFunc(a, func(e docEntry) bool { return e.dot == f.dot }) && !s.ctx.Covers(f.dot) {
				es = append(es, f)
			}
		}
		if len(es) > 0 {
			slices.SortFunc(es, func(x, y docEntry) int { return x.dot.Compare(y.dot) })
			out.paths[p] = es
		}
	}
	for p, b := range o.paths {
		if _, done := s.paths[p]; done {
			continue
		}
		var es []docEntry
		for _, f := range b {
			if !s.ctx.Covers(f.dot) {
				es = append(es, f)
			}
		}
		if len(es) > 0 {
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

// isObject reports whether path p reads as an object: its winning
// assignment is the object mark, or it has no assignment but something
// below it does.
func (s DocState) isObject(p string) bool {
	if es := s.paths[p]; len(es) > 0 {
		return len(winner(es).value) == 0
	}
	for q := range s.paths {
		if len(q) > len(p) && strings.HasPrefix(q, p) {
			return true
		}
	}
	return false
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
// an object, and replaces it otherwise), a null removes the field. Only
// the named fields get d. patch must be a JSON object (ErrBadPatch
// otherwise). d must be a fresh dot, as for CounterState.Add; Patch panics
// on a zero dot.
func (s DocState) Patch(d clock.Dot, t clock.HLC, patch []byte) (DocState, error) {
	if d.Counter == 0 || d.Replica.IsZero() {
		panic("merge: DocState.Patch with a zero dot")
	}
	obj, err := parseObject(patch)
	if err != nil {
		return DocState{}, err
	}
	out := s.clone()
	if err := out.apply("", obj, docEntry{dot: d, time: t}); err != nil {
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
	}
	return "a number"
}

// apply assigns the fields of obj below path p with the dot and time of w.
func (s *DocState) apply(p string, obj map[string]json.RawMessage, w docEntry) error {
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		raw := bytes.TrimSpace(obj[key])
		q := pathChild(p, key)
		switch {
		case string(raw) == "null":
			s.removeTree(q)
		case len(raw) > 0 && raw[0] == '{':
			sub, err := parseObject(raw)
			if err != nil {
				return err
			}
			if !s.isObject(q) {
				s.removeTree(q)
			}
			s.paths[q] = []docEntry{w} // the object mark
			if err := s.apply(q, sub, w); err != nil {
				return err
			}
		default:
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return fmt.Errorf("%w: field %q: %v", ErrBadPatch, key, err)
			}
			s.removeTree(q)
			e := w
			e.value = buf.Bytes()
			s.paths[q] = []docEntry{e}
		}
	}
	return nil
}

// Replace returns s with its document replaced by doc (a JSON object,
// ErrBadPatch otherwise) by the write named by dot d at HLC t: it applies
// the merge patch from the document s reads as to doc, so only the fields
// whose value changes get d, and the fields doc lacks are removed; a field
// holding concurrent assignments is assigned too, which settles them. A
// null field in doc is not stored (a patch cannot hold null).
func (s DocState) Replace(d clock.Dot, t clock.HLC, doc []byte) (DocState, error) {
	obj, err := parseObject(doc)
	if err != nil {
		return DocState{}, err
	}
	cur, _ := s.Document()
	var old map[string]json.RawMessage
	if cur != nil {
		if err := json.Unmarshal(cur, &old); err != nil {
			return DocState{}, fmt.Errorf("merge: reading the current document: %v", err)
		}
	}
	patch, err := json.Marshal(diffObjects(old, obj))
	if err != nil {
		return DocState{}, err
	}
	out, err := s.Patch(d, t, patch)
	if err != nil {
		return DocState{}, err
	}
	// A field holding concurrent assignments is assigned again even when
	// doc gives it the value the HLC rule shows: the writer saw them all,
	// and settles them (json-mv reads them as a conflict until then).
	for p, es := range s.paths {
		if len(es) < 2 {
			continue
		}
		keys, _ := splitPath(p)
		v, ok := lookup(obj, keys)
		if !ok {
			continue
		}
		sub := json.RawMessage(v)
		for i := len(keys) - 1; i >= 0; i-- {
			b, err := json.Marshal(map[string]json.RawMessage{keys[i]: sub})
			if err != nil {
				return DocState{}, err
			}
			sub = b
		}
		if out, err = out.Patch(d, t, sub); err != nil {
			return DocState{}, err
		}
	}
	return out, nil
}

// lookup returns the value at keys in obj (not null), if any.
func lookup(obj map[string]json.RawMessage, keys []string) ([]byte, bool) {
	for i, k := range keys {
		v, ok := obj[k]
		v = bytes.TrimSpace(v)
		if !ok || string(v) == "null" {
			return nil, false
		}
		if i == len(keys)-1 {
			return v, true
		}
		if len(v) == 0 || v[0] != '{' {
			return nil, false
		}
		if json.Unmarshal(v, &obj) != nil {
			return nil, false
		}
	}
	return nil, false
}

// diffObjects is the merge patch that turns old into doc.
func diffObjects(old, doc map[string]json.RawMessage) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k := range old {
		if v, ok := doc[k]; !ok || string(bytes.TrimSpace(v)) == "null" {
			out[k] = json.RawMessage("null")
		}
	}
	for k, v := range doc {
		v = bytes.TrimSpace(v)
		if string(v) == "null" {
			continue
		}
		o, had := old[k]
		if had && len(v) > 0 && v[0] == '{' && len(o) > 0 && o[0] == '{' {
			var a, b map[string]json.RawMessage
			if json.Unmarshal(o, &a) == nil && json.Unmarshal(v, &b) == nil {
				if sub := diffObjects(a, b); len(sub) > 0 {
					out[k], _ = json.Marshal(sub)
				}
				continue
			}
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			out[k] = v // Patch reports it
			continue
		}
		if !had || !bytes.Equal(buf.Bytes(), o) {
			out[k] = buf.Bytes()
		}
	}
	return out
}

// docNode is a path of the document during a read.
type docNode struct {
	entries  []docEntry
	children map[string]*docNode
}

// Document returns the document s reads as, as compact JSON with object
// keys in byte order; ok is false when it has no fields (it reads as
// deleted).
func (s DocState) Document() (doc []byte, ok bool) {
	var buf bytes.Buffer
	if !s.tree().writeObject(&buf) {
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
// value): what json-mv reads as a conflict.
func (s DocState) Conflicted() bool {
	return s.tree().conflicted()
}

// conflicted walks the paths the document shows.
func (n *docNode) conflicted() bool {
	if len(n.entries) > 1 {
		first := n.entries[0].value
		for _, e := range n.entries[1:] {
			if !bytes.Equal(e.value, first) {
				return true
			}
		}
	}
	if len(n.entries) > 0 && len(winner(n.entries).value) > 0 {
		return false // a value: what lies below it is not shown
	}
	for _, c := range n.children {
		if c.conflicted() {
			return true
		}
	}
	return false
}

// write appends the node's value; false when the path is absent.
func (n *docNode) write(buf *bytes.Buffer) bool {
	if len(n.entries) > 0 {
		if w := winner(n.entries); len(w.value) > 0 {
			buf.Write(w.value)
			return true
		}
		if !n.writeObject(buf) {
			buf.WriteString("{}") // an object mark: an object, empty or not
		}
		return true
	}
	return n.writeObject(buf)
}

// writeObject appends the object of the node's children; false (nothing
// appended) when none is present.
func (n *docNode) writeObject(buf *bytes.Buffer) bool {
	start := buf.Len()
	any := false
	for _, k := range slices.Sorted(maps.Keys(n.children)) {
		at := buf.Len()
		if any {
			buf.WriteByte(',')
		} else {
			buf.WriteByte('{')
		}
		writeKey(buf, k)
		buf.WriteByte(':')
		if !n.children[k].write(buf) {
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
// keys as they are, others through json.Marshal.
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

// Reidentify returns s with old's unpublished assignments (dots of old
// above published) re-tagged d, as CounterState.Reidentify does; where one
// path holds several, the one the HLC rule picks stays.
func (s DocState) Reidentify(old clock.ReplicaID, published uint64, d clock.Dot) DocState {
	out := DocState{ctx: lowered(s.ctx, old, published), paths: make(map[string][]docEntry, len(s.paths))}
	any := false
	for p, es := range s.paths {
		var keep []docEntry
		var moved *docEntry
		for _, e := range es {
			if e.dot.Replica == old && e.dot.Counter > published {
				if moved == nil || moved.less(e) {
					e := e
					moved = &e
				}
				continue
			}
			keep = append(keep, e)
		}
		if moved != nil {
			m := *moved
			m.dot = d
			keep = append(keep, m)
			slices.SortFunc(keep, func(x, y docEntry) int { return x.dot.Compare(y.dot) })
			any = true
		}
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
// `doc{ctx {0a1b2c3d:4} /name[0a1b2c3d:4@5="x"]}`.
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
			v := string(e.value)
			if v == "" {
				v = "{}"
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
//	  [ [path bin, [ [replica bin16, counter, hlc, value bin]... sorted by dot ]]... sorted by path ] ]
//
// where a path is its keys, each preceded by its length as a uvarint, and
// an empty value is the object mark.
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
			_ = enc.EncodeArrayLen(4)
			_ = enc.EncodeBytes(e.dot.Replica[:])
			_ = enc.EncodeUint(e.dot.Counter)
			_ = enc.EncodeUint(uint64(e.time))
			if e.value == nil {
				_ = enc.EncodeBytes([]byte{}) // the object mark (nil would encode as msgpack nil)
			} else {
				_ = enc.EncodeBytes(e.value)
			}
		}
	}
	return buf.Bytes()
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
			if _, err := sd.arrayLen(4); err != nil {
				return DocState{}, err
			}
			d, err := sd.dot(ctx)
			if err != nil {
				return DocState{}, err
			}
			t, err := dec.DecodeUint64()
			if err != nil {
				return DocState{}, badState("time: %v", err)
			}
			v, err := sd.member()
			if err != nil {
				return DocState{}, err
			}
			if v != "" && (!json.Valid([]byte(v)) || v[0] == '{') {
				return DocState{}, badState("path %q: value %q is not JSON other than an object", p, v)
			}
			if len(es) > 0 && es[len(es)-1].dot.Compare(d) >= 0 {
				return DocState{}, badState("entries of path %q out of order or repeated", p)
			}
			e := docEntry{dot: d, time: clock.HLC(t)}
			if v != "" {
				e.value = []byte(v)
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
