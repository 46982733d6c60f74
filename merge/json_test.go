package merge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

func mustPatch(t *testing.T, s merge.DocState, d clock.Dot, at clock.HLC, patch string) merge.DocState {
	t.Helper()
	out, err := s.Patch(d, at, []byte(patch))
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	return out
}

func docText(t interface{ Helper() }, s merge.DocState) string {
	t.Helper()
	doc, ok := s.Document()
	if !ok {
		return "<deleted>"
	}
	return string(doc)
}

func TestDocTwoReplicasEditDifferentFields(t *testing.T) {
	ids := proptest.Pool(2)
	a, b := ids[0], ids[1]
	var base merge.DocState
	base = mustPatch(t, base, clock.Dot{Replica: a, Counter: 1}, 10, `{"name":"Ann","email":"ann@old","tags":["x"],"addr":{"city":"Oslo","zip":"0150"}}`)
	phone := mustPatch(t, base, clock.Dot{Replica: a, Counter: 2}, 20, `{"name":"Anna","addr":{"zip":"0151"}}`)
	laptop := mustPatch(t, base, clock.Dot{Replica: b, Counter: 1}, 21, `{"email":"anna@new","addr":{"city":"Bergen"}}`)
	want := `{"addr":{"city":"Bergen","zip":"0151"},"email":"anna@new","name":"Anna","tags":["x"]}`
	if got := docText(t, phone.Join(laptop)); got != want {
		t.Fatalf("phone+laptop = %s, want %s", got, want)
	}
	if got := docText(t, laptop.Join(phone)); got != want {
		t.Fatalf("laptop+phone = %s, want %s", got, want)
	}
}

func TestDocConcurrentAssignmentsFollowHLC(t *testing.T) {
	ids := proptest.Pool(2)
	var s merge.DocState
	x := mustPatch(t, s, clock.Dot{Replica: ids[0], Counter: 1}, 30, `{"n":1}`)
	y := mustPatch(t, s, clock.Dot{Replica: ids[1], Counter: 1}, 20, `{"n":{"deep":true}}`)
	if got := docText(t, x.Join(y)); got != `{"n":1}` {
		t.Fatalf("got %s, want the later assignment", got)
	}
	y2 := mustPatch(t, s, clock.Dot{Replica: ids[1], Counter: 1}, 40, `{"n":{"deep":true}}`)
	if got := docText(t, x.Join(y2)); got != `{"n":{"deep":true}}` {
		t.Fatalf("got %s, want the later (object) assignment", got)
	}
}

func TestDocRemoveVersusConcurrentEditIsAddWins(t *testing.T) {
	ids := proptest.Pool(2)
	var s merge.DocState
	s = mustPatch(t, s, clock.Dot{Replica: ids[0], Counter: 1}, 10, `{"addr":{"city":"Oslo","zip":"0150"},"name":"A"}`)
	removed := mustPatch(t, s, clock.Dot{Replica: ids[0], Counter: 2}, 30, `{"addr":null}`)
	edited := mustPatch(t, s, clock.Dot{Replica: ids[1], Counter: 1}, 20, `{"addr":{"zip":"0151"}}`)
	// The edit survives the removal; what the removal saw and the edit did
	// not touch (city) stays removed.
	if got := docText(t, removed.Join(edited)); got != `{"addr":{"zip":"0151"},"name":"A"}` {
		t.Fatalf("got %s", got)
	}
	// A clear (Delete) works the same way.
	cleared := s.Clear()
	if !cleared.Empty() {
		t.Fatal("cleared document is not empty")
	}
	if got := docText(t, cleared.Join(edited)); got != `{"addr":{"zip":"0151"}}` {
		t.Fatalf("clear+edit = %s", got)
	}
	// A removal that saw the edit wins.
	after := mustPatch(t, removed.Join(edited), clock.Dot{Replica: ids[0], Counter: 3}, 40, `{"addr":null}`)
	if got := docText(t, after.Join(edited)); got != `{"name":"A"}` {
		t.Fatalf("got %s", got)
	}
}

