package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
	"github.com/vmihailenco/msgpack/v5"
)

// PushStats reports one push.
type PushStats struct {
	Segments  int           `json:"segments"`
	Records   int           `json:"records"`
	Bytes     int64         `json:"bytes"`
	Positions []uint64      `json:"positions,omitempty"`
	Requests  remote.Counts `json:"requests"`
	// Pending is how many keys are still waiting to be pushed when the
	// push returned (0 after a push that sent everything, unless keys
	// were written meanwhile; after an error, how much is left).
	Pending int64 `json:"pending"`
}

// add adds the counts of a push that continued this one (not Requests,
// which the outermost call measures whole, nor Pending).
func (ps *PushStats) add(more PushStats) {
	ps.Segments += more.Segments
	ps.Records += more.Records
	ps.Bytes += more.Bytes
	ps.Positions = append(ps.Positions, more.Positions...)
}

// staged is a segment staged for upload (m/stage/<n>): the push's
// write-ahead record. Its bytes never change, so a retry re-sends them.
type staged struct {
	N      uint64   `msgpack:"n"`
	MaxOwn uint64   `msgpack:"max_own"` // highest own dot counter in the segment
	Base   uint64   `msgpack:"base"`
	Data   []byte   `msgpack:"data"`
	Keys   []string `msgpack:"keys"`
	Marks  []uint64 `msgpack:"marks"`
	Record int      `msgpack:"records"`

	// In memory only (a staged segment loaded after a restart has none):
	// the watch started before staging, and each key's record entry as
	// staging read it (nil: not kept), which the commit reuses for a key
	// the watch saw no write of (commitKeys).
	watch   *store.RecordWatch   `msgpack:"-"`
	entries []*store.RecordEntry `msgpack:"-"`
}

// keptBudget bounds the bytes of record entries a push keeps from staging
// for its commit (a PushAll of a large store keeps the first ones only).
const keptBudget = 4 << 20

func stageName(n uint64) string { return fmt.Sprintf("stage/%020d", n) }

func sentName(data []byte) string {
	sum := sha256.Sum256(data)
	return "sent/" + hex.EncodeToString(sum[:16])
}
func ownName(pos uint64) string { return fmt.Sprintf("own/%020d", pos) }

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func p64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// Push sends local changes: it uploads any segment a crash left staged,
// then stages the outbox (only changed keys: O(changed)) into segments of at
// most the store's segment cap, fences by swapping the registry object, and
// uploads each segment create-only at the next free log position.
// Uncontended, a push costs two PUTs and no LIST. A push that finds
// segments staged by an interrupted one uploads them, then stages and
// uploads the rest of the outbox: it returns with nothing pending, or an
// error and Pending saying how much is left.
func (r *Engine) Push(ctx context.Context) (PushStats, error) {
	defer r.maybeCollectGarbage()
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return r.pushLocked(ctx)
}

func (r *Engine) pushLocked(ctx context.Context) (ps PushStats, err error) {
	if r.opts.Backend == nil {
		return ps, ErrNoRemote
	}
	before := r.opts.Backend.Stats().Snapshot()
	defer func() {
		ps.Requests = r.opts.Backend.Stats().Snapshot().Sub(before)
		ps.Pending = r.st.OutboxLen()
	}()
	if _, err := r.connectLocked(ctx); err != nil {
		return ps, err
	}
	if err := r.resumeRebase(ctx); err != nil {
		return ps, err
	}
	// A new replica pushes nothing until it has pulled to a listed tip.
	if ready, _ := r.meta("ready"); !r.rules.MayPush(ready != nil) {
		if _, err := r.pullLocked(ctx); err != nil {
			return ps, err
		}
	}
	st, err := r.loadStaged()
	if err != nil {
		return ps, err
	}
	resumed := len(st) > 0 // left by an interrupted push
	var next uint64        // the outbox log position after what was staged
	if !resumed {
		var w *store.RecordWatch
		st, next, w, err = r.stageOutbox(ctx)
		defer w.Stop()
		if err != nil {
			return ps, err
		}
	}
	if len(st) == 0 {
		return ps, r.consumeOutbox(ctx, next)
	}
	if err := r.step("push:staged"); err != nil {
		return ps, err
	}
	ack, err := r.ackNow() // the cursor, lowered to every staged base
	if err != nil {
		return ps, err
	}
	if err := r.swapRegistry(ctx, ack); err != nil {
		if errors.Is(err, ErrRetired) && !r.rebasing {
			// Retired while away: rebase (the staged segments are thrown
			// away, the dirty keys re-stamped), then push those.
			if err := r.rebase(ctx); err != nil {
				return ps, err
			}
			return r.pushLocked(ctx)
		}
		return ps, err
	}
	if err := r.step("push:fenced"); err != nil {
		return ps, err
	}
	if err = r.uploadStaged(ctx, st, &ps); err != nil {
		return ps, err
	}
	if !resumed {
		return ps, r.consumeOutbox(ctx, next)
	}
	if r.st.OutboxLen() == 0 {
		return ps, nil
	}
	// The interrupted push's segments are in; now the rest of the outbox
	// (the keys it had not staged, and any written since).
	more, err := r.pushLocked(ctx)
	ps.add(more)
	return ps, err
}

