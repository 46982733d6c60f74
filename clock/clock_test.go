package clock_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

// naiveCompare is the definition of the order on vectors, entry by entry,
// with a missing entry counting as 0.
func naiveCompare(a, b clock.Vector) clock.Ordering {
	le, ge := true, true
	for _, id := range proptest.Pool(proptest.PoolSize) {
		if a[id] > b[id] {
			le = false
		}
		if a[id] < b[id] {
			ge = false
		}
	}
	switch {
	case le && ge:
		return clock.Equal
	case le:
		return clock.Before
	case ge:
		return clock.After
	}
	return clock.Concurrent
}

func naiveJoin(a, b clock.Vector) map[clock.ReplicaID]uint64 {
	out := map[clock.ReplicaID]uint64{}
	for _, id := range proptest.Pool(proptest.PoolSize) {
		if c := max(a[id], b[id]); c > 0 {
			out[id] = c
		}
	}
	return out
}

func atMost(o clock.Ordering) bool { return o == clock.Before || o == clock.Equal }

var flip = map[clock.Ordering]clock.Ordering{
	clock.Before: clock.After, clock.After: clock.Before,
	clock.Equal: clock.Equal, clock.Concurrent: clock.Concurrent,
}

func TestCompareAgainstOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := proptest.Vector().Draw(t, "a"), proptest.Vector().Draw(t, "b")
		got, want := a.Compare(b), naiveCompare(a, b)
		if got != want {
			t.Fatalf("%v.Compare(%v) = %v, oracle %v", a, b, got, want)
		}
		if back := b.Compare(a); back != flip[got] {
			t.Fatalf("not antisymmetric: a?b = %v, b?a = %v", got, back)
		}
		if a.Equal(b) != (got == clock.Equal) {
			t.Fatalf("Equal = %v, Compare = %v", a.Equal(b), got)
		}
	})
}

func TestComparePartialOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := proptest.Vector().Draw(t, "a")
		if o := a.Compare(a); o != clock.Equal {
			t.Fatalf("a.Compare(a) = %v", o)
		}
		if o := a.Compare(a.Clone()); o != clock.Equal {
			t.Fatalf("a.Compare(a.Clone()) = %v", o)
		}
		// Transitivity, on chains built to be ordered and on random triples.
		b := a.Join(proptest.Vector().Draw(t, "x"))
		c := b.Join(proptest.Vector().Draw(t, "y"))
		if !atMost(a.Compare(b)) || !atMost(b.Compare(c)) || !atMost(a.Compare(c)) {
			t.Fatalf("chain a <= b <= c broken: %v %v %v", a.Compare(b), b.Compare(c), a.Compare(c))
		}
		if a.Compare(b) == clock.Before || b.Compare(c) == clock.Before {
			if o := a.Compare(c); o != clock.Before {
				t.Fatalf("a < b <= c or a <= b < c, yet a ? c = %v", o)
			}
		}
		p, q, r := proptest.Vector().Draw(t, "p"), proptest.Vector().Draw(t, "q"), proptest.Vector().Draw(t, "r")
		if atMost(p.Compare(q)) && atMost(q.Compare(r)) && !atMost(p.Compare(r)) {
			t.Fatalf("not transitive: %v <= %v <= %v but %v", p, q, r, p.Compare(r))
		}
		// Antisymmetry: p <= q and q <= p only when equal.
		if atMost(p.Compare(q)) && atMost(q.Compare(p)) && !p.Equal(q) {
			t.Fatalf("%v and %v each <= the other but not equal", p, q)
		}
	})
}

func TestJoinLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := proptest.Vector().Draw(t, "a"), proptest.Vector().Draw(t, "b"), proptest.Vector().Draw(t, "c")
		a0, b0 := a.Clone(), b.Clone()
		ab := a.Join(b)
		if !a.Equal(a0) || !b.Equal(b0) || len(a) != len(a0) {
			t.Fatalf("Join modified its receiver or argument")
		}
		if got, want := map[clock.ReplicaID]uint64(ab), naiveJoin(a, b); !mapsEqualNonZero(got, want) {
			t.Fatalf("%v.Join(%v) = %v, oracle %v", a, b, ab, want)
		}
		if !ab.Equal(b.Join(a)) {
			t.Fatalf("Join not commutative")
		}
		if !ab.Join(c).Equal(a.Join(b.Join(c))) {
			t.Fatalf("Join not associative")
		}
		if !a.Join(a).Equal(a) {
			t.Fatalf("Join not idempotent")
		}
		if o := a.Compare(ab); !atMost(o) {
			t.Fatalf("a ? a.Join(b) = %v, want before or equal", o)
		}
		if o := b.Compare(ab); !atMost(o) {
			t.Fatalf("b ? a.Join(b) = %v, want before or equal", o)
		}
		// Least upper bound: any upper bound of a and b is above the join.
		if atMost(a.Compare(c)) && atMost(b.Compare(c)) && !atMost(ab.Compare(c)) {
			t.Fatalf("%v bounds %v and %v but not their join %v", c, a, b, ab)
		}
		// Join agrees with Compare: a <= b iff a.Join(b) == b.
		if atMost(a.Compare(b)) != ab.Equal(b) {
			t.Fatalf("a ? b = %v but a.Join(b) == b is %v", a.Compare(b), ab.Equal(b))
		}
		// The join of nil vectors is empty, and nil is the bottom.
		var z clock.Vector
		if !z.Join(a).Equal(a) || !a.Join(z).Equal(a) || !atMost(z.Compare(a)) {
			t.Fatalf("nil is not the identity of Join")
		}
		// JoinInPlace and Add agree with Join.
		in := a.Clone()
		in.JoinInPlace(b)
		if !in.Equal(ab) {
			t.Fatalf("JoinInPlace %v, Join %v", in, ab)
		}
		added := a.Clone()
		for _, d := range b.Entries() {
			added.Add(d)
		}
		if !added.Equal(ab) {
			t.Fatalf("Add of b's entries %v, Join %v", added, ab)
		}
	})
}

func mapsEqualNonZero(got, want map[clock.ReplicaID]uint64) bool {
	for id, c := range got {
		if c != want[id] {
			return false
		}
	}
	for id, c := range want {
		if c != got[id] {
			return false
		}
	}
	return true
}

func TestCoversAgreesWithCompare(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := proptest.Vector().Draw(t, "v")
		d := clock.Dot{
			Replica: proptest.ReplicaIDs(proptest.DefaultIDs).Draw(t, "replica"),
			Counter: rapid.Uint64Range(0, proptest.MaxCounter+1).Draw(t, "counter"),
		}
		single := clock.Vector{d.Replica: d.Counter}
		want := d.Counter > 0 && atMost(single.Compare(v))
		if got := v.Covers(d); got != want {
			t.Fatalf("%v.Covers(%v) = %v, want %v", v, d, got, want)
		}
		// Covering is monotone: a larger vector covers at least as much.
		w := v.Join(proptest.Vector().Draw(t, "w"))
		if v.Covers(d) && !w.Covers(d) {
			t.Fatalf("%v covers %v but the larger %v does not", v, d, w)
		}
		// Add makes a vector cover the dot, and only raises one entry.
		a := v.Clone()
		a.Add(d)
		if d.Counter > 0 && !a.Covers(d) {
			t.Fatalf("after Add(%v), %v does not cover it", d, a)
		}
		if !a.Equal(v.Join(single)) {
			t.Fatalf("Add(%v) = %v, want %v", d, a, v.Join(single))
		}
	})
}

func TestZeroEntriesAreMissing(t *testing.T) {
	id := proptest.Pool(1)[0]
	v := clock.Vector{id: 0}
	if o := v.Compare(nil); o != clock.Equal {
		t.Fatalf("{id:0} ? nil = %v", o)
	}
	if o := (clock.Vector(nil)).Compare(v); o != clock.Equal {
		t.Fatalf("nil ? {id:0} = %v", o)
	}
	if v.Covers(clock.Dot{Replica: id}) || (clock.Vector{id: 3}).Covers(clock.Dot{Replica: id}) {
		t.Fatalf("a zero counter is never covered")
	}
	if len(v.Entries()) != 0 || v.String() != "{}" || clock.Vector(nil).String() != "{}" {
		t.Fatalf("zero entries show up: %v %q", v.Entries(), v.String())
	}
	if c := clock.Vector(nil).Clone(); c == nil {
		t.Fatalf("Clone of nil returned nil")
	} else {
		c.Add(clock.Dot{Replica: id, Counter: 1}) // must not panic
	}
}

