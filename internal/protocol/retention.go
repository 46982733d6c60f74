package protocol

import (
	"slices"
	"time"
)

// Retention is how much history compaction keeps for history, restore and
// revert (stored in the store manifest; a manifest without it reads as
// the zero Retention, today's behaviour: only the newest snapshot, and
// the log above the absence rules' floor).
//
//   - KeepSnapshots: the newest KeepSnapshots snapshots are kept (0 or 1:
//     only the newest).
//   - KeepAge: every snapshot written less than KeepAge ago (server time,
//     its index's LastModified) is kept, and the newest one older than
//     that, so that any time in the last KeepAge can still be restored.
//     A snapshot whose time is unknown is never old enough to drop.
//
// The log is kept above the oldest snapshot kept: every position between
// it and the tip can be rebuilt.
type Retention struct {
	KeepSnapshots int
	KeepAge       time.Duration
}

// SnapshotAge is one complete snapshot as retention sees it: its position
// and its index's server LastModified (zero when unknown).
type SnapshotAge struct {
	Position uint64
	Created  time.Time
}

// Retained returns the positions of the snapshots ret keeps at serverNow,
// newest first. The newest snapshot is always kept.
func Retained(ret Retention, snaps []SnapshotAge, serverNow time.Time) []uint64 {
	sorted := slices.Clone(snaps)
	slices.SortFunc(sorted, func(a, b SnapshotAge) int {
		switch {
		case a.Position > b.Position:
			return -1
		case a.Position < b.Position:
			return 1
		}
		return 0
	})
	sorted = slices.CompactFunc(sorted, func(a, b SnapshotAge) bool { return a.Position == b.Position })
	count := max(ret.KeepSnapshots, 1)
	var out []uint64
	boundary := false // the newest snapshot older than KeepAge is kept already
	for i, s := range sorted {
		keep := i < count
		if ret.KeepAge > 0 && !boundary {
			young := s.Created.IsZero() || serverNow.Sub(s.Created) < ret.KeepAge
			if !young {
				boundary = true // this one covers the oldest time to keep
			}
			keep = true
		}
		if keep {
			out = append(out, s.Position)
		}
	}
	return out
}

// RetentionFloor is the highest log position retention lets a pruner
// delete: the oldest snapshot it keeps (the log above it rebuilds every
// later position). ok is false when there is no snapshot.
func RetentionFloor(ret Retention, snaps []SnapshotAge, serverNow time.Time) (uint64, bool) {
	kept := Retained(ret, snaps, serverNow)
	if len(kept) == 0 {
		return 0, false
	}
	return kept[len(kept)-1], true
}

// CombinedFloor is the highest log position a pruner may delete under both
// the absence rules (PruneFloor: absence, absenceOK) and retention
// (RetentionFloor: retention, retentionOK): the lower of the two. Nothing
// may be pruned (ok false) unless both allow something; retention never
// raises the absence rules' floor.
func CombinedFloor(absence uint64, absenceOK bool, retention uint64, retentionOK bool) (uint64, bool) {
	if !absenceOK || !retentionOK {
		return 0, false
	}
	return min(absence, retention), true
}
