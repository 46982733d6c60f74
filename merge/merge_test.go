package merge_test

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

// ids from the fixed pool; in byte order: ids[3] < ids[1] < ids[0] < ids[2].
var ids = proptest.Pool(4)

func dot(i int, c uint64) clock.Dot { return clock.Dot{Replica: ids[i], Counter: c} }

func put(i int, c uint64, val string, at clock.HLC) merge.Version {
	return merge.Version{Value: []byte(val), Dot: dot(i, c), Time: at}
}

func del(i int, c uint64, at clock.HLC) merge.Version {
	return merge.Version{Deleted: true, Dot: dot(i, c), Time: at}
}

func vec(counters ...uint64) clock.Vector {
	v := clock.Vector{}
	for i, c := range counters {
		if c > 0 {
			v[ids[i]] = c
		}
	}
	return v
}

func dots(r merge.Record) []clock.Dot {
	out := make([]clock.Dot, len(r.Versions))
	for i, v := range r.Versions {
		out[i] = v.Dot
	}
	return out
}

func mustValid(t interface {
	Helper()
	Fatalf(string, ...any)
}, what string, r merge.Record) {
	t.Helper()
	if err := proptest.ValidateRecord(r); err != nil {
		t.Fatalf("%s is invalid: %v\n%+v", what, err, r)
	}
}

// deepCopy copies a record including its values, to detect mutation.
func deepCopy(r merge.Record) merge.Record {
	c := r.Clone()
	for i := range c.Versions {
		if c.Versions[i].Value != nil {
			c.Versions[i].Value = bytes.Clone(c.Versions[i].Value)
		}
	}
	return c
}

// Examples, each small enough to check by hand.
func TestMergeExamples(t *testing.T) {
	const t0 = clock.HLC(100)
	a1 := put(0, 1, "a1", t0)
	b1 := put(1, 1, "b1", t0+5) // concurrent with a1
	a2 := put(0, 2, "a2", t0)   // saw a1 and b1
	tests := []struct {
		name string
		a, b merge.Record
		want merge.Record
	}{
		{"zero and zero", merge.Record{}, merge.Record{}, merge.Record{Clock: vec()}},
		{"zero and one",
			merge.Record{}, merge.Record{Clock: vec(1), Versions: []merge.Version{a1}},
			merge.Record{Clock: vec(1), Versions: []merge.Version{a1}}},
		{"concurrent writes become siblings in dot order",
			merge.Record{Clock: vec(1), Versions: []merge.Version{a1}},
			merge.Record{Clock: vec(0, 1), Versions: []merge.Version{b1}},
			merge.Record{Clock: vec(1, 1), Versions: []merge.Version{b1, a1}}},
		{"a later write supersedes both siblings",
			merge.Record{Clock: vec(1, 1), Versions: []merge.Version{b1, a1}},
			merge.Record{Clock: vec(2, 1), Versions: []merge.Version{a2}},
			merge.Record{Clock: vec(2, 1), Versions: []merge.Version{a2}}},
		{"a sibling the other side has seen and dropped goes",
			merge.Record{Clock: vec(1, 1), Versions: []merge.Version{b1, a1}},
			merge.Record{Clock: vec(1, 1), Versions: []merge.Version{a1}},
			merge.Record{Clock: vec(1, 1), Versions: []merge.Version{a1}}},
		{"a write the other side has not seen stays, whatever its HLC",
			merge.Record{Clock: vec(2, 0), Versions: []merge.Version{put(0, 2, "old clock", 1)}},
			merge.Record{Clock: vec(0, 1), Versions: []merge.Version{b1}},
			merge.Record{Clock: vec(2, 1), Versions: []merge.Version{b1, put(0, 2, "old clock", 1)}}},
		{"a tombstone is a version like any other",
			merge.Record{Clock: vec(1), Versions: []merge.Version{a1}},
			merge.Record{Clock: vec(1, 1), Versions: []merge.Version{del(1, 1, 0)}},
			merge.Record{Clock: vec(1, 1), Versions: []merge.Version{del(1, 1, 0)}}},
		{"a record without versions still carries its clock",
			merge.Record{Clock: vec(1), Versions: []merge.Version{a1}},
			merge.Record{Clock: vec(1, 2)},
			merge.Record{Clock: vec(1, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, got := range []merge.Record{merge.Merge(tt.a, tt.b), merge.Merge(tt.b, tt.a)} {
				if !got.Equal(tt.want) {
					t.Fatalf("Merge = %v %v, want %v %v", got.Clock, dots(got), tt.want.Clock, dots(tt.want))
				}
				mustValid(t, "merge", got)
			}
		})
	}
}

func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := proptest.RecordFrom(proptest.Universes().Draw(t, "universe"))
		a, b, c := g.Draw(t, "a"), g.Draw(t, "b"), g.Draw(t, "c")
		ab := merge.Merge(a, b)
		mustValid(t, "Merge(a, b)", ab)
		if ba := merge.Merge(b, a); !ab.Equal(ba) {
			t.Fatalf("not commutative:\nab=%+v\nba=%+v", ab, ba)
		}
		left, right := merge.Merge(ab, c), merge.Merge(a, merge.Merge(b, c))
		if !left.Equal(right) {
			t.Fatalf("not associative:\n(ab)c=%+v\na(bc)=%+v", left, right)
		}
		if aa := merge.Merge(a, a); !aa.Equal(a) {
			t.Fatalf("not idempotent:\na =%+v\naa=%+v", a, aa)
		}
		if !merge.Merge(a, ab).Equal(ab) {
			t.Fatalf("Merge(a, Merge(a, b)) != Merge(a, b)")
		}
		if !ab.Clock.Equal(a.Clock.Join(b.Clock)) {
			t.Fatalf("clock %v is not the join of %v and %v", ab.Clock, a.Clock, b.Clock)
		}
	})
}

