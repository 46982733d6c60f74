package merge

import (
	"slices"

	"github.com/ebreplica/ebreplica/clock"
)

// Moving a replica's unpublished CRDT entries to a new id (reidentify).
//
// A directory that was copied (or restored) shares its replica id with
// another: the dots it issued above the highest one it published may name
// other writes there. Reidentify keeps this directory's unpublished changes
// by moving them to its new id: every entry tagged with a dot of old above
// published is re-tagged with d (a dot of the new id, the dot of the write
// that will store the result), and the context forgets old's dots above
// published (they are the other directory's) and learns d. Entries of old
// at or below published stay: the others hold them.

// Reidentify returns s with old's unpublished entries moved to dot d, as
// described above. A counter entry is its replica's running total, so the
// moved entry carries old's whole total: the context still covers old's
// published entry, which the moved one supersedes wherever they meet.
func (s CounterState) Reidentify(old clock.ReplicaID, published uint64, d clock.Dot) CounterState {
	out := CounterState{ctx: lowered(s.ctx, old, published), entries: make(map[clock.Dot]pn, len(s.entries))}
	var moved pn
	any := false
	for k, e := range s.entries {
		if k.Replica == old && k.Counter > published {
			moved.p += e.p
			moved.n += e.n
			any = true
			continue
		}
		out.entries[k] = e
	}
	if any {
		if prev, ok := out.entries[d]; ok {
			moved.p += prev.p
			moved.n += prev.n
		}
		out.entries[d] = moved
		out.ctx.Add(d)
	}
	return out
}

// Reidentify returns s with every member's dots of old above published
// re-tagged d, as described above.
func (s SetState) Reidentify(old clock.ReplicaID, published uint64, d clock.Dot) SetState {
	out := SetState{ctx: lowered(s.ctx, old, published), entries: make(map[string][]clock.Dot, len(s.entries))}
	any := false
	for elem, dots := range s.entries {
		var keep []clock.Dot
		retag := false
		for _, x := range dots {
			if x.Replica == old && x.Counter > published {
				retag = true
				continue
			}
			keep = append(keep, x)
		}
		if retag {
			keep = append(keep, d)
			slices.SortFunc(keep, clock.Dot.Compare)
			any = true
		}
		out.entries[elem] = keep
	}
	if any {
		out.ctx.Add(d)
	}
	return out
}

func lowered(v clock.Vector, id clock.ReplicaID, to uint64) clock.Vector {
	out := v.Clone()
	if out[id] > to {
		out[id] = to
		if to == 0 {
			delete(out, id)
		}
	}
	return out
}
