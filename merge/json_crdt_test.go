package merge_test

// Counters and sets inside JSON documents: the $-operations of a patch.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

func ddot(id clock.ReplicaID, n uint64) clock.Dot { return clock.Dot{Replica: id, Counter: n} }

func TestDocCounterIncrementsAllCount(t *testing.T) {
	ids := proptest.Pool(3)
	base := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 10, `{"name":"A","visits":{"$inc":1}}`)
	if got := docText(t, base); got != `{"name":"A","visits":1}` {
		t.Fatalf("base = %s", got)
	}
	a := mustPatch(t, base, ddot(ids[0], 2), 20, `{"visits":{"$inc":2}}`)
	a = mustPatch(t, a, ddot(ids[0], 3), 21, `{"visits":{"$inc":-5}}`)
	b := mustPatch(t, base, ddot(ids[1], 1), 22, `{"visits":{"$inc":3}}`)
	c := mustPatch(t, merge.DocState{}, ddot(ids[2], 1), 5, `{"visits":{"$inc":10}}`) // a concurrent creation
	want := `{"name":"A","visits":11}`                                                // 1+2-5+3+10
	for _, s := range []merge.DocState{a.Join(b).Join(c), c.Join(b.Join(a)), b.Join(c).Join(a)} {
		if got := docText(t, s); got != want {
			t.Fatalf("got %s, want %s (%v)", got, want, s)
		}
	}
	// $counter sets the counter: what its writer saw goes, concurrent
	// increments survive.
	ab := a.Join(b)
	set := mustPatch(t, ab, ddot(ids[0], 4), 30, `{"visits":{"$counter":100}}`)
	more := mustPatch(t, ab, ddot(ids[2], 2), 31, `{"visits":{"$inc":7}}`) // ids[2]'s first increment here
	if got := docText(t, set.Join(more)); got != `{"name":"A","visits":107}` {
		t.Fatalf("$counter with a concurrent $inc: %s", got)
	}
	// Extremes wrap as int64 addition, as the counter policy does.
	ext := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 1, `{"v":{"$counter":-9223372036854775808}}`)
	ext = mustPatch(t, ext, ddot(ids[0], 2), 2, `{"v":{"$inc":9223372036854775807}}`)
	if got := docText(t, ext); got != `{"v":-1}` {
		t.Fatalf("extremes: %s", got)
	}
}

func TestDocSetIsAddWins(t *testing.T) {
	ids := proptest.Pool(2)
	base := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 10, `{"tags":{"$add":["b","a","a"]}}`)
	if got := docText(t, base); got != `{"tags":["a","b"]}` {
		t.Fatalf("base = %s", got)
	}
	removed := mustPatch(t, base, ddot(ids[0], 2), 30, `{"tags":{"$remove":["b","zz"]}}`)
	added := mustPatch(t, base, ddot(ids[1], 1), 20, `{"tags":{"$add":["b","c"]}}`)
	// The concurrent add of b wins over the removal that did not see it.
	for _, s := range []merge.DocState{removed.Join(added), added.Join(removed)} {
		if got := docText(t, s); got != `{"tags":["a","b","c"]}` {
			t.Fatalf("remove || add = %s (%v)", got, s)
		}
	}
	// A removal that saw the add wins.
	both := removed.Join(added)
	after := mustPatch(t, both, ddot(ids[0], 3), 40, `{"tags":{"$remove":["b","a"]}}`)
	if got := docText(t, after.Join(added)); got != `{"tags":["c"]}` {
		t.Fatalf("got %s", got)
	}
	// Emptied, the set stays, as [].
	empty := mustPatch(t, after, ddot(ids[0], 4), 50, `{"tags":{"$remove":["c"]}}`)
	if got := docText(t, empty); got != `{"tags":[]}` {
		t.Fatalf("empty set = %s", got)
	}
	// $remove of an absent field makes an empty set; $set replaces the
	// members, observed-remove (a concurrent add survives).
	if got := docText(t, mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 1, `{"t":{"$remove":["x"]}}`)); got != `{"t":[]}` {
		t.Fatalf("remove from absent = %s", got)
	}
	replaced := mustPatch(t, both, ddot(ids[0], 5), 60, `{"tags":{"$set":["z"]}}`)
	concurrent := mustPatch(t, both, ddot(ids[1], 2), 61, `{"tags":{"$add":["y"]}}`)
	if got := docText(t, replaced.Join(concurrent)); got != `{"tags":["y","z"]}` {
		t.Fatalf("$set || $add = %s", got)
	}
	// Members are rendered as encoding/json writes strings, in byte order.
	odd := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 1, `{"t":{"$add":["é","<b>","a\"q","",  "Z"]}}`)
	want := `{"t":["","\u003cb\u003e","Z","a\"q","é"]}`
	if got := docText(t, odd); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if !json.Valid([]byte(docText(t, odd))) {
		t.Fatal("not valid JSON")
	}
}

