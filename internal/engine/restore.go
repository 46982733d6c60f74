package engine

// Restore: a new, read-only replica directory holding the store as it was
// at a past time or log position, built from the newest retained snapshot
// at or below it and the log up to it. The live replica's store is never
// written; the remote is only read.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/store"
	"golang.org/x/sync/errgroup"
)

// ErrReadOnly: a write to a restored (read-only) replica.
var ErrReadOnly = store.ErrReadOnly

// RestoreOptions says what to restore and where. Exactly one of At and
// ByPosition is given.
type RestoreOptions struct {
	// Into is the directory of the restored replica: it must not exist, or
	// be empty.
	Into string
	// At: the store as of this time (server time; see history.go).
	At time.Time
	// Position (with ByPosition): the store as of this log position.
	Position   uint64
	ByPosition bool
}

// RestoreStats reports a Restore.
type RestoreStats struct {
	Position uint64        `json:"position"`
	Keys     int64         `json:"keys"`
	Base     uint64        `json:"base"`     // the snapshot it started from (0: the log from its start)
	Segments int           `json:"segments"` // log segments applied above it
	Requests remote.Counts `json:"requests"`
}

// RestoredInfo is what a restored replica records of where it came from
// (m/restored).
type RestoredInfo struct {
	Remote   string    `json:"remote"`
	Position uint64    `json:"position"`
	At       time.Time `json:"at,omitzero"`
}

// validate checks the options before anything is read or written.
func (o RestoreOptions) validate(now time.Time) error {
	switch {
	case o.Into == "":
		return errors.New("replica: restore: no directory to restore into")
	case o.ByPosition && !o.At.IsZero():
		return errors.New("replica: restore: give a time or a position, not both")
	case !o.ByPosition && o.At.IsZero():
		return errors.New("replica: restore: give a time or a position")
	case !o.ByPosition && o.At.After(now):
		return fmt.Errorf("%w: %s is after now (%s)", ErrFutureTime, o.At.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if ents, err := os.ReadDir(o.Into); err == nil && len(ents) > 0 {
		return fmt.Errorf("replica: restore: %s exists and is not empty", o.Into)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replica: restore: %w", err)
	}
	return nil
}

// Restore builds, in o.Into, a new read-only replica holding the store as
// it was at o.At or o.Position: the newest retained snapshot at or below
// that position, then the log up to it. It writes nothing to the remote
// or to this replica's store. A time or position before the retained
// history is ErrBeforeHistory naming the oldest restorable one; a time
// after now is ErrFutureTime; a directory that is not empty is refused.
// On any failure the directory is left as it was found.
//
// The restored replica has no remote; every local write to it fails with
// ErrReadOnly. Open it like any replica to read it (Get, Scan, export).
func (r *Engine) Restore(ctx context.Context, o RestoreOptions) (rs RestoreStats, err error) {
	if err := o.validate(r.now()); err != nil {
		return rs, err
	}
	b, m, err := r.connectForRead(ctx)
	if err != nil {
		return rs, err
	}
	before := b.Stats().Snapshot()
	defer func() { rs.Requests = b.Stats().Snapshot().Sub(before) }()
	tl, err := readTimeline(ctx, b, m)
	if err != nil {
		return rs, err
	}
	p := o.Position
	if !o.ByPosition {
		if p, err = tl.positionAt(o.At); err != nil {
			return rs, err
		}
	}
	base, err := tl.checkPosition(p)
	if err != nil {
		return rs, err
	}
	rs.Position, rs.Base = p, base
	_, statErr := os.Stat(o.Into)
	existed := statErr == nil
	defer func() {
		if err != nil { // leave the directory as it was found
			os.RemoveAll(o.Into)
			if existed {
				os.Mkdir(o.Into, 0o755)
			}
		}
	}()
	dst, err := Init(o.Into, "", &Options{
		Policies: r.opts.Policies, Funcs: r.opts.Funcs, Durability: store.Relaxed, Wall: r.opts.Wall,
		MaxValueSize: r.opts.MaxValueSize, LowMemory: r.opts.LowMemory, Logger: r.opts.Logger, MaxDrift: r.opts.MaxDrift,
	})
	if err != nil {
		return rs, err
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil && !errors.Is(cerr, ErrClosed) {
			err = cerr
		}
	}()
	// The restored replica reads through this one's remote (sealed as it
	// is) while it is built, and keeps none.
	dst.opts.Backend, dst.manifest = b, &m
	defer func() { dst.opts.Backend = nil }()
	if base > 0 {
		idx, err := r.readIndex(ctx, base)
		if err != nil {
			return rs, err
		}
		if err := dst.loadSnapshot(ctx, idx); err != nil {
			return rs, err
		}
	}
	if rs.Segments, err = dst.applyLog(ctx, tl.logAbove(base, p)); err != nil {
		return rs, err
	}
	info, _ := json.Marshal(RestoredInfo{Remote: r.RemoteURL(), Position: p, At: o.At.UTC()})
	if err := wrapClosed(dst.st.UpdateSync(ctx, func(tx *store.Tx) error {
		setCursor(tx, p)
		tx.SetMeta(store.MetaReadOnly, p64(p))
		tx.SetMeta("restored", info)
		return nil
	})); err != nil {
		return rs, err
	}
	rs.Keys = dst.Len()
	return rs, nil
}

// applyLog fetches the log segments at positions (a window at a time,
// concurrently) and applies them in order, as a pull does.
func (r *Engine) applyLog(ctx context.Context, positions []uint64) (int, error) {
	b := r.opts.Backend
	n := 0
	for start := 0; start < len(positions); start += pullWindow {
		win := positions[start:min(start+pullWindow, len(positions))]
		data := make([][]byte, len(win))
		eg, gctx := errgroup.WithContext(ctx)
		for i, p := range win {
			eg.Go(func() error {
				obj, err := b.Get(gctx, remote.LogKey(p))
				if err != nil {
					return fmt.Errorf("replica: fetch %s from %s: %w", remote.LogKey(p), b, err)
				}
				data[i] = obj.Data
				return nil
			})
		}
		if err := eg.Wait(); err != nil {
			return n, err
		}
		for i, p := range win {
			seg, err := r.decoder().Open(ctx, remote.LogKey(p)+" on "+b.String(), data[i])
			if err != nil {
				return n, err
			}
			var ps PullStats
			err = r.apply(ctx, seg, p, &ps)
			seg.Close()
			if err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// Restored reports where a restored replica came from; ok is false for a
// replica that is not a restored copy.
func (r *Engine) Restored() (info RestoredInfo, ok bool, err error) {
	ok, err = r.loadJSON("restored", &info)
	return info, ok, err
}
