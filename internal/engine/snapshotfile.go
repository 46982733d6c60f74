package engine

// Snapshot files: writing snap/<P>/part-<nonce>-NNNN and snap/<P>/index
// from one consistent view, and listing the snapshots.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// maxPartSize bounds CompactOptions.PartSize: readers accept a snapshot
// part as large as an honest writer makes one, and no larger.
const maxPartSize = 64 << 20

// partDecoder decodes snapshot parts (at most maxPartSize, plus the record
// that crosses it).
func (r *Engine) partDecoder() segment.Decoder {
	return segment.Decoder{MaxRaw: maxPartSize + 2*int64(r.opts.MaxValueSize) + 1<<20, Budget: r.budget()}
}

// writeSnapshot writes a snapshot from one consistent view with an empty
// outbox and nothing staged. It reports false when the view was not clean.
func (r *Engine) writeSnapshot(ctx context.Context, partSize int, cs *CompactStats) (bool, error) {
	nonce := newNonce()[:12]
	var idx SnapIndex
	clean := true
	err := r.st.View(func(v *store.View) error {
		dirty, err := viewDirty(v)
		if err != nil {
			return err
		}
		if dirty && r.rules.SnapshotFirst() {
			clean = false
			return nil
		}
		idx, err = r.writeParts(ctx, v, partSize, nonce)
		return err
	})
	if err != nil || !clean {
		return false, wrapClosed(err)
	}
	if idx, err = r.writeIndex(ctx, idx, cs); err != nil {
		return false, err
	}
	cs.Position, cs.Records, cs.Parts = idx.Position, idx.Records, len(idx.Parts)
	return true, nil
}

// viewDirty reports whether v holds an outbox mark or a staged segment.
func viewDirty(v *store.View) (bool, error) {
	dirty := false
	low, err := v.OutboxLow()
	if err != nil {
		return false, err
	}
	if err := v.OutboxOrder(low, func(string, uint64) (bool, error) { dirty = true; return false, nil }); err != nil {
		return false, err
	}
	if err := v.MetaScan("stage/", func(string, []byte) (bool, error) { dirty = true; return false, nil }); err != nil {
		return false, err
	}
	return dirty, nil
}

// writeParts writes every record of v (with its pos), at most partSize
// raw bytes a part, as snap/<P>/part-<nonce>-NNNN at P = the cursor, and
// returns the index that lists them, not yet written.
func (r *Engine) writeParts(ctx context.Context, v *store.View, partSize int, nonce string) (SnapIndex, error) {
	cb, _, err := v.Meta("cursor")
	if err != nil {
		return SnapIndex{}, err
	}
	g, err := v.G()
	if err != nil {
		return SnapIndex{}, err
	}
	codec, _ := segment.ParseCodec(r.manifest.Codec)
	w := &partWriter{r: r, codec: codec, enc: segment.NewPartEncoder(), idx: SnapIndex{
		Format: FormatVersion, RemoteID: r.manifest.RemoteID, Position: u64(cb),
		Origin: r.ID().String(), Nonce: nonce, G: format.VectorToJSON(g), Created: r.now().UTC()}}
	top := g.Clone()
	// Progress: records written of the live keys (records that read as
	// deleted come on top: the total grows to the count when passed).
	live := r.st.Len()
	err = v.Records("", "", func(key string, st store.Stored) (bool, error) {
		if err := w.enc.AddPos(key, st.Pos, st.Record); err != nil {
			return false, err
		}
		top.JoinInPlace(st.Clock)
		w.idx.Records++
		if w.enc.Len() >= partSize {
			r.progress("compact", w.idx.Records, max(live, w.idx.Records+1))
			return true, w.flush(ctx)
		}
		return true, nil
	})
	if err != nil {
		return w.idx, err
	}
	w.idx.Top = format.VectorToJSON(top)
	err = w.flush(ctx)
	if err == nil {
		r.progress("compact", w.idx.Records, w.idx.Records)
	}
	return w.idx, err
}

// partWriter writes the parts of one snapshot and lists them in its index.
type partWriter struct {
	r     *Engine
	codec segment.Codec
	enc   *segment.Encoder
	idx   SnapIndex
}

// flush writes the records encoded so far as the next part (create-only;
// one part even when the snapshot holds no record).
func (w *partWriter) flush(ctx context.Context) error {
	r, b, idx := w.r, w.r.opts.Backend, &w.idx
	if w.enc.Count() == 0 && len(idx.Parts) > 0 {
		return nil
	}
	data, err := w.enc.Finish(segment.Header{Origin: r.ID(), Base: idx.Position}, w.codec)
	if err != nil {
		return err
	}
	nonce, createOnly := r.rules.PartNonce(idx.Nonce)
	name := partKey(idx.Position, nonce, len(idx.Parts))
	put := b.PutIfAbsent
	if !createOnly {
		put = b.Put // an old rule (the simulator's): S15
	}
	if _, err := put(ctx, name, data); err != nil {
		return fmt.Errorf("replica: write %s on %s: %w", name, b, err)
	}
	sum := sha256.Sum256(data)
	idx.Parts = append(idx.Parts, PartInfo{Name: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Records: w.enc.Count()})
	w.enc = segment.NewPartEncoder()
	return nil
}

// writeIndex writes idx, the snapshot's index, last and create-only. When
// another compactor's index at the same position won, its parts are kept
// and ours deleted; it returns the index in force.
func (r *Engine) writeIndex(ctx context.Context, idx SnapIndex, cs *CompactStats) (SnapIndex, error) {
	b := r.opts.Backend
	data, _ := json.MarshalIndent(idx, "", "  ")
	_, err := b.PutIfAbsent(ctx, SnapKey(idx.Position), data)
	if errors.Is(err, remote.ErrExists) || errors.Is(err, remote.ErrTransient) {
		// Another compactor's snapshot at P won (or ours landed
		// ambiguously): keep whichever index is there, drop unused parts.
		// Parts are deleted only on an index read twice alike, decoded
		// strictly and naming another compactor: a damaged read of our own
		// index must not make us delete the parts it lists (found by the
		// simulator, restore seed 2369).
		other, gerr := r.readIndex(ctx, idx.Position)
		if gerr != nil {
			return idx, fmt.Errorf("replica: write %s on %s: %w (read-back: %w)", SnapKey(idx.Position), b, err, gerr)
		}
		if other.Nonce != idx.Nonce {
			for _, p := range idx.Parts {
				_ = b.Delete(ctx, p.Name)
			}
			cs.Reused = true
			idx = other
		}
		err = nil
	}
	if err != nil {
		return idx, fmt.Errorf("replica: write %s on %s: %w", SnapKey(idx.Position), b, err)
	}
	return idx, nil
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
