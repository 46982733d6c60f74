// Package engine is the sync engine of ebreplica (the replica package is its
// public facade): one local replica of a multi-writer replicated key-value
// store.
//
// Every read and write is local (Badger on disk) and needs no network. Each
// write is stamped with a fresh dot and hybrid-logical-clock time, replaces
// every concurrent version of its key (it has seen them all), and marks the
// key in the outbox in the same transaction, so a later push sends only
// changed keys. Concurrent writes from other replicas are kept as siblings
// and projected to one read value by the key's policy (lww by default).
//
// A Replica is safe for concurrent use. Writes from many goroutines are
// grouped into shared transactions (group commit); with Durability Sync a
// write returns after its group's fsync.
//
// # Sync protocol
//
// Replicas share one global log of delta segments on the remote
// (log/<position>, created create-only at tip+1). Push (push.go) stages the
// outbox's current merged records into segments in one synced transaction
// (the write-ahead record: a crash leaves the outbox or a staged segment,
// never neither), fences by swapping this replica's registry object, uploads
// each staged segment unchanged, and commits (clearing only the marks
// unchanged since staging). Pull (pull.go) lists after its cursor and merges
// segments in position order; merging is a join, so re-applying is harmless.
//
// The protocol's rules are pure functions in internal/protocol, whose
// documentation states the safety argument; the engine gathers what each
// rule reads, calls it through its rule set (Engine.rules: protocol.Default,
// or the simulator's Hooks.Rules) and carries the decision out. One file
// per concept: push.go (MayPush, Sync, CheckAfterCreate/JudgeCommit,
// MarkCleared), pull.go (PlanPull, AdmitSegment, RegistryDue), apply.go
// (the record applier shared by pull and bootstrap: Merge, Adopt,
// CursorLast, SnapshotDots), registry.go (registry, fencing, acks: Ack,
// FenceNonce, JudgeSwap, OwnsBody), format.go (the remote objects'
// formats, from remote/format), compaction.go (PlanCollect, ToRetire,
// Retirement, SnapshotFirst), collection.go (Collectible, CollectRecord),
// snapshotfile.go (writing and listing snapshots: PartNonce),
// bootstrap.go, rebase.go, restamp.go (the re-stamp shared by rebase and
// reidentify: KeepCRDTState), reidentify.go, prune.go (PruneFloor,
// Prunable); verify.go delegates to internal/fsck.
//
// Where this implementation goes beyond DESIGN.md, and why:
//   - Every segment this replica stages is remembered by hash (m/sent/); a
//     pulled segment whose origin is this replica's id but that it never
//     staged was published by a copy of this directory: the pull stops with
//     ErrCloned before merging it. The design's check (a clock entry above
//     our counter) misses a copy that has issued fewer dots than we have.
//   - The manifest has no checksum, so it is read until two reads agree
//     before any verdict (newer format, other policies) or local copy; one
//     damaged read is never a verdict. A registry object holding our own last
//     body under a new ETag (a restored or copied bucket) is adopted rather
//     than retried forever. Both were found by the simulator.
//   - A replica bootstrapping from a snapshot joins the snapshot's G into the
//     clocks of keys it wrote before the snapshot arrived (schedule S7; bootstrap.go,
//     and internal/protocol, "Bootstrap").
//   - Compaction pulls before publishing its own ack, so a compactor can
//     collect its own deletes in the same run.
package engine