func TestOrderingString(t *testing.T) {
	want := map[clock.Ordering]string{
		clock.Before: "before", clock.After: "after", clock.Equal: "equal", clock.Concurrent: "concurrent",
	}
	for o, s := range want {
		if o.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), s)
		}
	}
	var zero clock.Ordering
	for o := range want {
		if zero == o {
			t.Fatalf("the zero Ordering is %v, a valid answer", o)
		}
	}
	if s := zero.String(); s != "Ordering(0)" {
		t.Fatalf("zero Ordering prints %q, want it marked as not a valid ordering", s)
	}
}

func TestStringIsDeterministicAndSorted(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := proptest.Vector().Draw(t, "v")
		keys := make([]clock.ReplicaID, 0, len(v))
		for id := range v {
			keys = append(keys, id)
		}
		slices.SortFunc(keys, clock.ReplicaID.Compare)
		w := clock.Vector{}
		for _, id := range rapid.Permutation(keys).Draw(t, "insertion order") {
			w[id] = v[id]
		}
		if v.String() != w.String() {
			t.Fatalf("same content, different String: %q vs %q", v.String(), w.String())
		}
		var parts []string
		for _, id := range keys {
			if v[id] > 0 {
				parts = append(parts, fmt.Sprintf("%s:%d", id.Short(), v[id]))
			}
		}
		if want := "{" + strings.Join(parts, " ") + "}"; v.String() != want {
			t.Fatalf("String() = %q, want %q", v.String(), want)
		}
		es := v.Entries()
		if !slices.IsSortedFunc(es, clock.Dot.Compare) {
			t.Fatalf("Entries not sorted: %v", es)
		}
		for _, d := range es {
			if d.Counter == 0 || v[d.Replica] != d.Counter {
				t.Fatalf("bad entry %v of %v", d, v)
			}
		}
	})
}

func TestDotCompare(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := proptest.Dot().Draw(t, "a"), proptest.Dot().Draw(t, "b")
		want := bytes.Compare(a.Replica[:], b.Replica[:])
		if want == 0 {
			want = cmpUint(a.Counter, b.Counter)
		}
		if got := a.Compare(b); got != want {
			t.Fatalf("%v.Compare(%v) = %d, want %d", a, b, got, want)
		}
		if a.Compare(b) != -b.Compare(a) {
			t.Fatalf("Dot.Compare not antisymmetric")
		}
	})
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestReplicaID(t *testing.T) {
	for range 10 {
		id := clock.NewReplicaID()
		if id.IsZero() {
			t.Fatalf("NewReplicaID returned the zero id")
		}
		back, err := clock.ParseReplicaID(id.String())
		if err != nil || back != id {
			t.Fatalf("ParseReplicaID(%q) = %v, %v", id.String(), back, err)
		}
		if id.Short() != id.String()[:8] {
			t.Fatalf("Short() = %q", id.Short())
		}
	}
	for _, bad := range []string{"", "nope", "00000000-0000-0000-0000-000000000000", "a1000000-0000-4000-8000-00000000000"} {
		if _, err := clock.ParseReplicaID(bad); err == nil {
			t.Errorf("ParseReplicaID(%q) succeeded", bad)
		}
	}
	// Text marshaling, e.g. as JSON map keys and values.
	id := proptest.Pool(1)[0]
	b, err := json.Marshal(map[string]clock.ReplicaID{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]clock.ReplicaID
	if err := json.Unmarshal(b, &back); err != nil || back["id"] != id {
		t.Fatalf("JSON round trip %s: %v, %v", b, back, err)
	}
	var z clock.ReplicaID
	if err := z.UnmarshalText([]byte("00000000-0000-0000-0000-000000000000")); err == nil {
		t.Fatalf("UnmarshalText accepted the nil uuid")
	}
	// Compare is byte order, and the pool is deliberately not in it.
	pool := proptest.Pool(proptest.PoolSize)
	sorted := slices.SortedFunc(slices.Values(pool), clock.ReplicaID.Compare)
	for i := 1; i < len(sorted); i++ {
		if bytes.Compare(sorted[i-1][:], sorted[i][:]) >= 0 {
			t.Fatalf("ReplicaID.Compare is not byte order")
		}
	}
	if slices.Equal(sorted, pool) {
		t.Fatalf("the pool is in byte order; it should not be")
	}
}
