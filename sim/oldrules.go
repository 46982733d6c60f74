package sim

import (
	"slices"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
)

// OldRule is a rule an earlier draft of the design had, restored for a
// test: a regression schedule (testdata/schedules) or a sweep run with it
// must fail. Schedules name old rules by Name ("run old-rule=AckIncludesOwnPush
// on=B"); OldRuleNamed finds one.
type OldRule struct {
	// Name is the name schedules use: the engine knob's name, or the old
	// merge's (MergeByHLC, MergePruneLosers).
	Name string
	Desc string // what the old rule did
	Knob string // what restores it
	// Apply restores the rule in c on the replicas given by index, or on
	// every replica when none is given. The rules of the whole config
	// (the merges, UnsyncedStaging, UnsyncedPending) ignore the replicas.
	Apply func(c *Config, on ...int)
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

// knobRule is an old rule restored through engine.Knobs, on the replicas
// Apply is given (every replica when none).
func knobRule(name, desc string, set func(*engine.Knobs)) OldRule {
	return oldRule(name, desc, "Knobs."+name, func(c *Config, on []int) {
		prev := c.Knobs
		c.Knobs = func(i int, k *engine.Knobs) {
			if prev != nil {
				prev(i, k)
			}
			if len(on) == 0 || slices.Contains(on, i) {
				set(k)
			}
		}
	})
}

// The old rules of the whole config.
var (
	// OldMergeByHLC compares HLC times instead of dots (Knobs.Merge).
	OldMergeByHLC = oldRule("MergeByHLC", "merge keeps the version with the larger HLC", "Knobs.Merge = MergeByHLC",
		func(c *Config, _ []int) { c.Merge = MergeByHLC })
	// OldPruneLosers prunes lww losers at merge time (Knobs.Merge).
	OldPruneLosers = oldRule("MergePruneLosers", "merge prunes lww losers", "Knobs.Merge = MergePruneLosers",
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
	// (Knobs.UnsyncedStaging; see Config.UnsyncedStaging).
	OldUnsyncedStaging = oldRule("UnsyncedStaging", "push staged without fsync", "Knobs.UnsyncedStaging",
		func(c *Config, _ []int) { c.UnsyncedStaging = true })
)

// oldRules are every old rule, in the order of the regression schedules
// that guard them (then the planted bugs no schedule names).
var oldRules = []OldRule{
	OldMergeByHLC,
	OldPruneLosers,
	knobRule("AckIncludesOwnPush", "ack counts one's own push", func(k *engine.Knobs) { k.AckIncludesOwnPush = true }),       // S3
	knobRule("CollectAgainstMaxAck", "collect against the max ack", func(k *engine.Knobs) { k.CollectAgainstMaxAck = true }), // S4
	knobRule("WriteIgnoresG", "fresh writes ignore G", func(k *engine.Knobs) { k.WriteIgnoresG = true }),                     // S5
	knobRule("AckIgnoresStaged", "ack ignores the staged base", func(k *engine.Knobs) { k.AckIgnoresStaged = true }),         // S6
	knobRule("PushBeforePull", "push before the first pull", func(k *engine.Knobs) { k.PushBeforePull = true }),              // S7
	knobRule("DropTombstoneSibling", "drop the tombstone sibling", func(k *engine.Knobs) { k.DropTombstoneSibling = true }),  // S8
	knobRule("FilterThroughG", "filter a returning record through G", func(k *engine.Knobs) { k.FilterThroughG = true }),     // S9
	knobRule("PruneIgnoresAcks", "prune ignoring the acks", func(k *engine.Knobs) { k.PruneIgnoresAcks = true }),             // S10
	knobRule("SkipOwnByOrigin", "skip own segments by origin", func(k *engine.Knobs) { k.SkipOwnByOrigin = true }),           // S11
	knobRule("SnapshotDirty", "snapshot a dirty state", func(k *engine.Knobs) { k.SnapshotDirty = true }),                    // S12
	OldUnsyncedStaging, // S13
	OldUnsyncedPending, // S14
	knobRule("PartsWithoutNonce", "parts without the compactor's nonce", func(k *engine.Knobs) { k.PartsWithoutNonce = true }),             // S15
	knobRule("RetiredNotSticky", "retired is not sticky", func(k *engine.Knobs) { k.RetiredNotSticky = true }),                             // S16
	knobRule("CommitUnchecked", "commit without reading the registry", func(k *engine.Knobs) { k.CommitUnchecked = true }),                 // S17
	knobRule("InheritedFence", "an inherited swap is a fence", func(k *engine.Knobs) { k.InheritedFence = true }),                          // S18
	knobRule("NothingListedUpToDate", `"nothing listed" is "up to date"`, func(k *engine.Knobs) { k.NothingListedUpToDate = true }),        // S19
	knobRule("RebaseAnyRegistry", "rebase on any registry, loading own future dots", func(k *engine.Knobs) { k.RebaseAnyRegistry = true }), // S19b
	knobRule("RestampAsText", "re-stamp CRDT state as text", func(k *engine.Knobs) { k.RestampAsText = true }),                             // S20
	knobRule("RefreshOnlyOnMove", "refresh only when the cursor moves", func(k *engine.Knobs) { k.RefreshOnlyOnMove = true }),              // S21
	knobRule("RetireAtTip", "retire a replica at the tip", func(k *engine.Knobs) { k.RetireAtTip = true }),
	knobRule("CursorFirst", "the cursor advanced in a segment's first transaction", func(k *engine.Knobs) { k.CursorFirst = true }),
	knobRule("CollectIgnoresMark", "collect a dirty key", func(k *engine.Knobs) { k.CollectIgnoresMark = true }),
}

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
