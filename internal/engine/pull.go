package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
	"golang.org/x/sync/errgroup"
)

// PullStats reports one pull.
type PullStats struct {
	Segments  int           `json:"segments"`
	Skipped   int           `json:"skipped"`
	Records   int           `json:"records"`
	Changed   int           `json:"changed"`
	Conflicts int           `json:"conflicts"`
	Bytes     int64         `json:"bytes"`
	Cursor    uint64        `json:"cursor"`
	Requests  remote.Counts `json:"requests"`
}

// SyncStats reports one Sync.
type SyncStats struct {
	Pull PullStats `json:"pull"`
	Push PushStats `json:"push"`
}

// Pull receives and merges: it lists log/ after the cursor (one request when
// idle), fetches segments with bounded concurrency and applies them in
// position order through the single writer. A segment that fails to verify
// stops the pull at its position with an error naming the object; state is
// as it was before that segment.
func (r *Engine) Pull(ctx context.Context) (PullStats, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return r.pullLocked(ctx)
}

// Sync pulls, then pushes.
func (r *Engine) Sync(ctx context.Context) (SyncStats, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	var s SyncStats
	var err error
	if s.Pull, err = r.pullLocked(ctx); err != nil {
		return s, err
	}
	s.Push, err = r.pushLocked(ctx)
	return s, err
}

// pullWindow bounds the segments fetched concurrently.
const pullWindow = 8

// applyChunk bounds the records merged in one transaction.
const applyChunk = 2000

// chunk is applyChunk, or Knobs.ApplyChunk (the simulator makes every
// multi-transaction step take several transactions, so that crashes land
// between them).
func (r *Engine) chunk() int {
	if r.opts.Knobs != nil && r.opts.Knobs.ApplyChunk > 0 {
		return r.opts.Knobs.ApplyChunk
	}
	return applyChunk
}

