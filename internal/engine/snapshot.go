package engine

// Snapshots, bootstrap, collection, retirement and pruning.
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

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sync/errgroup"
)

// Defaults for compaction.
const (
	DefaultPartSize    = 4 << 20
	DefaultGrace       = time.Hour
	DefaultRetireAfter = 30 * 24 * time.Hour
)

// SnapIndex is snap/<P>/index.
type SnapIndex struct {
	Format   int               `json:"format"`
	StoreID  string            `json:"store_id"`
	Position uint64            `json:"position"`
	Origin   string            `json:"origin"`
	Nonce    string            `json:"nonce"`
	G        map[string]uint64 `json:"g"`
	// Top is the join of G and every record's clock: the highest dot of
	// each replica the snapshot holds. A rebasing replica whose own entry
	// here is above its counter was copied or restored (absence rule 5),
	// and finds out before it discards anything.
	Top     map[string]uint64 `json:"top,omitempty"`
	Records int64             `json:"records"`
	Parts   []PartInfo        `json:"parts"`
	Created time.Time         `json:"created"`
}

// PartInfo describes one snapshot part.
type PartInfo struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Records int    `json:"records"`
}

// SnapKey returns the object name of a snapshot's index.
func SnapKey(pos uint64) string { return fmt.Sprintf("%s%020d/index", remote.SnapPrefix, pos) }

func partKey(pos uint64, nonce string, n int) string {
	return fmt.Sprintf("%s%020d/part-%s-%04d", remote.SnapPrefix, pos, nonce, n)
}

