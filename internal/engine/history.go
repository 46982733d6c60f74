package engine

// History: what the remote still holds of the past (the retained
// snapshots and the log above the oldest of them), read for History,
// Restore and Revert. Nothing here writes to the remote.
//
// A position's time is the server's: the LastModified of its log segment
// (positions are created in order, each after the one below it exists), or
// for a snapshot whose segment was pruned, its index's. The store "as of
// time T" is the store at the highest retained position whose time is at
// or before T: what a reader of the bucket could have pulled at T.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"golang.org/x/sync/errgroup"
)

// Errors of History, Restore and Revert.
var (
	// ErrBeforeHistory: a time or position older than the oldest the
	// retained snapshots and log can rebuild (the error names it).
	ErrBeforeHistory = errors.New("replica: before the retained history")
	// ErrFutureTime: a time after now.
	ErrFutureTime = errors.New("replica: time is in the future")
	// ErrNoHistory: the remote holds no snapshot and log the past can be
	// rebuilt from (a gap in the log, or an empty store).
	ErrNoHistory = errors.New("replica: the remote holds no restorable history")
)

// HistoryStart is where the retained history starts: the oldest position
// a restore can rebuild, and its time (for position 0, the empty store
// before the first write, the store's creation).
type HistoryStart struct {
	Position uint64    `json:"position"`
	Time     time.Time `json:"time"`
}

// HistoryVersion is one version a key held: its value or delete, the
// replica that wrote it, its HLC, and the log position where it was first
// published (for a version already in the oldest retained snapshot: the
// position of the last change of its record there, at or after it was
// written).
type HistoryVersion struct {
	Position uint64
	Time     clock.HLC
	Replica  clock.ReplicaID
	Counter  uint64
	Deleted  bool
	Value    []byte
}

// History is every version of key the remote's retained history holds,
// oldest first (by position, then HLC), and where that history starts. It
// reads the oldest usable snapshot's part holding key (a binary search
// over the parts, which hold keys in order) and every log segment above
// it; local writes not yet pushed are not part of it. A key with no
// version there gives no versions and no error.
func (r *Engine) History(ctx context.Context, key string) ([]HistoryVersion, HistoryStart, error) {
	if err := ValidateKey(key); err != nil {
		return nil, HistoryStart{}, err
	}
	b, m, err := r.connectForRead(ctx)
	if err != nil {
		return nil, HistoryStart{}, err
	}
	tl, err := readTimeline(ctx, b, m)
	if err != nil {
		return nil, HistoryStart{}, err
	}
	start, ok := tl.start()
	if !ok {
		return nil, start, errGap
	}
	var out []HistoryVersion
	seen := map[clock.Dot]bool{}
	add := func(pos uint64, rec merge.Record) {
		var fresh []HistoryVersion
		for _, v := range rec.Versions {
			if seen[v.Dot] {
				continue
			}
			seen[v.Dot] = true
			fresh = append(fresh, HistoryVersion{Position: pos, Time: v.Time, Replica: v.Dot.Replica,
				Counter: v.Dot.Counter, Deleted: v.Deleted, Value: v.Value})
		}
		sort.SliceStable(fresh, func(i, j int) bool { return fresh[i].Time < fresh[j].Time })
		out = append(out, fresh...)
	}
	if start.Position > 0 {
		idx, err := r.readIndex(ctx, start.Position)
		if err != nil {
			return nil, start, err
		}
		if err := r.scanSnapshot(ctx, idx, key, func(k string) bool { return k == key }, func(e segment.Entry) {
			add(e.Pos, e.Record)
		}); err != nil {
			return nil, start, err
		}
	}
	err = r.scanLog(ctx, tl.logAbove(start.Position, tl.tip), func(k string) bool { return k == key }, func(pos uint64, e segment.Entry) {
		add(pos, e.Record)
	})
	return out, start, err
}

// timeline is what the remote lists of the past: the complete snapshots
// and the log segments, each with its server time.
type timeline struct {
	snaps []posTime // ascending
	logs  []posTime // ascending
	tip   uint64    // the highest position listed (log or snapshot)
	// created is the store's creation (the manifest's): the time of
	// position 0, the empty store.
	created time.Time
}

type posTime struct {
	pos uint64
	at  time.Time
}

// connectForRead connects to the remote (so a sealed store reads through
// its seal) and returns the backend to read.
func (r *Engine) connectForRead(ctx context.Context) (remote.Backend, Manifest, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if _, err := r.connectLocked(ctx); err != nil {
		return nil, Manifest{}, err
	}
	if err := r.refreshSeal(ctx); err != nil {
		return nil, Manifest{}, err
	}
	return r.opts.Backend, *r.manifest, nil
}

