package sim

import (
	"testing"
	"time"
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
	sweep(t, "lww40", 200, func(s uint64) Config { return Config{Seed: s, Faults: 0.3} })
	sweep(t, "lww30", 200, func(s uint64) Config { return Config{Seed: s, Ops: 30, Faults: 0.3} })
	sweep(t, "badger", 20, func(s uint64) Config { return Config{Seed: s, Engine: "badger"} })
}
