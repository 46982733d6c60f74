package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
)

func TestEndToEndBackends(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := mk(t)
			rng := rand.New(rand.NewPCG(1, 2))
			offsets := []time.Duration{3 * time.Hour, -2 * time.Hour, 0, 40 * time.Minute}
			var rs []*engine.Engine
			for _, off := range offsets {
				rs = append(rs, newReplica(t, b, off))
			}
			for round := range 6 {
				for i, r := range rs {
					for k := range 5 {
						key := fmt.Sprintf("k%02d", rng.IntN(12))
						if k%4 == 3 {
							_ = r.Delete(ctx, key)
							continue
						}
						if err := r.Put(ctx, key, fmt.Appendf(nil, "r%d-%d-%d", i, round, k)); err != nil {
							t.Fatal(err)
						}
					}
				}
				for _, i := range rng.Perm(len(rs)) {
					if rng.IntN(3) > 0 {
						mustSync(t, rs[i])
					}
				}
			}
			for range 2 {
				for _, r := range rs {
					mustSync(t, r)
				}
			}
			ref := state(t, rs[0])
			for i, r := range rs {
				if s := state(t, r); s != ref {
					t.Fatalf("replica %d diverged:\n%s\nvs\n%s", i, s, ref)
				}
				if r.Len() != rs[0].Len() {
					t.Fatalf("len %d vs %d", r.Len(), rs[0].Len())
				}
			}
			// The replica 2 h behind writes after seeing everything: it wins
			// everywhere, whatever the 3 h fast replica wrote before.
			slow, fast := rs[1], rs[0]
			if err := fast.Put(ctx, "race", []byte("fast")); err != nil {
				t.Fatal(err)
			}
			mustSync(t, fast)
			mustSync(t, slow)
			if err := slow.Put(ctx, "race", []byte("slow-after-seeing")); err != nil {
				t.Fatal(err)
			}
			mustSync(t, slow)
			for _, r := range rs {
				mustSync(t, r)
				if v, err := r.Get("race"); err != nil || string(v) != "slow-after-seeing" {
					t.Fatalf("causally later write lost: %q %v", v, err)
				}
			}
		})
	}
}
