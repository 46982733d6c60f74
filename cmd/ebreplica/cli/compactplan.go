package cli

import (
	"context"
	"slices"
	"time"

	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/replica"
)

// compactPlan is what compact --dry-run prints: what a compaction now
// would write, retire and delete, decided by the same rules the engine
// applies (internal/protocol: ToRetire, PruneFloor, Prunable), read from
// the remote without writing anything, locally or remotely.
type compactPlan struct {
	Position  uint64 `json:"position"`
	Records   int64  `json:"records"`
	Parts     int    `json:"parts"`
	Pruned    int    `json:"pruned"`
	Collected int    `json:"collected"`
	// Requests: what the dry run itself cost (reads only).
	Requests    remote.Counts `json:"requests"`
	DryRun      bool          `json:"dry_run"`
	WouldRetire []string      `json:"would_retire"`
	WouldDelete []string      `json:"would_delete"`
}

// planCompact reads the registries, the log and the snapshots. It differs
// from a real compaction in what it cannot know without writing: the
// server's time (this machine's clock stands for it) and the changes a
// real one pushes and pulls first (the snapshot is placed at the log's
// current end, which every replica's ack is compared with).
func planCompact(ctx context.Context, e *env, r *replica.Replica, o replica.CompactOptions) (plan compactPlan, err error) {
	b, err := r.Backend(ctx)
	if err != nil {
		return compactPlan{}, err
	}
	before := b.Stats().Snapshot()
	defer func() {
		after := b.Stats().Snapshot()
		plan.Requests = remote.Counts{Put: after.Put - before.Put, Get: after.Get - before.Get,
			List: after.List - before.List, Delete: after.Delete - before.Delete}
	}()
	now := time.Now()
	if e.wall != nil {
		now = e.wall()
	}
	grace, retireAfter := o.Grace, o.RetireAfter
	if grace == 0 {
		grace = replica.DefaultGrace
	}
	if retireAfter <= 0 {
		retireAfter = replica.DefaultRetireAfter
	}
	plan = compactPlan{DryRun: true, WouldRetire: []string{}, WouldDelete: []string{}, Records: r.Len()}

	var logs []remote.Info
	for info, err := range b.List(ctx, remote.LogPrefix, "") {
		if err != nil {
			return plan, err
		}
		if p, ok := remote.ParseLogKey(info.Key); ok {
			logs = append(logs, info)
			plan.Position = max(plan.Position, p)
		}
	}
	var snaps []remote.Info
	newest, haveSnap := uint64(0), false
	for info, err := range b.List(ctx, remote.SnapPrefix, "") {
		if err != nil {
			return plan, err
		}
		snaps = append(snaps, info)
		if p, rest, ok := remote.ParseSnapKey(info.Key); ok && rest == "index" && (!haveSnap || p > newest) {
			newest, haveSnap = p, true
		}
	}
	if haveSnap {
		plan.Position = max(plan.Position, newest)
	}
	if !o.Prune {
		return plan, nil
	}

	self := r.ID().String()
	var regs []protocol.Registry
	for info, err := range b.List(ctx, remote.ReplicasPrefix, "") {
		if err != nil {
			return plan, err
		}
		if _, ok := remote.ParseRegistryKey(info.Key); !ok {
			continue
		}
		obj, err := b.Get(ctx, info.Key)
		if err != nil {
			return plan, err
		}
		body, err := format.DecodeRegistry(obj.Data)
		if err != nil {
			return plan, errorf(err, "%s on %s is not a registry object: %v (run verify)", info.Key, b, err)
		}
		g := protocol.Registry{ID: body.ReplicaID, Seq: body.Seq, Nonce: body.Nonce, Ack: body.Ack,
			Retired: body.Retired, RetiredNonce: body.RetiredNonce, Modified: info.LastModified}
		if g.ID == self {
			// A compaction pushes and pulls first: its own ack is the end.
			g.Ack, g.Modified = plan.Position, now
		}
		regs = append(regs, g)
	}
	plan.WouldRetire = append(plan.WouldRetire, protocol.ToRetire(regs, protocol.RetireInput{
		Self: self, ServerNow: now, RetireAfter: retireAfter, Snapshot: plan.Position})...)
	retire := map[string]bool{}
	for _, id := range plan.WouldRetire {
		retire[id] = true
	}
	for i := range regs {
		if retire[regs[i].ID] {
			regs[i].Retired = true
		}
	}
	old := func(t time.Time) bool { return protocol.Prunable(t, now, grace) }
	// Retention (retention.go): the snapshots it keeps, counting the one
	// the compaction writes now, and the log above the oldest of them.
	kept, err := dryRunRetained(ctx, b, snaps, plan.Position, now)
	if err != nil {
		return plan, err
	}
	floor, ok := protocol.PruneFloor(protocol.PruneInput{Newest: plan.Position, Written: plan.Position, Regs: regs})
	floor, ok = protocol.CombinedFloor(floor, ok, kept[len(kept)-1], true)
	if ok {
		for _, info := range logs {
			if p, _ := remote.ParseLogKey(info.Key); p <= floor && old(info.LastModified) {
				plan.WouldDelete = append(plan.WouldDelete, info.Key)
			}
		}
	}
	// Every snapshot object below the one the compaction writes (older
	// snapshots, orphaned parts), once old enough; the newest is kept when
	// it already stands at that position (a compaction reuses it).
	keep := map[string]bool{}
	if haveSnap && newest == plan.Position {
		idx, err := format.ReadIndex(ctx, b, newest, "")
		if err != nil {
			return plan, err
		}
		keep[remote.SnapKey(newest)] = true
		for _, p := range idx.Parts {
			keep[p.Name] = true
		}
	}
	for _, info := range snaps {
		p, _, ok := remote.ParseSnapKey(info.Key)
		if keep[info.Key] || !old(info.LastModified) || ok && p > plan.Position {
			continue
		}
		if ok && p < plan.Position && slices.Contains(kept, p) {
			continue // an older snapshot retention keeps
		}
		plan.WouldDelete = append(plan.WouldDelete, info.Key)
	}
	return plan, nil
}