// Per dot, a record is in one of three states, ordered unseen < live < dead
// ("dead": covered by the clock but not held, so superseded). The oracle of
// Merge is the pointwise maximum, which is why it is a semilattice.
type dotState int

const (
	unseen dotState = iota
	live
	dead
)

func stateOf(r merge.Record, d clock.Dot) dotState {
	switch {
	case r.Contains(d):
		return live
	case r.Clock.Covers(d):
		return dead
	}
	return unseen
}

func TestMergeAgainstOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := proptest.Universes().Draw(t, "universe")
		g := proptest.RecordFrom(u)
		a, b := g.Draw(t, "a"), g.Draw(t, "b")
		var want []merge.Version
		for _, d := range slices.SortedFunc(maps.Keys(u), clock.Dot.Compare) {
			if max(stateOf(a, d), stateOf(b, d)) == live {
				want = append(want, u[d])
			}
		}
		got := merge.Merge(a, b)
		if !slices.EqualFunc(got.Versions, want, merge.Version.Equal) {
			t.Fatalf("Merge versions %v, oracle %v", dots(got), dots(merge.Record{Versions: want}))
		}
	})
}

func TestMergeDoesNotMutateOrAlias(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := proptest.RecordFrom(proptest.Universes().Draw(t, "universe"))
		a, b := g.Draw(t, "a"), g.Draw(t, "b")
		a0, b0 := deepCopy(a), deepCopy(b)
		m := merge.Merge(a, b)
		if !a.Equal(a0) || !b.Equal(b0) {
			t.Fatalf("Merge modified its inputs")
		}
		m.Clock.Add(clock.Dot{Replica: proptest.Pool(proptest.PoolSize)[7], Counter: 9})
		for i := range m.Versions {
			m.Versions[i] = merge.Version{}
		}
		if !a.Equal(a0) || !b.Equal(b0) {
			t.Fatalf("Merge result aliases its inputs")
		}
	})
}

func TestLocalWrite(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := proptest.Universes().Draw(t, "universe")
		cur := proptest.RecordFrom(u).Draw(t, "cur")
		g := proptest.Vector().Draw(t, "g")
		cur0, g0 := deepCopy(cur), g.Clone()
		base := cur.Clock
		if cur.IsZero() {
			base = g
		}
		// A fresh dot: the replica's counter is above anything base has seen.
		id := proptest.ReplicaIDs(proptest.DefaultIDs).Draw(t, "writer")
		v := proptest.VersionAt(clock.Dot{Replica: id, Counter: base.Get(id) + 1 + rapid.Uint64Range(0, 2).Draw(t, "gap")}).Draw(t, "v")

		w := merge.LocalWrite(cur, g, v)
		mustValid(t, "LocalWrite", w)
		if len(w.Versions) != 1 || !w.Versions[0].Equal(v) {
			t.Fatalf("LocalWrite kept %v, want only %v", dots(w), v.Dot)
		}
		want := base.Clone()
		want.Add(v.Dot)
		if !w.Clock.Equal(want) {
			t.Fatalf("clock %v, want %v", w.Clock, want)
		}
		if !cur.Equal(cur0) || !g.Equal(g0) {
			t.Fatalf("LocalWrite modified its inputs")
		}
		// The write has seen every sibling of cur: it supersedes them all.
		if m := merge.Merge(cur, w); !m.Equal(w) {
			t.Fatalf("Merge(cur, write) = %v, want the write alone", dots(m))
		}
	})
}

