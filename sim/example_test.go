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
	// S6 ack not lowered to the staging base (collection: not built yet; the data must converge): ok=true, old rules caught:
	// S7 pull to the tip before the first push: ok=true, old rules caught: Knobs.PushBeforePull=true
	// S8 dropping a tombstone sibling instead of the record: ok=true, old rules caught: Knobs.DropTombstoneSibling=true
	// S9 filtering a returning record through G: ok=true, old rules caught: Knobs.FilterThroughG=true
	// S10 reusing a freed log position: ok=true, old rules caught: Knobs.PruneIgnoresAcks=true
	// S11 frontier-based deletion of outbox marks; skipping own segments blindly: ok=true, old rules caught:
	// S12 a snapshot of unpushed data: ok=true, old rules caught: Knobs.SnapshotDirty=true
	// S13 dot reuse: ok=true, old rules caught: Knobs.UnsyncedStaging=true
	// S14 fencing false positives: ok=true, old rules caught:
	// S15 mixed snapshot parts: ok=true, old rules caught: Knobs.PartsWithoutNonce=true
}
