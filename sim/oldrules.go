package sim

import (
	"slices"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/merge"
)

// OldRule is a rule an earlier draft of the design had, restored for a
// test: a regression schedule (testdata/schedules) or a sweep run with it
// must fail. Schedules name old rules by Name ("run old-rule=AckIncludesOwnPush
// on=B"); OldRuleNamed finds one.
type OldRule struct {
	// Name is the name schedules use.
	Name string
	Desc string // what the old rule did
	Knob string // what restores it (the rule replaced)
	// Apply restores the rule in c on the replicas given by index, or on
	// every replica when none is given. The rules of the whole config
	// (the merges, UnsyncedStaging, UnsyncedPending) ignore the replicas.
	Apply func(c *Config, on ...int)
	// Set, for a rule of the engine's rule set, restores it in a
	// protocol.Rules (the engine's own tests use it); nil for the rules of
	// the whole config.
	Set func(*protocol.Rules)
}

// restored is an old rule a Config was given (by OldRule.Apply): a
// failure's text form names it.
type restored struct {
	name string
	on   []int
}

func oldRule(name, desc, knob string, apply func(c *Config, on []int)) OldRule {
	return OldRule{Name: name, Desc: desc, Knob: knob, Apply: func(c *Config, on ...int) {
		apply(c, on)
		c.restored = append(slices.Clone(c.restored), restored{name, slices.Clone(on)})
	}}
}

// ruleOf is an old rule restored by replacing functions of the engine's
// rule set (protocol.Rules) on the replicas Apply is given (every replica
// when none). The engine has no switch for any old rule: only this set,
// which the public API cannot reach.
func ruleOf(name, desc string, set func(*protocol.Rules)) OldRule {
	r := oldRule(name, desc, "Rules: "+name, func(c *Config, on []int) {
		prev := c.Rules
		c.Rules = func(i int, r *protocol.Rules) {
			if prev != nil {
				prev(i, r)
			}
			if len(on) == 0 || slices.Contains(on, i) {
				set(r)
			}
		}
	})
	r.Set = set
	return r
}

// The old rules of the whole config.
var (
	// OldMergeByHLC compares HLC times instead of dots (Rules.Merge).
	OldMergeByHLC = oldRule("MergeByHLC", "merge keeps the version with the larger HLC", "Rules.Merge = MergeByHLC",
		func(c *Config, _ []int) { c.Merge = MergeByHLC })
	// OldPruneLosers prunes lww losers at merge time (Rules.Merge).
	OldPruneLosers = oldRule("MergePruneLosers", "merge prunes lww losers", "Rules.Merge = MergePruneLosers",
		func(c *Config, _ []int) { c.Merge = MergePruneLosers })
	// OldUnsyncedPending saves the registry's pending write without
	// fsync (emulated in the engine wrapper; see Config.UnsyncedPending):
	// a crash right after the swap forgets the nonce, and the read-back
	// takes the replica's own swap for a copy's. The ambiguous swaps of S14
	// cannot be given an old rule from the simulator: recognising one's
	// own pending nonce on read-back is unconditional in the engine.
	OldUnsyncedPending = oldRule("UnsyncedPending", "pending registry write saved without fsync", "Config.UnsyncedPending (engine wrapper)",
		func(c *Config, _ []int) { c.UnsyncedPending = true })
	// OldUnsyncedStaging stages pushes without fsync
	// (Rules.Sync; see Config.UnsyncedStaging).
	OldUnsyncedStaging = oldRule("UnsyncedStaging", "push staged without fsync", "Rules.Sync",
		func(c *Config, _ []int) { c.UnsyncedStaging = true })
)

