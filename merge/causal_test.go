package merge_test

import (
	"slices"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

// TestContextWrite: a write with a context keeps exactly the versions of
// cur the context does not cover, beside the new one; its clock is cur's
// plus the new dot (the context is not joined in, so a dot it names that
// cur never saw stays unseen); it equals LocalWrite when the context
// covers cur's clock; it modifies nothing; and merging cur into it
// changes nothing (cur holds nothing the write has not seen or kept).
func TestContextWrite(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := proptest.Universes().Draw(t, "universe")
		cur := proptest.RecordFrom(u).Draw(t, "cur")
		g := proptest.Vector().Draw(t, "g")
		seen := proptest.Vector().Draw(t, "seen")
		if rapid.Bool().Draw(t, "seen covers cur") {
			seen = seen.Join(cur.Clock)
		}
		cur0, g0, seen0 := deepCopy(cur), g.Clone(), seen.Clone()
		base := cur.Clock
		if cur.IsZero() {
			base = g
		}
		id := proptest.ReplicaIDs(proptest.DefaultIDs).Draw(t, "writer")
		v := proptest.VersionAt(clock.Dot{Replica: id, Counter: base.Join(seen).Get(id) + 1}).Draw(t, "v")

		w := merge.ContextWrite(cur, g, seen, v)
		mustValid(t, "ContextWrite", w)
		if !cur.Equal(cur0) || !g.Equal(g0) || !seen.Equal(seen0) {
			t.Fatalf("ContextWrite modified its inputs")
		}
		want := base.Clone()
		want.Add(v.Dot)
		if !w.Clock.Equal(want) {
			t.Fatalf("clock %v, want %v (cur's plus the dot)", w.Clock, want)
		}
		if !w.Contains(v.Dot) {
			t.Fatalf("the write %v is not held: %v", v.Dot, dots(w))
		}
		for _, o := range cur.Versions {
			if kept := w.Contains(o.Dot); kept == seen.Covers(o.Dot) {
				t.Fatalf("version %v: kept=%v with context %v", o.Dot, kept, seen)
			}
		}
		if len(w.Versions) != 1+len(cur.Versions)-len(covered(cur, seen)) {
			t.Fatalf("holds %v: more than the write and cur's uncovered versions", dots(w))
		}
		if lw := merge.LocalWrite(cur, g, v); seen.Join(cur.Clock).Equal(seen) && !w.Equal(lw) {
			t.Fatalf("a context covering cur's clock: %v, LocalWrite gives %v", dots(w), dots(lw))
		}
		if m := merge.Merge(cur, w); !m.Equal(w) {
			t.Fatalf("Merge(cur, write) = %v, want the write's %v", dots(m), dots(w))
		}
	})
}

func covered(r merge.Record, seen clock.Vector) []clock.Dot {
	var out []clock.Dot
	for _, v := range r.Versions {
		if seen.Covers(v.Dot) {
			out = append(out, v.Dot)
		}
	}
	return out
}

// TestContextWriteExamples: a stale context keeps the racing sibling; an
// unknown dot in the context is not joined into the clock, so its version
// survives a later merge.
func TestContextWriteExamples(t *testing.T) {
	cur := merge.Record{Clock: vec(2, 1), Versions: []merge.Version{put(0, 2, "racer", 5), put(1, 1, "b", 4)}}
	w := merge.ContextWrite(cur, nil, vec(1, 1), put(0, 3, "rmw", 6))
	mustValid(t, "write", w)
	if got, want := dots(w), []clock.Dot{dot(0, 2), dot(0, 3)}; !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	// The context names dot(2, 7), which cur never saw: a version of it
	// merged in later stays.
	w = merge.ContextWrite(cur, nil, vec(2, 1, 7), put(0, 3, "rmw", 6))
	if w.Clock.Get(ids[2]) != 0 {
		t.Fatalf("the context's unseen entry was joined: %v", w.Clock)
	}
	late := merge.Record{Clock: vec(0, 1, 7), Versions: []merge.Version{put(2, 7, "late", 3)}}
	if m := merge.Merge(w, late); !m.Contains(dot(2, 7)) {
		t.Fatalf("the unseen version was dropped: %v", dots(m))
	}
}
