package cli

import (
	"context"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

var compactCmd = &command{
	name:    "compact",
	summary: "write a snapshot; with --prune, delete log segments it covers",
	help: `Pushes, collects deleted records every replica has acknowledged, and writes
a snapshot of this replica's state at its cursor. With --prune it also retires
replicas silent for longer than --retire-after (default 720h), and deletes
log segments covered by the newest snapshot and every live replica's ack,
older snapshots and orphaned parts, once older than --grace (default 1h).
--json: {"position","records","parts","pruned"}.
--dry-run writes nothing, locally or on the remote: it says what a compaction
now would do, by the same rules, from what the remote holds (this machine's
clock standing for the server's): the snapshot's position, and with --prune
the replicas it would retire and the objects it would delete. --json adds
"dry_run":true, "would_retire":[ids] and "would_delete":[object names].`,
	flags: []flagDef{
		{name: "prune", usage: "delete covered log segments, old snapshots and orphans"},
		{name: "dry-run", usage: "say what would be written, retired and deleted; change nothing"},
		{name: "grace", value: true, arg: "D", usage: "minimum age (server time) of anything pruned (default 1h)"},
		{name: "retire-after", value: true, arg: "D", usage: "retire replicas silent for longer than this (default 720h)"},
	},
	maxArgs: 0,
	run:     runCompact,
}

func runCompact(ctx context.Context, e *env) error {
	o := replica.CompactOptions{Prune: e.flags.bool("prune")}
	for name, dst := range map[string]*time.Duration{"grace": &o.Grace, "retire-after": &o.RetireAfter} {
		if v, ok := e.flags.value(name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return usageErrorf("--%s %q: %v", name, v, err)
			}
			if d == 0 {
				d = -1 // zero means none
			}
			*dst = d
		}
	}
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	if e.flags.bool("dry-run") {
		plan, err := planCompact(ctx, e, r, o)
		if err != nil {
			return syncError("compact --dry-run", err)
		}
		if e.json {
			return writeJSON(e.stdout, plan)
		}
		out := newOutput(e.stdout)
		out.printf("dry run: a snapshot at position %d", plan.Position)
		if o.Prune {
			out.printf("; would retire %d replicas, delete %d objects", len(plan.WouldRetire), len(plan.WouldDelete))
		}
		out.printf("\n")
		for _, id := range plan.WouldRetire {
			out.printf("retire %s\n", id)
		}
		for _, k := range plan.WouldDelete {
			out.printf("delete %s\n", k)
		}
		return out.flush()
	}
	s, err := r.Compact(ctx, o)
	if err != nil {
		return syncError("compact", err)
	}
	if e.json {
		return writeJSON(e.stdout, s)
	}
	out := newOutput(e.stdout)
	out.printf("snapshot at position %d: %d records in %d parts; %d collected; %d objects pruned\n", s.Position, s.Records, s.Parts, s.Collected, s.Pruned)
	return out.flush()
}
