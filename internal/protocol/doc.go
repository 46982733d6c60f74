// Package protocol holds the rules of ebreplica's sync protocol as pure
// functions: no context, no I/O, no store. Each takes the state it reads as
// plain values and returns a decision; internal/engine gathers those values
// from the local store and the remote, calls the rule, and carries the
// decision out. Every rule is table-tested here and checked against a naive
// oracle with rapid, so a rule can be read, called and broken on its own.
//
// Rules is the set the engine calls through. Default holds the rules below;
// the simulator builds other sets from the rules earlier drafts of this
// protocol had (sim/oldrules.go), each paired with a schedule that diverges
// under it. Nothing in the public API can change the set.
//
// # The rules
//
//   - Ack: a replica's published ack is its cursor lowered to the base of
//     every staged segment; its own pushes are never part of it.
//   - PlanCollect, Collectible, CollectRecord: what compaction may collect.
//   - ToRetire, Retirement: who a compactor retires and how.
//   - PruneFloor, Prunable: what a pruner may delete.
//   - JudgeSwap, JudgeCommit, FenceNonce, OwnsBody: the verdict on a read
//     of this replica's own registry object.
//   - MayPush, PlanPull, AdmitSegment, RegistryDue, AdoptedAt: when a
//     replica pushes, what a pull does with what it listed, which segments
//     it applies, when it rewrites its registry (and how old an adopted
//     registration is).
//   - TwinDot: a pulled or loaded version under this replica's id that a
//     local version of the same dot contradicts (twin.go): ErrCloned
//     before it is merged.
//   - MarkCleared: which outbox marks a push's commit clears.
//   - ClaimStart: where a push's first claim on the log aims (claim.go):
//     KnownTip, the protocol, or ListedTip, a prototype that lists the
//     log's tail first (issue 17; only the simulator sets it).
//
// # Acknowledgements (Ack)
//
// A replica's registry carries ack: its contiguous applied position (the
// cursor), lowered to the base of any staged segment not yet uploaded; the
// position of its own last push is never part of it (schedule S3). Every
// segment reflects all positions up to its base, so ack(X) is at most the
// base of every segment X will ever upload (S6). Acks are written at each
// push (before the upload) and after pulls, at most once per AckInterval
// (RegistryDue).
//
// # Collection (PlanCollect, Collectible, CollectRecord)
//
// A record is deleted whole, its clock joined into G, only when (1) it
// reads as deleted with no user code involved; (2) it has no outbox mark,
// so sits in no staged segment; (3) its pos is at most the minimum ack over
// non-retired replicas; (4) this replica has applied every position up to a
// tip it listed after reading those acks (PlanCollect.PullFirst; S4). It is
// safe: once min ack >= pos, anything a non-retired replica publishes later
// already contains the collected state or dominates it; anything published
// before sits below the listed tip, which this replica has applied; retired
// replicas publish only after rebasing; new replicas only after pulling
// past pos (MayPush; S7); and this replica's later writes of the key start
// from G, which covers the collected clock, so they dominate copies others
// still hold (S5). A single tombstone sibling is never dropped out of a
// record (under lww that would turn a deleted key back into a live one;
// CollectRecord, S8), and a remote record for a collected key is taken
// whole, not filtered through G (S9).
//
// # Bootstrap (MayPush)
//
// A new replica loads the newest snapshot (records with their pos, and G)
// and pushes nothing before it has pulled to a listed tip (MayPush). Keys
// it wrote before the snapshot arrived started from the G it had then
// (empty); loading the snapshot joins the snapshot's G into their clocks,
// so those writes dominate every record collected before, exactly as a
// write made after loading would. Without this, schedule S7 diverges even
// with the pull-before-push rule: a replica that collected the key takes
// the new write whole, while one that still holds the tombstone keeps both
// and may read the tombstone.
//
// # Snapshots (SnapshotFirst, PartNonce)
//
// Compact pushes first and takes one consistent view in which the outbox
// is empty and nothing is staged (S12), at P = the cursor; it writes
// snap/<P>/part-<nonce>-NNNN create-only (S15) and then snap/<P>/index
// (create-only, last) listing the parts with their checksums. A snapshot
// without its index is never used; two compactors at one P are harmless.
//
// # Pruning (PruneFloor, Prunable)
//
// Pruning deletes log segments only at or below the newest snapshot, the
// minimum non-retired ack, and the snapshot this compactor wrote before it
// read those acks (S10), and only once their server LastModified is older
// than the grace period, judged against server time. A non-retired pusher
// always creates positions above its cursor >= its ack >= the floor, so no
// position it could still create is freed.
//
// # Absence: pauses, crashes, restores, copies
//
// A replica may stop anywhere for any time, come back from a backup, or be
// copied; its clocks say nothing reliable about how long it was gone. The
// rules that keep every acknowledged write (DESIGN.md, "Absence rules"):
//
//  1. Retired is sticky, and a retirement is its own write (Retirement,
//     and JudgeSwap checks retired first). A retirer writes seq+1 with a
//     fresh nonce and RetiredNonce naming the body it retired; only the
//     retired replica clears it, after rebasing (S16).
//  2. Only a registry write made by the current call fences (FenceNonce,
//     JudgeSwap). A pending nonce left by a crash, or copied with the
//     directory, is never sent again: it moves to Prior, and if it is found
//     to have landed its ETag is adopted and a fresh compare-and-swap
//     follows; of two copies one wins, the other reads a body it did not
//     write and stops with ErrCloned before uploading (S18).
//  3. A push commits a segment only after reading its registry not
//     retired, after the create (JudgeCommit). A pruner frees a position
//     only after reading the registry of every replica whose ack is below
//     it as retired (PruneFloor), and retired is sticky; so a create that
//     landed in a freed position, however long the pusher slept, is
//     followed by a read that sees retired: the outbox is kept, the replica
//     rebases and pushes again (S17).
//  4. "Nothing listed" means "up to date" only at or above the newest
//     snapshot (PlanPull): a replica not yet ready, or rebasing, checks the
//     snapshots; a hole at or below the newest snapshot means "pruned"
//     (S19); a replica not yet ready below the newest snapshot loads it
//     when its log looks contiguous but holds a position at or below the
//     snapshot created after it: a retired pusher's create filling a freed
//     position (S37; one made in the same second is not told apart: see
//     PlanPull).
//  5. Rebase and un-retire go ahead only on a registry body this directory
//     wrote, or the retirement of one (OwnsBody), and a snapshot holding
//     this id's dots above the local counter is ErrCloned (S19).
//  6. Rebase and reidentify keep a dirty counter or set key as its joined
//     CRDT state, never as its text (S20).
//  7. An idle replica rewrites its registry at least every RegistryRefresh
//     (RegistryDue; S21), counted from the write of the body on the store:
//     a registration adopted after an ambiguous create is dated by its
//     body's Wall, not by the adoption (AdoptedAt; S36); and a compactor
//     retires only a replica whose ack is below the snapshot it just wrote
//     (ToRetire).
//
// Together: a write is acknowledged when its transaction (with its outbox
// mark) is durable; the mark is cleared only by a commit that follows a
// create and a not-retired read (3, MarkCleared), or by a rebase that
// re-stamps the key first; a rebase discards nothing of another
// directory's history (5); and a copy or a restore can neither fence (2)
// nor reuse dots it did not issue (5, AdmitSegment); a restore that
// issues again a dot its earlier self published is refused before the
// two versions merge as one (TwinDot: merge keeps one version per dot,
// and the other write would be gone).
//
// Open points (DESIGN.md): a retired pusher whose create landed at a live
// position and whose directory is then lost leaves a segment the others
// apply although its origin never rebases; an idle replica may still be
// retired if a burst, a snapshot and RetireAfter all fall between two of its
// pulls; a counter reidentified while its twin keeps publishing under the
// old id may count the twin's published total twice; a restored backup that
// never pushes serves stale reads until it pulls.
package protocol
