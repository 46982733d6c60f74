package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
	"golang.org/x/sync/errgroup"
)

// PullStats reports one pull.
type PullStats struct {
	Segments int `json:"segments"`
	Skipped  int `json:"skipped"`
	Records  int `json:"records"`
	Changed  int `json:"changed"`
	// Keys are the keys the pull changed, in the order it applied them,
	// the first MaxPullKeys of them (KeysTruncated: there were more; the
	// change feed, Watch, has them all).
	Keys          []string `json:"keys,omitempty"`
	KeysTruncated bool     `json:"keys_truncated,omitempty"`
	Conflicts     int      `json:"conflicts"`
	Bytes         int64    `json:"bytes"`
	Cursor        uint64   `json:"cursor"`
	// Behind is how many listed log positions a pull that failed left
	// unapplied (the newest it listed, less the cursor it reached); 0 when
	// it reached the tip it found, or failed before listing.
	Behind   uint64        `json:"behind,omitempty"`
	Requests remote.Counts `json:"requests"`
}

// MaxPullKeys bounds PullStats.Keys.
const MaxPullKeys = 1000

// addKeys adds changed keys to ps.Keys, up to MaxPullKeys.
func (ps *PullStats) addKeys(keys []string) {
	room := MaxPullKeys - len(ps.Keys)
	if len(keys) > room {
		keys, ps.KeysTruncated = keys[:max(room, 0)], true
	}
	ps.Keys = append(ps.Keys, keys...)
}

// SyncStats reports one Sync.
type SyncStats struct {
	Pull PullStats `json:"pull"`
	Push PushStats `json:"push"`
}

// Pull receives and merges: it asks for the next log position (one GET
// when idle) and lists log/ after the cursor when catching up, fetches segments with bounded concurrency and applies them in
// position order through the single writer. A segment that fails to verify
// stops the pull at its position with an error naming the object; state is
// as it was before that segment.
func (r *Engine) Pull(ctx context.Context) (PullStats, error) {
	defer r.maybeCollectGarbage()
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return r.pullLocked(ctx)
}