// uploadStaged uploads each staged segment at the next free position and
// commits it once its registry reads not retired.
func (r *Engine) uploadStaged(ctx context.Context, st []*staged, ps *PushStats) error {
	var total, done int64
	for _, s := range st {
		total += int64(len(s.Data))
	}
	for _, s := range st {
		pos, err := r.upload(ctx, s.Data)
		if err != nil {
			return err
		}
		if err := r.step("push:uploaded"); err != nil {
			return err
		}
		// Absence rule 3: commit only after reading the registry not
		// retired, after the create. A pause between the fence and the
		// create (a laptop asleep) may have outlived the retirement age;
		// the position may then have been freed by a pruner, which reads
		// this registry retired first. Retired: keep the outbox, rebase
		// (the kept keys are re-stamped), push again.
		if r.rules.CheckAfterCreate() {
			if err := r.checkRegistry(ctx); err != nil {
				if errors.Is(err, ErrRetired) && !r.rebasing {
					if err := r.rebase(ctx); err != nil {
						return err
					}
					more, err := r.pushLocked(ctx)
					ps.add(more)
					return err
				}
				return err
			}
		}
		if err := r.step("push:checked"); err != nil {
			return err
		}
		if err := r.commitStaged(ctx, s, pos); err != nil {
			return err
		}
		if err := r.step("push:committed"); err != nil {
			return err
		}
		ps.Segments++
		ps.Records += s.Record
		ps.Bytes += int64(len(s.Data))
		ps.Positions = append(ps.Positions, pos)
		done += int64(len(s.Data))
		r.progress("push", done, total)
	}
	return nil
}

func (r *Engine) cursor() uint64 {
	b, _ := r.meta("cursor")
	return u64(b)
}

func (r *Engine) loadStaged() ([]*staged, error) {
	var out []*staged
	err := r.st.View(func(v *store.View) error {
		return v.MetaScan("stage/", func(_ string, val []byte) (bool, error) {
			s := &staged{}
			if err := msgpack.Unmarshal(val, s); err != nil {
				return false, fmt.Errorf("%w: staged segment: %v", store.ErrCorrupt, err)
			}
			out = append(out, s)
			return true, nil
		})
	})
	return out, wrapClosed(err)
}

// stageOutbox encodes the current merged records of the outbox's keys into
// segments and stages each, with the marks it covers, in one synced
// transaction.
//
// It also returns the outbox log position after the entries it read: once
// every staged segment is committed, each key they listed is clean or
// marked again in a later entry, and consumeOutbox drops them.
//
// Before reading any record it starts a store.RecordWatch, which the
// caller stops once the staged segments are committed (or the push
// failed): the commit reuses the entries staging read of the keys that no
// write touched since.
func (r *Engine) stageOutbox(ctx context.Context) ([]*staged, uint64, *store.RecordWatch, error) {
	keys, marks, next, err := r.outboxKeys(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	var w *store.RecordWatch
	budget := keptBudget
	var out []*staged
	for len(keys) > 0 {
		var s *staged
		update := r.st.UpdateSync
		if !r.rules.Sync() {
			update = r.st.Update // an old rule (the simulator's): S13
		}
		err := update(ctx, func(tx *store.Tx) error {
			var used int
			var err error
			if w == nil {
				w = tx.WatchRecords()
			}
			s, used, err = r.stageSegment(tx, keys, marks, w, &budget)
			keys, marks = keys[used:], marks[used:]
			return err
		})
		if err != nil {
			return out, 0, w, wrapClosed(err)
		}
		if s != nil {
			out = append(out, s)
		}
	}
	return out, next, w, nil
}

// consumeOutbox drops the outbox log entries below next (0: none), every
// key they listed having been pushed and its mark cleared, or marked again
// since (a later entry lists it): later pushes read the log from next.
func (r *Engine) consumeOutbox(ctx context.Context, next uint64) error {
	if next == 0 {
		return nil
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error { return tx.SetOutboxLow(next) }))
}

