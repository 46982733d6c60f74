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
	var s script
	s.put(A, "k0", "a")
	s.put(B, "k1", "b")
	s.put(C, "k2", "c")
	s.syncAll(3)
	s.syncAll(3)
	w, err := NewWorld(calm(PolicyLWW, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, op := range s {
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

// TestOldRulesFailAsMeant: each scenario's old rule breaks the invariant
// it is meant to, not some other one by accident.
func TestOldRulesFailAsMeant(t *testing.T) {
	want := map[string]string{
		"S1/Knobs.Merge = MergePruneLosers":           RuleConvergence,
		"S1/Knobs.Merge = MergeByHLC":                 RuleConvergence,
		"S2/Knobs.Merge = MergeByHLC":                 RuleConvergence,
		"S2/Knobs.Merge = MergePruneLosers":           RuleSiblings,
		"S3/Knobs.AckIncludesOwnPush":                 RuleConvergence,
		"S4/Knobs.CollectAgainstMaxAck":               RuleConvergence,
		"S5/Knobs.WriteIgnoresG":                      RuleConvergence,
		"S6/Knobs.AckIgnoresStaged":                   RuleConvergence,
		"S7/Knobs.PushBeforePull":                     RuleConvergence,
		"S8/Knobs.DropTombstoneSibling":               RuleConvergence,
		"S9/Knobs.FilterThroughG":                     RuleConvergence,
		"S10/Knobs.PruneIgnoresAcks":                  RuleConvergence,
		"S12/Knobs.SnapshotDirty":                     RuleConvergence,
		"S13/Knobs.UnsyncedStaging":                   RuleDots,
		"S14/Config.UnsyncedPending (engine wrapper)": RuleError, // a false ErrCloned
		"S15/Knobs.PartsWithoutNonce":                 RuleError, // a snapshot part missing at bootstrap
		"S16/Knobs.RetiredNotSticky":                  RuleError, // a false ErrCloned after adopting the retired body
		"S17/Knobs.CommitUnchecked":                   RuleCausality,
		"S18/Knobs.InheritedFence":                    RuleDots,
		"S19/Knobs.NothingListedUpToDate":             RuleConvergence,
		"S19b/Knobs.RebaseAnyRegistry":                RuleDots,
		"S20/Knobs.RestampAsText":                     RuleRead,
		"S21/Knobs.RefreshOnlyOnMove":                 RuleRetiredOnline,
	}
	seen := 0
	for _, s := range Scenarios() {
		for _, r := range s.OldRules {
			name := s.Name + "/" + r.Knob
			_, err := s.RunOldRule(r)
			var f *Failure
			if !errors.As(err, &f) {
				t.Errorf("%s passes", name)
				continue
			}
			seen++
			if w, ok := want[name]; !ok || f.Rule != w {
				t.Errorf("%s fails with %s (want %q): %.300s", name, f.Rule, w, f.Detail)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d old rules ran, %d expected", seen, len(want))
	}
}

// TestServerIgnoringConditionalWrites: a world on a store that takes
// If-None-Match and If-Match puts as plain puts (faultremote's
// IgnoreIfNoneMatch and IgnoreIfMatch) is refused at connect with
// remote.ErrNoConditionalWrites by every replica, before anything is
// registered or published: nothing can diverge.
func TestServerIgnoringConditionalWrites(t *testing.T) {
	w, err := NewWorld(calm(PolicyLWW, 0, 0, 0))
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
