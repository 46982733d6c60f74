package sim

import (
	"errors"
	"flag"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/store"
)

var (
	sweepSeeds = flag.Int("sim.seeds", 10000, "number of seeded simulations TestSweep runs")
	sweepFirst = flag.Uint64("sim.seed", 0, "first seed of TestSweep")
)

// sweepConfig is the configuration of seed s in the bulk sweep: small
// simulations that rotate through the policies, engines, durabilities,
// fault rates (1% to 50%) and sizes (30 to 45 operations, 2 to 4
// replicas, 3 to 7 keys), with clock skew up to ±24 h,
// backward jumps, partitions and crashes at every step of push and pull.
func sweepConfig(s uint64) Config {
	c := Config{
		Seed:     s,
		Policy:   []string{PolicyLWW, PolicyMV, PolicyCounter, PolicySet}[s%4],
		Replicas: 3,
		Ops:      30 + int(s%16),
		Keys:     3 + int(s%5),
		Faults:   0.01 + float64(s*37%50)/100,
		Skew:     24 * time.Hour,
	}
	switch s % 10 {
	case 0:
		c.Replicas = 4
	case 5:
		c.Replicas = 2
	case 3:
		c.Codec = "zstd"
	case 9:
		c.Sealed = true // 10%: client-side encryption (remote/sealremote)
	}
	if s%7 == 0 {
		c.SegmentCap = 1 // one record a segment: multi-segment pushes
	}
	if (s/4)%2 == 1 {
		c.Durability = store.Relaxed
	}
	// Collection, snapshots, bootstrap and retirement: compactions in 30%
	// of the seeds, a replica joining mid-run in 20%, offline stretches
	// long enough for retirement (and rebase) in 10%. Mixed over the other
	// dimensions by a multiplicative hash of the seed.
	switch h := s * 2654435761 % 100; {
	case h < 10:
		c.Compactions, c.Joins, c.Offline, c.AckInterval = 0.1, 1, 0.05, -1
		if c.Policy == PolicyLWW || c.Policy == PolicyMV {
			// Retirement rebases a counter or set through its read value:
			// register policies only.
			c.RetireAfter = time.Duration(10+h) * time.Second
		}
	case h < 20:
		c.Compactions, c.Joins, c.AckInterval = 0.08, 1, -1
	case h < 30:
		c.Compactions, c.AckInterval = 0.08, -1
	}
	if s%20 == 7 {
		// 5%: 500 of 10,000. Opening Badger costs most of such a run, so
		// two replicas.
		c.Engine, c.Replicas, c.Ops = EngineBadger, 2, 30
	}
	return c
}

// TestSweep runs the bulk sweep: -sim.seeds simulations (10,000 by
// default) on a pool of two workers, each simulation single-threaded. A
// failure prints its seed and shortest failing schedule; rerun one seed
// with -sim.seed=N -sim.seeds=1.
func TestSweep(t *testing.T) {
	// Small simulations allocate fast and keep little: collect less often.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	n := *sweepSeeds
	start := time.Now()
	seeds := make(chan uint64)
	var (
		mu     sync.Mutex
		failed []uint64
		total  Report
		badger int
	)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range seeds {
				cfg := sweepConfig(s)
				rep, err := Run(cfg)
				mu.Lock()
				total.add(rep)
				if cfg.Engine == EngineBadger {
					badger++
				}
				if err != nil {
					failed = append(failed, s)
					var f *Failure
					if len(failed) <= 3 || !errors.As(err, &f) {
						t.Errorf("seed %d: %v", s, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		seeds <- *sweepFirst + uint64(i)
	}
	close(seeds)
	wg.Wait()
	t.Logf("%d simulations (%d on badger) in %v: %d failed %v; %d ops, %d writes, %d crashes, %d partitions, %d faults (%d fencing verdicts after two damaged reads), %d capped timestamps, max %d siblings",
		n, badger, time.Since(start).Round(time.Millisecond), len(failed), failed, total.Ops, total.Writes, total.Crashes,
		total.Partitions, total.FaultsInjected, total.FalseVerdicts, total.SkewCapped, total.MaxSiblings)
	t.Logf("collection: %d compactions, %d records collected, %d objects pruned, %d retirements, %d joins, %d offline stretches, %d offline edits re-stamped; known replica bugs seen: %d compacts failing with ErrRetired, %d syncs with no snapshot to rebase on, %d offline edits lost by a failed rebase",
		total.Compactions, total.Collected, total.Pruned, total.Retired, total.Joins, total.Offline, total.Restamped,
		total.RetiredCompacts, total.StuckRebases, total.RebaseLost)
	if len(failed) > 3 {
		t.Errorf("%d more seeds failed: %v", len(failed)-3, failed[3:])
	}
}

// TestSweepCovers checks that the sweep's configurations span what the
// simulator promises: every policy, both engines, both durabilities,
// fault rates from 1% to 50%, ±24 h of skew.
func TestSweepCovers(t *testing.T) {
	seen := map[string]int{}
	lo, hi := 1.0, 0.0
	for s := range uint64(10000) {
		c, err := sweepConfig(s).validate()
		if err != nil {
			t.Fatal(err)
		}
		seen[c.Policy]++
		seen[c.Engine+"/"+c.Durability.String()]++
		lo, hi = min(lo, c.Faults), max(hi, c.Faults)
	}
	for s := range uint64(10000) {
		c := sweepConfig(s)
		if c.Compactions > 0 {
			seen["compact"]++
		}
		if c.Joins > 0 {
			seen["join"]++
		}
		if c.RetireAfter > 0 {
			seen["retire/"+c.Policy]++
		}
		if c.Sealed && c.Compactions > 0 {
			seen["sealed/compact"]++
		}
		if c.Sealed {
			seen["sealed"]++
		}
	}
	if seen["sealed"] < 1000 || seen["sealed/compact"] < 200 {
		t.Errorf("sealed seeds: %d, %d compacting", seen["sealed"], seen["sealed/compact"])
	}
	if seen["compact"] < 2500 || seen["join"] < 1500 || seen["retire/lww"]+seen["retire/mv"] < 400 {
		t.Errorf("collection seeds: %d compacting, %d joining, %d retiring", seen["compact"], seen["join"], seen["retire/lww"]+seen["retire/mv"])
	}
	for _, k := range []string{"lww", "mv", "counter", "set", "mem/sync", "mem/relaxed", "badger/sync", "badger/relaxed"} {
		if seen[k] == 0 {
			t.Errorf("the sweep never runs %s", k)
		}
	}
	if b := seen["badger/sync"] + seen["badger/relaxed"]; b < 500 {
		t.Errorf("%d badger seeds, want at least 500", b)
	}
	if lo != 0.01 || hi != 0.50 {
		t.Errorf("fault rates span [%v, %v], want [0.01, 0.5]", lo, hi)
	}
}
