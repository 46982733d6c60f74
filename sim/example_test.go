package sim_test

import (
	"fmt"
	"time"

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

// ExampleParseSchedule replays a schedule written as text, in the form
// of the regression schedules in testdata/schedules: B writes x after
// seeing A's write, so B's write wins everywhere although B's clock is an
// hour behind.
func ExampleParseSchedule() {
	ops, err := sim.ParseSchedule(`
A put x=1
A push
B pull
B put x=2
B push
A pull`)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := sim.Config{Seed: 1, Replicas: 2, Offsets: []time.Duration{0, -time.Hour},
		Faults: -1, Partitions: -1, Crashes: -1, Jumps: -1, DriftPPM: -1}
	rep, err := sim.Replay(cfg, ops)
	fmt.Println("converged:", rep.Converged, err)
	// Output: converged: true <nil>
}
