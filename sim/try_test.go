package sim

import (
	"os"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/store"
)

func TestTry(t *testing.T) {
	rep, err := Run(Config{Seed: 1, Ops: 60})
	rep.WriteText(os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
}

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
	t.Logf("%s: %d fails, %v", name, fails, time.Since(start))
}

func TestTrySweep(t *testing.T) {
	sweep(t, "mv", 300, func(s uint64) Config { return Config{Seed: s, Policy: "mv", Faults: 0.5} })
	sweep(t, "relaxed", 300, func(s uint64) Config { return Config{Seed: s, Durability: store.Relaxed, Crashes: 0.15} })
	sweep(t, "badger", 50, func(s uint64) Config { return Config{Seed: s, Engine: "badger"} })
	sweep(t, "zstd big", 50, func(s uint64) Config { return Config{Seed: s, Codec: "zstd", Ops: 300, Replicas: 5} })
	sweep(t, "byhlc", 100, func(s uint64) Config { return Config{Seed: s, Merge: MergeByHLC} })
	sweep(t, "prune", 100, func(s uint64) Config { return Config{Seed: s, Merge: MergePruneLosers} })
	sweep(t, "unsynced", 100, func(s uint64) Config { return Config{Seed: s, UnsyncedStaging: true, Durability: store.Relaxed, Crashes: 0.15} })
}