// parseSnapKey splits snap/<P>/<rest>.
func parseSnapKey(key string) (pos uint64, rest string, ok bool) {
	s, found := strings.CutPrefix(key, remote.SnapPrefix)
	if !found || len(s) < 22 || s[20] != '/' {
		return 0, "", false
	}
	p, err := strconv.ParseUint(s[:20], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return p, s[21:], true
}

// CompactOptions configures Compact.
type CompactOptions struct {
	// Prune deletes log segments the snapshot covers (see package doc),
	// older snapshots and orphaned parts, and retires replicas silent for
	// longer than RetireAfter.
	Prune bool
	// PartSize caps a snapshot part's raw size (DefaultPartSize when 0).
	PartSize int
	// Grace is how old (by server time) an object must be before pruning
	// deletes it (DefaultGrace when 0; negative means none, for tests).
	Grace time.Duration
	// RetireAfter is how long a replica's registry may stay unwritten
	// before Prune retires it (DefaultRetireAfter when 0).
	RetireAfter time.Duration
}

// CompactStats reports a Compact.
type CompactStats struct {
	Position  uint64        `json:"position"`
	Records   int64         `json:"records"`
	Parts     int           `json:"parts"`
	Pruned    int           `json:"pruned"`
	Collected int           `json:"collected"`
	Retired   []string      `json:"retired,omitempty"`
	Reused    bool          `json:"reused,omitempty"` // another compactor's snapshot at P was kept
	Requests  remote.Counts `json:"requests"`
}

type regInfo struct {
	body RegistryBody
	info remote.Info
	etag string
}

// readRegistries lists and reads every registry object. A listing that
// misses a registry must not make its ack be ignored (a higher minimum ack
// would let collection and pruning outrun that replica), so it is
// conservative: every replica id this directory has seen registered before
// (m/peer/<id>) must be found again, by the listing or by a direct read;
// one that cannot be read stops the compaction with an error. New ids are
// remembered.
func (r *Engine) readRegistries(ctx context.Context) ([]regInfo, error) {
	b := r.opts.Backend
	var out []regInfo
	seen := map[string]bool{}
	read := func(info remote.Info) error {
		obj, err := b.Get(ctx, info.Key)
		if err != nil {
			return err
		}
		var body RegistryBody
		if err := json.Unmarshal(obj.Data, &body); err != nil {
			return fmt.Errorf("replica: %s on %s is not a registry object: %w", info.Key, b, err)
		}
		info.LastModified = obj.LastModified
		out = append(out, regInfo{body: body, info: info, etag: obj.ETag})
		// Remember the id the object is named by, once it parses.
		name := strings.TrimSuffix(strings.TrimPrefix(info.Key, remote.ReplicasPrefix), ".json")
		if id, err := clock.ParseReplicaID(name); err == nil {
			seen[id.String()] = true
		}
		return nil
	}
	for info, err := range b.List(ctx, remote.ReplicasPrefix, "") {
		if err != nil {
			return nil, fmt.Errorf("replica: list %s on %s: %w", remote.ReplicasPrefix, b, err)
		}
		if err := read(info); errors.Is(err, remote.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("replica: read %s on %s: %w", info.Key, b, err)
		}
	}
	var known []string
	if err := r.st.View(func(v *store.View) error {
		return v.MetaScan("peer/", func(name string, _ []byte) (bool, error) {
			known = append(known, strings.TrimPrefix(name, "peer/"))
			return true, nil
		})
	}); err != nil {
		return nil, wrapClosed(err)
	}
	for _, id := range known {
		if seen[id] {
			continue
		}
		key := remote.ReplicasPrefix + id + ".json"
		if err := read(remote.Info{Key: key}); err != nil {
			return nil, fmt.Errorf("replica: registry %s of a known replica is missing from the listing of %s and cannot be read (%w): its ack cannot be counted, so nothing is collected or pruned", key, b, err)
		}
	}
	var fresh []string
	for id := range seen {
		if !slices.Contains(known, id) {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) > 0 {
		if err := r.st.Update(ctx, func(tx *store.Tx) error {
			for _, id := range fresh {
				tx.SetMeta("peer/"+id, []byte{1})
			}
			return nil
		}); err != nil {
			return nil, wrapClosed(err)
		}
	}
	return out, nil
}

// minAck is the minimum ack over non-retired replicas (ok false when none).
func minAck(regs []regInfo) (uint64, bool) {
	var m uint64
	ok := false
	for _, g := range regs {
		if g.body.Retired {
			continue
		}
		if !ok || g.body.Ack < m {
			m, ok = g.body.Ack, true
		}
	}
	return m, ok
}

// ackNow is this replica's ack: the cursor lowered to staged bases.
func (r *Engine) ackNow() (uint64, error) {
	st, err := r.loadStaged()
	if err != nil {
		return 0, err
	}
	ack := r.cursor()
	if !r.knob(func(k *Knobs) bool { return k.AckIgnoresStaged }) {
		for _, s := range st {
			ack = min(ack, s.Base)
		}
	}
	if r.knob(func(k *Knobs) bool { return k.AckIncludesOwnPush }) {
		ack = max(ack, r.lastOwn())
	}
	return ack, nil
}

// lastOwn is the highest position of this replica's own pushes.
func (r *Engine) lastOwn() uint64 {
	var last uint64
	_ = r.st.View(func(v *store.View) error {
		return v.MetaScan("own/", func(name string, _ []byte) (bool, error) {
			var p uint64
			if _, err := fmt.Sscanf(name, "own/%d", &p); err == nil {
				last = max(last, p)
			}
			return true, nil
		})
	})
	return last
}

// Compact collects what may be collected, writes a snapshot of this
// replica's state and, with Prune, retires silent replicas and prunes the
// log. See the package documentation for the rules.
func (r *Engine) Compact(ctx context.Context, o CompactOptions) (cs CompactStats, err error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	b := r.opts.Backend
	if b == nil {
		return cs, ErrNoRemote
	}
	before := b.Stats().Snapshot()
	defer func() { cs.Requests = b.Stats().Snapshot().Sub(before) }()
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize > maxPartSize {
		return cs, fmt.Errorf("replica: compact: PartSize %d is above the %d bytes readers accept", o.PartSize, maxPartSize)
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.RetireAfter <= 0 {
		o.RetireAfter = DefaultRetireAfter
	}
	if _, err := r.connectLocked(ctx); err != nil {
		return cs, err
	}
	if err := r.resumeRebase(ctx); err != nil {
		return cs, err
	}
	if r.knob(func(k *Knobs) bool { return k.SnapshotDirty }) {
		// Old rule: snapshot the local state as it is, unpushed data and all.
		_, err := r.writeSnapshot(ctx, o.PartSize, &cs)
		return cs, err
	}
	// Push and pull first, so the outbox empties and our own ack is fresh;
	// our registry swap also gives the server's notion of now.
	if _, err := r.pushLocked(ctx); err != nil {
		return cs, err
	}
	if _, err := r.pullLocked(ctx); err != nil {
		return cs, err
	}
	if err := r.step("compact:pushed"); err != nil {
		return cs, err
	}
	ack, err := r.ackNow()
	if err != nil {
		return cs, err
	}
	if err := r.swapRegistry(ctx, ack); err != nil {
		if !errors.Is(err, ErrRetired) {
			return cs, err
		}
		// Retired while silent: rebase first, as push and pull do.
		if err := r.rebase(ctx); err != nil {
			return cs, err
		}
		if ack, err = r.ackNow(); err != nil {
			return cs, err
		}
		if err := r.swapRegistry(ctx, ack); err != nil {
			return cs, err
		}
	}
	regs, err := r.readRegistries(ctx)
	if err != nil {
		return cs, err
	}
	var serverNow time.Time
	for _, g := range regs {
		if g.body.ReplicaID == r.ID().String() {
			serverNow = g.info.LastModified
		}
	}
	if err := r.step("compact:acks"); err != nil {
		return cs, err
	}
	floorAck, _ := minAck(regs)
	if r.knob(func(k *Knobs) bool { return k.CollectAgainstMaxAck }) {
		for _, g := range regs {
			floorAck = max(floorAck, g.body.Ack)
		}
	} else if _, err := r.pullLocked(ctx); err != nil {
		// Pull to a tip listed after reading the acks, then collect.
		return cs, err
	}
	if cs.Collected, err = r.collect(ctx, floorAck); err != nil {
		return cs, err
	}
	if err := r.step("compact:collected"); err != nil {
		return cs, err
	}
	// Snapshot, retrying if writes keep arriving.
	for attempt := 0; ; attempt++ {
		if _, err := r.pushLocked(ctx); err != nil {
			return cs, err
		}
		if _, err := r.pullLocked(ctx); err != nil {
			return cs, err
		}
		done, err := r.writeSnapshot(ctx, o.PartSize, &cs)
		if err != nil {
			return cs, err
		}
		if done {
			break
		}
		if attempt >= 5 {
			return cs, errors.New("replica: compact: local writes keep arriving; try again when quieter")
		}
	}
	if err := r.step("compact:snapshot"); err != nil {
		return cs, err
	}
	// Retire silent replicas only now that a snapshot exists to rebase on.
	if o.Prune && !serverNow.IsZero() {
		for _, g := range regs {
			if g.body.Retired || g.body.ReplicaID == r.ID().String() || g.info.LastModified.IsZero() {
				continue
			}
			if serverNow.Sub(g.info.LastModified) < o.RetireAfter {
				continue
			}
			// Absence rule 7: retire only a replica that holds the prune
			// floor down; one at the snapshot gains nothing by it.
			if g.body.Ack >= cs.Position && !r.knob(func(k *Knobs) bool { return k.RetireAtTip }) {
				continue
			}
			// Absence rule 1: a retirement is a write of its own (seq+1, a
			// fresh nonce, naming the body it retired), never the old body
			// with the flag flipped: the retired replica then cannot take
			// it for its own pending write.
			body := g.body
			body.Retired = true
			if !r.knob(func(k *Knobs) bool { return k.RetiredNotSticky }) {
				body.Seq, body.Nonce, body.RetiredNonce = body.Seq+1, newNonce(), g.body.Nonce
			}
			data, _ := json.MarshalIndent(body, "", "  ")
			key := remote.ReplicasPrefix + g.body.ReplicaID + ".json"
			if _, err := b.PutIfMatch(ctx, key, data, g.etag); err == nil {
				cs.Retired = append(cs.Retired, g.body.ReplicaID)
			} else if !errors.Is(err, remote.ErrPrecondition) {
				return cs, fmt.Errorf("replica: retire %s: %w", key, err)
			}
		}
	}
	if err := r.step("compact:retired"); err != nil {
		return cs, err
	}
	if o.Prune {
		// The acks that bound the floor are read after the snapshot is
		// written, and the floor is at most that snapshot: a replica that
		// was read retired here and un-retires later pulls to a tip at or
		// above it before it pushes (rebase), so no position it could
		// still create is freed.
		if regs, err = r.readRegistries(ctx); err != nil {
			return cs, err
		}
		n, err := r.prune(ctx, regs, serverNow, o.Grace, cs.Position)
		cs.Pruned = n
		if err != nil {
			return cs, err
		}
	}
	return cs, nil
}

// collect deletes the records that may be collected (conditions in the
// package doc; the caller has read the acks and pulled since) and joins
// their clocks into G.
func (r *Engine) collect(ctx context.Context, floor uint64) (int, error) {
	var keys []string
	err := r.st.View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			if st.Pos == 0 || st.Pos > floor || !readsDeletedNoUserCode(r.opts.Policies.For(key), st.Record) {
				return true, nil
			}
			if _, dirty, err := v.Mark(key); err != nil || dirty && !r.knob(func(k *Knobs) bool { return k.CollectIgnoresMark }) {
				return err == nil, err
			}
			keys = append(keys, key)
			return true, nil
		})
	})
	if err != nil {
		return 0, wrapClosed(err)
	}
	n := 0
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), r.chunk())]
		keys = keys[len(chunk):]
		err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			g, err := tx.G()
			if err != nil {
				return err
			}
			for _, key := range chunk {
				st, ok, err := tx.Record(key)
				if err != nil {
					return err
				}
				if !ok || st.Pos == 0 || st.Pos > floor || !readsDeletedNoUserCode(r.opts.Policies.For(key), st.Record) {
					continue
				}
				if _, dirty, err := tx.Mark(key); err != nil || dirty && !r.knob(func(k *Knobs) bool { return k.CollectIgnoresMark }) {
					if err != nil {
						return err
					}
					continue
				}
				if r.knob(func(k *Knobs) bool { return k.DropTombstoneSibling }) && !st.Deleted() {
					// Old rule: drop only the winning tombstone sibling.
					w := merge.LWWWinner(st.Versions)
					st.Versions = append(slices.Clone(st.Versions[:w]), st.Versions[w+1:]...)
					if err := tx.PutRecord(key, st); err != nil {
						return err
					}
					n++
					continue
				}
				g.JoinInPlace(st.Clock)
				if err := tx.DeleteRecord(key); err != nil {
					return err
				}
				n++
			}
			tx.SetG(g)
			return nil
		})
		if err != nil {
			return n, wrapClosed(err)
		}
	}
	return n, nil
}

