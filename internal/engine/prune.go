package engine

// Pruning: deleting log segments and snapshot objects nobody needs.

import (
	"context"
	"fmt"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"slices"
	"time"

	"github.com/ebreplica/ebreplica/remote"
)

// prune deletes log segments at or below the newest snapshot, the minimum
// non-retired ack and limit (the snapshot this compaction wrote before it
// read those acks), older snapshots, and orphaned parts, each only once
// older than grace by server time.
func (r *Engine) prune(ctx context.Context, regs []regInfo, serverNow time.Time, grace time.Duration, limit uint64) (int, error) {
	b := r.opts.Backend
	if serverNow.IsZero() {
		return 0, nil
	}
	old := func(t time.Time) bool { return protocol.Prunable(t, serverNow, grace) }
	complete, all, err := r.snapshots(ctx)
	if err != nil || len(complete) == 0 {
		return 0, err
	}
	newest := complete[0]
	floor, ok := r.rules.PruneFloor(protocol.PruneInput{Newest: newest, Written: limit, Regs: protoRegs(regs)})
	// Retention (the manifest's, read now: another device may have
	// changed it) keeps older snapshots and the log above the oldest kept.
	kept, err := r.retainedSnapshots(ctx, all, serverNow)
	if err != nil {
		return 0, err
	}
	retFloor, retOK := oldestKept(kept)
	floor, ok = protocol.CombinedFloor(floor, ok, retFloor, retOK)
	if !ok {
		return 0, nil
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
	m, err := r.pruneSnapshots(ctx, newest, kept, all, old)
	return n + m, err
}

// pruneSnapshots deletes the snapshot objects that are old enough and
// neither the newest snapshot's index nor a part it lists (older
// snapshots, orphaned parts), nor of an older snapshot retention keeps
// (kept); it leaves those of a snapshot being written now, above the
// newest.
func (r *Engine) pruneSnapshots(ctx context.Context, newest uint64, kept []uint64, all []remote.Info, old func(time.Time) bool) (int, error) {
	b := r.opts.Backend
	idx, err := r.readIndex(ctx, newest)
	if err != nil {
		return 0, err
	}
	keep := map[string]bool{SnapKey(newest): true}
	for _, p := range idx.Parts {
		keep[p.Name] = true
	}
	n := 0
	for _, info := range all {
		p, _, okp := parseSnapKey(info.Key)
		if keep[info.Key] || !old(info.LastModified) {
			continue
		}
		if okp && p > newest {
			continue // a snapshot being written now
		}
		if okp && p < newest && slices.Contains(kept, p) {
			continue // an older snapshot retention keeps, whole
		}
		if err := b.Delete(ctx, info.Key); err != nil {
			return n, fmt.Errorf("replica: prune %s on %s: %w", info.Key, b, err)
		}
		n++
	}
	return n, nil
}
