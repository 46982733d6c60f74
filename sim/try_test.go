package sim

import (
	"os"
	"testing"
	"time"
)

func TestTry(t *testing.T) {
	rep, err := Run(Config{Seed: 1, Ops: 60})
	rep.WriteText(os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
}

func TestTrySweep(t *testing.T) {
	start := time.Now()
	fails := 0
	for seed := uint64(0); seed < 1000; seed++ {
		_, err := Run(Config{Seed: seed, Ops: 40, Faults: 0.5})
		if err != nil {
			fails++
			if fails < 4 {
				t.Log(err)
			}
		}
	}
	t.Logf("%d fails, %v", fails, time.Since(start))
}
