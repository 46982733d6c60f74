package protocol

import (
	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// TwinDot reports a version of remote under this replica's id (id) whose
// dot a version of local holds with other content (HLC, tombstone or
// value). A dot names one write, so another directory issued it too: a
// copy, or a restored backup writing again under a dot its earlier self
// published. The pull (or snapshot load) stops with ErrCloned before
// merging the record: merge keeps one version per dot, so it would keep
// the local one and drop the other, an acknowledged write, for good, and
// reidentify would then re-stamp the local one with a clock covering the
// dot, superseding the dropped write everywhere (seed 2048 of the
// restore sweep). ForeignDots catches a dot above the counter; this, a
// dot at or below it.
func TwinDot(id clock.ReplicaID, local, remote merge.Record) (clock.Dot, bool) {
	for _, v := range remote.Versions {
		if v.Dot.Replica != id {
			continue
		}
		for _, l := range local.Versions {
			if l.Dot == v.Dot && !sameVersion(l, v) {
				return v.Dot, true
			}
		}
	}
	return clock.Dot{}, false
}

func sameVersion(a, b merge.Version) bool {
	return a.Time == b.Time && a.Deleted == b.Deleted && string(a.Value) == string(b.Value)
}
