package sim

import (
	"flag"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/protocol"
)

var listedTipSeeds = flag.Int("sim.listedtip", 40, "seeds of each sweep TestListedTipSweep runs with the listed-tip claim rule")

// The prototype claim rule in the engine costs what the fleet model's
// TipList does: K real replicas pushing one after the other on a stale
// tip each list the tail once and land on the first claim (2 PUT, 1 LIST
// a push), as K fleet writers with TipList do.
func TestFleetMatchesEngineListedTip(t *testing.T) {
	const k = 7
	rules := protocol.Default()
	rules.ClaimStart = protocol.ListedTip
	puts, lists := enginePushCosts(t, k, &rules)
	if puts != 2*k || lists != k {
		t.Fatalf("%d pushes with the tail listed first: %d PUT, %d LIST; want %d and %d", k, puts, lists, 2*k, k)
	}
	f, err := RunFleet(FleetConfig{Seed: 1, Replicas: k, Latency: ms20, Rounds: 1, PushOnly: true, Interval: time.Hour, TipList: true})
	if err != nil {
		t.Fatal(err)
	}
	if fp, fl := f.Contention.PutPerPush*k, f.Contention.ListPerPush*k; fp != float64(puts) || fl != float64(lists) {
		t.Fatalf("%d pushes: the engine made %d PUT and %d LIST, the fleet model %.0f PUT and %.0f LIST", k, puts, lists, fp, fl)
	}
}

// withListedTip puts every replica of a sweep's config on the listed-tip
// claim rule.
func withListedTip(cfg func(uint64) Config) func(uint64) Config {
	return func(s uint64) Config {
		c := cfg(s)
		prev := c.Rules
		c.Rules = func(i int, r *protocol.Rules) {
			if prev != nil {
				prev(i, r)
			}
			r.ClaimStart = protocol.ListedTip
		}
		return c
	}
}

// TestListedTipSweep runs the simulator's sweeps with the prototype claim
// rule on every replica: the bulk sweep (faults, partitions, crashes,
// compaction, joins, retirement) and the absence, restore, kill and
// staged sweeps. Every seed must converge with every invariant held (but
// the sweeps' known findings). -sim.listedtip seeds of each (40 in CI;
// BENCHMARKS.md gives the larger run).
func TestListedTipSweep(t *testing.T) {
	n := *listedTipSeeds
	for _, sw := range []struct {
		name  string
		cfg   func(uint64) Config
		known map[uint64]bool
	}{
		{"bulk sweep", sweepConfig, nil},
		{"absence sweep", absenceConfig, absenceFindings},
		{"restore sweep", restoreSweepConfig, restoreFindings},
		{"kill sweep", killSweepConfig, killFindings},
		{"staged sweep", stagedSweepConfig, nil},
	} {
		sweepFindings(t, sw.name+" with the listed-tip claim", n, withListedTip(sw.cfg), sw.known)
	}
}
