package sim_test

import (
	"fmt"

	"github.com/ebreplica/ebreplica/sim"
)

func ExampleRun() {
	rep, err := sim.Run(sim.Config{Seed: 7, Replicas: 3, Ops: 100, Policy: sim.PolicyMV, Faults: 0.2})
	if err != nil {
		fmt.Println(err) // the seed, the broken rule, the shortest failing schedule
		return
	}
	fmt.Println("converged:", rep.Converged)
	// Output: converged: true
}

func ExampleScenarios() {
	for _, s := range sim.Scenarios() {
		_, err := s.Run()
		fmt.Printf("%s %s: ok=%v, old rules caught:", s.Name, s.Guards, err == nil)
		for _, r := range s.OldRules {
			_, err := s.RunOldRule(r)
			fmt.Printf(" %s=%v", r.Knob, err != nil)
		}
		fmt.Println()
	}
	// Output:
	// S1 folding a resolved value under a borrowed dot: ok=true, old rules caught: Knobs.Merge = MergePruneLosers=true Knobs.Merge = MergeByHLC=true
	// S2 lost counter increments: ok=true, old rules caught: Knobs.Merge = MergeByHLC=true Knobs.Merge = MergePruneLosers=true
	// S3 ack counting one's own push: ok=true, old rules caught: Knobs.AckIncludesOwnPush=true
	// S4 collecting against max ack instead of a listed tip: ok=true, old rules caught: Knobs.CollectAgainstMaxAck=true
	// S5 fresh writes not starting from G: ok=true, old rules caught: Knobs.WriteIgnoresG=true
	// S6 ack not lowered to the staging base: ok=true, old rules caught: Knobs.AckIgnoresStaged=true
	// S7 pull to the tip before the first push: ok=true, old rules caught: Knobs.PushBeforePull=true
	// S8 dropping a tombstone sibling instead of the record: ok=true, old rules caught: Knobs.DropTombstoneSibling=true
	// S9 filtering a returning record through G: ok=true, old rules caught: Knobs.FilterThroughG=true
	// S10 reusing a freed log position: ok=true, old rules caught: Knobs.PruneIgnoresAcks=true
	// S11 frontier-based deletion of outbox marks; skipping own segments blindly: ok=true, old rules caught:
	// S12 a snapshot of unpushed data: ok=true, old rules caught: Knobs.SnapshotDirty=true
	// S13 dot reuse: ok=true, old rules caught: Knobs.UnsyncedStaging=true
	// S14 fencing false positives: ok=true, old rules caught: Config.UnsyncedPending (engine wrapper)=true
	// S15 mixed snapshot parts: ok=true, old rules caught: Knobs.PartsWithoutNonce=true
	// S16 adopting a retired body as one's own write: ok=true, old rules caught: Knobs.RetiredNotSticky=true
	// S17 creating a freed log position: ok=true, old rules caught: Knobs.CommitUnchecked=true
	// S18 an adopted swap taken as a fence: ok=true, old rules caught: Knobs.InheritedFence=true
	// S19 "nothing listed" taken for "up to date"; a dot counter below the snapshot's own entries: ok=true, old rules caught: Knobs.NothingListedUpToDate=true
	// S19b rebasing on a registry body another directory wrote; loading own future dots: ok=true, old rules caught: Knobs.RebaseAnyRegistry=true
	// S20 re-stamping CRDT state as read text: ok=true, old rules caught: Knobs.RestampAsText=true
	// S21 an ack refreshed only when the cursor moves: ok=true, old rules caught: Knobs.RefreshOnlyOnMove=true
}