func TestLocalWriteZeroRecordStartsFromContext(t *testing.T) {
	v := put(0, 3, "x", 1)
	w := merge.LocalWrite(merge.Record{}, vec(0, 4), v)
	if want := vec(3, 4); !w.Clock.Equal(want) {
		t.Fatalf("clock %v, want %v", w.Clock, want)
	}
	w = merge.LocalWrite(merge.Record{}, nil, v)
	if want := vec(3); !w.Clock.Equal(want) {
		t.Fatalf("nil context: clock %v, want %v", w.Clock, want)
	}
	// A record with a clock ignores the context.
	w = merge.LocalWrite(merge.Record{Clock: vec(2)}, vec(0, 4), v)
	if want := vec(3); !w.Clock.Equal(want) {
		t.Fatalf("existing record: clock %v, want %v", w.Clock, want)
	}
}

func TestRecordHelpers(t *testing.T) {
	var zero merge.Record
	if !zero.IsZero() || !zero.Deleted() {
		t.Fatalf("zero record: IsZero %v Deleted %v", zero.IsZero(), zero.Deleted())
	}
	r := merge.Record{Clock: vec(1, 1), Versions: []merge.Version{put(1, 1, "b", 0), del(0, 1, 0)}}
	if r.IsZero() || r.Deleted() {
		t.Fatalf("IsZero %v Deleted %v", r.IsZero(), r.Deleted())
	}
	if !r.Contains(dot(0, 1)) || r.Contains(dot(0, 2)) {
		t.Fatalf("Contains is wrong")
	}
	if !(merge.Record{Clock: vec(1), Versions: []merge.Version{del(0, 1, 0)}}).Deleted() {
		t.Fatalf("all tombstones should read deleted")
	}
	c := r.Clone()
	c.Clock.Add(dot(2, 5))
	c.Versions[0] = put(3, 1, "other", 0)
	if !r.Equal(merge.Record{Clock: vec(1, 1), Versions: []merge.Version{put(1, 1, "b", 0), del(0, 1, 0)}}) {
		t.Fatalf("Clone shares state with the original")
	}
	if !(merge.Record{Clock: clock.Vector{ids[0]: 0}}).Equal(merge.Record{}) {
		t.Fatalf("a zero clock entry must equal a missing one")
	}
}

// mergeTree merges rs with a bracketing drawn by t.
func mergeTree(t *rapid.T, rs []merge.Record) merge.Record {
	switch len(rs) {
	case 0:
		return merge.Record{}
	case 1:
		return rs[0]
	}
	k := rapid.IntRange(1, len(rs)-1).Draw(t, "split")
	return merge.Merge(mergeTree(t, rs[:k]), mergeTree(t, rs[k:]))
}

func fold(rs []merge.Record) merge.Record {
	var out merge.Record
	for _, r := range rs {
		out = merge.Merge(out, r)
	}
	return out
}

// Every state a history reaches holds exactly the maximal writes among what
// it has seen: a version superseded by a causally later write it has seen
// never survives, a write nothing it has seen supersedes is never lost, and
// each version is the one its writer wrote.
func TestHistoryStatesHoldExactlyTheMaximalWrites(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := proptest.Histories(4, 40).Draw(t, "history")
		written := map[clock.Dot]merge.Version{}
		for _, v := range h.Writes {
			written[v.Dot] = v
		}
		for i, s := range h.Steps {
			mustValid(t, "state", s.State)
			want := h.Maximal(s.Seen)
			if got := dots(s.State); !slices.Equal(got, want) {
				t.Fatalf("step %d (%v): versions %v, maximal writes %v", i, s, got, want)
			}
			for _, v := range s.State.Versions {
				if !v.Equal(written[v.Dot]) {
					t.Fatalf("step %d: version %v is not what its writer wrote", i, v.Dot)
				}
			}
			checkSiblings(t, h, s.State)
		}
	})
}