func (r *Engine) pullLocked(ctx context.Context) (ps PullStats, err error) {
	b := r.opts.Backend
	if b == nil {
		return ps, ErrNoRemote
	}
	before := b.Stats().Snapshot()
	defer func() { ps.Requests = b.Stats().Snapshot().Sub(before) }()
	if _, err := r.connectLocked(ctx); err != nil {
		return ps, err
	}
	if err := r.resumeRebase(ctx); err != nil {
		return ps, err
	}
	if boot, _ := r.meta("bootstrapped"); boot == nil && r.cursor() == 0 {
		// A new replica loads the newest snapshot instead of replaying the log.
		if _, err := r.bootstrap(ctx); err != nil {
			return ps, err
		}
		if err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			tx.SetMeta("bootstrapped", []byte{1})
			return nil
		}); err != nil {
			return ps, wrapClosed(err)
		}
	}
	cursor := r.cursor()
	ps.Cursor = cursor
	var positions []uint64
	var modified []time.Time
	for info, err := range b.List(ctx, remote.LogPrefix, remote.LogKey(cursor)) {
		if err != nil {
			return ps, fmt.Errorf("replica: list %s on %s: %w", remote.LogPrefix, b, err)
		}
		if p, ok := remote.ParseLogKey(info.Key); ok && p > cursor {
			positions = append(positions, p)
			modified = append(modified, info.LastModified)
		}
	}
	own := map[uint64]bool{}
	err = r.st.View(func(v *store.View) error {
		return v.MetaScan("own/", func(name string, _ []byte) (bool, error) {
			var p uint64
			if _, err := fmt.Sscanf(name, "own/%d", &p); err == nil && p > cursor {
				own[p] = true
			}
			return true, nil
		})
	})
	if err != nil {
		return ps, wrapClosed(err)
	}
	if err := r.step("pull:listed"); err != nil {
		return ps, err
	}
	// Absence rule 4: "nothing listed" means "up to date" only at or above
	// the newest snapshot. A replica not yet ready (new, reidentified)
	// lists snap/ once: a cursor below the newest snapshot without a
	// contiguous log up to it was pruned past (a directory restored from a
	// backup), and rebases before it may push. Any hole at or below the
	// newest snapshot means "pruned"; above it, damage.
	// A rebase's own pull applies the same rule: a snapshot newer than
	// the one it loaded, with the log pruned up to it, means it paused
	// meanwhile and must load that one (found by the real-process chaos
	// test: "nothing listed" there left the replica behind for good and
	// its next push in a freed position).
	if len(positions) == 0 || positions[0] != cursor+1 {
		if ready, err := r.meta("ready"); err != nil {
			return ps, err
		} else if (ready == nil || r.rebasing) && !r.knob(func(k *Knobs) bool { return k.NothingListedUpToDate }) {
			if passed, err := r.rebaseIfPruned(ctx, cursor+1); passed || err != nil {
				return r.afterRebase(ctx, ps, err)
			}
		}
	}
	if len(positions) > 0 && positions[0] == cursor+1 && !r.rebasing {
		// A not-ready replica below the newest snapshot whose log looks
		// contiguous up to it: a segment at or below the snapshot created
		// after the snapshot was written is no part of that log (a
		// retired pusher's create in a freed position, noticed by its
		// pusher, left behind): the log was pruned past this cursor.
		if ready, err := r.meta("ready"); err != nil {
			return ps, err
		} else if ready == nil {
			complete, all, err := r.snapshots(ctx)
			if err != nil {
				return ps, err
			}
			if len(complete) > 0 && complete[0] > cursor {
				var at time.Time
				for _, info := range all {
					if info.Key == SnapKey(complete[0]) {
						at = info.LastModified
					}
				}
				for i, p := range positions {
					if p <= complete[0] && !at.IsZero() && modified[i].After(at) {
						if passed, err := r.rebaseIfPruned(ctx, cursor+1); passed || err != nil {
							return r.afterRebase(ctx, ps, err)
						}
						break
					}
				}
			}
		}
	}
	expect := cursor + 1
	for _, p := range positions {
		if p != expect {
			if p > expect {
				// A hole: pruned below a snapshot while this replica was
				// away (rebase on it), or damage.
				if passed, err := r.rebaseIfPruned(ctx, expect); passed || err != nil {
					return r.afterRebase(ctx, ps, err)
				}
			}
			return ps, fmt.Errorf("%w: %s on %s (next listed is %s)", ErrGap, remote.LogKey(expect), b, remote.LogKey(p))
		}
		expect++
	}
	for start := 0; start < len(positions); start += pullWindow {
		win := positions[start:min(start+pullWindow, len(positions))]
		data := make([][]byte, len(win))
		g, gctx := errgroup.WithContext(ctx)
		for i, p := range win {
			if own[p] {
				continue
			}
			g.Go(func() error {
				obj, err := b.Get(gctx, remote.LogKey(p))
				if err != nil {
					return fmt.Errorf("replica: fetch %s from %s: %w", remote.LogKey(p), b, err)
				}
				data[i] = obj.Data
				return nil
			})
		}
		// Apply in order what was fetched before any error.
		gerr := g.Wait()
		for i, p := range win {
			if own[p] {
				if err := r.advance(ctx, p); err != nil {
					return ps, err
				}
				ps.Skipped++
				ps.Cursor = p
				continue
			}
			if data[i] == nil {
				if errors.Is(gerr, remote.ErrNotExist) {
					// Listed, then gone: pruned while this pull read (it
					// was paused past its retirement). At or below the
					// newest snapshot, rebase on it; above, damage.
					if passed, err := r.rebaseIfPruned(ctx, p); passed || err != nil {
						return r.afterRebase(ctx, ps, err)
					}
				}
				return ps, gerr
			}
			seg, err := r.decoder().Open(ctx, remote.LogKey(p)+" on "+b.String(), data[i])
			if err != nil {
				return ps, err
			}
			skip, err := r.applyOne(ctx, seg, data[i], p, &ps)
			seg.Close()
			data[i] = nil // the window holds no applied segment
			if err != nil {
				return ps, err
			}
			if skip {
				ps.Skipped++
				ps.Cursor = p
				continue
			}
			if err := r.step("pull:applied"); err != nil {
				return ps, err
			}
			ps.Segments++
			ps.Bytes += int64(len(data[i]))
			ps.Cursor = p
		}
		if gerr != nil {
			return ps, gerr
		}
	}
	// Everything listed is applied: the tip we listed after registering is
	// reached, so pushing is allowed from now on. The final state is synced
	// before any ack can be published from it.
	if err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		tx.SetMeta("ready", []byte{1})
		tx.SetMeta("last_pull", p64(uint64(r.now().UnixMilli())))
		return nil
	}); err != nil {
		return ps, wrapClosed(err)
	}
	if err := r.dropPassedOwn(ctx); err != nil {
		return ps, err
	}
	// Publish the ack (durable now) at a bounded rate, and refresh the
	// registry of an idle replica before it ages into retirement (case 6
	// of issue 10): an idle pull is one request, plus a registry write at
	// most once per AckInterval when the ack moved, and once per
	// RegistryRefresh when it did not.
	if r.rebasing {
		return ps, nil
	}
	ack, err := r.ackNow()
	if err != nil {
		return ps, err
	}
	if !r.registryDue(ack) {
		return ps, nil
	}
	err = r.swapRegistry(ctx, ack)
	if errors.Is(err, ErrRetired) {
		if err := r.rebase(ctx); err != nil {
			return ps, err
		}
		return ps, nil
	}
	if err != nil {
		return ps, err
	}
	return ps, nil
}

