package sim

import (
	"fmt"
	"testing"
	"time"
)

// fleetDesigns are the log layouts BenchmarkFleet measures at 1,000
// replicas, each syncing once a minute three times, at 20 ms (±50 %).
var fleetDesigns = []struct {
	name string
	cfg  FleetConfig
}{
	// Today's protocol: one global log, the tip known from the last pull.
	{"global", FleetConfig{}},
	// One global log, the tail listed just before the claim.
	{"global-tiplist", FleetConfig{TipList: true}},
	// The design (package doc, "Fleet scale"): sharded logs, the tail of
	// the writer's shard listed just before the claim.
	{"sharded4-tiplist", FleetConfig{Shards: 4, TipList: true}},
	{"sharded8-tiplist", FleetConfig{Shards: 8, TipList: true}},
	{"sharded16-tiplist", FleetConfig{Shards: 16, TipList: true}},
	// Sharded logs without the tail listing: the tip is as old as the
	// pull's listing.
	{"sharded64", FleetConfig{Shards: 64}},
	// The ceiling of one global log: every writer pushes back to back,
	// knowing the tip from its own pushes only.
	{"ceiling-global", FleetConfig{Interval: -1, PushOnly: true}},
	{"ceiling-sharded8-tiplist", FleetConfig{Interval: -1, PushOnly: true, Shards: 8, TipList: true}},
}

// BenchmarkFleet runs the fleet model (RunFleet) for each layout and
// seeds 1 to 3, and reports the contention and the pull fan-in. It is a
// benchmark, not a test: a run of 1,000 replicas fetches three million
// segments. Run it with
//
//	go test ./sim -run '^$' -bench BenchmarkFleet -benchtime 1x
func BenchmarkFleet(b *testing.B) {
	for _, d := range fleetDesigns {
		for seed := uint64(1); seed <= 3; seed++ {
			b.Run(fmt.Sprintf("%s/seed=%d", d.name, seed), func(b *testing.B) {
				cfg := d.cfg
				cfg.Seed, cfg.Replicas, cfg.Latency = seed, 1000, Latency{Mean: 20 * time.Millisecond}
				var r FleetReport
				for range b.N {
					var err error
					if r, err = RunFleet(cfg); err != nil {
						b.Fatal(err)
					}
				}
				reportFleet(b, r)
			})
		}
	}
}

// BenchmarkFleetEight is the calibration against real processes (8 of
// them pushing at once on a local S3 server average 4.2 PUT and 1.2 LIST
// per push): 8 writers on one global log, all starting at once with the
// same tip, pushing once ("once") or 20 times back to back ("loop20").
func BenchmarkFleetEight(b *testing.B) {
	for _, rounds := range []int{1, 20} {
		name := "once"
		if rounds > 1 {
			name = fmt.Sprintf("loop%d", rounds)
		}
		for seed := uint64(1); seed <= 3; seed++ {
			b.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(b *testing.B) {
				cfg := FleetConfig{Seed: seed, Replicas: 8, Latency: Latency{Mean: 20 * time.Millisecond},
					Interval: -1, PushOnly: true, Rounds: rounds}
				var r FleetReport
				for range b.N {
					var err error
					if r, err = RunFleet(cfg); err != nil {
						b.Fatal(err)
					}
				}
				reportFleet(b, r)
			})
		}
	}
}

func reportFleet(b *testing.B, r FleetReport) {
	if !r.Converged {
		b.Fatalf("did not converge: %+v", r)
	}
	c := r.Contention
	b.ReportMetric(c.PutPerPush, "put/push")
	b.ReportMetric(c.ListPerPush, "list/push")
	b.ReportMetric(100*c.FirstTry, "first-try-%")
	b.ReportMetric(c.CommitsPerS, "commits/s")
	b.ReportMetric(float64(r.Retries)/float64(r.Pushes), "retries/push")
	b.ReportMetric(float64(r.PushP99)/float64(time.Millisecond), "push-p99-ms")
	b.ReportMetric(r.ListPerPull, "list/pull")
	b.ReportMetric(r.GetPerPull, "get/pull")
	b.ReportMetric(r.ConvergeAfter.Seconds(), "converge-s")
}

// BenchmarkFleetSizes finds where one global log stops landing 95 % of
// pushes on the first try at 20 ms, every replica syncing once a minute:
// today's protocol, and with the tail listed before the claim.
func BenchmarkFleetSizes(b *testing.B) {
	for _, tipList := range []bool{false, true} {
		for _, n := range []int{25, 50, 100, 150, 200, 400} {
			for seed := uint64(1); seed <= 3; seed++ {
				b.Run(fmt.Sprintf("tiplist=%v/replicas=%d/seed=%d", tipList, n, seed), func(b *testing.B) {
					cfg := FleetConfig{Seed: seed, Replicas: n, Latency: Latency{Mean: 20 * time.Millisecond}, TipList: tipList}
					var r FleetReport
					for range b.N {
						var err error
						if r, err = RunFleet(cfg); err != nil {
							b.Fatal(err)
						}
					}
					reportFleet(b, r)
				})
			}
		}
	}
}