// oldRules are every old rule, in the order of the regression schedules
// that guard them (then the planted bugs no schedule names). Each rule of
// the engine's set is replaced by the rule of an earlier draft, written
// here as a protocol function: the engine has no switch for any of them.
var oldRules = []OldRule{
	OldMergeByHLC,
	OldPruneLosers,
	ruleOf("AckIncludesOwnPush", "ack counts one's own push", func(r *protocol.Rules) { // S3
		r.Ack = func(in protocol.AckInput) uint64 { return max(protocol.Ack(in), in.LastOwnPush) }
	}),
	ruleOf("CollectAgainstMaxAck", "collect against the max ack", func(r *protocol.Rules) { // S4
		r.PlanCollect = func(regs []protocol.Registry) protocol.CollectPlan {
			var m uint64
			for _, g := range regs {
				m = max(m, g.Ack)
			}
			return protocol.CollectPlan{Floor: m}
		}
	}),
	ruleOf("WriteIgnoresG", "fresh writes ignore G", func(r *protocol.Rules) { // S5
		r.WriteStart = func(clock.Vector) clock.Vector { return nil }
	}),
	ruleOf("AckIgnoresStaged", "ack ignores the staged base", func(r *protocol.Rules) { // S6
		prev := r.Ack
		r.Ack = func(in protocol.AckInput) uint64 { in.StagedBases = nil; return prev(in) }
	}),
	ruleOf("PushBeforePull", "push before the first pull", func(r *protocol.Rules) { // S7
		r.MayPush = func(bool) bool { return true }
	}),
	ruleOf("DropTombstoneSibling", "drop the tombstone sibling", func(r *protocol.Rules) { // S8
		r.CollectRecord = func(rec merge.Record) (merge.Record, bool) {
			if rec.Deleted() {
				return merge.Record{}, true
			}
			w := merge.LWWWinner(rec.Versions)
			rec.Versions = append(slices.Clone(rec.Versions[:w]), rec.Versions[w+1:]...)
			return rec, false
		}
	}),
	ruleOf("FilterThroughG", "filter a returning record through G", func(r *protocol.Rules) { // S9
		r.Adopt = func(rec merge.Record, g func() clock.Vector) merge.Record {
			return merge.Merge(merge.Record{Clock: g()}, rec)
		}
	}),
	ruleOf("PruneIgnoresAcks", "prune ignoring the acks", func(r *protocol.Rules) { // S10
		r.PruneFloor = func(in protocol.PruneInput) (uint64, bool) {
			if _, ok := protocol.MinAck(in.Regs); !ok {
				return 0, false
			}
			return in.Newest, true
		}
	}),
	ruleOf("SnapshotDirty", "snapshot a dirty state", func(r *protocol.Rules) { r.SnapshotFirst = no }), // S12
	OldUnsyncedStaging, // S13
	OldUnsyncedPending, // S14
	ruleOf("PartsWithoutNonce", "parts without the compactor's nonce", func(r *protocol.Rules) { // S15
		r.PartNonce = func(string) (string, bool) { return "shared", false }
	}),
	ruleOf("RetiredNotSticky", "retired is not sticky", func(r *protocol.Rules) { // S16
		r.Retirement = func(g protocol.Registry, _ string) protocol.Registry { g.Retired = true; return g }
		r.JudgeSwap = func(rb protocol.SwapRead, w protocol.Writes, made string) protocol.SwapVerdict {
			switch {
			case rb.Nonce == made:
				return protocol.SwapLanded
			case w.Wrote(rb.Nonce) && rb.Nonce != w.Nonce:
				return protocol.SwapAdoptAny
			}
			return protocol.JudgeSwap(rb, w, made)
		}
	}),
	ruleOf("CommitUnchecked", "commit without reading the registry", func(r *protocol.Rules) { r.CheckAfterCreate = no }), // S17
	ruleOf("InheritedFence", "an inherited swap is a fence", func(r *protocol.Rules) { // S18
		r.FenceNonce = func(pending string) string { return pending }
	}),
	ruleOf("NothingListedUpToDate", `"nothing listed" is "up to date"`, func(r *protocol.Rules) { // S19
		r.PlanPull = func(in protocol.PullInput) protocol.PullPlan {
			if len(in.Listed) == 0 || in.Listed[0].Pos != in.Cursor+1 {
				in.Ready, in.Rebasing = true, false
			}
			return protocol.PlanPull(in)
		}
	}),
	ruleOf("RebaseAnyRegistry", "rebase on any registry, loading own future dots", func(r *protocol.Rules) { // S19b
		r.OwnsBody = func(protocol.Writes, protocol.Registry) bool { return true }
		r.SnapshotDots = func(uint64, uint64) bool { return false }
	}),
	ruleOf("RestampAsText", "re-stamp CRDT state as text", func(r *protocol.Rules) { r.KeepCRDTState = no }), // S20
	ruleOf("RefreshOnlyOnMove", "refresh only when the cursor moves", func(r *protocol.Rules) { // S21
		r.RegistryDue = func(in protocol.DueInput) bool {
			in.Refresh = 1<<63 - 1
			return in.Ack != in.LastAck && protocol.RegistryDue(in)
		}
	}),
	ruleOf("AdoptedNow", "an adopted registration dated now", func(r *protocol.Rules) { // S36
		r.AdoptedAt = func(_, now time.Time) int64 { return now.UnixMilli() }
	}),
	ruleOf("TrustContiguousLog", "a replica not ready trusts a log contiguous from its cursor below the newest snapshot", func(r *protocol.Rules) { // S37
		r.PlanPull = func(in protocol.PullInput) protocol.PullPlan {
			if len(in.Listed) > 0 && in.Listed[0].Pos == in.Cursor+1 && !in.Rebasing {
				in.Ready = true
			}
			return protocol.PlanPull(in)
		}
	}),
	ruleOf("RetireAtTip", "retire a replica at the tip", func(r *protocol.Rules) {
		r.ToRetire = func(regs []protocol.Registry, in protocol.RetireInput) []string {
			in.Snapshot = 1<<64 - 1
			return protocol.ToRetire(regs, in)
		}
	}),
	ruleOf("CursorFirst", "the cursor advanced in a segment's first transaction", func(r *protocol.Rules) { r.CursorLast = no }),
	ruleOf("CollectIgnoresMark", "collect a dirty key", func(r *protocol.Rules) {
		r.Collectible = func(c protocol.Candidate, floor uint64) bool { c.Dirty = false; return protocol.Collectible(c, floor) }
	}),
}

