package sim

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/store"
)

// TestBeyondCISeeds replays the seeds beyond the ones CI runs that failed
// the absence and restore sweeps at 10,000 seeds each (under today's
// rules and with the listed-tip claim rule): each must pass now. The
// triage is in the absenceFindings and restoreFindings comments; the
// schedules S29, S30, S34, S35 and S26 hold their shrunk forms.
func TestBeyondCISeeds(t *testing.T) {
	absence := []uint64{4013, 5724, 8229, 9000, 9693}
	restore := []uint64{307, 2048}
	for _, s := range absence {
		if _, err := Run(absenceConfig(s)); err != nil {
			t.Errorf("absence sweep seed %d: %v", s, err)
		}
		if _, err := Run(withListedTip(absenceConfig)(s)); err != nil {
			t.Errorf("absence sweep seed %d with the listed-tip claim: %v", s, err)
		}
	}
	for _, s := range restore {
		if _, err := Run(restoreSweepConfig(s)); err != nil {
			t.Errorf("restore sweep seed %d: %v", s, err)
		}
		if _, err := Run(withListedTip(restoreSweepConfig)(s)); err != nil {
			t.Errorf("restore sweep seed %d with the listed-tip claim: %v", s, err)
		}
	}
}

// TestDeadMarkStillHoldsEveryReplica: S34's schedule (a joiner catching up
// reads the write before the delete: no resurrection), then a planted
// resurrection: the joiner's stale record written into a replica that
// read the key as deleted, having seen every write of it. The
// no-resurrection check must fail on it, and on the joiner too once it
// has caught up.
func TestDeadMarkStillHoldsEveryReplica(t *testing.T) {
	data, err := os.ReadFile("testdata/schedules/s34_joiner_catching_up.txt")
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range strings.Split(string(data), "\n") {
		if l == "----" {
			break
		}
		if !strings.HasPrefix(l, "# ") { // a comment
			text = append(text, l)
		}
	}
	var cfg Config
	var ops []Op
	for i, l := range text {
		if strings.HasPrefix(l, "schedule ") {
			for _, f := range strings.Fields(l)[1:] {
				k, v, _ := strings.Cut(f, "=")
				if err := SetConfigArg(&cfg, k, strings.Split(v, ",")); err != nil {
					t.Fatal(err)
				}
			}
			if ops, err = ParseSchedule(strings.Join(text[i+1:], "\n")); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if len(ops) == 0 {
		t.Fatal("no schedule in S34")
	}
	plant := func(t *testing.T, into int) *Violation {
		w, err := NewWorld(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for _, op := range ops {
			if err := w.Do(op); err != nil {
				t.Fatalf("%v: %v", op, err)
			}
		}
		c := w.nodes[2]
		stale, err := readRecord(c, "k0")
		if err != nil || len(stale.Versions) != 1 || stale.Versions[0].Deleted {
			t.Fatalf("the joiner holds %v (%v), want the write before the delete", stale, err)
		}
		if into == 2 {
			// Catch up first: then the joiner is held to the mark.
			if _, err := c.r.Pull(context.Background()); err != nil {
				t.Fatal(err)
			}
			if v := w.checkDead(); v != nil {
				t.Fatalf("the joiner caught up: %v", v)
			}
		}
		n := w.nodes[into]
		if err := n.r.Store().Update(context.Background(), func(tx *store.Tx) error {
			return tx.PutRecord("k0", store.Stored{Record: stale})
		}); err != nil {
			t.Fatal(err)
		}
		return w.checkDead()
	}
	for _, into := range []int{1, 2} {
		if v := plant(t, into); v == nil || v.Rule != RuleResurrection {
			t.Errorf("%s given the stale record back: %v, want a resurrection", replicaName(into), v)
		}
	}
}