// outboxKeys reads the outbox log from its low position: only the keys
// marked since the last push, whatever the store's size and history, each
// with its latest listed mark, in the order of those listings, and the
// position after the entries read. It reads no record: a listing may be
// stale (the key pushed or cleared since), which staging, reading each
// record once, finds by its mark (encodeDirty).
func (r *Engine) outboxKeys(ctx context.Context) ([]string, []uint64, uint64, error) {
	var keys []string
	var marks []uint64
	var next uint64
	at := map[string]int{} // each key's latest listing
	err := r.st.View(func(v *store.View) error {
		low, err := v.OutboxLow()
		if err != nil {
			return err
		}
		if next, err = v.OutboxNext(); err != nil {
			return err
		}
		return v.OutboxListings(low, func(key string, mark uint64) (bool, error) {
			if i, ok := at[key]; ok {
				marks[i] = noListing // a later listing counts
			}
			at[key] = len(keys)
			keys = append(keys, key)
			marks = append(marks, mark)
			return true, nil
		})
	})
	if err != nil {
		return nil, nil, 0, wrapClosed(err)
	}
	n := 0
	for i := range keys {
		if marks[i] != noListing {
			keys[n], marks[n] = keys[i], marks[i]
			n++
		}
	}
	return keys[:n], marks[:n], next, nil
}

// noListing in outboxKeys: a listing superseded by a later one of its key.
// (Marks are dot counters, which never reach it.)
const noListing = ^uint64(0)

// stageSegment encodes the records of keys (marked with marks), from the
// first, into one segment of at most the segment cap (the record that
// crosses it included) and stages it in tx. It reports how many keys it
// used, and no segment when none of them has a record any more.
func (r *Engine) stageSegment(tx *store.Tx, keys []string, marks []uint64, w *store.RecordWatch, budget *int) (*staged, int, error) {
	var n uint64
	if b, _, err := tx.Meta("stage_seq"); err != nil {
		return nil, 0, err
	} else {
		n = u64(b) + 1
	}
	cb, _, err := tx.Meta("cursor")
	if err != nil {
		return nil, 0, err
	}
	id, err := tx.ReplicaID()
	if err != nil {
		return nil, 0, err
	}
	cand := &staged{N: n, Base: u64(cb), watch: w}
	enc := segment.NewEncoder()
	used, err := r.encodeDirty(tx, enc, cand, id, keys, marks, budget)
	if err != nil || enc.Count() == 0 {
		return nil, used, err
	}
	codec, _ := segment.ParseCodec(r.manifest.Codec)
	data, err := enc.Finish(segment.Header{Origin: id, Base: cand.Base, HLC: tx.Now()}, codec)
	if err != nil {
		return nil, used, err
	}
	cand.Data, cand.Record = data, enc.Count()
	b, err := msgpack.Marshal(cand)
	if err != nil {
		return nil, used, err
	}
	tx.SetMeta(stageName(n), b)
	// Remember every segment this replica ever staged: a pulled segment
	// under our id that is not one of them was published by another
	// directory using our id.
	tx.SetMeta(sentName(data), []byte{1})
	tx.SetMeta("stage_seq", p64(n))
	return cand, used, nil
}

