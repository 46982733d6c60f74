package proptest_test

import (
	"slices"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

// The generators are part of the test oracle, so they are tested too.

func TestPool(t *testing.T) {
	pool := proptest.Pool(proptest.PoolSize)
	seen := map[clock.ReplicaID]bool{}
	for _, id := range pool {
		if id.IsZero() || seen[id] {
			t.Fatalf("pool id %v is zero or repeated", id)
		}
		seen[id] = true
	}
	if len(proptest.Pool(0)) != 1 || len(proptest.Pool(99)) != proptest.PoolSize {
		t.Fatalf("Pool does not clamp")
	}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, proptest.PoolSize).Draw(t, "n")
		id := proptest.ReplicaIDs(n).Draw(t, "id")
		if !slices.Contains(pool[:n], id) {
			t.Fatalf("ReplicaIDs(%d) drew %v", n, id)
		}
	})
}

func TestRecordGeneratorIsValid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := proptest.Record().Draw(t, "record")
		if err := proptest.ValidateRecord(r); err != nil {
			t.Fatalf("Record() drew an invalid record: %v", err)
		}
	})
}

func TestValidateRecordRejects(t *testing.T) {
	id := proptest.Pool(1)[0]
	d1, d2 := clock.Dot{Replica: id, Counter: 1}, clock.Dot{Replica: id, Counter: 2}
	c := clock.Vector{id: 2}
	for name, r := range map[string]merge.Record{
		"not covered": {Clock: clock.Vector{id: 1}, Versions: []merge.Version{{Dot: d2}}},
		"zero dot":    {Clock: c, Versions: []merge.Version{{}}},
		"unsorted":    {Clock: c, Versions: []merge.Version{{Dot: d2}, {Dot: d1}}},
		"duplicate":   {Clock: c, Versions: []merge.Version{{Dot: d1}, {Dot: d1}}},
		"tombstone":   {Clock: c, Versions: []merge.Version{{Dot: d1, Deleted: true, Value: []byte{}}}},
	} {
		if proptest.ValidateRecord(r) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Records drawn from one universe agree on every dot they share.
func TestUniverseRecordsAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := proptest.Universes().Draw(t, "universe")
		g := proptest.RecordFrom(u)
		for _, r := range []merge.Record{g.Draw(t, "a"), g.Draw(t, "b")} {
			for _, v := range r.Versions {
				if !v.Equal(u[v.Dot]) {
					t.Fatalf("version %v differs from the universe", v.Dot)
				}
			}
		}
	})
}

// In every state of a history, the clock covers exactly the dots the
// replica has seen (ground truth kept without vectors).
func TestHistoryClocksMatchGroundTruth(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := proptest.Histories(4, 40).Draw(t, "history")
		written := h.Written()
		for i, s := range h.Steps {
			for d := range written {
				if s.State.Clock.Covers(d) != s.Seen[d] {
					t.Fatalf("step %d (%v): clock %v covers %v = %v, seen = %v", i, s, s.State.Clock, d, s.State.Clock.Covers(d), s.Seen[d])
				}
			}
			for _, e := range s.State.Clock.Entries() {
				if !written[e] {
					t.Fatalf("step %d: clock %v has an entry for unwritten %v", i, s.State.Clock, e)
				}
			}
		}
		for i, st := range h.States {
			if len(h.Steps) > 0 && st.IsZero() != (len(h.Seen[i]) == 0) {
				t.Fatalf("replica %d: zero state %v, seen %d dots", i, st.IsZero(), len(h.Seen[i]))
			}
		}
	})
}

// Vector clocks characterize causality: the clock a write was made with
// (its record's clock right after the write) is before another write's
// clock exactly when the first write is in the second's causal past.
func TestHistoryVectorsCharacterizeCausality(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := proptest.Histories(4, 40).Draw(t, "history")
		at := map[clock.Dot]clock.Vector{}
		for _, s := range h.Steps {
			if s.Kind == proptest.Write {
				at[s.Version.Dot] = s.State.Clock
			}
		}
		for d, vd := range at {
			for e, ve := range at {
				var want clock.Ordering
				switch {
				case d == e:
					want = clock.Equal
				case h.HappenedBefore(d, e):
					want = clock.Before
				case h.HappenedBefore(e, d):
					want = clock.After
				default:
					want = clock.Concurrent
				}
				if got := vd.Compare(ve); got != want {
					t.Fatalf("clock of %v ? clock of %v = %v, ground truth %v", d, e, got, want)
				}
			}
		}
		// The causal past is transitively closed and irreflexive.
		for e, past := range h.Past {
			if past[e] {
				t.Fatalf("%v is in its own past", e)
			}
			for d := range past {
				for c := range h.Past[d] {
					if !past[c] {
						t.Fatalf("%v < %v < %v but %v is not in the past of %v", c, d, e, c, e)
					}
				}
			}
		}
	})
}

func TestRunIsDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := proptest.Histories(3, 20).Draw(t, "history")
		steps := slices.Clone(h.Steps)
		again := proptest.Run(h.Replicas, steps)
		for i := range h.States {
			if !h.States[i].Equal(again.States[i]) {
				t.Fatalf("replica %d differs on replay", i)
			}
		}
		for i := range steps {
			if steps[i].Kind != h.Steps[i].Kind || steps[i].At != h.Steps[i].At {
				t.Fatalf("Run modified its input")
			}
		}
	})
}
