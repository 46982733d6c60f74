package protocol

import "time"

// Listed is one log position a pull listed after its cursor.
type Listed struct {
	Pos      uint64
	Modified time.Time // server LastModified
}

// Snapshot is the newest complete snapshot, as a pull knows it.
type Snapshot struct {
	Pos     uint64    // 0: there is none
	Written time.Time // its index's server LastModified
}

// PullInput is what a pull has read before it applies anything.
type PullInput struct {
	Cursor   uint64
	Listed   []Listed // in position order, every one above Cursor
	Ready    bool     // the replica has pulled to a listed tip before
	Rebasing bool     // this pull is a rebase's own
	// Snap is the newest complete snapshot, nil when not read yet: the
	// plan asks for it (PullNeedSnapshot) only when the rule needs it, so
	// an idle pull stays one LIST.
	Snap *Snapshot
}

// PullAction is what a pull does next.
type PullAction int

const (
	// PullApply: apply Listed in order (all of them; nothing listed: up
	// to date).
	PullApply PullAction = iota
	// PullNeedSnapshot: read the newest complete snapshot, then plan again.
	PullNeedSnapshot
	// PullRebase: the log was pruned past From: load the newest snapshot
	// (a rebase; a rebase's own pull restarts on the newer snapshot).
	PullRebase
	// PullGap: position From is missing above every snapshot: damage.
	PullGap
)

// PullPlan is a pull's plan.
type PullPlan struct {
	Action PullAction
	From   uint64 // PullRebase, PullGap: the first position missing
	Next   uint64 // PullGap: the next position listed (0: none)
}

// PlanPull decides what a pull does with what it listed (absence rule 4):
//   - a replica not ready, or rebasing, that lists nothing at cursor+1
//     rebases when the newest snapshot is at or above cursor+1: "nothing
//     listed" means "up to date" only at or above the newest snapshot;
//   - a replica not ready whose log looks contiguous from its cursor, below
//     the newest snapshot, rebases when a position at or below that
//     snapshot was created after the snapshot was written (a retired
//     pusher's create in a freed position is no part of the log: kill
//     sweep seed 16989, S37). Open: a create made in the same second as
//     the snapshot's index (LastModified is coarse on S3), or on a backend
//     without LastModified, is not told from the log; rebasing whenever a
//     replica not ready is below the newest snapshot closes that, but made
//     absence seed 9240 lose a write (a copy's twin rebased before its
//     first push), so it waits for that to be understood;
//   - a hole in what was listed is "pruned" (rebase) at or below the newest
//     snapshot, and a gap (damage) above it.
func PlanPull(in PullInput) PullPlan {
	contiguous := len(in.Listed) > 0 && in.Listed[0].Pos == in.Cursor+1
	if !contiguous && (!in.Ready || in.Rebasing) {
		if in.Snap == nil {
			return PullPlan{Action: PullNeedSnapshot}
		}
		if PrunedPast(*in.Snap, in.Cursor+1) {
			return PullPlan{Action: PullRebase, From: in.Cursor + 1}
		}
	}
	if contiguous && !in.Ready && !in.Rebasing {
		if in.Snap == nil {
			return PullPlan{Action: PullNeedSnapshot}
		}
		if s := *in.Snap; s.Pos > in.Cursor && !s.Written.IsZero() {
			for _, l := range in.Listed {
				if l.Pos <= s.Pos && l.Modified.After(s.Written) {
					if PrunedPast(s, in.Cursor+1) {
						return PullPlan{Action: PullRebase, From: in.Cursor + 1}
					}
					break
				}
			}
		}
	}
	expect := in.Cursor + 1
	for _, l := range in.Listed {
		if l.Pos != expect {
			if l.Pos > expect {
				if in.Snap == nil {
					return PullPlan{Action: PullNeedSnapshot}
				}
				if PrunedPast(*in.Snap, expect) {
					return PullPlan{Action: PullRebase, From: expect}
				}
			}
			return PullPlan{Action: PullGap, From: expect, Next: l.Pos}
		}
		expect++
	}
	return PullPlan{Action: PullApply}
}

// PrunedPast reports whether a missing position pos means "pruned": the
// newest snapshot is at or above it.
func PrunedPast(s Snapshot, pos uint64) bool { return s.Pos != 0 && s.Pos >= pos }

// SegmentFacts is what a pull knows of a segment before it applies it.
type SegmentFacts struct {
	FromSelf   bool // its origin is this replica's id
	StagedHere bool // its bytes are a segment this directory staged (m/sent)
}

// Admission is what a pull does with a fetched segment.
type Admission int

const (
	// Admit: merge it.
	Admit Admission = iota
	// AdmitOwn: one of this directory's own (perhaps uploaded by a copy
	// made after staging): its dots count as published before it is
	// merged, so reidentify keeps them.
	AdmitOwn
	// RefuseCloned: published under this id by another directory
	// (ErrCloned), nothing of it merged.
	RefuseCloned
)