// encodeDirty adds the current records of the dirty keys to enc and their
// marks to cand, from the first key, until enc reaches the segment cap. It
// reports how many keys it used.
//
// The marks are the outbox log's, read just before (outboxKeys). Each
// key's record entry holds its current mark, read here with the record
// (one engine lookup per key): a key whose mark is not the listed one is
// skipped. Either the listing was stale (the key was pushed, or rebased,
// since it was listed), or a local write since re-marked it: that write
// is listed in a later log entry, past the position this push consumes,
// and is pushed next time. Marks are cleared by pushes and rebases, which
// hold syncMu as this push does, so a key found marked stays so until the
// commit, which clears the mark only if it is still the staged one
// (protocol.MarkCleared).
//
// It keeps each staged key's record entry for the commit while budget
// (bytes, roughly) lasts.
func (r *Engine) encodeDirty(tx *store.Tx, enc *segment.Encoder, cand *staged, id clock.ReplicaID, keys []string, marks []uint64, budget *int) (int, error) {
	limit := r.pushCap() // the manifest's, smaller under the small profile
	used := 0
	for i, key := range keys {
		if enc.Count() > 0 && enc.Len() >= limit {
			break
		}
		used++
		mark := marks[i]
		if now, dirty, err := tx.OutboxMark(key); err != nil {
			return used, err
		} else if !dirty || now != mark {
			continue
		}
		rec, ok, err := tx.Record(key)
		if err != nil {
			return used, err
		}
		if !ok {
			continue
		}
		if err := enc.Add(key, rec.Record); err != nil {
			return used, err
		}
		for _, v := range rec.Versions {
			if v.Dot.Replica == id {
				cand.MaxOwn = max(cand.MaxOwn, v.Dot.Counter)
			}
		}
		var e *store.RecordEntry
		if cost := 2*merge.RecordSizeHint(rec.Record) + len(key) + 256; *budget >= cost {
			if e, err = tx.Entry(key); err != nil {
				return used, err
			}
			*budget -= cost
		}
		cand.Keys = append(cand.Keys, key)
		cand.Marks = append(cand.Marks, mark)
		cand.entries = append(cand.entries, e)
	}
	return used, nil
}

// knownTip is the highest log position known to exist.
func (r *Engine) knownTip() uint64 {
	var tip uint64
	_ = r.st.View(func(v *store.View) error {
		c, _, _ := v.Meta("cursor")
		t, _, _ := v.Meta("tip")
		tip = max(u64(c), u64(t))
		return nil
	})
	return tip
}