// At most one sibling per replica: a replica's writes are causally ordered.
func checkSiblings(t *rapid.T, h proptest.History, r merge.Record) {
	t.Helper()
	if len(r.Versions) > len(h.Replicas) {
		t.Fatalf("%d siblings for %d replicas", len(r.Versions), len(h.Replicas))
	}
	seen := map[clock.ReplicaID]bool{}
	for _, v := range r.Versions {
		if seen[v.Dot.Replica] {
			t.Fatalf("two siblings written by %s: %v", v.Dot.Replica.Short(), dots(r))
		}
		seen[v.Dot.Replica] = true
	}
}

// Merging every replica's state, plus any intermediate states, in any order
// and any bracketing, gives one result: the maximal writes of the whole
// history, read the same way by lww.
func TestHistoryConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := proptest.Histories(4, 40).Draw(t, "history")
		ref := fold(h.States)
		mustValid(t, "converged", ref)
		want := h.Maximal(h.Written())
		if got := dots(ref); !slices.Equal(got, want) {
			t.Fatalf("converged to %v, maximal writes %v", got, want)
		}
		for e, past := range h.Past {
			for d := range past {
				if ref.Contains(d) {
					t.Fatalf("%v survived although %v saw it", d, e)
				}
			}
		}
		checkSiblings(t, h, ref)
		refBytes, err := merge.EncodeRecord(ref)
		if err != nil {
			t.Fatal(err)
		}
		refRead := lwwRead(t, ref)

		inputs := slices.Clone(h.States)
		for _, s := range h.Steps {
			if rapid.Bool().Draw(t, "also merge intermediate state") {
				inputs = append(inputs, s.State)
			}
		}
		inputs = rapid.Permutation(inputs).Draw(t, "order")
		got := mergeTree(t, inputs)
		if !got.Equal(ref) {
			t.Fatalf("merge order changed the result:\n got %v %v\nwant %v %v", got.Clock, dots(got), ref.Clock, dots(ref))
		}
		if b, _ := merge.EncodeRecord(got); !bytes.Equal(b, refBytes) {
			t.Fatalf("equal results encode differently")
		}
		if r := lwwRead(t, got); !equalResult(r, refRead) {
			t.Fatalf("lww read %+v, want %+v", r, refRead)
		}
		if len(want) > 0 {
			// The lww winner among the maximal writes, by the naive rule.
			var best merge.Version
			for i, d := range want {
				v := ref.Versions[slices.IndexFunc(ref.Versions, func(v merge.Version) bool { return v.Dot == d })]
				if i == 0 || v.Time > best.Time || (v.Time == best.Time && d.Compare(best.Dot) > 0) {
					best = v
				}
			}
			if refRead.Deleted != best.Deleted || !bytes.Equal(refRead.Value, best.Value) {
				t.Fatalf("lww read %+v, naive winner %+v", refRead, best)
			}
		}
	})
}

func lwwRead(t *rapid.T, r merge.Record) merge.Result {
	t.Helper()
	res, err := merge.Read(merge.LWW{}, "k", r)
	if err != nil {
		t.Fatal(err)
	}
	if merge.Live(merge.LWW{}, "k", r) == res.Deleted {
		t.Fatalf("Live disagrees with Read: %+v", res)
	}
	return res
}

func equalResult(a, b merge.Result) bool {
	return bytes.Equal(a.Value, b.Value) && a.Deleted == b.Deleted && a.Conflict == b.Conflict && a.Winner == b.Winner
}

// Replaying a history with other HLC times changes no state but the times:
// merging never looks at an HLC.
func TestHistoryMergeIgnoresHLC(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := proptest.Histories(4, 30).Draw(t, "history")
		steps := slices.Clone(h.Steps)
		for i := range steps {
			if steps[i].Kind == proptest.Write {
				steps[i].Version.Time = clock.HLC(rapid.Uint64().Draw(t, "time"))
			}
		}
		h2 := proptest.Run(h.Replicas, steps)
		for i := range h.Steps {
			a, b := h.Steps[i].State, h2.Steps[i].State
			if !a.Clock.Equal(b.Clock) || !slices.Equal(dots(a), dots(b)) {
				t.Fatalf("step %d: HLC times changed the state: %v %v vs %v %v", i, a.Clock, dots(a), b.Clock, dots(b))
			}
		}
	})
}