// readsDeletedNoUserCode decides condition (1) of collection without
// running user code: every sibling a tombstone, or an lww winner that is.
func readsDeletedNoUserCode(p merge.Policy, rec merge.Record) bool {
	if len(rec.Versions) == 0 {
		return false
	}
	if rec.Deleted() {
		return true
	}
	if _, ok := merge.Builtin(p.Name()); ok && !isFunc(p) {
		// Built-in reads (lww's winner, an emptied counter or set) run no
		// user code.
		return !merge.Live(p, "", rec)
	}
	return false
}

func isFunc(p merge.Policy) bool {
	_, ok := p.(*merge.Func)
	return ok
}

// writeSnapshot writes a snapshot from one consistent view with an empty
// outbox and nothing staged. It reports false when the view was not clean.
func (r *Engine) writeSnapshot(ctx context.Context, partSize int, cs *CompactStats) (bool, error) {
	b := r.opts.Backend
	nonce := newNonce()[:12]
	codec, _ := segment.ParseCodec(r.manifest.Codec)
	var idx SnapIndex
	clean := true
	err := r.st.View(func(v *store.View) error {
		dirty := false
		low, err := v.QueueLow()
		if err != nil {
			return err
		}
		if err := v.Queue(low, func(string, uint64) (bool, error) { dirty = true; return false, nil }); err != nil {
			return err
		}
		if err := v.MetaScan("stage/", func(string, []byte) (bool, error) { dirty = true; return false, nil }); err != nil {
			return err
		}
		if dirty && !r.knob(func(k *Knobs) bool { return k.SnapshotDirty }) {
			clean = false
			return nil
		}
		cb, _, err := v.Meta("cursor")
		if err != nil {
			return err
		}
		g, err := v.G()
		if err != nil {
			return err
		}
		idx = SnapIndex{Format: FormatVersion, StoreID: r.manifest.StoreID, Position: u64(cb),
			Origin: r.ID().String(), Nonce: nonce, G: vectorJSON(g), Created: r.now().UTC()}
		enc := segment.NewPartEncoder()
		flush := func() error {
			if enc.Count() == 0 && len(idx.Parts) > 0 {
				return nil
			}
			data, err := enc.Finish(segment.Header{Origin: r.ID(), Base: idx.Position}, codec)
			if err != nil {
				return err
			}
			name := partKey(idx.Position, nonce, len(idx.Parts))
			put := b.PutIfAbsent
			if r.knob(func(k *Knobs) bool { return k.PartsWithoutNonce }) {
				name = partKey(idx.Position, "shared", len(idx.Parts))
				put = b.Put
			}
			if _, err := put(ctx, name, data); err != nil {
				return fmt.Errorf("replica: write %s on %s: %w", name, b, err)
			}
			sum := sha256.Sum256(data)
			idx.Parts = append(idx.Parts, PartInfo{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Records: enc.Count()})
			enc = segment.NewPartEncoder()
			return nil
		}
		top := g.Clone()
		err = v.Records("", "", func(key string, st store.Stored) (bool, error) {
			if err := enc.AddPos(key, st.Pos, st.Record); err != nil {
				return false, err
			}
			top.JoinInPlace(st.Clock)
			idx.Records++
			if enc.Len() >= partSize {
				return true, flush()
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		idx.Top = vectorJSON(top)
		return flush()
	})
	if err != nil || !clean {
		return false, wrapClosed(err)
	}
	data, _ := json.MarshalIndent(idx, "", "  ")
	_, err = b.PutIfAbsent(ctx, SnapKey(idx.Position), data)
	if errors.Is(err, remote.ErrExists) || errors.Is(err, remote.ErrTransient) {
		// Another compactor's snapshot at P won (or ours landed
		// ambiguously): keep whichever index is there, drop unused parts.
		// Parts are deleted only on an index read twice alike, decoded
		// strictly and naming another compactor: a damaged read of our own
		// index must not make us delete the parts it lists (found by the
		// simulator, restore seed 2369).
		other, gerr := r.readIndex(ctx, idx.Position)
		if gerr != nil {
			return false, fmt.Errorf("replica: write %s on %s: %w (read-back: %w)", SnapKey(idx.Position), b, err, gerr)
		}
		if other.Nonce != nonce {
			for _, p := range idx.Parts {
				_ = b.Delete(ctx, p.Name)
			}
			cs.Reused = true
			idx = other
		}
		err = nil
	}
	if err != nil {
		return false, fmt.Errorf("replica: write %s on %s: %w", SnapKey(idx.Position), b, err)
	}
	cs.Position, cs.Records, cs.Parts = idx.Position, idx.Records, len(idx.Parts)
	return true, nil
}

func vectorJSON(v clock.Vector) map[string]uint64 {
	out := map[string]uint64{}
	for _, d := range v.Entries() {
		out[d.Replica.String()] = d.Counter
	}
	return out
}

func vectorFromJSON(m map[string]uint64) (clock.Vector, error) {
	v := clock.Vector{}
	for s, c := range m {
		id, err := clock.ParseReplicaID(s)
		if err != nil {
			return nil, err
		}
		if c > 0 {
			v[id] = c
		}
	}
	return v, nil
}

// snapshots lists the complete snapshots (with an index), newest first, and
// every object under snap/.
func (r *Engine) snapshots(ctx context.Context) (complete []uint64, all []remote.Info, err error) {
	b := r.opts.Backend
	for info, err := range b.List(ctx, remote.SnapPrefix, "") {
		if err != nil {
			return nil, nil, fmt.Errorf("replica: list %s on %s: %w", remote.SnapPrefix, b, err)
		}
		all = append(all, info)
		if p, rest, ok := parseSnapKey(info.Key); ok && rest == "index" {
			complete = append(complete, p)
		}
	}
	slices.Sort(complete)
	slices.Reverse(complete)
	return complete, all, nil
}

// readIndex fetches and checks a snapshot index.
func (r *Engine) readIndex(ctx context.Context, pos uint64) (SnapIndex, error) {
	var idx SnapIndex
	b := r.opts.Backend
	// The index has no checksum of its own, and prune deletes every part
	// it does not list: read it until two reads agree, decode it strictly
	// (a bit flip in a field name must not read as "no parts"), and check
	// that it adds up (found by the simulator: a damaged read that still
	// decoded made a compactor prune the live snapshot's part).
	obj, err := readStable(ctx, b, SnapKey(pos))
	if err != nil {
		return idx, fmt.Errorf("replica: read %s on %s: %w", SnapKey(pos), b, err)
	}
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(obj.Data, &head); err == nil && head.Format > FormatVersion {
		return idx, fmt.Errorf("%w: %s", ErrNewerFormat, SnapKey(pos))
	}
	dec := json.NewDecoder(bytes.NewReader(obj.Data))
	dec.DisallowUnknownFields()
	bad := func(why string) error {
		return fmt.Errorf("%w: %s on %s: not a snapshot index (%s)", segment.ErrCorrupt, SnapKey(pos), b, why)
	}
	if err := dec.Decode(&idx); err != nil {
		return idx, bad(err.Error())
	}
	if idx.Position != pos {
		return idx, bad(fmt.Sprintf("it names position %d", idx.Position))
	}
	if r.manifest != nil && idx.StoreID != r.manifest.StoreID {
		return idx, fmt.Errorf("%w: %s on %s belongs to another store", segment.ErrCorrupt, SnapKey(pos), b)
	}
	if len(idx.Parts) == 0 {
		return idx, bad("it lists no parts")
	}
	var records int64
	prefix := fmt.Sprintf("%s%020d/part-", remote.SnapPrefix, pos)
	for _, p := range idx.Parts {
		if !strings.HasPrefix(p.Name, prefix) || p.Records < 0 || p.Size < 0 {
			return idx, bad(fmt.Sprintf("part %q", p.Name))
		}
		records += int64(p.Records)
	}
	if records != idx.Records {
		return idx, bad(fmt.Sprintf("its parts hold %d records, it says %d", records, idx.Records))
	}
	return idx, nil
}

// loadSnapshot merges a snapshot into the local state: parts fetched in
// parallel, verified against the index's checksums, applied in large
// batches; then G joins the snapshot's and the cursor moves up to P.
func (r *Engine) loadSnapshot(ctx context.Context, idx SnapIndex) error {
	b := r.opts.Backend
	g, err := vectorFromJSON(idx.G)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", segment.ErrCorrupt, SnapKey(idx.Position), err)
	}
	if err := r.checkOwnDots(idx.G, SnapKey(idx.Position)); err != nil {
		return err
	}
	id := r.ID()
	checkDots := !r.knob(func(k *Knobs) bool { return k.RebaseAnyRegistry })
	// ownSeen: the highest dot of this id the snapshot holds. Those dots
	// are published (a compactor read them in the log): reidentify must
	// keep them, as it keeps what this replica pushed itself (found by the
	// simulator: a directory restored from a backup bootstrapped its own
	// published write from a snapshot, then dropped it at reidentify).
	ownSeen := uint64(0)
	var done int64
	progress := func() {
		if r.opts.Progress != nil {
			r.opts.Progress("bootstrap", done, idx.Records)
		}
	}
	progress()
	for start := 0; start < len(idx.Parts); start += pullWindow {
		win := idx.Parts[start:min(start+pullWindow, len(idx.Parts))]
		segs := make([]*segment.Reader, len(win))
		eg, gctx := errgroup.WithContext(ctx)
		for i, p := range win {
			eg.Go(func() error {
				obj, err := b.Get(gctx, p.Name)
				if err != nil {
					return fmt.Errorf("replica: fetch %s from %s: %w", p.Name, b, err)
				}
				sum := sha256.Sum256(obj.Data)
				if hex.EncodeToString(sum[:]) != p.SHA256 {
					return fmt.Errorf("%w: %s on %s: checksum does not match the index", segment.ErrCorrupt, p.Name, b)
				}
				// Checked and held under the decode budget, then applied
				// as a stream below.
				s, err := r.partDecoder().OpenPart(gctx, p.Name+" on "+b.String(), obj.Data)
				if err != nil {
					return err
				}
				segs[i] = s
				return nil
			})
		}
		closeAll := func() {
			for _, s := range segs {
				if s != nil {
					s.Close()
				}
			}
		}
		if err := eg.Wait(); err != nil {
			closeAll()
			return err
		}
		for _, s := range segs {
			for {
				chunk, err := s.Next(4 * r.chunk())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					closeAll()
					return err
				}
				err = r.st.UpdateRelaxed(ctx, func(tx *store.Tx) error {
					for _, e := range chunk {
						own := e.Record.Clock.Get(id)
						ownSeen = max(ownSeen, own)
						if checkDots && own > tx.Counter() {
							// Checked per record too: an index without Top
							// (an older writer) or a lying one.
							return fmt.Errorf("%w: %s carries %s:%d, this replica has only issued up to %d",
								ErrCloned, SnapKey(idx.Position), id.Short(), own, tx.Counter())
						}
						for _, v := range e.Record.Versions {
							tx.Observe(v.Time)
						}
						cur, had, err := tx.Record(e.Key)
						if err != nil {
							return err
						}
						st := store.Stored{Record: e.Record, Pos: e.Pos}
						if had {
							st.Record = merge.Merge(cur.Record, e.Record)
							st.Pos = max(cur.Pos, e.Pos)
							if st.Record.Equal(cur.Record) && st.Pos == cur.Pos {
								continue
							}
						}
						if err := tx.PutRecord(e.Key, st); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					closeAll()
					return wrapClosed(err)
				}
				done += int64(len(chunk))
				progress()
			}
			s.Close()
		}
	}
	// Keys written here before the snapshot arrived started from the G
	// this replica had then; the snapshot's G summarises records collected
	// everywhere that acknowledged them, which those writes must dominate as
	// a write made now would (else a replica that collected the key and one
	// that did not would read it differently).
	var dirty []string
	if err := r.st.View(func(v *store.View) error {
		return v.Marks("", func(key string, _ uint64) (bool, error) {
			dirty = append(dirty, key)
			return true, nil
		})
	}); err != nil {
		return wrapClosed(err)
	}
	return wrapClosed(r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		cur, err := tx.G()
		if err != nil {
			return err
		}
		tx.SetG(cur.Join(g))
		for _, key := range dirty {
			st, ok, err := tx.Record(key)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if joined := st.Clock.Join(g); !joined.Equal(st.Clock) {
				st.Clock = joined
				if err := tx.PutRecord(key, st); err != nil {
					return err
				}
			}
		}
		if cb, _, err := tx.Meta("cursor"); err != nil {
			return err
		} else if u64(cb) < idx.Position {
			setCursor(tx, idx.Position)
		}
		if pb, _, err := tx.Meta("published"); err != nil {
			return err
		} else if ownSeen > u64(pb) {
			tx.SetMeta("published", p64(ownSeen))
		}
		tx.SetMeta("bootstrapped", []byte{1})
		return nil
	}))
}

// bootstrap loads the newest snapshot into a replica that has applied
// nothing yet. It reports whether it loaded one.
func (r *Engine) bootstrap(ctx context.Context) (bool, error) {
	complete, _, err := r.snapshots(ctx)
	if err != nil || len(complete) == 0 {
		return false, err
	}
	idx, err := r.readIndex(ctx, complete[0])
	if err != nil {
		return false, err
	}
	return true, r.loadSnapshot(ctx, idx)
}

// rebase brings back a replica that was retired or fell below the prune
// floor: it keeps the values of its dirty and staged keys, discards every
// record, loads the newest snapshot with its G, pulls to the tip, re-stamps
// the kept keys as new local writes (so they win over concurrent ones),
// throws the staged segments away, and clears its retired flag.
//
// It is crash-safe: the kept values are first written to m/rebase/<key>
// (synced), and m/rebasing marks a rebase in progress; a push, pull or
// compaction that finds the mark resumes the rebase (every step is
// idempotent) before anything else, so an error or a crash midway never
// loses an offline edit.
func (r *Engine) rebase(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := r.rebaseOnce(ctx)
		if !errors.Is(err, errSnapshotPassed) || attempt >= 4 {
			return err
		}
		// Paused between loading a snapshot and pulling after it, past a
		// newer snapshot and the pruning of what lay between: the rebase
		// is pending (its kept keys safe); start it again on the newer
		// snapshot (found by the real-process chaos test).
	}
}