// upload creates data at the next free log position: tip+1; on ErrExists
// the next one; when that exists too, it lists from the known tip. After an
// ambiguous answer it reads the object back and compares. A server that
// answers "exists" for positions it does not list (a broken or hostile
// store) cannot keep it looping: after maxPhantom such answers it fails.
func (r *Engine) upload(ctx context.Context, data []byte) (uint64, error) {
	b := r.opts.Backend
	pos := r.knownTip() + 1
	if r.rules.ClaimStart != nil && r.rules.ClaimStart() == protocol.ClaimListedTip {
		// A prototype (issue 17): aim the first claim past the listed tail.
		tip, err := r.listTip(ctx, pos)
		if err != nil {
			return 0, err
		}
		pos = tip + 1
	}
	exists := 0
	ambiguous := 0
	phantom := 0
	for {
		_, err := b.PutIfAbsent(ctx, remote.LogKey(pos), data)
		if err == nil {
			return pos, nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		if !errors.Is(err, remote.ErrExists) {
			obj, gerr := b.Get(ctx, remote.LogKey(pos))
			switch {
			case gerr == nil && bytes.Equal(obj.Data, data):
				return pos, nil // our create landed
			case gerr == nil:
				err = remote.ErrExists // somebody else's
			case errors.Is(gerr, remote.ErrNotExist) && ambiguous < 3:
				ambiguous++
				continue // did not land: try the same position again
			default:
				return 0, fmt.Errorf("replica: upload %s to %s: %w", remote.LogKey(pos), b, err)
			}
		}
		exists++
		if exists%2 == 1 {
			pos++
			continue
		}
		tip, err := r.listTip(ctx, pos)
		if err != nil {
			return 0, err
		}
		if tip < pos {
			// The position just answered "exists" but is not listed.
			if phantom++; phantom >= maxPhantom {
				return 0, fmt.Errorf("replica: upload to %s: %s answers that it exists, but no listing shows it (%d times): the store is inconsistent", b, remote.LogKey(pos), phantom)
			}
		}
		pos = max(tip, pos) + 1
	}
}

// maxPhantom bounds the "exists" answers for unlisted positions an upload
// accepts before it gives up.
const maxPhantom = 8

// listTip returns the highest listed log position at or after from (from-1
// when none is listed).
func (r *Engine) listTip(ctx context.Context, from uint64) (uint64, error) {
	b := r.opts.Backend
	tip := from - 1
	after := ""
	if from > 0 {
		after = remote.LogKey(from - 1)
	}
	for info, err := range b.List(ctx, remote.LogPrefix, after) {
		if err != nil {
			return 0, fmt.Errorf("replica: list %s on %s: %w", remote.LogPrefix, b, err)
		}
		if p, ok := remote.ParseLogKey(info.Key); ok && p > tip {
			tip = p
		}
	}
	return tip, nil
}

// commitStaged ends a staged segment's upload at pos: it drops the stage,
// clears the marks unchanged since staging (a key written again stays
// dirty), records pos as an own position and as the records' pos. Large
// segments commit in several transactions (each key's update is
// idempotent); the stage itself is dropped in the last, so a crash midway
// leaves it staged and the next push re-uploads it harmlessly.
func (r *Engine) commitStaged(ctx context.Context, s *staged, pos uint64) error {
	// The segment is in the log: its dots are published before any mark
	// is cleared, so a crash between the chunks cannot leave keys clean
	// whose dots reidentify would take for unpublished.
	if err := r.raisePublished(ctx, s.MaxOwn); err != nil {
		return err
	}
	keys, marks, entries := s.Keys, s.Marks, s.entries
	if len(entries) != len(keys) {
		entries = nil // loaded after a restart: none kept
	}
	for {
		n := min(len(keys), r.chunk())
		chunkKeys, chunkMarks := keys[:n], marks[:n]
		var chunkEntries []*store.RecordEntry
		if entries != nil {
			chunkEntries = entries[:n]
		}
		var last bool
		err := r.st.Update(ctx, func(tx *store.Tx) error {
			done, err := r.commitKeys(tx, s.watch, chunkKeys, chunkMarks, chunkEntries, pos)
			if err != nil {
				return err
			}
			keys, marks = keys[done:], marks[done:]
			if entries != nil {
				entries = entries[done:]
			}
			if last = len(keys) == 0; !last {
				return nil
			}
			return r.commitEnd(tx, s, pos)
		})
		if err != nil {
			return wrapClosed(err)
		}
		if last {
			return nil
		}
	}
}

// commitKeys clears the marks of keys unchanged since staging (marks) and
// raises their records' pos to pos. It stops early, and reports how many
// keys it handled, when tx is full (Tx.Full).
//
// A key's entry kept from staging (entries, nil: none) stands for its
// record when w saw no write of it since (Tx.Reuse): local writes do not
// wait for the push, so any other key is read again.
func (r *Engine) commitKeys(tx *store.Tx, w *store.RecordWatch, keys []string, marks []uint64, entries []*store.RecordEntry, pos uint64) (done int, err error) {
	for i, key := range keys {
		if i > 0 && tx.Full() {
			// The engine's transaction limit (the small profile's
			// 614 KiB): the rest in the next transaction.
			return i, nil
		}
		if entries != nil {
			tx.Reuse(w, key, entries[i])
		}
		mark, ok, err := tx.OutboxMark(key)
		if err != nil {
			return i, err
		}
		if r.rules.MarkCleared(marks[i], mark, ok) {
			if err := tx.ClearOutboxMark(key); err != nil {
				return i, err
			}
		}
		if err := tx.RaisePos(key, pos); err != nil {
			return i, err
		}
	}
	return len(keys), nil
}

// commitEnd drops the stage of s, committed at pos, and records pos as an
// own position and as the tip.
func (r *Engine) commitEnd(tx *store.Tx, s *staged, pos uint64) error {
	tx.DeleteMeta(stageName(s.N))
	// own/<pos> names the segment's m/sent entry: both go when a pull's
	// cursor passes pos (see dropPassedOwn).
	tx.SetMeta(ownName(pos), []byte(sentName(s.Data)))
	tb, _, err := tx.Meta("tip")
	if err != nil {
		return err
	}
	if pos > u64(tb) {
		tx.SetMeta("tip", p64(pos))
	}
	tx.SetMeta("last_push", p64(uint64(r.now().UnixMilli())))
	return nil
}

// PushAll re-sends every record this replica holds: each key is marked in
// the outbox, then pushed. It lets the origin of a lost or quarantined
// segment publish its contents again.
func (r *Engine) PushAll(ctx context.Context) (PushStats, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	var keys []string
	err := r.st.View(func(v *store.View) error {
		return v.Records("", "", func(key string, _ store.Stored) (bool, error) {
			keys = append(keys, key)
			return true, nil
		})
	})
	if err != nil {
		return PushStats{}, wrapClosed(err)
	}
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), applyChunk)]
		keys = keys[len(chunk):]
		err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			for _, key := range chunk {
				if _, dirty, err := tx.OutboxMark(key); err != nil || dirty {
					if err != nil {
						return err
					}
					continue
				}
				// The current counter, not a new dot: at or above the
				// queue's low mark, and distinct from any later write's.
				if err := tx.SetOutboxMark(key, tx.Counter()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return PushStats{}, wrapClosed(err)
		}
	}
	return r.pushLocked(ctx)
}