func no() bool { return false }

// OldRules returns every old rule the simulator can restore.
func OldRules() []OldRule { return slices.Clone(oldRules) }

// OldRuleNamed returns the old rule of that name.
func OldRuleNamed(name string) (OldRule, bool) {
	for _, r := range oldRules {
		if r.Name == name {
			return r, true
		}
	}
	return OldRule{}, false
}

// Old merges: merges that earlier drafts of the design used and that
// diverge (OldMergeByHLC, OldPruneLosers restore them).

// MergeByHLC is the old rule "the newer write wins": it keeps only the
// version with the largest HLC of either side (ties broken by dot) and
// joins the clocks. Causality is decided by the clock instead of the dots,
// so a write made after seeing another, by a replica whose clock is
// behind (or capped at MaxDrift), loses to it.
func MergeByHLC(local, remote merge.Record) merge.Record {
	out := merge.Record{Clock: local.Clock.Join(remote.Clock)}
	var best *merge.Version
	for _, vs := range [][]merge.Version{local.Versions, remote.Versions} {
		for i := range vs {
			v := &vs[i]
			if best == nil || v.Time > best.Time || v.Time == best.Time && v.Dot.Compare(best.Dot) > 0 {
				best = v
			}
		}
	}
	if best != nil {
		out.Versions = []merge.Version{*best}
	}
	return out
}

// MergePruneLosers is the old rule "prune lww losers at merge time": the
// correct merge, then only the lww winner of the siblings is kept. It
// looks harmless, but the result depends on the order of merges as soon
// as an HLC fails to follow causality (a far-future clock capped at
// MaxDrift), and replicas diverge.
func MergePruneLosers(local, remote merge.Record) merge.Record {
	m := merge.Merge(local, remote)
	if len(m.Versions) > 1 {
		m.Versions = []merge.Version{m.Versions[merge.LWWWinner(m.Versions)]}
	}
	return m
}