func (r *Engine) ackInterval() time.Duration {
	if r.opts.AckInterval == 0 {
		return DefaultAckInterval
	}
	return r.opts.AckInterval
}

// registryDue reports whether a pull should write the registry: its ack
// moved and the last write is at least AckInterval old (any age when
// AckInterval is negative), or the last write is RegistryRefresh old
// whatever the ack. Ages are judged by this replica's wall clock against
// the time of its last registry write (persisted); a clock that went back
// counts as due.
func (r *Engine) registryDue(ack uint64) bool {
	rs := r.reg
	age := time.Duration(r.now().UnixMilli()-rs.At) * time.Millisecond
	if rs.At == 0 || age < 0 {
		age = 1<<63 - 1
	}
	if ack != rs.Ack {
		if iv := r.ackInterval(); iv < 0 || age >= iv {
			return true
		}
	}
	if r.knob(func(k *Knobs) bool { return k.RefreshOnlyOnMove }) {
		return false
	}
	return age >= r.registryRefresh()
}

func (r *Engine) registryRefresh() time.Duration {
	if r.opts.RegistryRefresh <= 0 {
		return DefaultRegistryRefresh
	}
	return r.opts.RegistryRefresh
}

// rebaseIfPruned checks whether log position pos, missing, lies at or
// below the newest snapshot (pruned past this replica: passed) and then
// rebases on that snapshot. Inside a rebase's own pull it reports
// errSnapshotPassed instead (the rebase starts again on the newer
// snapshot). Not passed, and no error: the position is damage.
func (r *Engine) rebaseIfPruned(ctx context.Context, pos uint64) (passed bool, err error) {
	complete, _, err := r.snapshots(ctx)
	if err != nil || len(complete) == 0 || complete[0] < pos {
		return false, err
	}
	if r.rebasing {
		return true, errSnapshotPassed
	}
	return true, r.rebase(ctx)
}

// afterRebase ends a pull that rebased: it pulls again from the snapshot.
func (r *Engine) afterRebase(ctx context.Context, ps PullStats, err error) (PullStats, error) {
	if err != nil {
		return ps, err
	}
	return r.pullLocked(ctx)
}

