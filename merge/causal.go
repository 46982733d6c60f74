package merge

import (
	"slices"

	"github.com/ebreplica/ebreplica/clock"
)

// ContextWrite applies a local write of v made with a causal context: seen
// is the version vector of the state the writer read (Riak's context). The
// new version supersedes only the current versions whose dots seen
// covers; every other version (a concurrent local write since the read, a
// version merged in by a pull since the read) stays as a sibling of v.
//
// The record's clock is cur's clock (or g when cur is zero, as in
// LocalWrite) plus v's dot: seen is not joined into it, so dots of seen
// that this replica has never held are treated as not covered (a version
// bearing one that arrives later is kept as a sibling, never dropped). A
// context can thus only ever supersede versions the replica holds now, as
// a plain LocalWrite would: a stale, foreign or forged context may keep
// more siblings than needed but never loses a version it does not cover.
//
// With seen covering every current version, ContextWrite equals
// LocalWrite. v.Dot must be a fresh dot of the writing replica.
func ContextWrite(cur Record, g, seen clock.Vector, v Version) Record {
	out := LocalWrite(cur, g, v)
	if cur.IsZero() {
		return out
	}
	for _, o := range cur.Versions {
		if !seen.Covers(o.Dot) {
			out.Versions = append(out.Versions, o)
		}
	}
	if len(out.Versions) > 1 {
		slices.SortFunc(out.Versions, func(x, y Version) int { return x.Dot.Compare(y.Dot) })
	}
	return out
}
