package merge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

// opsPatch draws a patch in operation form whose names include "$"-names
// (escaped as "$$"), nested objects up to three deep, registers, counters
// and sets.
func opsPatch(depth int) *rapid.Generator[string] {
	leaf := rapid.SampledFrom([]string{`1`, `-2.5`, `"s"`, `true`, `[1,{"$x":2}]`, `["p","q"]`, `[]`, `{}`, `null`,
		`{"$inc":3}`, `{"$inc":-7}`, `{"$counter":0}`, `{"$counter":-4}`,
		`{"$add":["p","q"]}`, `{"$remove":["p"]}`, `{"$set":[]}`, `{"$set":["z","a","a"]}`})
	names := rapid.SampledFrom([]string{"a", "b", "$$ref", "$$", "$$$c", "x\"y", "é"})
	return rapid.Custom(func(t *rapid.T) string {
		fields := rapid.SliceOfNDistinct(names, 0, 4, rapid.ID[string]).Draw(t, "fields")
		parts := make([]string, 0, len(fields))
		for _, f := range fields {
			v := leaf.Draw(t, "leaf")
			if depth > 0 && rapid.IntRange(0, 2).Draw(t, "nested") == 0 {
				v = opsPatch(depth-1).Draw(t, "object")
			}
			k, _ := json.Marshal(f)
			parts = append(parts, string(k)+":"+v)
		}
		return "{" + strings.Join(parts, ",") + "}"
	})
}

// opsStates draws document states with every kind of field: the join of
// histories of opsPatch patches on different replicas (concurrent edits
// included), or a proptest.DocStates state.
func opsStates(ids []clock.ReplicaID) *rapid.Generator[merge.DocState] {
	patches := opsPatch(2)
	return rapid.Custom(func(t *rapid.T) merge.DocState {
		if rapid.IntRange(0, 3).Draw(t, "generator") == 0 {
			return proptest.DocStates(ids).Draw(t, "docstate")
		}
		var out merge.DocState
		for h := range rapid.IntRange(1, 2).Draw(t, "histories") {
			s := out
			for i := range rapid.IntRange(1, 3).Draw(t, "patches") {
				p := patches.Draw(t, "patch")
				d := clock.Dot{Replica: ids[h], Counter: uint64(10*h + i + 1)}
				n, err := s.Patch(d, clock.HLC(rapid.IntRange(1, 50).Draw(t, "time")), []byte(p))
				if errors.Is(err, merge.ErrFieldKind) {
					continue
				}
				if err != nil {
					t.Fatalf("patch %s: %v", p, err)
				}
				s = n
			}
			out = out.Join(s)
		}
		return out
	})
}

// Operations, then ReplaceOps of it on the empty document, reads the same
// and keeps every field's kind (the operation form read back is the same
// bytes); on any other document, ReplaceOps makes it read exactly so too
// (whole-document semantics), and a second ReplaceOps of the same form
// writes nothing new.
func TestDocOperationsRoundTrip(t *testing.T) {
	ids := proptest.Pool(3)
	var kinds [4]int // counter, set, "$" name, nested object
	rapid.Check(t, func(t *rapid.T) {
		s := opsStates(ids).Draw(t, "s")
		ops, ok := s.Operations()
		doc, docOK := s.Document()
		if ok != docOK {
			t.Fatalf("Operations ok %v, Document ok %v", ok, docOK)
		}
		if !ok {
			return
		}
		if !json.Valid(ops) {
			t.Fatalf("operation form %s is not valid JSON", ops)
		}
		for i, mark := range []string{`{"$counter":`, `{"$set":`, `"$$`, `:{"`} {
			if bytes.Contains(ops, []byte(mark)) {
				kinds[i]++
			}
		}
		d := clock.Dot{Replica: ids[2], Counter: 1000}
		back, err := merge.DocState{}.ReplaceOps(d, 99, ops)
		if err != nil {
			t.Fatalf("ReplaceOps(%s) on the empty document: %v", ops, err)
		}
		if got, _ := back.Document(); !bytes.Equal(got, doc) {
			t.Fatalf("document %s read back as %s (operation form %s)", doc, got, ops)
		}
		if got, _ := back.Operations(); !bytes.Equal(got, ops) {
			t.Fatalf("operation form %s read back as %s: a field changed kind", ops, got)
		}
		// The kinds, seen by what a patch does: a probe patch (increments,
		// adds, assignments) applied to both fails on both with
		// ErrFieldKind, or leaves both reading the same.
		probe := opsPatch(2).Draw(t, "probe")
		pd := clock.Dot{Replica: ids[2], Counter: 5000}
		ps, serr := s.Patch(pd, 100, []byte(probe))
		pb, berr := back.Patch(pd, 100, []byte(probe))
		if errors.Is(serr, merge.ErrFieldKind) != errors.Is(berr, merge.ErrFieldKind) {
			t.Fatalf("probe %s on the original: %v; on the restored %s: %v", probe, serr, ops, berr)
		}
		if serr == nil && docText(t, ps) != docText(t, pb) {
			t.Fatalf("probe %s: the original reads %s, the restored %s", probe, docText(t, ps), docText(t, pb))
		}
		if back.Conflicted() {
			t.Fatalf("the restored document %s holds concurrent assignments", ops)
		}

		// Into an existing document: exactly this state, whatever was there.
		other := opsStates(ids).Draw(t, "existing")
		over, err := other.ReplaceOps(clock.Dot{Replica: ids[2], Counter: 2000}, 99, ops)
		if err != nil {
			t.Fatalf("ReplaceOps(%s) on %s: %v", ops, other, err)
		}
		if got, _ := over.Operations(); !bytes.Equal(got, ops) {
			t.Fatalf("ReplaceOps(%s) on %s reads %s", ops, docText(t, other), got)
		}
		if !over.Join(other).Equal(over) {
			t.Fatalf("ReplaceOps is not an inflation of the state it starts from")
		}
		again, err := over.ReplaceOps(clock.Dot{Replica: ids[2], Counter: 3000}, 99, ops)
		if err != nil {
			t.Fatal(err)
		}
		if !over.Conflicted() && again.String() != withDot(over, clock.Dot{Replica: ids[2], Counter: 3000}).String() {
			t.Fatalf("a second ReplaceOps of the same form wrote something:\n%s\n%s", over, again)
		}
	})
	for i, name := range []string{"a counter", "a set", `a "$" name`, "a nested object"} {
		if kinds[i] < 3 {
			t.Errorf("only %d generated documents hold %s", kinds[i], name)
		}
	}
}

