package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

// Scenario is a named, scripted regression schedule of DESIGN.md: a fixed
// schedule on fixed clocks that broke an earlier draft of the design. Each
// must converge with every invariant holding; each old rule it guards
// (see OldRules) must make it fail.
type Scenario struct {
	Name   string // "S1"
	Title  string
	Guards string // the rule the schedule broke in an earlier draft
	Config Config
	Ops    []Op
	// OldRules are test-only configurations that restore an old rule the
	// scenario guards; with each, the scenario must fail.
	OldRules []OldRule
}

// OldRule is an old rule restored through engine.Knobs.
type OldRule struct {
	Name  string
	Knob  string // the knob that restores it
	Apply func(*Config)
}

// The old rules the knobs restore.
var (
	// OldMergeByHLC compares HLC times instead of dots (Knobs.Merge).
	OldMergeByHLC = OldRule{Name: "merge keeps the version with the larger HLC", Knob: "Knobs.Merge = MergeByHLC",
		Apply: func(c *Config) { c.Merge = MergeByHLC }}
	// OldPruneLosers prunes lww losers at merge time (Knobs.Merge).
	OldPruneLosers = OldRule{Name: "merge prunes lww losers", Knob: "Knobs.Merge = MergePruneLosers",
		Apply: func(c *Config) { c.Merge = MergePruneLosers }}
	// OldUnsyncedPending saves the registry's pending write without
	// fsync (emulated in the engine wrapper; see Config.UnsyncedPending):
	// a crash right after the swap forgets the nonce, and the read-back
	// takes the replica's own swap for a copy's. The ambiguous swaps of S14
	// cannot be given an old rule from the simulator: recognising one's
	// own pending nonce on read-back is unconditional in package replica.
	OldUnsyncedPending = OldRule{Name: "pending registry write saved without fsync", Knob: "Config.UnsyncedPending (engine wrapper)",
		Apply: func(c *Config) { c.UnsyncedPending = true }}
	// OldUnsyncedStaging stages pushes without fsync
	// (Knobs.UnsyncedStaging; see Config.UnsyncedStaging).
	OldUnsyncedStaging = OldRule{Name: "push staged without fsync", Knob: "Knobs.UnsyncedStaging",
		Apply: func(c *Config) { c.UnsyncedStaging = true }}
)

// Run runs the scenario; a failure is a *Failure with a shrunk schedule.
func (s Scenario) Run() (Report, error) { return s.run(s.Config) }

// RunOldRule runs the scenario with an old rule restored: it must fail.
func (s Scenario) RunOldRule(r OldRule) (Report, error) {
	cfg := s.Config
	r.Apply(&cfg)
	return s.run(cfg)
}

func (s Scenario) run(cfg Config) (Report, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return Report{}, err
	}
	rep, err := runShrunk(cfg, s.Ops)
	var f *Failure
	if errors.As(err, &f) {
		return rep, fmt.Errorf("%s (%s): %w", s.Name, s.Title, err)
	}
	return rep, err
}

// script builds a scenario's schedule: operations numbered in order, one
// second apart unless said otherwise.
type script []Op

func (s *script) do(r int, k Kind, o Op) {
	o.ID, o.R, o.Kind = len(*s), r, k
	if o.Advance == 0 {
		o.Advance = time.Second
	}
	*s = append(*s, o)
}

func (s *script) put(r int, key, value string) { s.do(r, OpPut, Op{Key: key, Value: value}) }
func (s *script) del(r int, key string)        { s.do(r, OpDelete, Op{Key: key}) }
func (s *script) add(r int, key string, d int64) {
	s.do(r, OpAdd, Op{Key: key, Delta: d})
}
func (s *script) push(r int) { s.do(r, OpPush, Op{}) }
func (s *script) pull(r int) { s.do(r, OpPull, Op{}) }
func (s *script) sync(r int) { s.do(r, OpSync, Op{}) }
func (s *script) crash(r int, step string, via Kind) {
	s.do(r, OpCrash, Op{Step: step, Via: via})
}
func (s *script) pullAll(n int) {
	for r := range n {
		s.pull(r)
	}
}

// calm is a scenario's base config: no random faults, drift or jumps;
// the given clock offsets.
func calm(policy string, offsets ...time.Duration) Config {
	return Config{Seed: 1, Replicas: len(offsets), Offsets: offsets, Policy: policy, Faults: -1, Partitions: -1,
		Crashes: -1, Jumps: -1, DriftPPM: -1, Skew: -1}
}

const (
	A = iota
	B
	C
	D
)

// Scenarios returns the regression schedules of DESIGN.md: S1, S2, S6,
// S11, S13 and S14, and those of collection, pruning, bootstrap and
// snapshots (S3, S4, S5, S7, S8, S9, S10, S12, S15; scenarios_collect.go).
func Scenarios() []Scenario {
	return append([]Scenario{s1(), s2(), s3(), s4(), s5(), s6(), s7(), s8(), s9(), s10(), s11(), s12(), s13(), s14(), s15()},
		absenceScenarios()...)
}