// AdmitSegment decides whether a pull merges a segment (clone checks): a
// segment under this replica's id that this directory never staged was
// published by a copy of the directory.
func AdmitSegment(f SegmentFacts) Admission {
	switch {
	case !f.FromSelf:
		return Admit
	case f.StagedHere:
		return AdmitOwn
	default:
		return RefuseCloned
	}
}

// ForeignDots reports whether a segment carries dots of this replica's id
// above the counter it has issued: another directory published them
// (ErrCloned), checked before anything of the segment is merged.
func ForeignDots(maxOwn, counter uint64) bool { return maxOwn > counter }

// DueInput is what decides whether a pull rewrites this replica's
// registry.
type DueInput struct {
	Ack, LastAck uint64        // the ack now, and the one last written
	Age          time.Duration // since the last registry write (wall clock)
	Known        bool          // the last write's time is known and not in the future
	AckInterval  time.Duration // negative: every time the ack moved
	Refresh      time.Duration
}

// RegistryDue reports whether a pull writes the registry: its ack moved
// and the last write is at least AckInterval old, or the last write is
// Refresh old whatever the ack (absence rule 7: an idle replica is never
// retired; S21). An unknown age counts as old.
func RegistryDue(in DueInput) bool {
	age := in.Age
	if !in.Known {
		age = 1<<63 - 1
	}
	if in.Ack != in.LastAck && (in.AckInterval < 0 || age >= in.AckInterval) {
		return true
	}
	return age >= in.Refresh
}

// AdoptedAt is the time a registration adopted by this directory was
// written, as DueInput's age counts from (ms of this replica's wall clock;
// 0: unknown, the refresh is due at once): the Wall its body carries,
// never now. A create that landed but answered an error (or whose answer
// a crash lost) may be adopted long after it landed; the registry's age,
// as a compactor judges it, runs from that write, so an adoption dated now
// would skip the refresh (RegistryDue) while the body on the store ages
// past RetireAfter: the replica retired while it pulls (kill sweep seed
// 11932; S36). A body with no Wall (an older writer's, or a retirement
// written by another replica) has no known time.
func AdoptedAt(wall, _ time.Time) int64 {
	if wall.IsZero() {
		return 0
	}
	return wall.UnixMilli()
}

// PollInput is what a pull knows before it reads the log.
type PollInput struct {
	Ready    bool // the replica has pulled to a listed tip before
	Rebasing bool // this pull is a rebase's own
	NextOwn  bool // cursor+1 is one of this replica's own pushes (m/own)
	// SinceList is the time since this replica last listed the log
	// (its wall clock); ListKnown is false when it never did or the
	// time is unknown. ListEvery bounds how long a probe's "idle" is
	// trusted without a listing (negative: list every pull).
	SinceList time.Duration
	ListKnown bool
	ListEvery time.Duration
}

// PollAction is how a pull reads the log after its cursor.
type PollAction int

const (
	// PollList: list log/ after the cursor (catching up).
	PollList PollAction = iota
	// PollProbe: GET log/<cursor+1> first; not found means idle
	// (PollIdle), found means catching up (list).
	PollProbe
)

// PlanPoll decides how a pull reads the log: a ready replica that is not
// rebasing asks for log/<cursor+1> directly (one GET when idle); one not
// ready, or rebasing, lists, since for it "nothing at cursor+1" means "up
// to date" only at or above the newest snapshot (absence rule 4), which a
// listing and PlanPull judge. A cursor+1 that is an own push is listed
// (its bytes are not needed; something may follow it).
//
// Why a ready replica may take a missing cursor+1 for "nothing after it":
// positions are created in order (create-only at tip+1), and a position is
// freed only at or below the prune floor, which is at most the ack of
// every non-retired replica, itself at most its cursor. So while this
// replica is not retired, cursor+1 was never freed, and nothing exists
// above a missing cursor+1. A retired replica learns it at its next
// registry write (RegistryDue refreshes it however idle: S21) and rebases;
// and so that a replica retired while it polled (RetireAfter set below
// RegistryRefresh by a compactor), or a restored backup of a ready
// directory, is never stale for longer than ListEvery, the probe is
// trusted only within ListEvery of the last listing (a listing shows the
// hole: PlanPull rebases).
func PlanPoll(in PollInput) PollAction {
	fresh := in.ListKnown && in.ListEvery >= 0 && in.SinceList >= 0 && in.SinceList < in.ListEvery
	if in.Ready && !in.Rebasing && !in.NextOwn && fresh {
		return PollProbe
	}
	return PollList
}

// PollIdle reports whether a pull that probed cursor+1 is done: the
// position was not found (idle: nothing to list, nothing to apply).
func PollIdle(found bool) bool { return !found }