func TestDocReplaceIsThePatchOfTheChangedFields(t *testing.T) {
	ids := proptest.Pool(2)
	var s merge.DocState
	s = mustPatch(t, s, clock.Dot{Replica: ids[0], Counter: 1}, 10, `{"name":"A","email":"a@x","n":{"p":1,"q":2}}`)
	mine, err := s.Replace(clock.Dot{Replica: ids[0], Counter: 2}, 20, []byte(`{"name":"B","email":"a@x","n":{"p":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := s.Replace(clock.Dot{Replica: ids[1], Counter: 1}, 30, []byte(` {"name":"A", "email":"b@x", "n":{"p":1,"q":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := docText(t, mine.Join(theirs)), `{"email":"b@x","n":{"p":1},"name":"B"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestDocBadPatches(t *testing.T) {
	id := proptest.Pool(1)[0]
	var s merge.DocState
	s = mustPatch(t, s, clock.Dot{Replica: id, Counter: 1}, 10, `{"a":1}`)
	for _, bad := range []string{``, `[1]`, `"x"`, `null`, `3`, `true`, `{"a":`, `{"a":1}x`, "{\"a\":\"\xff\"}"} {
		if _, err := s.Patch(clock.Dot{Replica: id, Counter: 2}, 20, []byte(bad)); !errors.Is(err, merge.ErrBadPatch) {
			t.Errorf("Patch(%q) = %v, want ErrBadPatch", bad, err)
		}
		if _, err := s.Replace(clock.Dot{Replica: id, Counter: 2}, 20, []byte(bad)); !errors.Is(err, merge.ErrBadPatch) {
			t.Errorf("Replace(%q) = %v, want ErrBadPatch", bad, err)
		}
	}
	if got := docText(t, s); got != `{"a":1}` {
		t.Fatalf("a failed patch changed the state: %s", got)
	}
}

func TestDocJoinIsALattice(t *testing.T) {
	ids := proptest.Pool(3)
	states := proptest.DocStates(ids)
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := states.Draw(t, "a"), states.Draw(t, "b"), states.Draw(t, "c")
		if !a.Join(a).Equal(a) {
			t.Fatalf("not idempotent: %v", a)
		}
		if !a.Join(b).Equal(b.Join(a)) {
			t.Fatalf("not commutative: %v, %v", a, b)
		}
		if !a.Join(b).Join(c).Equal(a.Join(b.Join(c))) {
			t.Fatalf("not associative")
		}
		// A patch is an inflation: it dominates the state it came from.
		d := clock.Dot{Replica: ids[0], Counter: a.Context()[ids[0]] + 1}
		p, err := a.Patch(d, 99, proptest.DocPatches().Draw(t, "patch"))
		if errors.Is(err, merge.ErrFieldKind) {
			return // an operation on a field of another kind
		}
		if err != nil {
			t.Fatal(err)
		}
		if !p.Join(a).Equal(p) {
			t.Fatalf("patch %v of %v is not an inflation", p, a)
		}
	})
}

// Concurrent patches of disjoint fields both survive, whatever else the
// replicas hold.
func TestDocDisjointPatchesBothSurvive(t *testing.T) {
	ids := proptest.Pool(2)
	rapid.Check(t, func(t *rapid.T) {
		base := proptest.DocStates(ids[:1]).Draw(t, "base")
		da := clock.Dot{Replica: ids[0], Counter: base.Context()[ids[0]] + 1}
		db := clock.Dot{Replica: ids[1], Counter: base.Context()[ids[1]] + 1}
		va := rapid.SampledFrom([]string{`1`, `"s"`, `[true]`}).Draw(t, "va")
		vb := rapid.SampledFrom([]string{`2`, `"t"`, `[false]`}).Draw(t, "vb")
		x, _ := base.Patch(da, proptest.HLC().Draw(t, "ta"), []byte(`{"p":`+va+`}`))
		y, _ := base.Patch(db, proptest.HLC().Draw(t, "tb"), []byte(`{"q":`+vb+`}`))
		got := docText(t, x.Join(y))
		if !strings.Contains(got, `"p":`+va) || !strings.Contains(got, `"q":`+vb) {
			t.Fatalf("lost an edit: %s", got)
		}
	})
}

func TestDocReidentifyMovesUnpublishedEntries(t *testing.T) {
	ids := proptest.Pool(2)
	var s merge.DocState
	s = mustPatch(t, s, clock.Dot{Replica: ids[0], Counter: 1}, 10, `{"a":1}`)
	s = mustPatch(t, s, clock.Dot{Replica: ids[0], Counter: 2}, 20, `{"b":2}`)
	moved := s.Reidentify(ids[0], 1, clock.Dot{Replica: ids[1], Counter: 1})
	if got := docText(t, moved); got != `{"a":1,"b":2}` {
		t.Fatalf("got %s", got)
	}
	if ctx := moved.Context(); ctx[ids[0]] != 1 || ctx[ids[1]] != 1 {
		t.Fatalf("context %v", ctx)
	}
}

func TestJSONPolicyReads(t *testing.T) {
	ids := proptest.Pool(2)
	var s merge.DocState
	x := mustPatch(t, s, clock.Dot{Replica: ids[0], Counter: 1}, 10, `{"a":1}`)
	y := mustPatch(t, s, clock.Dot{Replica: ids[1], Counter: 1}, 10, `{"b":2}`)
	res, err := merge.JSON{}.Resolve("k", []merge.Version{
		{Dot: clock.Dot{Replica: ids[0], Counter: 1}, Value: x.Encode()},
		{Dot: clock.Dot{Replica: ids[1], Counter: 1}, Value: y.Encode()},
	})
	if err != nil || string(res.Value) != `{"a":1,"b":2}` || res.Winner != -1 || res.Deleted {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	if _, err := (merge.JSON{}).Resolve("k", []merge.Version{{Value: []byte(`{"a":1}`)}}); !errors.Is(err, merge.ErrBadState) {
		t.Fatalf("plain JSON bytes: %v, want ErrBadState", err)
	}
	if p, ok := merge.Builtin("json"); !ok || p.Name() != "json" {
		t.Fatal("json is not a built-in")
	}
}

func TestDocKeysAreWrittenAsEncodingJSONDoes(t *testing.T) {
	id := proptest.Pool(1)[0]
	s := mustPatch(t, merge.DocState{}, clock.Dot{Replica: id, Counter: 1}, 10,
		`{"a<b":1,"é":2,"q\"uote":3,"tab\t":4,"plain":{"x&y":[1,{"z":null}]}}`)
	want := `{"a\u003cb":1,"plain":{"x\u0026y":[1,{"z":null}]},"q\"uote":3,"tab\t":4,"é":2}`
	if got := docText(t, s); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// FuzzDecodeDoc: DecodeDoc never panics; it fails with ErrBadState or
// returns a state that encodes to the same bytes and reads as a document
// that is valid JSON.
//
//	go test -run='^$' -fuzz=FuzzDecodeDoc -fuzztime=60s ./merge/
func FuzzDecodeDoc(f *testing.F) {
	ids := proptest.Pool(2)
	var s merge.DocState
	f.Add(s.Encode())
	s, _ = s.Patch(clock.Dot{Replica: ids[0], Counter: 1}, 10, []byte(`{"a":1,"n":{"x":[true],"y":{}}}`))
	f.Add(s.Encode())
	s, _ = s.Patch(clock.Dot{Replica: ids[1], Counter: 4}, 9, []byte(`{"a":null,"n":{"x":"s"}}`))
	f.Add(s.Encode())
	s, _ = s.Patch(clock.Dot{Replica: ids[1], Counter: 5}, 11, []byte(`{"v":{"$inc":-3},"t":{"$add":["b","a"]},"n":{"e":{"$remove":["x"]}}}`))
	f.Add(s.Encode())
	s, _ = s.Patch(clock.Dot{Replica: ids[0], Counter: 2}, 12, []byte(`{"v":{"$inc":5},"t":{"$remove":["a"]}}`))
	f.Add(s.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := merge.DecodeDoc(data)
		if err != nil {
			if !errors.Is(err, merge.ErrBadState) {
				t.Fatalf("error %v does not wrap ErrBadState", err)
			}
			return
		}
		if !bytes.Equal(s.Encode(), data) {
			t.Fatal("a decoded state does not encode to its bytes")
		}
		if doc, ok := s.Document(); ok && !json.Valid(doc) {
			t.Fatalf("document %q is not valid JSON", doc)
		}
	})
}

func TestJSONMVKeepsConcurrentAssignments(t *testing.T) {
	ids := proptest.Pool(2)
	p, ok := merge.Builtin("json-mv")
	if !ok || p.Name() != "json-mv" {
		t.Fatal("json-mv is not a built-in")
	}
	var base merge.DocState
	base = mustPatch(t, base, clock.Dot{Replica: ids[0], Counter: 1}, 10, `{"name":"A","email":"a@x","addr":{"city":"Oslo"}}`)
	read := func(states ...merge.DocState) merge.Result {
		t.Helper()
		var vs []merge.Version
		for i, s := range states {
			vs = append(vs, merge.Version{Dot: clock.Dot{Replica: ids[i], Counter: 9}, Value: s.Encode()})
		}
		res, err := p.Resolve("k", vs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Different fields: no conflict, the merged document.
	x := mustPatch(t, base, clock.Dot{Replica: ids[0], Counter: 2}, 20, `{"name":"Ann"}`)
	y := mustPatch(t, base, clock.Dot{Replica: ids[1], Counter: 1}, 30, `{"addr":{"zip":"0150"}}`)
	if res := read(x, y); res.Conflict || string(res.Value) != `{"addr":{"city":"Oslo","zip":"0150"},"email":"a@x","name":"Ann"}` {
		t.Fatalf("disjoint fields: %+v %s", res, res.Value)
	}
	// The same field, different values: a conflict, until a patch that saw
	// both settles it.
	y2 := mustPatch(t, base, clock.Dot{Replica: ids[1], Counter: 1}, 30, `{"name":"Anne"}`)
	if res := read(x, y2); !res.Conflict || res.Winner != -1 {
		t.Fatalf("same field: %+v", res)
	}
	settled := mustPatch(t, x.Join(y2), clock.Dot{Replica: ids[0], Counter: 3}, 40, `{"name":"Anna"}`)
	if res := read(settled); res.Conflict || string(res.Value) != `{"addr":{"city":"Oslo"},"email":"a@x","name":"Anna"}` {
		t.Fatalf("settled: %+v %s", res, res.Value)
	}
	// The same value twice is no conflict; an object against a value is.
	y3 := mustPatch(t, base, clock.Dot{Replica: ids[1], Counter: 1}, 30, `{"name":"Ann"}`)
	if res := read(x, y3); res.Conflict {
		t.Fatalf("equal values: %+v", res)
	}
	x4 := mustPatch(t, base, clock.Dot{Replica: ids[0], Counter: 2}, 20, `{"addr":{"zip":"0150"}}`)
	y4 := mustPatch(t, base, clock.Dot{Replica: ids[1], Counter: 1}, 30, `{"addr":"none"}`)
	if res := read(x4, y4); !res.Conflict {
		t.Fatalf("object against value: %+v", res)
	}
	// Under json the HLC rule settles the same concurrent edits.
	if res, _ := (merge.JSON{}).Resolve("k", []merge.Version{{Value: x.Encode()}, {Value: y2.Encode()}}); res.Conflict || !strings.Contains(string(res.Value), `"name":"Anne"`) {
		t.Fatalf("json: %+v %s", res, res.Value)
	}
}

// A whole-document write settles a field's concurrent assignments even when
// it keeps the value the HLC rule showed.
func TestDocReplaceSettlesConcurrentAssignments(t *testing.T) {
	ids := proptest.Pool(2)
	var base merge.DocState
	x := mustPatch(t, base, clock.Dot{Replica: ids[0], Counter: 1}, 10, `{"n":{"a":"x"},"m":1}`)
	y := mustPatch(t, base, clock.Dot{Replica: ids[1], Counter: 1}, 20, `{"n":{"a":"y"},"m":1}`)
	both := x.Join(y)
	if !both.Conflicted() {
		t.Fatal("no conflict")
	}
	put, err := both.Replace(clock.Dot{Replica: ids[0], Counter: 2}, 30, []byte(`{"n":{"a":"y"},"m":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if put.Conflicted() || docText(t, put) != `{"m":1,"n":{"a":"y"}}` {
		t.Fatalf("after the put: %v", put)
	}
}