// readTimeline lists snap/ and log/ on b, the store of manifest m.
func readTimeline(ctx context.Context, b remote.Backend, m Manifest) (timeline, error) {
	tl := timeline{created: m.Created}
	for info, err := range b.List(ctx, remote.SnapPrefix, "") {
		if err != nil {
			return tl, fmt.Errorf("replica: list %s on %s: %w", remote.SnapPrefix, b, err)
		}
		if p, rest, ok := parseSnapKey(info.Key); ok && rest == "index" {
			tl.snaps = append(tl.snaps, posTime{p, info.LastModified})
			tl.tip = max(tl.tip, p)
		}
	}
	for info, err := range b.List(ctx, remote.LogPrefix, "") {
		if err != nil {
			return tl, fmt.Errorf("replica: list %s on %s: %w", remote.LogPrefix, b, err)
		}
		if p, ok := remote.ParseLogKey(info.Key); ok {
			tl.logs = append(tl.logs, posTime{p, info.LastModified})
			tl.tip = max(tl.tip, p)
		}
	}
	slices.SortFunc(tl.snaps, func(a, b posTime) int { return cmpU64(a.pos, b.pos) })
	return tl, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// contiguous reports whether every log position in (from, to] is listed.
func (tl timeline) contiguous(from, to uint64) bool {
	if to <= from {
		return true
	}
	i, ok := slices.BinarySearchFunc(tl.logs, from+1, func(a posTime, p uint64) int { return cmpU64(a.pos, p) })
	if !ok {
		return false
	}
	j := i + int(to-from) - 1
	return j < len(tl.logs) && tl.logs[j].pos == to
}

// logAbove is the listed log positions in (from, to].
func (tl timeline) logAbove(from, to uint64) []uint64 {
	var out []uint64
	for _, l := range tl.logs {
		if l.pos > from && l.pos <= to {
			out = append(out, l.pos)
		}
	}
	return out
}

// bases are the positions a past state can be rebuilt from, ascending: 0
// (the empty store) and every complete snapshot.
func (tl timeline) bases() []posTime {
	return append([]posTime{{0, time.Time{}}}, tl.snaps...)
}

// baseFor is the newest base at or below p with the log listed from it up
// to p; ok is false when there is none.
func (tl timeline) baseFor(p uint64) (uint64, bool) {
	bs := tl.bases()
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].pos <= p && tl.contiguous(bs[i].pos, p) {
			return bs[i].pos, true
		}
	}
	return 0, false
}

// start is where the retained history starts: the oldest base with the
// log listed from it to the tip. ok is false when there is none (a gap in
// the log above every snapshot: damage): ErrNoHistory.
func (tl timeline) start() (HistoryStart, bool) {
	for _, b := range tl.bases() {
		if tl.contiguous(b.pos, tl.tip) {
			return HistoryStart{Position: b.pos, Time: tl.timeOf(b.pos)}, true
		}
	}
	return HistoryStart{}, false
}

// errGap is ErrNoHistory for a log with a gap above every snapshot.
var errGap = fmt.Errorf("%w: the log has a gap above every snapshot (run verify)", ErrNoHistory)

// timeOf is the server time of position p: its log segment's
// LastModified, else its snapshot index's (zero for 0 or when unknown).
func (tl timeline) timeOf(p uint64) time.Time {
	if p == 0 { // the store's creation, or its first segment if earlier
		if len(tl.logs) > 0 && tl.logs[0].pos == 1 && !tl.logs[0].at.IsZero() &&
			(tl.created.IsZero() || tl.logs[0].at.Before(tl.created)) {
			return tl.logs[0].at
		}
		return tl.created
	}
	if i, ok := slices.BinarySearchFunc(tl.logs, p, func(a posTime, p uint64) int { return cmpU64(a.pos, p) }); ok {
		return tl.logs[i].at
	}
	for _, s := range tl.snaps {
		if s.pos == p {
			return s.at
		}
	}
	return time.Time{}
}

// positionAt is the position of the store as of t: the highest position
// from the history's start up whose time is at or before t. A time before
// the start is ErrBeforeHistory naming the oldest restorable time.
func (tl timeline) positionAt(t time.Time) (uint64, error) {
	st, ok := tl.start()
	if !ok {
		return 0, errGap
	}
	if !st.Time.IsZero() && t.Before(st.Time) {
		return 0, fmt.Errorf("%w: %s is before %s, the oldest restorable time (position %d)",
			ErrBeforeHistory, t.UTC().Format(time.RFC3339Nano), st.Time.UTC().Format(time.RFC3339Nano), st.Position)
	}
	p := st.Position
	for _, l := range tl.logs {
		if l.pos > st.Position && !l.at.After(t) {
			p = max(p, l.pos)
		}
	}
	for _, s := range tl.snaps {
		if s.pos > st.Position && !s.at.IsZero() && !s.at.After(t) {
			p = max(p, s.pos)
		}
	}
	return p, nil
}

