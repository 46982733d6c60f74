package protocol

import (
	"slices"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// Rules is the set of rules the engine calls. Default is the protocol; the
// simulator swaps single fields for rules of earlier drafts to show that
// its schedules catch each one.
type Rules struct {
	Ack              func(AckInput) uint64
	PlanCollect      func([]Registry) CollectPlan
	Collectible      func(Candidate, uint64) bool
	CollectRecord    func(merge.Record) (keep merge.Record, whole bool)
	ToRetire         func([]Registry, RetireInput) []string
	Retirement       func(Registry, string) Registry
	PruneFloor       func(PruneInput) (uint64, bool)
	FenceNonce       func(pending string) string
	JudgeSwap        func(SwapRead, Writes, string) SwapVerdict
	CheckAfterCreate func() bool
	OwnsBody         func(Writes, Registry) bool
	MayPush          func(ready bool) bool
	PlanPull         func(PullInput) PullPlan
	// PlanPoll is how a pull reads the log after its cursor: a GET of
	// cursor+1 first (idle: one request), or a listing.
	PlanPoll func(PollInput) PollAction
	// PollIdle is whether a probed pull is done (cursor+1 not found).
	PollIdle     func(found bool) bool
	AdmitSegment func(SegmentFacts) Admission
	// SnapshotDots is whether a snapshot record (or index Top) carrying
	// this id's dot top, above the counter issued, is another directory's
	// (ErrCloned; absence rule 5).
	SnapshotDots func(top, counter uint64) bool
	RegistryDue  func(DueInput) bool
	// AdoptedAt is when a registration this directory adopted (its own
	// create, found after an ambiguous answer or a crash) was written.
	AdoptedAt   func(wall, now time.Time) int64
	MarkCleared func(staged, now uint64, present bool) bool
	// WriteStart is the clock a local write of a key with no record
	// starts from.
	WriteStart func(g clock.Vector) clock.Vector
	// Adopt is what a pulled record becomes on a replica that holds no
	// record of its key.
	Adopt func(remote merge.Record, g func() clock.Vector) merge.Record
	// Merge joins a local and a pulled record.
	Merge func(local, remote merge.Record) merge.Record
	// Sync is whether staging a push (and saving the registry's pending
	// write) is fsynced before any upload.
	Sync func() bool
	// SnapshotFirst is whether compaction pushes and pulls, emptying the
	// outbox, before it snapshots.
	SnapshotFirst func() bool
	// PartNonce names a compactor's snapshot parts, and says whether
	// they are written create-only.
	PartNonce func(nonce string) (string, bool)
	// KeepCRDTState is whether rebase and reidentify keep a dirty counter
	// or set key as its CRDT state (true) or as its text.
	KeepCRDTState func() bool
	// CursorLast is whether the cursor advances in the last transaction of
	// a segment's application (true) or the first.
	CursorLast func() bool
	// ClaimStart is where a push's first claim on the log aims (claim.go):
	// the known tip (the protocol) or a listed one (a prototype).
	ClaimStart func() ClaimStart
}

// Default is the protocol's rule set.
func Default() Rules {
	return Rules{
		Ack: Ack, PlanCollect: PlanCollect, Collectible: Collectible, CollectRecord: CollectRecord,
		ToRetire: ToRetire, Retirement: Retirement, PruneFloor: PruneFloor,
		FenceNonce: FenceNonce, JudgeSwap: JudgeSwap, CheckAfterCreate: yes, OwnsBody: OwnsBody,
		MayPush: MayPush, PlanPull: PlanPull, PlanPoll: PlanPoll, PollIdle: PollIdle, AdmitSegment: AdmitSegment, SnapshotDots: ForeignDots, RegistryDue: RegistryDue, AdoptedAt: AdoptedAt,
		MarkCleared: MarkCleared, WriteStart: WriteStart, Adopt: Adopt, Merge: merge.Merge,
		Sync: yes, SnapshotFirst: yes, PartNonce: PartNonce, KeepCRDTState: yes, CursorLast: yes,
		ClaimStart: KnownTip,
	}
}

func yes() bool { return true }

// Registry is what the rules read of one replica's registry object.
type Registry struct {
	ID           string
	Seq          uint64
	Nonce        string
	Ack          uint64
	Retired      bool
	RetiredNonce string
	// Modified is the object's server LastModified (zero when unknown).
	Modified time.Time
}

// AckInput is what a replica's ack is computed from.
type AckInput struct {
	Cursor      uint64   // the contiguous applied position
	StagedBases []uint64 // the base of every staged, not yet committed, segment
	LastOwnPush uint64   // the highest position of this replica's own pushes
}

// Ack is the ack a replica publishes: the cursor lowered to every staged
// base. Its own pushes are not part of it (S3), and a staged segment holds
// it at its base (S6).
func Ack(in AckInput) uint64 {
	ack := in.Cursor
	for _, b := range in.StagedBases {
		ack = min(ack, b)
	}
	return ack
}

// MinAck is the minimum ack over non-retired replicas (ok false when none).
func MinAck(regs []Registry) (uint64, bool) {
	var m uint64
	ok := false
	for _, g := range regs {
		if g.Retired {
			continue
		}
		if !ok || g.Ack < m {
			m, ok = g.Ack, true
		}
	}
	return m, ok
}

// CollectPlan is how a compactor collects, once it has read every
// registry: up to Floor, after pulling to a tip listed after that read when
// PullFirst.
type CollectPlan struct {
	Floor     uint64
	PullFirst bool
}

// PlanCollect collects up to the minimum non-retired ack, after pulling
// to a tip listed after reading the acks (S4). With no registry at all the
// floor is 0: nothing is collected.
func PlanCollect(regs []Registry) CollectPlan {
	floor, _ := MinAck(regs)
	return CollectPlan{Floor: floor, PullFirst: true}
}

// Candidate is what collection reads of one local record.
type Candidate struct {
	Pos uint64 // the log position the record was last published at (0: never)
	// ReadsDeleted: the record reads as deleted with no user code run
	// (every sibling a tombstone, or a built-in policy that reads it so).
	ReadsDeleted bool
	Dirty        bool // the key has an outbox mark
}

// Collectible reports whether a record may be deleted whole, its clock
// joined into G: published at or below floor, reading as deleted, and in
// no staged or pending push.
func Collectible(c Candidate, floor uint64) bool {
	return c.Pos != 0 && c.Pos <= floor && c.ReadsDeleted && !c.Dirty
}

// CollectRecord is what collecting a record leaves: nothing (whole true).
// A tombstone sibling is never dropped out of a record (S8).
func CollectRecord(merge.Record) (merge.Record, bool) { return merge.Record{}, true }

// RetireInput is what a compactor's retirement decision reads beside the
// registries.
type RetireInput struct {
	Self        string        // the compactor's own id
	ServerNow   time.Time     // the server time of the compactor's own registry write
	RetireAfter time.Duration // how long a registry may stay unwritten
	Snapshot    uint64        // the snapshot the compactor just wrote
}

// ToRetire returns the ids a compactor retires: every non-retired replica
// but itself whose registry is RetireAfter old by server time and whose
// ack is below the snapshot just written (absence rule 7: one at the
// snapshot holds no floor down). Nothing without a server time.
func ToRetire(regs []Registry, in RetireInput) []string {
	if in.ServerNow.IsZero() {
		return nil
	}
	var out []string
	for _, g := range regs {
		if g.Retired || g.ID == in.Self || g.Modified.IsZero() {
			continue
		}
		if in.ServerNow.Sub(g.Modified) < in.RetireAfter || g.Ack >= in.Snapshot {
			continue
		}
		out = append(out, g.ID)
	}
	return out
}

// Retirement is the registry body a retirer writes over g: a write of its
// own (seq+1, a fresh nonce), naming the body it retired (absence rule 1).
func Retirement(g Registry, nonce string) Registry {
	g.Retired = true
	g.Seq, g.Nonce, g.RetiredNonce = g.Seq+1, nonce, g.Nonce
	return g
}

// PruneInput is what a pruner's floor is computed from.
type PruneInput struct {
	Newest  uint64     // the newest complete snapshot
	Written uint64     // the snapshot this compactor wrote before reading Regs
	Regs    []Registry // read after that snapshot was written
}

// PruneFloor is the highest log position a pruner may delete: at most the
// newest snapshot, the snapshot this compactor wrote before reading the
// acks, and every non-retired ack (S10). ok is false when no registry
// bounds it (nothing is pruned).
func PruneFloor(in PruneInput) (uint64, bool) {
	ack, ok := MinAck(in.Regs)
	if !ok {
		return 0, false
	}
	return min(in.Newest, in.Written, ack), true
}

// Prunable reports whether an object last modified at modified (server
// time) is old enough to delete at serverNow: a negative grace means any
// age; an unknown time is never old enough.
func Prunable(modified, serverNow time.Time, grace time.Duration) bool {
	return grace < 0 || !modified.IsZero() && serverNow.Sub(modified) >= grace
}

// Writes is what a directory knows of its own registry writes.
type Writes struct {
	Nonce        string   // the nonce of the last write known to hold the object
	ETag         string   // its ETag
	PendingNonce string   // a write sent (or about to be) whose outcome is unknown
	Prior        []string // earlier pending nonces a crash left unresolved
}

// Wrote reports whether this directory wrote a body with nonce.
func (w Writes) Wrote(nonce string) bool {
	return nonce != "" && (nonce == w.Nonce || nonce == w.PendingNonce || slices.Contains(w.Prior, nonce))
}

// OwnsBody reports whether body was written by this directory, or is the
// retirement of a body it wrote: rebase and un-retire go ahead only then
// (absence rule 5).
func OwnsBody(w Writes, body Registry) bool {
	return w.Wrote(body.Nonce) || body.Retired && w.Wrote(body.RetiredNonce)
}

// FenceNonce is the nonce a registry swap starts with as its own: none. A
// pending write inherited from a crash or a copy is never a fence (absence
// rule 2); the swap moves it to Prior and makes a fresh one.
func FenceNonce(pending string) string { return "" }

// SwapRead is a read-back of this replica's registry object after a swap
// failed or its answer was lost.
type SwapRead struct {
	Retired bool
	Nonce   string
	ETag    string
}

// SwapVerdict is what a swap's read-back means.
type SwapVerdict int

const (
	// SwapRetired: the replica is retired; it rebases (only that clears it).
	SwapRetired SwapVerdict = iota
	// SwapLanded: this call's own write holds the object: a fence.
	SwapLanded
	// SwapAdoptPrior: a write a crash left pending landed: adopt its ETag
	// and swap again with a fresh nonce.
	SwapAdoptPrior
	// SwapAdoptETag: the last body this directory wrote, under a new ETag
	// (a restored or copied bucket): adopt the ETag and swap again.
	SwapAdoptETag
	// SwapUnchanged: the swap did not land; try again.
	SwapUnchanged
	// SwapForeign: another directory wrote the object (after a second,
	// confirming read: ErrCloned).
	SwapForeign
	// SwapAdoptAny is an old rule's verdict only: take a landed write of
	// this directory for this call's own.
	SwapAdoptAny
)

// JudgeSwap judges a read-back of this replica's registry: retired first,
// whoever wrote it (absence rule 1); then this call's own write (made);
// then a crash's leftover (Prior, adopted and swapped again: rule 2); then
// the last known body under a new ETag; then an unchanged object; anything
// else was written by another directory.
func JudgeSwap(rb SwapRead, w Writes, made string) SwapVerdict {
	switch {
	case rb.Retired:
		return SwapRetired
	case rb.Nonce == made:
		return SwapLanded
	case slices.Contains(w.Prior, rb.Nonce):
		return SwapAdoptPrior
	case rb.Nonce == w.Nonce && rb.ETag != w.ETag:
		return SwapAdoptETag
	case rb.ETag == w.ETag || rb.Nonce == w.Nonce:
		return SwapUnchanged
	default:
		return SwapForeign
	}
}

// CommitVerdict is what the read of this replica's registry after a
// segment's create means for the push.
type CommitVerdict int

const (
	// CommitOK: not retired, written by this directory: commit.
	CommitOK CommitVerdict = iota
	// CommitRetired: keep the outbox, rebase, push again.
	CommitRetired
	// CommitForeign: another directory wrote it (ErrCloned once confirmed).
	CommitForeign
)

// JudgeCommit judges the registry read that a push makes after a
// segment's create and before it clears any outbox mark (absence rule 3).
func JudgeCommit(body Registry, w Writes) CommitVerdict {
	switch {
	case body.Retired:
		return CommitRetired
	case w.Wrote(body.Nonce):
		return CommitOK
	default:
		return CommitForeign
	}
}

// MayPush reports whether a replica may push without pulling first: only
// once it has pulled to a listed tip (ready; S7).
func MayPush(ready bool) bool { return ready }

// MarkCleared reports whether a push's commit clears a key's outbox mark:
// only when the mark is still the one staged (a write since then keeps
// the key dirty for the next push).
func MarkCleared(staged, now uint64, present bool) bool { return present && now == staged }

// WriteStart is the clock a local write of a key with no record starts
// from: G, which covers every collected clock, so the write dominates any
// copy of a collected record still held elsewhere (S5).
func WriteStart(g clock.Vector) clock.Vector { return g }

// Adopt is what a pulled record becomes on a replica with no record of its
// key: the record whole, even when G covers some of its versions (a key
// collected here may come back in a record others merged since; S9).
func Adopt(remote merge.Record, _ func() clock.Vector) merge.Record { return remote }

// PartNonce is the nonce a compactor's snapshot parts are named by (its
// own), and whether they are written create-only (yes): two compactors at
// one position never overwrite each other's parts (S15).
func PartNonce(nonce string) (string, bool) { return nonce, true }