// dropPassedOwn deletes the m/own entries at or below the cursor, and the
// m/sent entries they name: a pull lists only after its cursor, so they are
// never read again, and every copy of an own segment's bytes sits at or
// below the position its push committed (uploads only move up). Without
// this both grew with every push, and every pull scanned m/own whole.
func (r *Engine) dropPassedOwn(ctx context.Context) error {
	cursor := r.cursor()
	var names, sent []string
	err := r.st.View(func(v *store.View) error {
		return v.MetaScan("own/", func(name string, val []byte) (bool, error) {
			var p uint64
			if _, err := fmt.Sscanf(name, "own/%d", &p); err != nil {
				return false, fmt.Errorf("%w: m/%s", store.ErrCorrupt, name)
			}
			if p > cursor {
				return false, nil // names sort by position
			}
			names = append(names, name)
			if len(val) > 1 {
				sent = append(sent, string(val))
			}
			return true, nil
		})
	})
	if err != nil || len(names) == 0 {
		return wrapClosed(err)
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		for _, n := range names {
			tx.DeleteMeta(n)
		}
		for _, n := range sent {
			tx.DeleteMeta(n)
		}
		return nil
	}))
}

// advance moves the cursor over an own segment.
func (r *Engine) advance(ctx context.Context, p uint64) error {
	return wrapClosed(r.st.UpdateRelaxed(ctx, func(tx *store.Tx) error {
		setCursor(tx, p)
		return nil
	}))
}

func setCursor(tx *store.Tx, p uint64) {
	tx.SetMeta("cursor", p64(p))
	if tb, _, _ := tx.Meta("tip"); p > u64(tb) {
		tx.SetMeta("tip", p64(p))
	}
}

// raisePublished raises m/published (the highest own dot known to be in
// the log) to own.
func (r *Engine) raisePublished(ctx context.Context, own uint64) error {
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		if pb, _, err := tx.Meta("published"); err != nil || own <= u64(pb) {
			return err
		}
		tx.SetMeta("published", p64(own))
		return nil
	}))
}

// decodeBudget bounds the memory that the segment and snapshot-part
// decodes of this process hold together (fetched bytes plus decompressed
// bodies): pulls, bootstraps and verify of every replica share it.
var decodeBudget = segment.NewBudget(256 << 20)

// maxPartSize bounds CompactOptions.PartSize: readers accept a snapshot
// part as large as an honest writer makes one, and no larger.
const maxPartSize = 64 << 20

// decoder decodes this store's segments: a segment may declare no more
// raw body than a push of this store writes (the segment cap, plus the
// record that crosses it: at most one value and its metadata).
func (r *Engine) decoder() segment.Decoder {
	limit := int64(DefaultSegmentCap)
	if r.manifest != nil && r.manifest.SegmentCap > 0 {
		limit = int64(r.manifest.SegmentCap)
	}
	return segment.Decoder{MaxRaw: limit + 2*int64(r.opts.MaxValueSize) + 1<<20, Budget: decodeBudget}
}

// partDecoder decodes snapshot parts (at most maxPartSize, plus the record
// that crosses it).
func (r *Engine) partDecoder() segment.Decoder {
	return segment.Decoder{MaxRaw: maxPartSize + 2*int64(r.opts.MaxValueSize) + 1<<20, Budget: decodeBudget}
}