// withDot is s with d added to its context, as a write that changes
// nothing leaves it.
func withDot(s merge.DocState, d clock.Dot) merge.DocState {
	ctx := s.Context()
	ctx.Add(d)
	out, err := merge.DocOf(merge.Record{Clock: ctx, Versions: []merge.Version{{Dot: d, Value: s.Encode()}}})
	if err != nil {
		panic(err)
	}
	return out
}

func TestDocOperationsForm(t *testing.T) {
	ids := proptest.Pool(1)
	s := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 1,
		`{"name":"Ann","visits":{"$inc":5},"tags":{"$add":["b","a"]},"$$ref":1,"o":{"$$$x":{"$set":[]},"k":[{"$v":1}]}}`)
	ops, _ := s.Operations()
	want := `{"$$ref":1,"name":"Ann","o":{"$$$x":{"$set":[]},"k":[{"$v":1}]},"tags":{"$set":["a","b"]},"visits":{"$counter":5}}`
	if string(ops) != want {
		t.Fatalf("operation form %s, want %s", ops, want)
	}
	if doc := docText(t, s); doc != `{"$ref":1,"name":"Ann","o":{"$$x":[],"k":[{"$v":1}]},"tags":["a","b"],"visits":5}` {
		t.Fatalf("document %s", doc)
	}

	// Plain values of every shape stay registers: an integer and an array
	// of strings do not become a counter or a set, even over one.
	over, err := s.ReplaceOps(ddot(ids[0], 2), 2, []byte(`{"visits":5,"tags":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := over.Operations(); string(got) != `{"tags":["a","b"],"visits":5}` {
		t.Fatalf("registers over a counter and a set read %s", got)
	}
	if _, err := over.Patch(ddot(ids[0], 3), 3, []byte(`{"visits":{"$inc":1}}`)); !errors.Is(err, merge.ErrFieldKind) {
		t.Fatalf("$inc of a register made by ReplaceOps: %v, want ErrFieldKind", err)
	}
}

func TestDocReplaceOpsBadInput(t *testing.T) {
	ids := proptest.Pool(1)
	base := mustPatch(t, merge.DocState{}, ddot(ids[0], 1), 1, `{"c":{"$inc":1}}`)
	for _, doc := range []string{
		`[1]`, `"s"`, `null`, `{`, ``,
		`{"$ref":1}`, `{"$counter":1}`, `{"$":1}`,
		`{"c":{"$inc":1}}`, `{"t":{"$add":["a"]}}`, `{"t":{"$remove":["a"]}}`,
		`{"c":{"$counter":1.5}}`, `{"c":{"$counter":"1"}}`, `{"t":{"$set":[1]}}`, `{"t":{"$set":"a"}}`,
		`{"o":{"$counter":1,"x":2}}`, `{"o":{"$push":1}}`, `{"o":{"p":{"$ref":1,"q":2}}}`,
	} {
		for _, s := range []merge.DocState{{}, base} {
			_, err := s.ReplaceOps(ddot(ids[0], 2), 2, []byte(doc))
			if !errors.Is(err, merge.ErrBadPatch) {
				t.Errorf("ReplaceOps(%s): %v, want ErrBadPatch", doc, err)
			}
		}
	}
	_, err := base.ReplaceOps(ddot(ids[0], 2), 2, []byte(`{"c":{"$inc":1}}`))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", "$counter")) {
		t.Fatalf("the error of $inc does not name $counter: %v", err)
	}
}