// errSnapshotPassed: a rebase's pull found the log pruned past the snapshot
// it loaded.
var errSnapshotPassed = errors.New("replica: rebase: the log was pruned past the snapshot being loaded")

func (r *Engine) rebaseOnce(ctx context.Context) error {
	complete, _, err := r.snapshots(ctx)
	if err != nil {
		return err
	}
	if len(complete) == 0 {
		return fmt.Errorf("replica: rebase: no snapshot on %s (a compaction must write one first)", r.opts.Backend)
	}
	idx, err := r.readIndex(ctx, complete[0])
	if err != nil {
		return err
	}
	// Keep the dirty keys' values. Resuming, keep those of earlier
	// rebase attempts too: a key written since then is dirty again and its
	// newer value replaces the kept one.
	mark, err := r.meta("rebasing")
	if err != nil {
		return err
	}
	if mark == nil {
		// Absence rule 5: rebase only on a registry this directory wrote,
		// and never load this id's future dots; checked before anything is
		// discarded.
		if _, _, err := r.ownRegistry(ctx); err != nil {
			return err
		}
		if err := r.checkOwnDots(idx.Top, SnapKey(idx.Position)); err != nil {
			return err
		}
	}
	if err := r.keepDirty(ctx, mark == nil); err != nil {
		return err
	}
	if err := r.step("rebase:kept"); err != nil {
		return err
	}
	var all, meta []string
	err = r.st.View(func(v *store.View) error {
		if err := v.Records("", "", func(key string, _ store.Stored) (bool, error) {
			all = append(all, key)
			return true, nil
		}); err != nil {
			return err
		}
		for _, pre := range []string{"stage/", "own/"} {
			if err := v.MetaScan(pre, func(name string, _ []byte) (bool, error) {
				meta = append(meta, name)
				return true, nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapClosed(err)
	}
	for len(all) > 0 || len(meta) > 0 {
		chunk := all[:min(len(all), r.chunk())]
		all = all[len(chunk):]
		mchunk := meta
		meta = nil
		err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			for _, key := range chunk {
				// A key written since keepDirty read the marks (a local
				// write racing the rebase) is kept now, as it reads, or
				// its write would go with its record and mark.
				if _, dirty, err := tx.Mark(key); err != nil {
					return err
				} else if dirty {
					st, ok, err := tx.Record(key)
					if err != nil {
						return err
					}
					if ok {
						k, err := r.keptOf(key, st.Record)
						if err != nil {
							return err
						}
						b, err := msgpack.Marshal(k)
						if err != nil {
							return err
						}
						tx.SetMeta("rebase/"+key, b)
					}
				}
				if err := tx.DeleteRecord(key); err != nil {
					return err
				}
				if err := tx.ClearMark(key); err != nil {
					return err
				}
			}
			for _, n := range mchunk {
				tx.DeleteMeta(n)
			}
			tx.SetMeta("cursor", p64(0))
			return nil
		})
		if err != nil {
			return wrapClosed(err)
		}
	}
	if err := r.loadSnapshot(ctx, idx); err != nil {
		return err
	}
	if err := r.step("rebase:loaded"); err != nil {
		return err
	}
	if _, err := r.pullAfterRebase(ctx); err != nil {
		return err
	}
	// Re-stamp the kept keys. The m/rebase/ entries stay until the rebase
	// is over: a resumed rebase discards the re-stamped records (their dots
	// never left the machine) and re-stamps again from them.
	var kept []keptValue
	err = r.st.View(func(v *store.View) error {
		return v.MetaScan("rebase/", func(name string, val []byte) (bool, error) {
			var k keptValue
			if err := msgpack.Unmarshal(val, &k); err != nil {
				return false, fmt.Errorf("%w: m/%s: %v", store.ErrCorrupt, name, err)
			}
			kept = append(kept, k)
			return true, nil
		})
	})
	if err != nil {
		return wrapClosed(err)
	}
	for rest := kept; len(rest) > 0; {
		batch := rest[:min(len(rest), r.chunk())]
		rest = rest[len(batch):]
		err = r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			for _, k := range batch {
				if k.Passive {
					continue
				}
				if k.Kind != "" {
					if err := r.restampState(tx, k.Key, k.Kind, k.State); err != nil {
						return err
					}
					continue
				}
				if _, err := tx.Write(k.Key, k.Value, k.Deleted); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return wrapClosed(err)
		}
	}
	if err := r.step("rebase:restamped"); err != nil {
		return err
	}
	if err := r.unretire(ctx); err != nil {
		return err
	}
	// Retired until the un-retire, this replica's ack held no floor: a
	// pruner that read it retired may have pruned past its cursor while
	// it paused between its pull and here, and after the un-retire the
	// check that follows a push's create no longer sees it retired. Pull
	// to the tip again: a hole at or below the newest snapshot starts the
	// rebase again on it, else the cursor is at or above every floor such a
	// pruner can use (see prune). Found by the simulator (absence seed
	// 1606: a create at a freed position, committed).
	if _, err := r.pullAfterRebase(ctx); err != nil {
		return err
	}
	// Over: clear the mark first (a crash after it leaves only stale
	// entries, which the next rebase's keepDirty clears before use).
	if err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		tx.DeleteMeta("rebasing")
		return nil
	}); err != nil {
		return wrapClosed(err)
	}
	r.rebasePending.Store(false)
	return r.dropKept(ctx)
}