// S1: A's clock is 2 h ahead. A puts; C pulls — its HLC is capped at
// MaxDrift (1 h) ahead of its wall clock, so C's later write has a smaller
// HLC than A's — and puts; B (1.5 h ahead) puts concurrently. D pulls
// everything in log order (a, c, b); B merged b, a, c; C merged a, c, b.
// C's write happened after A's, so it must win over A's whatever the
// clocks say, and B's concurrent write stays a sibling: [b, c] everywhere,
// lww reads b. Folding a resolved value under a borrowed dot (pruning the
// lww loser at merge) makes B keep c while the others keep b.
func s1() Scenario {
	var s script
	s.pullAll(4)
	s.put(A, "x", "a")
	s.push(A)
	s.pull(C)
	s.put(C, "x", "c")
	s.push(C)
	s.put(B, "x", "b")
	s.push(B)
	s.pull(D)
	s.pull(B)
	s.pull(C)
	return Scenario{Name: "S1", Title: "a capped far-future clock, merged in different orders",
		Guards: "folding a resolved value under a borrowed dot",
		Config: calm(PolicyLWW, 2*time.Hour, 90*time.Minute, 0, 0), Ops: s,
		OldRules: []OldRule{OldPruneLosers, OldMergeByHLC}}
}

// S2: counters. A (Z in DESIGN.md, 2 h ahead) and B increment
// concurrently; C increments after seeing A's increment only. Every
// increment counts: 5 + 3 + 2 = 10 on every replica.
func s2() Scenario {
	var s script
	s.pullAll(3)
	s.add(A, "n", 5)
	s.push(A)
	s.pull(C)
	s.add(C, "n", 2)
	s.push(C)
	s.add(B, "n", 3)
	s.push(B)
	return Scenario{Name: "S2", Title: "concurrent counter increments", Guards: "lost counter increments",
		Config: calm(PolicyCounter, 2*time.Hour, 0, 0), Ops: s,
		OldRules: []OldRule{OldMergeByHLC, OldPruneLosers}}
}

// S6: A puts x and pushes, B pulls it and writes x again; A deletes x
// concurrently and pushes. B's push dies right after staging; B restarts,
// pulls past the delete (its state is now [x=2, delete]) and publishes its
// ack; A compacts; B uploads the stale staged segment, which holds only
// x=2. Everyone must end with both concurrent writes: B's ack must stay
// at the staging base, or A collects the tombstone, takes x=2 whole and
// reads it while B reads the delete.
func s6() Scenario {
	var s script
	s.pullAll(2)
	s.put(A, "x", "1")
	s.push(A)
	s.pull(B)
	s.put(B, "x", "2")
	s.del(A, "x")
	s.push(A)
	s.crash(B, "push:staged", OpPush)
	s.pull(B)
	s.compact(A, false)
	s.push(B)
	return Scenario{Name: "S6", Title: "a stale staged segment uploaded after pulling past a delete",
		Guards: "ack not lowered to the staging base", Config: collecting(0, 0), Ops: s,
		OldRules: []OldRule{knobOn("ack ignores the staged base", "AckIgnoresStaged", func(k *engine.Knobs) { k.AckIgnoresStaged = true }, B)}}
}

// S11: with a tiny segment cap, A's push of kb (dot 1) and ka (dot 2)
// splits into two segments in key order, so the dots are out of order
// across segments. A dies after committing the first; its restart uploads
// the second. Then A writes again and dies after an upload, before the
// commit: the position is not in m/own, so A's pull applies its own
// segment (harmless), and its next push uploads the staged segment again
// at another position. Nothing may be lost, and A must not take its own
// segment for a clone's.
func s11() Scenario {
	var s script
	s.pullAll(2)
	s.put(A, "kb", "1")
	s.put(A, "ka", "2")
	s.crash(A, "push:committed", OpPush)
	s.push(A)
	s.put(A, "ka", "3")
	s.put(A, "kc", "4")
	s.crash(A, "push:uploaded", OpPush)
	s.pull(A)
	s.push(A)
	s.pull(B)
	s.put(B, "kb", "5")
	s.sync(B)
	s.sync(A)
	cfg := calm(PolicyLWW, 0, 0)
	cfg.SegmentCap = 1
	return Scenario{Name: "S11", Title: "a two-segment push with dots out of key order, crashes between segments",
		Guards: "frontier-based deletion of outbox marks; skipping own segments blindly",
		Config: cfg, Ops: s}
}

// S13: Relaxed durability. A writes x and pushes it; the power fails
// before anything else is fsynced; A writes again. The dot of the
// uploaded write must not be issued again.
func s13() Scenario {
	var s script
	s.pullAll(2)
	s.put(A, "x", "1")
	s.push(A)
	s.crash(A, "", 0)
	s.put(A, "x", "2")
	s.put(A, "y", "3")
	s.push(A)
	s.pull(B)
	cfg := calm(PolicyLWW, 0, 0)
	cfg.Durability = store.Relaxed
	return Scenario{Name: "S13", Title: "Relaxed: upload, power loss, write again", Guards: "dot reuse",
		Config: cfg, Ops: s, OldRules: []OldRule{OldUnsyncedStaging}}
}

// S14: A's registry swap lands but the process dies before it persists
// the new ETag (step registry:swapped); on restart its swap fails the
// ETag check, and the read-back must recognise its own pending nonce.
// Then a push whose every write is ambiguous (applied, reported failed):
// the swap and the upload are read back and adopted. No false "cloned"
// verdict, nothing lost.
func s14() Scenario {
	var s script
	s.pullAll(2)
	s.put(A, "x", "1")
	s.crash(A, "registry:swapped", OpPush)
	s.push(A)
	s.put(A, "x", "2")
	s.do(A, OpPush, Op{Faults: &Faults{Ambiguous: 1}})
	s.put(A, "y", "3")
	s.crash(A, "push:fenced", OpPush)
	s.do(A, OpPush, Op{Faults: &Faults{Ambiguous: 1}})
	s.sync(B)
	return Scenario{Name: "S14", Title: "killed between the registry swap and persisting its ETag; ambiguous swaps",
		Guards: "fencing false positives", Config: calm(PolicyLWW, 0, 0), Ops: s,
		OldRules: []OldRule{OldUnsyncedPending}}
}
