package engine

// Retention: how much history compact --prune keeps (the manifest's
// "retention", protocol.Retained), for History, Restore and Revert.

import (
	"context"
	"fmt"
	"time"

	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
)

// Retention is the manifest's retention setting (see remote/format).
type Retention = format.Retention

// protoRetention is the rule's view of a manifest retention.
func protoRetention(ret Retention) protocol.Retention {
	return protocol.Retention{KeepSnapshots: ret.KeepSnapshots, KeepAge: ret.KeepAge()}
}

// snapshotAges are the complete snapshots among the objects under snap/
// (all), each with its index's server time.
func snapshotAges(all []remote.Info) []protocol.SnapshotAge {
	var out []protocol.SnapshotAge
	for _, info := range all {
		if p, rest, ok := parseSnapKey(info.Key); ok && rest == "index" {
			out = append(out, protocol.SnapshotAge{Position: p, Created: info.LastModified})
		}
	}
	return out
}

// retainedSnapshots reads the retention in force from the manifest on the
// remote (not the local copy: another device may have changed it) and
// returns the snapshots among all it keeps at serverNow, newest first.
func (r *Engine) retainedSnapshots(ctx context.Context, all []remote.Info, serverNow time.Time) ([]uint64, error) {
	ret, err := r.RetentionInForce(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.noteRetention(ctx, ret); err != nil {
		return nil, err
	}
	return protocol.Retained(protoRetention(ret), snapshotAges(all), serverNow), nil
}

// oldestKept is the oldest of the kept snapshots (newest first); ok is
// false when none is kept.
func oldestKept(kept []uint64) (uint64, bool) {
	if len(kept) == 0 {
		return 0, false
	}
	return kept[len(kept)-1], true
}

// RetentionInForce reads the retention of the store's manifest on the
// remote (the zero Retention, the newest snapshot only, when it sets
// none).
func (r *Engine) RetentionInForce(ctx context.Context) (Retention, error) {
	b := r.opts.Backend
	if b == nil {
		return Retention{}, ErrNoRemote
	}
	m, ok, err := format.ReadManifest(ctx, b)
	if err != nil {
		return Retention{}, err
	}
	if !ok {
		return Retention{}, fmt.Errorf("replica: no store manifest on %s", b)
	}
	return m.RetentionOf(), nil
}

// SetRetention writes ret into the store manifest on the remote, for every
// replica's later compactions (see format.SetRetention). A negative count
// or age is refused and nothing is written.
func (r *Engine) SetRetention(ctx context.Context, ret Retention) error {
	if err := ret.Validate(); err != nil {
		return err
	}
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if r.opts.Backend == nil {
		return ErrNoRemote
	}
	if _, err := r.connectLocked(ctx); err != nil {
		return err
	}
	if err := format.SetRetention(ctx, r.opts.Backend, ret); err != nil {
		return err
	}
	return r.noteRetention(ctx, ret)
}

// KnownRetention is the retention this replica last read from the store
// manifest (at connect, compact --prune, SetRetention), with no request;
// ok is false before the replica first connected.
func (r *Engine) KnownRetention() (Retention, bool, error) {
	var m Manifest
	ok, err := r.loadJSON("manifest", &m)
	return m.RetentionOf(), ok, err
}

// noteRetention records ret as the retention last read, in the manifest
// this replica keeps (syncMu held).
func (r *Engine) noteRetention(ctx context.Context, ret Retention) error {
	if r.manifest == nil || r.manifest.RetentionOf() == ret {
		return nil
	}
	m := *r.manifest
	m.Retention = nil
	if ret != (Retention{}) {
		m.Retention = &ret
	}
	r.manifest = &m
	return r.saveJSON(ctx, "manifest", m)
}