// dropKept deletes every m/rebase/ entry.
func (r *Engine) dropKept(ctx context.Context) error {
	var names []string
	if err := r.st.View(func(v *store.View) error {
		return v.MetaScan("rebase/", func(name string, _ []byte) (bool, error) {
			names = append(names, name)
			return true, nil
		})
	}); err != nil {
		return wrapClosed(err)
	}
	for len(names) > 0 {
		chunk := names[:min(len(names), applyChunk)]
		names = names[len(chunk):]
		if err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			for _, n := range chunk {
				tx.DeleteMeta(n)
			}
			return nil
		}); err != nil {
			return wrapClosed(err)
		}
	}
	return nil
}

// keptValue is a dirty key's value kept across a rebase (m/rebase/<key>).
// A counter or set key keeps its joined CRDT state (with its context) in
// State, Kind naming the CRDT: it is written back as current ⊔ kept, as
// state, never as the text it reads as (absence rule 6).
type keptValue struct {
	Key     string `msgpack:"k"`
	Value   []byte `msgpack:"v"`
	Deleted bool   `msgpack:"d"`
	Kind    string `msgpack:"c,omitempty"`
	State   []byte `msgpack:"s,omitempty"`
	// Passive: a counter or set key that was not dirty, kept only for
	// reads and updates while the rebase is pending; not re-stamped.
	Passive bool `msgpack:"p,omitempty"`
}