// Sync pulls, then pushes.
func (r *Engine) Sync(ctx context.Context) (SyncStats, error) {
	defer r.maybeCollectGarbage()
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

// chunk is applyChunk, or Hooks.ApplyChunk (the simulator makes every
// multi-transaction step take several transactions, so that crashes land
// between them).
func (r *Engine) chunk() int {
	if r.opts.Hooks != nil && r.opts.Hooks.ApplyChunk > 0 {
		return r.opts.Hooks.ApplyChunk
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
	if err := r.bootstrapIfNew(ctx); err != nil {
		return ps, err
	}
	cursor := r.cursor()
	ps.Cursor = cursor
	r.listed = false
	l, err := r.listLog(ctx, cursor)
	if err != nil {
		return ps, err
	}
	defer func() {
		if n := len(l.positions); err != nil && n > 0 && l.positions[n-1] > r.cursor() {
			ps.Behind = l.positions[n-1] - r.cursor()
		}
	}()
	if err := r.step("pull:listed"); err != nil {
		return ps, err
	}
	if passed, err := r.checkListed(ctx, l, cursor); passed || err != nil {
		return r.afterRebase(ctx, ps, err)
	}
	if passed, err := r.applyListed(ctx, l, &ps); passed {
		return r.afterRebase(ctx, ps, err)
	} else if err != nil {
		return ps, err
	}
	return ps, r.endPull(ctx)
}

// listed is what a pull listed after its cursor: the positions in order,
// their server LastModified, which of them are this replica's own pushes
// (m/own), and the bytes of the one the idle probe fetched.
type listed struct {
	positions []uint64
	modified  []time.Time
	own       map[uint64]bool
	fetched   map[uint64][]byte
}

// listLog reads the log after the cursor. As Rules.PlanPoll says, a ready
// replica first asks for log/<cursor+1> (one GET: not found is idle,
// nothing listed); else, or when it is found (catching up), it lists
// log/ after the cursor, keeping the probe's bytes for the fetch. It also
// reads which positions are this replica's own.
func (r *Engine) listLog(ctx context.Context, cursor uint64) (listed, error) {
	b := r.opts.Backend
	l := listed{own: map[uint64]bool{}, fetched: map[uint64][]byte{}}
	err := r.st.View(func(v *store.View) error {
		return v.MetaScan("own/", func(name string, _ []byte) (bool, error) {
			var p uint64
			if _, err := fmt.Sscanf(name, "own/%d", &p); err == nil && p > cursor {
				l.own[p] = true
			}
			return true, nil
		})
	})
	if err != nil {
		return l, wrapClosed(err)
	}
	ready, err := r.meta("ready")
	if err != nil {
		return l, err
	}
	listedAt, err := r.meta("listed_at")
	if err != nil {
		return l, err
	}
	since := time.Duration(r.now().UnixMilli()-int64(u64(listedAt))) * time.Millisecond
	in := protocol.PollInput{Ready: ready != nil, Rebasing: r.rebasing, NextOwn: l.own[cursor+1],
		SinceList: since, ListKnown: listedAt != nil, ListEvery: r.listEvery()}
	if r.rules.PlanPoll(in) == protocol.PollProbe {
		obj, err := b.Get(ctx, remote.LogKey(cursor+1))
		found := err == nil
		if err != nil && !errors.Is(err, remote.ErrNotExist) {
			return l, fmt.Errorf("replica: fetch %s from %s: %w", remote.LogKey(cursor+1), b, err)
		}
		if r.rules.PollIdle(found) {
			return l, nil
		}
		l.fetched[cursor+1] = obj.Data
	}
	r.listed = true
	for info, err := range b.List(ctx, remote.LogPrefix, remote.LogKey(cursor)) {
		if err != nil {
			return l, fmt.Errorf("replica: list %s on %s: %w", remote.LogPrefix, b, err)
		}
		if p, ok := remote.ParseLogKey(info.Key); ok && p > cursor {
			l.positions = append(l.positions, p)
			l.modified = append(l.modified, info.LastModified)
		}
	}
	return l, nil
}

// checkListed decides, by Rules.PlanPull (absence rule 4), whether the
// listing may be applied from the cursor on: passed (with the rebase done,
// or its error) when the log was pruned past this replica, ErrGap when a
// position above the prune floor is missing. The newest snapshot is read
// only when the plan needs it, so an idle pull stays one LIST.
//
// A rebase's own pull applies the same rule: a snapshot newer than the one
// it loaded, with the log pruned up to it, means it paused meanwhile and
// must load that one (found by the real-process chaos test: "nothing
// listed" there left the replica behind for good and its next push in a
// freed position).
func (r *Engine) checkListed(ctx context.Context, l listed, cursor uint64) (passed bool, err error) {
	ready, err := r.meta("ready")
	if err != nil {
		return false, err
	}
	in := protocol.PullInput{Cursor: cursor, Ready: ready != nil, Rebasing: r.rebasing}
	for i, p := range l.positions {
		in.Listed = append(in.Listed, protocol.Listed{Pos: p, Modified: l.modified[i]})
	}
	for {
		plan := r.rules.PlanPull(in)
		switch plan.Action {
		case protocol.PullApply:
			return false, nil
		case protocol.PullRebase:
			return true, r.rebaseOrRestart(ctx)
		case protocol.PullGap:
			return false, fmt.Errorf("%w: %s on %s (next listed is %s)", ErrGap, remote.LogKey(plan.From), r.opts.Backend, remote.LogKey(plan.Next))
		case protocol.PullNeedSnapshot:
			if in.Snap != nil {
				return false, errors.New("replica: pull: the plan asks for a snapshot it was given")
			}
			snap, err := r.newestSnapshot(ctx)
			if err != nil {
				return false, err
			}
			in.Snap = &snap
		}
	}
}

// newestSnapshot is the newest complete snapshot (Pos 0: none) and when
// its index was written (server time).
func (r *Engine) newestSnapshot(ctx context.Context) (protocol.Snapshot, error) {
	complete, all, err := r.snapshots(ctx)
	if err != nil || len(complete) == 0 {
		return protocol.Snapshot{}, err
	}
	s := protocol.Snapshot{Pos: complete[0]}
	for _, info := range all {
		if info.Key == SnapKey(complete[0]) {
			s.Written = info.LastModified
		}
	}
	return s, nil
}

// applyListed fetches the listed segments with bounded concurrency and
// applies them in position order, moving the cursor over own ones. A
// segment listed and then gone at or below the newest snapshot was pruned
// while this pull read: passed, with the rebase done (or its error).
//
// Each fetched segment is opened (checked whole, its records decoded)
// while the one before it is applied: the next one's Open runs in a
// goroutine of its own (openAhead), so on two cores the check overlaps
// the store's writer. A segment is still applied only once its own Open
// has returned, and a failed Open stops the pull at its position, after
// the segments before it.
func (r *Engine) applyListed(ctx context.Context, l listed, ps *PullStats) (passed bool, err error) {
	total := int64(len(l.positions))
	w := r.window() // pullWindow; SmallPullWindow under the small profile
	var ahead *openAhead
	defer func() {
		if ahead != nil {
			ahead.drop()
		}
	}()
	for start := 0; start < len(l.positions); start += w {
		win := l.positions[start:min(start+w, len(l.positions))]
		data, gerr := r.fetchWindow(ctx, win, l.own, l.fetched)
		dec := r.decoder()
		name := func(p uint64) string { return remote.LogKey(p) + " on " + r.opts.Backend.String() }
		// Apply in order what was fetched before any error.
		for i, p := range win {
			if l.own[p] {
				if err := r.advance(ctx, p); err != nil {
					return false, err
				}
				ps.Skipped++
				ps.Cursor = p
				r.progress("pull", int64(start+i+1), total)
				continue
			}
			if data[i] == nil {
				if errors.Is(gerr, remote.ErrNotExist) {
					// Listed, then gone: pruned while this pull read (it
					// was paused past its retirement). At or below the
					// newest snapshot, rebase on it; above, damage.
					if passed, err := r.rebaseIfPruned(ctx, p); passed || err != nil {
						return passed, err
					}
				}
				return false, gerr
			}
			var seg *segment.Reader
			if ahead != nil && ahead.i == i {
				seg, err = ahead.wait()
				ahead = nil
			} else {
				seg, err = dec.Open(ctx, name(p), data[i])
			}
			if err != nil {
				return false, err
			}
			for j := i + 1; j < len(win); j++ {
				if !l.own[win[j]] {
					if data[j] != nil {
						ahead = openSegmentAhead(ctx, dec, name(win[j]), data[j], j)
					}
					break
				}
			}
			if err := r.applySegment(ctx, seg, data, i, p, ps); err != nil {
				return false, err
			}
			r.progress("pull", int64(start+i+1), total)
		}
		if gerr != nil {
			return false, gerr
		}
	}
	return false, nil
}

// fetchWindow fetches the segments of win that are not own, concurrently;
// the error is the first fetch's to fail, the others' data kept.
func (r *Engine) fetchWindow(ctx context.Context, win []uint64, own map[uint64]bool, fetched map[uint64][]byte) ([][]byte, error) {
	b := r.opts.Backend
	data := make([][]byte, len(win))
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range win {
		if own[p] {
			continue
		}
		if d, ok := fetched[p]; ok {
			data[i] = d // the idle probe's
			delete(fetched, p)
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
	return data, g.Wait()
}

// openAhead is a segment being opened (segment.Decoder.Open: checked
// whole, its records decoded) in a goroutine, for the window's i-th
// segment, while the segment before it is applied.
type openAhead struct {
	i      int
	seg    *segment.Reader
	err    error
	done   chan struct{}
	cancel context.CancelFunc
}

func openSegmentAhead(ctx context.Context, dec segment.Decoder, name string, data []byte, i int) *openAhead {
	ctx, cancel := context.WithCancel(ctx)
	a := &openAhead{i: i, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(a.done)
		a.seg, a.err = dec.Open(ctx, name, data)
	}()
	return a
}

// wait returns what Open returned (the caller closes the Reader).
func (a *openAhead) wait() (*segment.Reader, error) {
	<-a.done
	a.cancel()
	return a.seg, a.err
}

// drop abandons the Open: it stops a wait for the decode budget, waits
// for the goroutine and closes the Reader it opened, if any.
func (a *openAhead) drop() {
	a.cancel()
	<-a.done
	if a.seg != nil {
		a.seg.Close()
	}
}

// applySegment applies the fetched segment data[i], opened as seg, at
// position p, closes seg and drops the segment from the window.
func (r *Engine) applySegment(ctx context.Context, seg *segment.Reader, data [][]byte, i int, p uint64, ps *PullStats) error {
	n := int64(len(data[i]))
	err := r.applyOne(ctx, seg, data[i], p, ps)
	seg.Close()
	data[i] = nil // the window holds no applied segment
	if err != nil {
		return err
	}
	if err := r.step("pull:applied"); err != nil {
		return err
	}
	ps.Segments++
	ps.Bytes += n
	ps.Cursor = p
	return nil
}

// applyOne admits (Rules.AdmitSegment: the clone checks) and applies one
// verified segment at position p; data is its bytes.
func (r *Engine) applyOne(ctx context.Context, seg *segment.Reader, data []byte, p uint64, ps *PullStats) error {
	facts := protocol.SegmentFacts{FromSelf: seg.Header().Origin == r.ID()}
	if facts.FromSelf {
		sent, err := r.meta(sentName(data))
		if err != nil {
			return err
		}
		facts.StagedHere = sent != nil
	}
	switch r.rules.AdmitSegment(facts) {
	case protocol.RefuseCloned:
		return fmt.Errorf("%w: %s was published under this id by another directory", ErrCloned, remote.LogKey(p))
	case protocol.AdmitOwn:
		// One of ours (staged here, perhaps uploaded by a copy of this
		// directory made after staging): its dots are in the log now, so
		// they count as published — reidentify must keep them, or this
		// replica would drop versions every other replica holds. Raised
		// before the segment is applied: a crash after the cursor passed
		// it must not leave them unpublished (sim kill sweep seed 7473).
		own, err := seg.MaxCounter(r.ID())
		if err != nil {
			return err
		}
		if err := r.raisePublished(ctx, own); err != nil {
			return err
		}
	}
	return r.apply(ctx, seg, p, ps)
}

// apply merges one verified segment at log position p through the record
// applier: a transaction per chunk, the cursor advancing in the last. The
// pull's final state is synced before it returns.
func (r *Engine) apply(ctx context.Context, seg *segment.Reader, p uint64, ps *PullStats) error {
	r.st.Clock().Observe(seg.Header().HLC)
	maxOwn, err := seg.MaxCounter(r.ID())
	if err != nil {
		return err
	}
	return r.applyRecords(ctx, seg, &applyRun{
		name:    remote.LogKey(p),
		chunk:   r.chunk(),
		pos:     p,
		cursor:  true,
		maxOwn:  maxOwn,
		mergeFn: r.rules.Merge,
		adopt:   r.rules.Adopt,
		step:    "pull:chunk",
	}, ps)
}

// endPull ends a pull that applied everything it listed: the tip listed
// after registering is reached, so pushing is allowed from now on; the
// final state is synced before any ack can be published from it.
func (r *Engine) endPull(ctx context.Context) error {
	if err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		tx.SetMeta("ready", []byte{1})
		tx.SetMeta("last_pull", p64(uint64(r.now().UnixMilli())))
		if r.listed {
			tx.SetMeta("listed_at", p64(uint64(r.now().UnixMilli())))
		}
		return nil
	}); err != nil {
		return wrapClosed(err)
	}
	if err := r.dropPassedOwn(ctx); err != nil {
		return err
	}
	// Publish the ack (durable now) at a bounded rate, and refresh the
	// registry of an idle replica before it ages into retirement (case 6
	// of issue 10): an idle pull is one request, plus a registry write at
	// most once per AckInterval when the ack moved, and once per
	// RegistryRefresh when it did not.
	if r.rebasing {
		return nil
	}
	ack, err := r.ackNow()
	if err != nil {
		return err
	}
	if !r.registryDue(ack) {
		return nil
	}
	err = r.swapRegistry(ctx, ack)
	if errors.Is(err, ErrRetired) {
		return r.rebase(ctx)
	}
	return err
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
	return r.rules.RegistryDue(protocol.DueInput{
		Ack: ack, LastAck: rs.Ack, Age: age, Known: rs.At != 0 && age >= 0,
		AckInterval: r.ackInterval(), Refresh: r.registryRefresh(),
	})
}

// listEvery is Options.ListEvery, RegistryRefresh when 0.
func (r *Engine) listEvery() time.Duration {
	if r.opts.ListEvery == 0 {
		return r.registryRefresh()
	}
	return r.opts.ListEvery
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
	snap, err := r.newestSnapshot(ctx)
	if err != nil || !protocol.PrunedPast(snap, pos) {
		return false, err
	}
	return true, r.rebaseOrRestart(ctx)
}

// rebaseOrRestart rebases on the newest snapshot; inside a rebase's own
// pull it reports errSnapshotPassed instead (the rebase starts again on
// the newer snapshot).
func (r *Engine) rebaseOrRestart(ctx context.Context) error {
	if r.rebasing {
		return errSnapshotPassed
	}
	return r.rebase(ctx)
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

// decoder decodes this store's segments: a segment may declare no more
// raw body than a push of this store writes (the segment cap, plus the
// record that crosses it: at most one value and its metadata).
//
// Open keeps the records its check pass decoded, as far as the decode
// budget has room for them now (segment.Decoder.Keep), so that a pull
// decodes each record once; what does not fit is decoded again as it is
// applied. Every caller holds one such Reader at a time, or Readers that
// it closes without waiting for another Open (history's scanLog), so
// memory kept by one never blocks the Open that would free it. (Snapshot
// parts keep nothing: bootstrap opens a window of parts before applying
// any; see partDecoder.)
func (r *Engine) decoder() segment.Decoder {
	limit := int64(DefaultSegmentCap)
	if r.manifest != nil && r.manifest.SegmentCap > 0 {
		limit = int64(r.manifest.SegmentCap)
	}
	b := r.budget()
	return segment.Decoder{MaxRaw: limit + 2*int64(r.opts.MaxValueSize) + 1<<20, Budget: b, Keep: b.Size()}
}