// A field that is a counter on one replica and a value, an object or a set
// on another: the latest write of the field decides its kind.
func TestDocKindConflictFollowsHLC(t *testing.T) {
	ids := proptest.Pool(2)
	base := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 10, `{"v":{"$inc":4}}`)
	for _, tc := range []struct {
		other          string
		tInc, tOther   clock.HLC
		want           string
		wantAfterOther string
	}{
		{`{"v":"text"}`, 20, 30, `{"v":"text"}`, ""},
		// The assignment removed the 4 it saw, but the increment's entry is
		// its replica's running total: 5 (as for the counter policy's Clear).
		{`{"v":"text"}`, 30, 20, `{"v":5}`, ""},
		{`{"v":{"k":true}}`, 20, 30, `{"v":{"k":true}}`, ""},
		{`{"v":{"k":true}}`, 30, 20, `{"v":5}`, ""},
		{`{"v":{"$set":["m"]}}`, 20, 30, `{"v":["m"]}`, ""},
		{`{"v":{"$set":["m"]}}`, 30, 20, `{"v":5}`, ""},
	} {
		inc := mustPatch(t, base, ddot(ids[0], 2), tc.tInc, `{"v":{"$inc":1}}`)
		other := mustPatch(t, base, ddot(ids[1], 1), tc.tOther, tc.other)
		j := inc.Join(other)
		if got := docText(t, j); got != tc.want || docText(t, other.Join(inc)) != got {
			t.Fatalf("%s at %d || $inc at %d = %s, want %s", tc.other, tc.tOther, tc.tInc, got, tc.want)
		}
		if !j.Conflicted() {
			t.Fatalf("%s || $inc: json-mv sees no conflict", tc.other)
		}
	}
	// Concurrent increments, or adds, are no conflict.
	x := mustPatch(t, base, ddot(ids[0], 2), 20, `{"v":{"$inc":1},"s":{"$add":["a"]}}`)
	y := mustPatch(t, base, ddot(ids[1], 1), 30, `{"v":{"$inc":1},"s":{"$add":["b"]}}`)
	if x.Join(y).Conflicted() {
		t.Fatal("concurrent increments and adds read as a conflict")
	}
	// A write of the field settles the kind: an increment of the counter
	// the document shows replaces the losing value it saw.
	inc := mustPatch(t, base, ddot(ids[0], 2), 30, `{"v":{"$inc":1}}`)
	other := mustPatch(t, base, ddot(ids[1], 1), 20, `{"v":"text"}`)
	settled := mustPatch(t, inc.Join(other), ddot(ids[0], 3), 40, `{"v":{"$inc":1}}`)
	if settled.Conflicted() || docText(t, settled) != `{"v":6}` {
		t.Fatalf("settled: %s %v", docText(t, settled), settled)
	}
}

// The json-mv policy reads a counter against a value as a conflict.
func TestJSONMVCounterAgainstValue(t *testing.T) {
	ids := proptest.Pool(2)
	x := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 10, `{"v":{"$inc":1}}`)
	y := mustPatch(t, merge.DocState{}, ddot(ids[1], 1), 20, `{"v":5}`)
	res, err := merge.JSON{Siblings: true}.Resolve("k", []merge.Version{
		{Dot: ddot(ids[0], 1), Value: x.Encode()}, {Dot: ddot(ids[1], 1), Value: y.Encode()}})
	if err != nil || !res.Conflict {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	res, err = merge.JSON{}.Resolve("k", []merge.Version{
		{Dot: ddot(ids[0], 1), Value: x.Encode()}, {Dot: ddot(ids[1], 1), Value: y.Encode()}})
	if err != nil || res.Conflict || string(res.Value) != `{"v":5}` {
		t.Fatalf("json Resolve = %+v %s, %v", res, res.Value, err)
	}
}