// keepDirty writes the values of the dirty keys (as they read now) to
// m/rebase/<key>, then marks the rebase in progress: both synced before
// anything is discarded.
func (r *Engine) keepDirty(ctx context.Context, fresh bool) error {
	if fresh {
		if err := r.dropKept(ctx); err != nil { // stale entries of an earlier rebase
			return err
		}
	}
	var kept []keptValue
	err := r.st.View(func(v *store.View) error {
		return v.Marks("", func(key string, _ uint64) (bool, error) {
			st, ok, err := v.Record(key)
			if err != nil || !ok {
				return err == nil, err
			}
			p := r.opts.Policies.For(key)
			if kind := crdtKind(p); kind != "" && !r.knob(func(k *Knobs) bool { return k.RestampAsText }) {
				state, _, err := joined(kind, st.Record, false)
				if err != nil {
					return false, policyErr(key, p, err)
				}
				kept = append(kept, keptValue{Key: key, Kind: kind, State: state})
				return true, nil
			}
			res, err := merge.Read(p, key, st.Record)
			if err != nil || res.Conflict {
				res, _ = merge.LWW{}.Resolve(key, st.Versions)
			}
			kept = append(kept, keptValue{Key: key, Value: res.Value, Deleted: res.Deleted})
			return true, nil
		})
	})
	if err != nil {
		return wrapClosed(err)
	}
	if fresh && !r.knob(func(k *Knobs) bool { return k.RestampAsText }) {
		// Every other counter and set key too, passively: kept only for
		// the reads and updates made while the rebase is pending (its
		// records discarded), which must start from the key's state, not
		// from zero (an Add then would supersede this replica's published
		// running total; found by the real-process chaos test). A passive
		// entry is not re-stamped unless the key is written meanwhile.
		dirty := map[string]bool{}
		for _, k := range kept {
			dirty[k.Key] = true
		}
		err = r.st.View(func(v *store.View) error {
			for prefix, name := range r.opts.Policies.Names() {
				if name != merge.NameCounter && name != merge.NameSet {
					continue
				}
				err := v.Records(prefix, "", func(key string, st store.Stored) (bool, error) {
					p := r.opts.Policies.For(key)
					kind := crdtKind(p)
					if kind == "" || dirty[key] {
						return true, nil
					}
					state, _, err := joined(kind, st.Record, false)
					if err != nil {
						return true, nil // unreadable: nothing to keep (Clear repairs it)
					}
					dirty[key] = true
					kept = append(kept, keptValue{Key: key, Kind: kind, State: state, Passive: true})
					return true, nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return wrapClosed(err)
		}
	}
	for len(kept) > 0 {
		chunk := kept[:min(len(kept), r.chunk())]
		kept = kept[len(chunk):]
		err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			for _, k := range chunk {
				b, err := msgpack.Marshal(k)
				if err != nil {
					return err
				}
				tx.SetMeta("rebase/"+k.Key, b)
			}
			return nil
		})
		if err != nil {
			return wrapClosed(err)
		}
	}
	err = r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		tx.SetMeta("rebasing", []byte{1})
		return nil
	})
	if err == nil {
		r.rebasePending.Store(true)
	}
	return wrapClosed(err)
}