// applyOne checks and applies one verified segment at position p (data is
// its bytes). It reports skip when the segment is this replica's own and
// is skipped (the SkipOwnByOrigin old rule).
func (r *Engine) applyOne(ctx context.Context, seg *segment.Reader, data []byte, p uint64, ps *PullStats) (skip bool, err error) {
	origin := seg.Header().Origin
	if origin == r.ID() && r.knob(func(k *Knobs) bool { return k.SkipOwnByOrigin }) {
		return true, r.advance(ctx, p)
	}
	if origin == r.ID() {
		sent, err := r.meta(sentName(data))
		if err != nil {
			return false, err
		}
		if sent == nil {
			return false, fmt.Errorf("%w: %s was published under this id by another directory", ErrCloned, remote.LogKey(p))
		}
		// One of ours (staged here, perhaps uploaded by a copy of this
		// directory made after staging): its dots are in the log now, so
		// they count as published — reidentify must keep them, or this
		// replica would drop versions every other replica holds. Raised
		// before the segment is applied: a crash after the cursor passed
		// it must not leave them unpublished (sim kill sweep seed 7473).
		own, err := seg.MaxCounter(r.ID())
		if err != nil {
			return false, err
		}
		if err := r.raisePublished(ctx, own); err != nil {
			return false, err
		}
	}
	return false, r.apply(ctx, seg, p, ps)
}

// apply merges one verified segment at log position p, reading its
// records as a stream, applyChunk at a time: a transaction per chunk, the
// cursor advancing in the last. Re-applying a segment is harmless (merge is
// a join), so the transactions need no fsync: the pull's final state is
// synced before it returns.
func (r *Engine) apply(ctx context.Context, seg *segment.Reader, p uint64, ps *PullStats) error {
	r.st.Clock().Observe(seg.Header().HLC)
	maxOwn, err := seg.MaxCounter(r.ID())
	if err != nil {
		return err
	}
	chunk, err := seg.Next(r.chunk())
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	first := true
	filterG := r.knob(func(k *Knobs) bool { return k.FilterThroughG })
	mergeFn := merge.Merge
	if r.opts.Knobs != nil && r.opts.Knobs.Merge != nil {
		mergeFn = r.opts.Knobs.Merge
	}
	for {
		next, err := seg.Next(r.chunk())
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		last := len(next) == 0
		var changed, conflicts int
		checkClone := first
		first = false
		err = r.st.UpdateRelaxed(ctx, func(tx *store.Tx) error {
			changed, conflicts = 0, 0
			// A clock entry for this replica above its own counter: someone
			// else published dots under our id. Checked before anything of
			// the segment is applied.
			if checkClone && maxOwn > tx.Counter() {
				return fmt.Errorf("%w: %s carries %s:%d, this replica has only issued up to %d",
					ErrCloned, remote.LogKey(p), r.ID().Short(), maxOwn, tx.Counter())
			}
			for _, e := range chunk {
				for _, v := range e.Record.Versions {
					tx.Observe(v.Time)
				}
				cur, had, err := tx.Record(e.Key)
				if err != nil {
					return err
				}
				var merged merge.Record
				if had {
					merged = mergeFn(cur.Record, e.Record)
					if merged.Equal(cur.Record) {
						continue
					}
				} else {
					merged = e.Record // a record for an unknown key is taken whole
					if filterG {
						g, err := tx.G()
						if err != nil {
							return err
						}
						merged = merge.Merge(merge.Record{Clock: g}, e.Record)
					}
				}
				// pos never goes down: an own push committed at a higher
				// position than this one (pulled later, in order) already
				// carries the record there, and collection must wait for
				// that position's acks (found by the simulator's absence
				// sweep: a record holding an own write published at 3 was
				// collected against acks of 2).
				if err := tx.PutRecord(e.Key, store.Stored{Record: merged, Pos: max(p, cur.Pos)}); err != nil {
					return err
				}
				changed++
				if len(merged.Versions) > 1 {
					conflicts++
				}
			}
			if last || checkClone && r.knob(func(k *Knobs) bool { return k.CursorFirst }) {
				setCursor(tx, p)
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, store.ErrClosed) {
				return ErrClosed
			}
			return err
		}
		ps.Records += len(chunk)
		ps.Changed += changed
		ps.Conflicts += conflicts
		if last {
			return nil
		}
		chunk = next
		if err := r.step("pull:chunk"); err != nil {
			return err
		}
	}
}
