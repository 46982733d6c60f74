package sim

import (
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/store"
)

func sweep(t *testing.T, name string, n int, cfg func(seed uint64) Config) {
	start := time.Now()
	fails := 0
	for seed := uint64(0); seed < uint64(n); seed++ {
		_, err := Run(cfg(seed))
		if err != nil {
			fails++
			if fails < 2 {
				t.Log(err)
			}
		}
	}
	t.Logf("%s: %d fails, %v", name, fails, time.Since(start)/time.Duration(n))
}

func TestTrySweep(t *testing.T) {
	sweep(t, "counter", 500, func(s uint64) Config { return Config{Seed: s, Policy: "counter", Faults: 0.3, Crashes: 0.1} })
	sweep(t, "set", 500, func(s uint64) Config { return Config{Seed: s, Policy: "set", Faults: 0.3, Crashes: 0.1} })
	sweep(t, "set relaxed", 500, func(s uint64) Config { return Config{Seed: s, Policy: "set", Faults: 0.3, Crashes: 0.1, Durability: store.Relaxed} })
	sweep(t, "mv relaxed", 500, func(s uint64) Config { return Config{Seed: s, Policy: "mv", Faults: 0.5, Crashes: 0.1, Durability: store.Relaxed} })
}