// resumeRebase finishes a rebase an error or a crash interrupted.
func (r *Engine) resumeRebase(ctx context.Context) error {
	if r.rebasing {
		return nil
	}
	mark, err := r.meta("rebasing")
	if err != nil || mark == nil {
		return err
	}
	return r.rebase(ctx)
}

// pullAfterRebase pulls without the retirement handling (the caller is
// rebasing).
func (r *Engine) pullAfterRebase(ctx context.Context) (PullStats, error) {
	r.rebasing = true
	defer func() { r.rebasing = false }()
	return r.pullLocked(ctx)
}

// checkOwnDots stops a replica from loading state that holds dots of its
// own id above its counter: another directory issued them (a copy, or the
// newer life of a directory restored from a backup).
func (r *Engine) checkOwnDots(top map[string]uint64, where string) error {
	if r.knob(func(k *Knobs) bool { return k.RebaseAnyRegistry }) {
		return nil
	}
	own := top[r.ID().String()]
	if own == 0 {
		return nil
	}
	cb, err := r.meta("counter")
	if err != nil {
		return err
	}
	if c := u64(cb); own > c {
		return fmt.Errorf("%w: %s carries %s:%d, this replica has only issued up to %d", ErrCloned, where, r.ID().Short(), own, c)
	}
	return nil
}

