package engine

// Bootstrap: loading the newest snapshot into a replica.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
	"golang.org/x/sync/errgroup"
)

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
