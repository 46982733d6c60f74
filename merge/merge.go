// Package merge holds the state of one key — a set of causally concurrent
// versions plus the key's version vector — and the pure functions that
// combine such states.
//
// The stored state of a key is a multi-value register with dots (Riak's
// dotted version vectors): every Version carries the Dot that names the
// write that made it, and the Record's Clock is the join of every dot the
// record's current state has seen.
//
// Merging never depends on a policy, an HLC or a wall clock, so no policy
// and no clock can make replicas diverge:
//
//   - Merge(a, b) keeps each version of a whose dot b's clock does not cover
//     or that b also holds, and symmetrically for b; the clock is the join.
//     Versions are kept in canonical dot order. Merge is commutative,
//     associative and idempotent (property-tested).
//   - A local write sees every current sibling, so it replaces them all
//     (LocalWrite): Versions = [new], Clock = the record's clock (or G, the
//     collected context, when the key has no record) plus the new dot.
//   - Siblings are never pruned by policy: pruning an LWW loser at merge
//     time diverges as soon as an HLC fails to follow causality (a capped
//     far-future clock, a restored backup). Siblings go away only when a
//     later local write supersedes them, which bounds them by the number of
//     replicas that wrote the key concurrently.
//
// Policies (see Policy) are read-time projections over the siblings.
package merge

import (
	"bytes"
	"slices"

	"github.com/ebreplica/ebreplica/clock"
)

// Version is one write of a key: its value or a tombstone, the dot that
// names the write, and the HLC time it was made at (used only to break ties
// between concurrent versions under lww). A dot names exactly one immutable
// Version. Value is nil for a tombstone.
type Version struct {
	Value   []byte
	Deleted bool
	Dot     clock.Dot
	Time    clock.HLC
}

// Equal reports whether two versions are identical.
func (v Version) Equal(o Version) bool {
	return v.Dot == o.Dot && v.Deleted == o.Deleted && v.Time == o.Time && bytes.Equal(v.Value, o.Value)
}

// Record is the state of one key: the key's version vector and its
// concurrent versions in canonical dot order. Every version's dot is covered
// by Clock. The zero Record means "never seen".
type Record struct {
	Clock    clock.Vector
	Versions []Version
}

// IsZero reports whether r holds nothing.
func (r Record) IsZero() bool { return len(r.Versions) == 0 && len(r.Clock) == 0 }

// Clone returns a deep copy (values are shared: versions are immutable).
func (r Record) Clone() Record {
	return Record{Clock: r.Clock.Clone(), Versions: slices.Clone(r.Versions)}
}

// Equal reports whether two records hold the same clock and versions.
func (r Record) Equal(o Record) bool {
	return r.Clock.Equal(o.Clock) && slices.EqualFunc(r.Versions, o.Versions, Version.Equal)
}

// Deleted reports whether every version is a tombstone (a record with no
// versions counts as deleted).
func (r Record) Deleted() bool {
	for _, v := range r.Versions {
		if !v.Deleted {
			return false
		}
	}
	return true
}

func holds(vs []Version, d clock.Dot) bool {
	for _, v := range vs {
		if v.Dot == d {
			return true
		}
	}
	return false
}

// Merge joins two states of the same key. It is pure, commutative,
// associative and idempotent, and depends on dots and clocks only.
func Merge(a, b Record) Record {
	out := Record{Clock: a.Clock.Join(b.Clock)}
	out.Versions = make([]Version, 0, len(a.Versions)+len(b.Versions))
	for _, v := range a.Versions {
		if !b.Clock.Covers(v.Dot) || holds(b.Versions, v.Dot) {
			out.Versions = append(out.Versions, v)
		}
	}
	for _, v := range b.Versions {
		if holds(a.Versions, v.Dot) {
			continue // kept from a already
		}
		if !a.Clock.Covers(v.Dot) {
			out.Versions = append(out.Versions, v)
		}
	}
	slices.SortFunc(out.Versions, func(x, y Version) int { return x.Dot.Compare(y.Dot) })
	return out
}

// LocalWrite applies a local write of v to a key whose current state is cur
// (the zero Record when the key has no record, in which case its clock
// starts from g, the collected context). v.Dot must be a fresh dot of the
// writing replica. The write has seen every current sibling, so it replaces
// them all.
func LocalWrite(cur Record, g clock.Vector, v Version) Record {
	var c clock.Vector
	if cur.IsZero() {
		c = g.Clone()
	} else {
		c = cur.Clock.Clone()
	}
	c.Add(v.Dot)
	return Record{Clock: c, Versions: []Version{v}}
}

// Contains reports whether r holds a version with dot d.
func (r Record) Contains(d clock.Dot) bool { return holds(r.Versions, d) }
