package sim

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/store"
)

// plantedWorld runs a calm schedule in which every replica writes and
// syncs, then hands the world to plant, then finishes it.
func plantedWorld(t *testing.T, plant func(w *World)) error {
	t.Helper()
	ops, err := ParseSchedule(`
A put k0=a
B put k1=b
C put k2=c
A sync
B sync
C sync
A sync
B sync
C sync`)
	if err != nil {
		t.Fatal(err)
	}
	cfg := calmConfig()
	cfg.Replicas = 3
	w, err := NewWorld(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, op := range ops {
		if err := w.Do(op); err != nil {
			t.Fatal(err)
		}
	}
	plant(w)
	_, err = w.Finish()
	return err
}

// TestOraclePlantedDivergence: the oracle is tested too. A record deleted
// behind the replica's back on one replica that is not the first (no
// outbox mark, so nothing will bring it back) must fail the run with a
// convergence verdict; so must a sibling planted in the last replica's
// record. The same world untouched converges.
func TestOraclePlantedDivergence(t *testing.T) {
	if err := plantedWorld(t, func(*World) {}); err != nil {
		t.Fatalf("the untouched world fails: %v", err)
	}
	for name, plant := range map[string]func(w *World){
		"record deleted on C": func(w *World) {
			if err := w.nodes[2].eng.Apply([]store.Mutation{{Key: []byte("r/k1"), Delete: true}}, true); err != nil {
				t.Fatal(err)
			}
		},
		"record deleted on B": func(w *World) {
			if err := w.nodes[1].eng.Apply([]store.Mutation{{Key: []byte("r/k0"), Delete: true}}, true); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := plantedWorld(t, plant)
			var v *Violation
			if !errors.As(err, &v) || v.Rule != RuleConvergence {
				t.Fatalf("a planted divergence (%s) gives %v, want a %s violation", name, err, RuleConvergence)
			}
			t.Log(v)
		})
	}
}

// TestServerIgnoringConditionalWrites: a world on a store that takes
// If-None-Match and If-Match puts as plain puts (faultremote's
// IgnoreIfNoneMatch and IgnoreIfMatch) is refused at connect with
// remote.ErrNoConditionalWrites by every replica, before anything is
// registered or published: nothing can diverge.
func TestServerIgnoringConditionalWrites(t *testing.T) {
	cfg := calmConfig()
	cfg.Replicas = 3
	w, err := NewWorld(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.meter.inner = faultremote.New(w.mem, rand.New(rand.NewPCG(1, 2)), faultremote.Options{IgnoreIfNoneMatch: true, IgnoreIfMatch: true})
	ctx := context.Background()
	for _, n := range w.nodes {
		if err := n.r.Put(ctx, "k", []byte(n.name())); err != nil {
			t.Fatal(err)
		}
		if _, err := n.r.Sync(ctx); !errors.Is(err, remote.ErrNoConditionalWrites) {
			t.Fatalf("%s syncs on a store that ignores conditional writes: %v", n.name(), err)
		}
	}
	for _, k := range w.mem.Keys() {
		if strings.HasPrefix(k, remote.LogPrefix) || strings.HasPrefix(k, remote.ReplicasPrefix) {
			t.Fatalf("%s was written to a store the replicas refused", k)
		}
	}
}