// restampState writes a kept CRDT state back after a rebase: the join of
// the key's current state (it starts from the record now, or G) and the
// kept one, as one local write under a fresh dot. The kept state's own
// entries carry dots that never reached the others, or that they already
// hold: the join counts each exactly once.
func (r *Engine) restampState(tx *store.Tx, key, kind string, state []byte) error {
	p := r.opts.Policies.For(key)
	return r.crdtUpdateLoaded(tx, key, func(start merge.Record, d clock.Dot) ([]byte, bool, error) {
		if kind == merge.NameCounter {
			kept, err := merge.DecodeCounter(state)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			cur, err := merge.CounterOf(start)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			return cur.Join(kept).Encode(), true, nil
		}
		kept, err := merge.DecodeSet(state)
		if err != nil {
			return nil, false, policyErr(key, p, err)
		}
		cur, err := merge.SetOf(start)
		if err != nil {
			return nil, false, policyErr(key, p, err)
		}
		return cur.Join(kept).Encode(), true, nil
	})
}

// unretire rewrites this replica's registry object with retired cleared,
// by compare-and-swap on the ETag of a body it read and found its own (or
// the retirement of its own): never over a body another directory wrote.
func (r *Engine) unretire(ctx context.Context) error {
	b := r.opts.Backend
	key := remote.RegistryKey(r.ID())
	ack, err := r.ackNow()
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		body, etag, err := r.ownRegistry(ctx)
		if err != nil {
			return err
		}
		rs := &r.reg
		if rs.PendingNonce != "" && body.Nonce == rs.PendingNonce && !body.Retired {
			// Our un-retire landed (an ambiguous answer, or a crash).
			return r.landed(ctx, etag, body.Ack)
		}
		if rs.PendingNonce != "" && !slices.Contains(rs.Prior, rs.PendingNonce) {
			rs.Prior = append(rs.Prior, rs.PendingNonce)
		}
		rs.PendingSeq, rs.PendingNonce = max(rs.Seq, body.Seq, rs.PendingSeq)+1, newNonce()
		if err := r.saveJSON(ctx, "registry", rs); err != nil {
			return err
		}
		newETag, err := b.PutIfMatch(ctx, key, r.registryBody(rs.PendingSeq, rs.PendingNonce, ack), etag)
		if err == nil {
			return r.landed(ctx, newETag, ack)
		}
		if ctx.Err() != nil || attempt >= 3 {
			return fmt.Errorf("replica: clear retired on %s: %w", key, err)
		}
	}
}

// prune deletes log segments at or below the newest snapshot, the minimum
// non-retired ack and limit (the snapshot this compaction wrote before it
// read those acks), older snapshots, and orphaned parts, each only once
// older than grace by server time.
func (r *Engine) prune(ctx context.Context, regs []regInfo, serverNow time.Time, grace time.Duration, limit uint64) (int, error) {
	b := r.opts.Backend
	if serverNow.IsZero() {
		return 0, nil
	}
	old := func(t time.Time) bool { return grace < 0 || (!t.IsZero() && serverNow.Sub(t) >= grace) }
	complete, all, err := r.snapshots(ctx)
	if err != nil || len(complete) == 0 {
		return 0, err
	}
	newest := complete[0]
	ack, ok := minAck(regs)
	if !ok {
		return 0, nil
	}
	floor := min(newest, ack, limit)
	if r.knob(func(k *Knobs) bool { return k.PruneIgnoresAcks }) {
		floor = newest
	}
	n := 0
	for info, err := range b.List(ctx, remote.LogPrefix, "") {
		if err != nil {
			return n, fmt.Errorf("replica: list %s on %s: %w", remote.LogPrefix, b, err)
		}
		p, okp := remote.ParseLogKey(info.Key)
		if !okp || p > floor {
			break
		}
		if !old(info.LastModified) {
			continue
		}
		if err := b.Delete(ctx, info.Key); err != nil {
			return n, fmt.Errorf("replica: prune %s on %s: %w", info.Key, b, err)
		}
		n++
	}
	// Snapshot objects: keep the newest snapshot's index and listed parts;
	// drop older snapshots and parts no index lists, once old enough.
	idx, err := r.readIndex(ctx, newest)
	if err != nil {
		return n, err
	}
	keep := map[string]bool{SnapKey(newest): true}
	for _, p := range idx.Parts {
		keep[p.Name] = true
	}
	for _, info := range all {
		p, _, okp := parseSnapKey(info.Key)
		if keep[info.Key] || !old(info.LastModified) {
			continue
		}
		if okp && p > newest {
			continue // a snapshot being written now
		}
		if err := b.Delete(ctx, info.Key); err != nil {
			return n, fmt.Errorf("replica: prune %s on %s: %w", info.Key, b, err)
		}
		n++
	}
	return n, nil
}

// keptOf is what keepDirty keeps of a dirty key with record rec.
func (r *Engine) keptOf(key string, rec merge.Record) (keptValue, error) {
	p := r.opts.Policies.For(key)
	if kind := crdtKind(p); kind != "" && !r.knob(func(k *Knobs) bool { return k.RestampAsText }) {
		state, _, err := joined(kind, rec, false)
		if err != nil {
			return keptValue{}, policyErr(key, p, err)
		}
		return keptValue{Key: key, Kind: kind, State: state}, nil
	}
	res, err := merge.Read(p, key, rec)
	if err != nil || res.Conflict {
		res, _ = merge.LWW{}.Resolve(key, rec.Versions)
	}
	return keptValue{Key: key, Value: res.Value, Deleted: res.Deleted}, nil
}