func TestDocReplaceKeepsCountersAndSets(t *testing.T) {
	ids := proptest.Pool(2)
	base := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 10, `{"name":"A","visits":{"$inc":3},"tags":{"$add":["a","b"]}}`)
	// A put of the document read back, one other field changed: the
	// counter and the set are untouched, so a concurrent increment and add
	// both count.
	put, err := base.Replace(ddot(ids[0], 2), 20, []byte(`{"name":"B","visits":3,"tags":["b","a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	inc := mustPatch(t, base, ddot(ids[1], 1), 15, `{"visits":{"$inc":1},"tags":{"$add":["c"]}}`)
	if got := docText(t, put.Join(inc)); got != `{"name":"B","tags":["a","b","c"],"visits":4}` {
		t.Fatalf("put || inc = %s", got)
	}
	// A different integer sets the counter; a different array of strings
	// adds and removes members (observed-remove): concurrent changes
	// survive; the fields stay a counter and a set.
	put2, err := base.Replace(ddot(ids[0], 2), 20, []byte(`{"name":"A","visits":10,"tags":["a","x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	inc2 := mustPatch(t, base, ddot(ids[1], 1), 30, `{"visits":{"$inc":2},"tags":{"$add":["b"]}}`)
	if got := docText(t, put2.Join(inc2)); got != `{"name":"A","tags":["a","b","x"],"visits":12}` {
		t.Fatalf("put2 || inc2 = %s (%v)", got, put2.Join(inc2))
	}
	if _, err := put2.Patch(ddot(ids[0], 3), 40, []byte(`{"visits":{"$inc":1},"tags":{"$add":["y"]}}`)); err != nil {
		t.Fatalf("the fields are no longer a counter and a set: %v", err)
	}
	// Another kind of value replaces the field.
	put3, err := base.Replace(ddot(ids[0], 2), 20, []byte(`{"name":"A","visits":"many","tags":[1,2]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := docText(t, put3); got != `{"name":"A","tags":[1,2],"visits":"many"}` {
		t.Fatalf("put3 = %s", got)
	}
	if _, err := put3.Patch(ddot(ids[0], 3), 40, []byte(`{"visits":{"$inc":1}}`)); !errors.Is(err, merge.ErrFieldKind) {
		t.Fatalf("$inc of a string field: %v", err)
	}
	// A put holds data: "$" names are fields like any other, and a document
	// read back can be put back.
	put4, err := base.Replace(ddot(ids[0], 2), 20, []byte(`{"$schema":"x","o":{"$inc":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	doc := docText(t, put4)
	if doc != `{"$schema":"x","o":{"$inc":1}}` {
		t.Fatalf("put4 = %s", doc)
	}
	again, err := put4.Replace(ddot(ids[0], 3), 30, []byte(doc))
	if err != nil || !again.Join(put4).Equal(again) || docText(t, again) != doc {
		t.Fatalf("put back: %s, %v", docText(t, again), err)
	}
	// ... and a patch writes such a name doubled.
	esc := mustPatch(t, put4, ddot(ids[0], 3), 30, `{"$$schema":"y","o":{"$$inc":2,"$$$x":3}}`)
	if got := docText(t, esc); got != `{"$schema":"y","o":{"$$x":3,"$inc":2}}` {
		t.Fatalf("escaped = %s", got)
	}
}

// Bad operations are errors that leave the state as it was.
func TestDocBadOperations(t *testing.T) {
	id := proptest.Pool(1)[0]
	s := mustPatch(t, merge.DocState{}, ddot(id, 1), 10, `{"n":1,"o":{"x":1},"c":{"$inc":1},"t":{"$add":["a"]}}`)
	before := s.Encode()
	for _, tc := range []struct {
		patch string
		kind  bool // ErrFieldKind
		msg   string
	}{
		{`{"c":{"$inc":1.5}}`, false, `$inc takes an integer`},
		{`{"c":{"$inc":"3"}}`, false, `$inc takes an integer`},
		{`{"c":{"$inc":1e3}}`, false, `$inc takes an integer`},
		{`{"c":{"$inc":9223372036854775808}}`, false, `$inc takes an integer`},
		{`{"c":{"$inc":null}}`, false, `$inc takes an integer`},
		{`{"c":{"$counter":[1]}}`, false, `$counter takes an integer`},
		{`{"t":{"$add":"a"}}`, false, `$add takes an array of strings`},
		{`{"t":{"$add":[1]}}`, false, `$add takes an array of strings`},
		{`{"t":{"$add":["a",null]}}`, false, `$add takes an array of strings`},
		{`{"t":{"$remove":{}}}`, false, `$remove takes an array of strings`},
		{`{"t":{"$set":null}}`, false, `$set takes an array of strings`},
		{`{"t":{"$push":["a"]}}`, false, `unknown operation "$push"`},
		{`{"t":{"$add":["a"],"other":1}}`, false, `must be the only member`},
		{`{"t":{"$add":["a"],"$remove":["b"]}}`, false, `must be the only member`},
		{`{"$inc":1}`, false, `at the top of the patch`},
		{`{"n":2,"o":{"$inc":1}}`, true, `field "o" is an object, not a counter`},
		{`{"n":{"$inc":1}}`, true, `field "n" is a value, not a counter`},
		{`{"t":{"$inc":1}}`, true, `field "t" is a set, not a counter`},
		{`{"c":{"$add":["a"]}}`, true, `field "c" is a counter, not a set`},
		{`{"o":{"$remove":["a"]}}`, true, `field "o" is an object, not a set`},
		{`{"o":{"x":{"$add":["a"]}}}`, true, `field "o/x" is a value, not a set`},
	} {
		_, err := s.Patch(ddot(id, 2), 20, []byte(tc.patch))
		if !errors.Is(err, merge.ErrBadPatch) || errors.Is(err, merge.ErrFieldKind) != tc.kind || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Patch(%s) = %v, want ErrBadPatch (kind %v) saying %q", tc.patch, err, tc.kind, tc.msg)
		}
	}
	if !bytes.Equal(s.Encode(), before) {
		t.Fatal("a failed patch changed the state")
	}
}

// The document state that json.go encoded before counters and sets existed
// (commit 1280a64; testdata/jsondoc1-registers.*) decodes and reads as it
// did, and encodes to the same bytes.
func TestDocDecodesStatesWrittenBeforeCounters(t *testing.T) {
	b, err := os.ReadFile("testdata/jsondoc1-registers.state")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/jsondoc1-registers.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := merge.DecodeDoc(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := docText(t, s); got != string(want) {
		t.Fatalf("reads %s, want %s", got, want)
	}
	if !bytes.Equal(s.Encode(), b) || !s.Conflicted() {
		t.Fatal("does not encode to its bytes, or lost its conflict")
	}
}

func TestDocCountersAndSetsRoundTrip(t *testing.T) {
	ids := proptest.Pool(2)
	s := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 10, `{"v":{"$inc":-2},"t":{"$add":["a",""]},"o":{"w":{"$inc":5}},"e":{"$set":[]}}`)
	s = s.Join(mustPatch(t, merge.DocState{}, ddot(ids[1], 1), 11, `{"v":{"$inc":1},"t":{"$add":["b"]}}`))
	got, err := merge.DecodeDoc(s.Encode())
	if err != nil || !got.Equal(s) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	if doc := docText(t, got); doc != `{"e":[],"o":{"w":5},"t":["","a","b"],"v":-1}` {
		t.Fatalf("reads %s", doc)
	}
	// Malformed states are ErrBadState.
	enc := s.Encode()
	for name, mutate := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)-1] },
		"trailing":  func(b []byte) []byte { return append(slices.Clone(b), 0) },
	} {
		if _, err := merge.DecodeDoc(mutate(enc)); !errors.Is(err, merge.ErrBadState) {
			t.Errorf("%s: %v, want ErrBadState", name, err)
		}
	}
	// Entries of the new kinds: anything but a well-formed one is refused.
	id := ids[0]
	for _, tc := range []struct {
		kind    any
		payload any
		ok      bool
	}{
		{uint64(1), []any{uint64(3), uint64(1)}, true},
		{uint64(2), []byte{}, true},
		{uint64(3), []byte("m"), true},
		{uint64(0), []byte("1"), false},
		{uint64(4), []byte{}, false},
		{uint64(1), []any{uint64(3)}, false},
		{uint64(1), []byte{}, false},
		{uint64(2), []byte("x"), false},
		{uint64(3), []byte{0xff}, false},
		{"1", []byte{}, false},
	} {
		b := encodeOneEntry(t, id, []any{id[:], uint64(1), uint64(10), tc.kind, tc.payload})
		_, err := merge.DecodeDoc(b)
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, merge.ErrBadState) {
			t.Errorf("kind %v payload %v: %v", tc.kind, tc.payload, err)
		}
	}
}

// encodeOneEntry encodes a state of one path "f" holding entry.
func encodeOneEntry(t *testing.T, id clock.ReplicaID, entry []any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	err := enc.Encode([]any{"jsondoc1", []any{[]any{id[:], uint64(1)}}, []any{[]any{[]byte("\x01f"), []any{entry}}}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDocReidentifyMovesCountersAndSets(t *testing.T) {
	ids := proptest.Pool(3)
	old, fresh := ids[0], ids[2]
	s := mustPatch(t, merge.DocState{}, ddot(old, 1), 10, `{"v":{"$inc":1},"t":{"$add":["a"]}}`) // published
	s = s.Join(mustPatch(t, merge.DocState{}, ddot(ids[1], 1), 11, `{"v":{"$inc":10},"t":{"$add":["x"]}}`))
	s = mustPatch(t, s, ddot(old, 2), 20, `{"v":{"$inc":2},"t":{"$add":["b"]}}`)
	s = mustPatch(t, s, ddot(old, 3), 30, `{"v":{"$inc":4},"t":{"$add":["c"]}}`)
	moved := s.Reidentify(old, 1, ddot(fresh, 1))
	if got, want := docText(t, moved), docText(t, s); got != want {
		t.Fatalf("reidentified reads %s, want %s", got, want)
	}
	if ctx := moved.Context(); ctx[old] != 1 || ctx[fresh] != 1 {
		t.Fatalf("context %v", ctx)
	}
	if strings.Contains(moved.String(), old.Short()+":2") || strings.Contains(moved.String(), old.Short()+":3") {
		t.Fatalf("unpublished dots remain: %v", moved)
	}
	if _, err := merge.DecodeDoc(moved.Encode()); err != nil {
		t.Fatal(err)
	}
	// The other directory with the old id, which published only dot 1,
	// joined with the moved state: nothing counts twice.
	other := mustPatch(t, merge.DocState{}, ddot(old, 1), 10, `{"v":{"$inc":1},"t":{"$add":["a"]}}`)
	if got := docText(t, moved.Join(other)); got != `{"t":["a","b","c","x"],"v":17}` {
		t.Fatalf("joined with the published state: %s", got)
	}
}

// A document's counter field and set field behave exactly as the counter
// and set policies' states under the same operations and syncs, on three
// replicas.
func TestDocCounterAndSetMatchThePolicies(t *testing.T) {
	ids := proptest.Pool(3)
	rapid.Check(t, func(t *rapid.T) {
		docs := make([]merge.DocState, 3)
		counters := make([]merge.CounterState, 3)
		sets := make([]merge.SetState, 3)
		next := make([]uint64, 3)
		for range rapid.IntRange(1, 30).Draw(t, "ops") {
			r := rapid.IntRange(0, 2).Draw(t, "replica")
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0: // sync r <- o
				o := rapid.IntRange(0, 2).Draw(t, "from")
				docs[r] = docs[r].Join(docs[o])
				counters[r] = counters[r].Join(counters[o])
				sets[r] = sets[r].Join(sets[o])
			case 1:
				next[r]++
				d := ddot(ids[r], next[r])
				delta := rapid.Int64Range(-5, 5).Draw(t, "delta")
				docs[r] = mustPatchR(t, docs[r], d, clock.HLC(next[r]), fmt.Sprintf(`{"v":{"$inc":%d}}`, delta))
				counters[r] = counters[r].Add(d, delta)
			default:
				next[r]++
				d := ddot(ids[r], next[r])
				m := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "member")
				if rapid.Bool().Draw(t, "add") {
					docs[r] = mustPatchR(t, docs[r], d, clock.HLC(next[r]), `{"t":{"$add":[`+strconv.Quote(m)+`]}}`)
					sets[r] = sets[r].Add(d, m)
				} else {
					docs[r] = mustPatchR(t, docs[r], d, clock.HLC(next[r]), `{"t":{"$remove":[`+strconv.Quote(m)+`]}}`)
					sets[r] = sets[r].Remove(m)
				}
			}
		}
		for r := range 3 {
			var got struct {
				V *int64    `json:"v"`
				T *[]string `json:"t"`
			}
			doc, ok := docs[r].Document()
			if ok {
				if err := json.Unmarshal(doc, &got); err != nil {
					t.Fatal(err)
				}
			}
			if !counters[r].Empty() && (got.V == nil || *got.V != counters[r].Value()) {
				t.Fatalf("replica %d: counter %v, document %s", r, counters[r].Value(), doc)
			}
			if counters[r].Empty() && got.V != nil {
				t.Fatalf("replica %d: no counter, document %s", r, doc)
			}
			if sets[r].Len() > 0 && (got.T == nil || !slices.Equal(*got.T, sets[r].Members())) {
				t.Fatalf("replica %d: set %v, document %s", r, sets[r].Members(), doc)
			}
			if sets[r].Len() == 0 && got.T != nil && len(*got.T) > 0 {
				t.Fatalf("replica %d: empty set, document %s", r, doc)
			}
		}
	})
}

func mustPatchR(t *rapid.T, s merge.DocState, d clock.Dot, at clock.HLC, patch string) merge.DocState {
	out, err := s.Patch(d, at, []byte(patch))
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	return out
}

// The generated states exercise the new kinds.
func TestDocStatesHoldCountersAndSets(t *testing.T) {
	ids := proptest.Pool(3)
	var counters, sets int
	rapid.Check(t, func(t *rapid.T) {
		s := proptest.DocStates(ids).Draw(t, "s").String()
		if strings.Contains(s, "=+") {
			counters++
		}
		if strings.Contains(s, "=member") {
			sets++
		}
	})
	if counters < 2 || sets < 2 {
		t.Fatalf("of the generated states, %d hold a counter and %d a set", counters, sets)
	}
}

// FuzzDocPatch: Patch, Replace and ReplaceOps never panic on any input against a
// document holding every kind of field; they fail with ErrBadPatch or
// return a state that round-trips through Encode and DecodeDoc, reads as
// valid JSON and dominates the state it came from.
//
//	go test -run='^$' -fuzz=FuzzDocPatch -fuzztime=60s ./merge/
func FuzzDocPatch(f *testing.F) {
	ids := proptest.Pool(2)
	base, err := merge.DocState{}.Patch(ddot(ids[0], 1), 10, []byte(`{"n":1,"o":{"x":"s"},"c":{"$inc":2},"t":{"$add":["a","b"]},"e":{"$set":[]}}`))
	if err != nil {
		f.Fatal(err)
	}
	base = base.Join(func() merge.DocState {
		s, _ := merge.DocState{}.Patch(ddot(ids[1], 1), 20, []byte(`{"c":{"$inc":-1},"t":{"$add":["c"]},"n":"v"}`))
		return s
	}())
	for _, seed := range []string{
		`{"c":{"$inc":1}}`, `{"t":{"$remove":["a"]},"o":{"y":{"$add":["q"]}}}`, `{"$$x":{"$$y":1}}`,
		`{"c":{"$counter":-9223372036854775808}}`, `{"t":{"$set":["z","z"]}}`, `{"o":{"$inc":1}}`,
		`{"n":{"$push":1}}`, `{"c":{"$inc":1,"d":2}}`, `{"c":7,"t":["a"],"o":{"x":"s"}}`,
		`{"c":{"$counter":3},"t":{"$set":["a"]},"o":{"$$x":{}},"$$":[{"$y":1}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, patch []byte) {
		for name, op := range map[string]func(merge.DocState, clock.Dot, clock.HLC, []byte) (merge.DocState, error){
			"patch": merge.DocState.Patch, "replace": merge.DocState.Replace, "replaceops": merge.DocState.ReplaceOps,
		} {
			s, err := op(base, ddot(ids[0], 2), 30, patch)
			if err != nil {
				if !errors.Is(err, merge.ErrBadPatch) {
					t.Fatalf("%s: error %v does not wrap ErrBadPatch", name, err)
				}
				continue
			}
			back, err := merge.DecodeDoc(s.Encode())
			if err != nil || !back.Equal(s) {
				t.Fatalf("%s: the state does not round-trip: %v", name, err)
			}
			if doc, ok := s.Document(); ok && !json.Valid(doc) {
				t.Fatalf("%s: document %q is not valid JSON", name, doc)
			}
			if !s.Join(base).Equal(s) {
				t.Fatalf("%s: not an inflation of the base", name)
			}
		}
	})
}
