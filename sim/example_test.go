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
	// S6 ack not lowered to the staging base (collection: not built yet; the data must converge): ok=true, old rules caught:
	// S11 frontier-based deletion of outbox marks; skipping own segments blindly: ok=true, old rules caught:
	// S13 dot reuse: ok=true, old rules caught: Knobs.UnsyncedStaging=true
	// S14 fencing false positives: ok=true, old rules caught:
}
