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
// One file per concept: push.go, pull.go, apply.go (the record applier
// shared by pull and bootstrap), registry.go (registry, fencing, acks),
// format.go (the remote objects' formats), compaction.go, collection.go,
// snapshotfile.go (writing and listing snapshots), bootstrap.go, rebase.go,
// restamp.go (the re-stamp shared by rebase and reidentify), reidentify.go,
// prune.go; verify.go delegates to internal/fsck. The sections below state
// the safety argument.
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
//     clocks of keys it wrote before the snapshot arrived (schedule S7; see
//     Bootstrap below).
//   - Compaction pulls before publishing its own ack, so a compactor can
//     collect its own deletes in the same run.
//
// # Snapshots, bootstrap, collection, retirement and pruning
//
// Acknowledgements. A replica's registry carries ack: its contiguous
// applied position (the cursor), lowered to the base of any staged segment
// not yet uploaded; the position of its own last push is never part of it.
// Every segment reflects all positions up to its base, so ack(X) is at most
// the base of every segment X will ever upload. Acks are written at each
// push (before the upload) and after pulls, at most once per AckInterval.
//
// Collection. A record is deleted whole here, its clock joined into G, only
// when (1) it reads as deleted with no user code involved (every sibling a
// tombstone, or an lww winner that is a tombstone); (2) it has no outbox
// mark (so sits in no staged segment); (3) its pos <= the minimum ack over
// non-retired replicas; (4) this replica has applied every position up to a
// tip it listed after reading those acks. It is safe: once min ack >= pos,
// anything a non-retired replica publishes later already contains the
// collected state or dominates it; anything published before sits below the
// listed tip, which this replica has applied; retired replicas publish only
// after rebasing; new replicas only after pulling past pos; and this
// replica's later writes of the key start from G, which covers the collected
// clock, so they dominate copies others still hold. A single tombstone
// sibling is never dropped out of a record (under lww that would turn a
// deleted key back into a live one), and a remote record for a collected key
// is taken whole, not filtered through G.
//
// Bootstrap. A new replica loads the newest snapshot (records with their
// pos, and G) and pushes nothing before it has pulled to a listed tip. Keys
// it wrote before the snapshot arrived started from the G it had then
// (empty); loading the snapshot joins the snapshot's G into their clocks, so
// those writes dominate every record collected before, exactly as a write
// made after loading would. Without this, schedule S7 diverges even with
// the pull-before-push rule: a replica that collected the key takes the new
// write whole, while one that still holds the tombstone keeps both and may
// read the tombstone (found by the scripted schedule in
// schedules_test.go; an improvement over DESIGN.md).
//
// Snapshots. Compact pushes first and takes one consistent view in which
// the outbox is empty and nothing is staged, at P = the cursor; it writes
// snap/<P>/part-<nonce>-NNNN (create-only) and then snap/<P>/index
// (create-only, last) listing the parts with their checksums. A snapshot
// without its index is never used; two compactors at one P are harmless (the
// index's create-only put picks one; the loser removes its parts).
//
// Pruning deletes log segments only at or below both the newest snapshot
// and the minimum non-retired ack, and only once their server LastModified is
// older than the grace period (judged against the LastModified of this
// replica's own latest registry write: server time, not a local clock). A
// non-retired pusher always creates positions above its cursor >= its ack >=
// the floor, so no position it could still create is freed.
//
// # Absence: pauses, crashes, restores, copies
//
// A replica may stop anywhere for any time (a laptop asleep between its
// fence and its upload, a process stopped, a crash followed by a month
// away), come back from a backup, or be copied; its wall and monotonic
// clocks say nothing reliable about how long it was gone. The rules that
// keep every acknowledged write (DESIGN.md, "Absence rules"), and why they
// suffice:
//
//  1. Retired is sticky, and a retirement is its own write. A retirer
//     writes seq+1 with a fresh nonce and RetiredNonce naming the body it
//     retired; every registry read of the retired replica checks retired
//     before anything else, and only the retired replica clears it, after
//     rebasing. So no pending write of the retired replica can be mistaken
//     for a landed fence, and a retirement once made is seen by every later
//     read of that registry (S16).
//  2. Only a registry write made by the current call fences. A pending
//     nonce left by a crash, or copied with the directory, is never sent
//     again: it moves to Prior, and if it is found to have landed its ETag is
//     adopted and a fresh compare-and-swap follows. Two copies holding the
//     same pending nonce race for that swap; one wins, the other reads a
//     body it did not write and stops with ErrCloned before uploading (S18).
//  3. A push commits a segment (clears its outbox marks) only after reading
//     its registry not retired, after the create. A pruner frees a position
//     only after reading the registry of every replica whose ack is below
//     it as retired (acks of non-retired replicas bound the floor), and
//     retired is sticky; so a create that landed in a freed position,
//     however long the pusher slept before it, is followed by a read that
//     sees retired: the outbox is kept, the replica rebases and pushes again
//     (S17). A check before the create could not close this: a sleep moves
//     only server time. A rebase clears retired itself (un-retire), so it
//     then pulls to the tip once more, restarting on a newer snapshot if
//     the log was pruned past it meanwhile; and a pruner bounds its floor
//     by the snapshot it wrote before reading the acks it prunes against,
//     so that pull reaches every floor a pruner that still read the
//     replica retired can use (found by the simulator, absence seed 1606).
//  4. "Nothing listed" means "up to date" only at or above the newest
//     snapshot: a replica not yet ready (new, reidentified) lists snap/
//     once, and a cursor below the newest snapshot without a contiguous log
//     up to it rebases before it may push; a hole at or below the newest
//     snapshot means "pruned" (S19).
//  5. Rebase and un-retire go ahead only on a registry body this directory
//     wrote (or the retirement of one), and a snapshot holding this id's
//     dots above the local counter (the index's Top, and each record as it
//     loads) is ErrCloned: a directory restored from a backup cannot load
//     its newer life's dots and issue them again (S19).
//  6. Rebase and reidentify keep a dirty counter or set key as its joined
//     CRDT state, never as its text, and write current ⊔ kept (reidentify:
//     the old id's unpublished entries moved to the new write's dot) (S20).
//  7. An idle replica rewrites its registry at least every RegistryRefresh
//     (a day), far below RetireAfter (S21); and a compactor retires only a
//     replica whose ack is below the snapshot it just wrote.
//
// Together: a write is acknowledged when its transaction (with its outbox
// mark) is durable; the mark is cleared only by a commit that follows a
// create and a not-retired read (3), or by a rebase that re-stamps the key
// first (kept on disk in m/rebase/, crash-safe); a rebase discards nothing
// of another directory's history (5); and a copy or a restore can neither
// fence (2) nor reuse dots it did not issue (5, and the pull-side checks).
// Each rule has a scripted schedule in absence_test.go that fails with the
// old rule restored (replica.Knobs), and the simulator's fault model
// (sim/) pauses replicas at every step, restores and copies directories.
//
// Open points (DESIGN.md): a retired pusher whose create landed at a live
// position and whose directory is then lost leaves a segment the others
// apply although its origin never rebases; its records were staged before
// the retirement, so one may carry a key others collected since (a
// sibling concurrent with a collected tombstone), which a replica that
// collected the key takes whole and one that did not merges — a reading
// side rule (skip or filter segments of a retired origin staged below the
// prune floor) would close it; an idle replica may still be retired if a
// burst, a snapshot and RetireAfter all fall between two of its pulls; a
// counter reidentified while its twin keeps publishing under the old id may
// count the twin's published total twice; a restored backup that never
// pushes serves stale reads until it pulls.
package engine
