package engine

// Bootstrap: loading the newest snapshot into a replica (a new one, or a
// rebasing one), through the record applier pull uses.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/remote/format"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
	"golang.org/x/sync/errgroup"
)

// bootstrapIfNew makes a new replica load the newest snapshot instead of
// replaying the log.
func (r *Engine) bootstrapIfNew(ctx context.Context) error {
	if boot, _ := r.meta("bootstrapped"); boot != nil || r.cursor() != 0 {
		return nil
	}
	if _, err := r.bootstrap(ctx); err != nil {
		return err
	}
	return wrapClosed(r.st.UpdateSync(ctx, func(tx *store.Tx) error {
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

// loadSnapshot merges a snapshot into the local state: parts fetched in
// parallel, verified against the index's checksums, applied in large
// batches; then G joins the snapshot's and the cursor moves up to P.
func (r *Engine) loadSnapshot(ctx context.Context, idx SnapIndex) error {
	g, err := format.VectorFromJSON(idx.G)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", segment.ErrCorrupt, SnapKey(idx.Position), err)
	}
	if err := r.checkOwnDots(idx.G, SnapKey(idx.Position)); err != nil {
		return err
	}
	// ownSeen: the highest dot of this id the snapshot holds. Those dots
	// are published (a compactor read them in the log): reidentify must
	// keep them, as it keeps what this replica pushed itself (found by the
	// simulator: a directory restored from a backup bootstrapped its own
	// published write from a snapshot, then dropped it at reidentify).
	var done int64
	progress := func(n int) {
		done += int64(n)
		if r.opts.Progress != nil {
			r.opts.Progress("bootstrap", done, idx.Records)
		}
	}
	progress(0)
	run := applyRun{
		name:      SnapKey(idx.Position),
		chunk:     4 * r.chunk(),
		recordPos: true,
		// Checked per record too: an index without Top (an older
		// writer) or a lying one.
		checkEach: true,
		mergeFn:   merge.Merge,
		adopt:     protocol.Adopt,
		progress:  progress,
	}
	w := r.window()
	for start := 0; start < len(idx.Parts); start += w {
		win := idx.Parts[start:min(start+w, len(idx.Parts))]
		segs, err := r.fetchParts(ctx, win)
		if err != nil {
			return err
		}
		for i, s := range segs {
			var ps PullStats
			err := r.applyRecords(ctx, s, &run, &ps)
			s.Close()
			if err != nil {
				closeParts(segs[i+1:])
				return err
			}
		}
	}
	return r.endSnapshot(ctx, idx, g, run.ownSeen)
}

// fetchParts fetches the parts of win concurrently, checks each against
// the index's checksum and opens it for reading (held under the decode
// budget, applied as a stream by the caller, who closes them).
func (r *Engine) fetchParts(ctx context.Context, win []PartInfo) ([]*segment.Reader, error) {
	b := r.opts.Backend
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
			s, err := r.partDecoder().OpenPart(gctx, p.Name+" on "+b.String(), obj.Data)
			if err != nil {
				return err
			}
			segs[i] = s
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		closeParts(segs)
		return nil, err
	}
	return segs, nil
}

func closeParts(segs []*segment.Reader) {
	for _, s := range segs {
		if s != nil {
			s.Close()
		}
	}
}

// endSnapshot ends a snapshot's load: G joins the snapshot's g, the keys
// written here before it arrived join g into their clocks, the cursor
// moves up to the snapshot's position and m/published up to ownSeen.
//
// Keys written here before the snapshot arrived started from the G this
// replica had then; the snapshot's G summarises records collected
// everywhere that acknowledged them, which those writes must dominate as a
// write made now would (else a replica that collected the key and one that
// did not would read it differently).
func (r *Engine) endSnapshot(ctx context.Context, idx SnapIndex, g clock.Vector, ownSeen uint64) error {
	var dirty []string
	if err := r.st.View(func(v *store.View) error {
		return v.OutboxMarks("", func(key string, _ uint64) (bool, error) {
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
