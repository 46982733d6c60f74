package sim

import (
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// TestDocEntriesDecodesState checks the oracle's own decoder of a json
// document's state against the states package merge writes: every field,
// mark, counter entry and member, with its dot and HLC.
func TestDocEntriesDecodesState(t *testing.T) {
	a := clock.ReplicaID{1}
	t1 := clock.MakeHLC(1000, 0)
	s, err := merge.DocState{}.Patch(clock.Dot{Replica: a, Counter: 1}, t1,
		[]byte(`{"name":"x","addr":{"city":"y"},"visits":{"$inc":2},"tags":{"$add":["m"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	es, err := docEntries(s.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.dot != (clock.Dot{Replica: a, Counter: 1}) || e.time != t1 {
			t.Errorf("entry %+v: want dot A:1 at %d", e, t1)
		}
		kind := "value"
		switch {
		case e.member:
			kind = "member"
		case e.counter:
			kind = "counter"
		case e.mark:
			kind = "mark"
		}
		got = append(got, e.field+" "+kind+" "+e.value)
	}
	want := "addr mark |addr.city value \"y\"|name value \"x\"|tags mark |tags member m|visits counter "
	if g := strings.Join(got, "|"); g != want {
		t.Errorf("entries:\n got %s\nwant %s", g, want)
	}
	if _, err := docEntries([]byte("not a state")); err == nil {
		t.Error("docEntries accepted bytes that are no state")
	}
}

// TestRestampedDoc checks the oracle's model of a reidentify re-stamp of a
// json key: the assignments merge.DocState.Reidentify moves to the new dot
// keep their HLC and count as the re-stamp's; the dropped write they came
// from keeps none of its own; one the old id never made is refused.
func TestRestampedDoc(t *testing.T) {
	old, newID, other := clock.ReplicaID{1}, clock.ReplicaID{2}, clock.ReplicaID{3}
	o := newOracle(map[clock.ReplicaID]string{old: "A", newID: "A'", other: "B"})
	t1, t2 := clock.MakeHLC(5000, 0), clock.MakeHLC(1000, 0)
	q := o.addPatch(t, "k", 0, clock.Dot{Replica: old, Counter: 1}, t1, "name", "x", nil)
	// B renames concurrently, at an earlier HLC.
	o.addPatch(t, "k", 1, clock.Dot{Replica: other, Counter: 1}, t2, "name", "b", nil)
	kept, err := merge.DocState{}.Patch(q.dot, t1, []byte(`{"name":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	d := clock.Dot{Replica: newID, Counter: 1}
	state := kept.Reidentify(old, 0, d).Encode()
	o.abandon(0, old, 0, []*event{q})
	e := o.addEvent(t, "k", 0, d, clock.MakeHLC(6000, 0), state, map[int]bool{q.n: true})
	if v := o.restampedDoc(e, old, 0, state); v != nil {
		t.Fatal(v)
	}
	if len(e.restamped) != 1 || e.restamped[0].field != "name" || e.restamped[0].value != "x" || e.restamped[0].time != t1 {
		t.Fatalf("re-stamped assignments %+v, want name=x at the old HLC", e.restamped)
	}
	if doc, _, conflict := o.document("k"); doc != `{"name":"x"}` || !conflict {
		t.Errorf("document %s conflict=%v, want name=x (the old HLC wins) in conflict with b", doc, conflict)
	}
	// A write that saw the re-stamp replaces its assignment.
	o.addPatch(t, "k", 1, clock.Dot{Replica: other, Counter: 2}, t2+1, "name", "c", map[int]bool{e.n: true, q.n: true})
	if doc, _, conflict := o.document("k"); doc != `{"name":"c"}` || !conflict {
		t.Errorf("document %s conflict=%v after a write that saw the re-stamp, want name=c in conflict with b", doc, conflict)
	}

	// An assignment the old id never made is refused.
	d2 := clock.Dot{Replica: newID, Counter: 2}
	forged, err := merge.DocState{}.Patch(d2, t1, []byte(`{"email":"forged"}`))
	if err != nil {
		t.Fatal(err)
	}
	f := o.addEvent(t, "k2", 0, d2, clock.MakeHLC(7000, 0), forged.Encode(), nil)
	if v := o.restampedDoc(f, old, 0, forged.Encode()); v == nil || v.Rule != RuleDots {
		t.Errorf("a re-stamp holding an assignment no write made: %v, want a dots violation", v)
	}
}

// addPatch records a patch of field at node with dot d and HLC at, whose
// writer had seen the events past.
func (o *oracle) addPatch(t *testing.T, key string, node int, d clock.Dot, at clock.HLC, field, value string, past map[int]bool) *event {
	t.Helper()
	e := o.addEvent(t, key, node, d, at, []byte(field+"="+value), past)
	e.kind, e.elem, e.field = OpPatch, field, value
	return e
}

func (o *oracle) addEvent(t *testing.T, key string, node int, d clock.Dot, at clock.HLC, value []byte, past map[int]bool) *event {
	t.Helper()
	e, v := o.record(node, 0, key, merge.Record{}, merge.Version{Dot: d, Time: at, Value: value}, 0)
	if v != nil {
		t.Fatal(v)
	}
	for p := range past {
		e.past[p] = true
	}
	e.kind = OpPut
	return e
}