// checkPosition checks that p can be rebuilt and returns its base.
func (tl timeline) checkPosition(p uint64) (uint64, error) {
	st, ok := tl.start()
	if !ok {
		return 0, errGap
	}
	if p > tl.tip {
		return 0, fmt.Errorf("replica: position %d is past the log's end (%d)", p, tl.tip)
	}
	if p < st.Position {
		return 0, fmt.Errorf("%w: position %d is below %d, the oldest restorable position (time %s)",
			ErrBeforeHistory, p, st.Position, st.Time.UTC().Format(time.RFC3339Nano))
	}
	base, ok := tl.baseFor(p)
	if !ok {
		return 0, fmt.Errorf("%w: no snapshot at or below %d with the log complete up to it", ErrNoHistory, p)
	}
	return base, nil
}

// fetchPart fetches one snapshot part, checks it against the index and
// decodes every record of it.
func (r *Engine) fetchPart(ctx context.Context, p PartInfo) ([]segment.Entry, error) {
	b := r.opts.Backend
	obj, err := b.Get(ctx, p.Name)
	if err != nil {
		return nil, fmt.Errorf("replica: fetch %s from %s: %w", p.Name, b, err)
	}
	sum := sha256.Sum256(obj.Data)
	if hex.EncodeToString(sum[:]) != p.SHA256 {
		return nil, fmt.Errorf("%w: %s on %s: checksum does not match the index", segment.ErrCorrupt, p.Name, b)
	}
	s, err := r.partDecoder().OpenPart(ctx, p.Name+" on "+b.String(), obj.Data)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return readAll(s)
}

func readAll(s *segment.Reader) ([]segment.Entry, error) {
	var out []segment.Entry
	for {
		es, err := s.Next(4096)
		out = append(out, es...)
		if errors.Is(err, io.EOF) || err == nil && len(es) == 0 {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// scanSnapshot calls fn for each record of the snapshot in a key range:
// the keys at or after from for which in holds, up to the first that it
// does not (a single key, or a prefix with from the prefix). Parts hold
// keys in order (a compactor writes them from one ordered scan), so only
// the parts that may hold the range are read: the first is found by a
// binary search on their last keys.
func (r *Engine) scanSnapshot(ctx context.Context, idx SnapIndex, from string, in func(string) bool, fn func(segment.Entry)) error {
	cache := map[int][]segment.Entry{}
	get := func(i int) ([]segment.Entry, error) {
		if es, ok := cache[i]; ok {
			return es, nil
		}
		es, err := r.fetchPart(ctx, idx.Parts[i])
		cache[i] = es
		return es, err
	}
	lo, hi := 0, len(idx.Parts)
	for lo < hi {
		mid := (lo + hi) / 2
		es, err := get(mid)
		if err != nil {
			return err
		}
		if len(es) > 0 && es[len(es)-1].Key < from {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for i := lo; i < len(idx.Parts); i++ {
		es, err := get(i)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Key < from {
				continue
			}
			if !in(e.Key) {
				return nil
			}
			fn(e)
		}
	}
	return nil
}

// scanLog fetches the log segments at positions (concurrently, a window
// at a time) and calls fn, in position order, for every record whose key
// match accepts.
func (r *Engine) scanLog(ctx context.Context, positions []uint64, match func(string) bool, fn func(uint64, segment.Entry)) error {
	b := r.opts.Backend
	const window = 32
	for start := 0; start < len(positions); start += window {
		win := positions[start:min(start+window, len(positions))]
		found := make([][]segment.Entry, len(win))
		eg, gctx := errgroup.WithContext(ctx)
		eg.SetLimit(pullWindow)
		for i, p := range win {
			eg.Go(func() error {
				key := remote.LogKey(p)
				obj, err := b.Get(gctx, key)
				if err != nil {
					return fmt.Errorf("replica: fetch %s from %s: %w", key, b, err)
				}
				s, err := r.decoder().Open(gctx, key+" on "+b.String(), obj.Data)
				if err != nil {
					return err
				}
				defer s.Close()
				es, err := readAll(s)
				if err != nil {
					return err
				}
				for _, e := range es {
					if match(e.Key) {
						found[i] = append(found[i], e)
					}
				}
				return nil
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
		for i, p := range win {
			for _, e := range found[i] {
				fn(p, e)
			}
		}
	}
	return nil
}
