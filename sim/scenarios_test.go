package sim

import (
	"errors"
	"strings"
	"testing"
)

// TestScenarios runs every regression schedule of DESIGN.md that applies:
// each converges with every invariant holding.
func TestScenarios(t *testing.T) {
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			rep, err := s.Run()
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Converged {
				t.Fatalf("%+v", rep)
			}
			t.Logf("%s: %s\n%s", s.Name, s.Title, strings.Join(rep.Trace, "\n"))
		})
	}
}

// TestScenariosCatchOldRules restores, through replica.Knobs, each old
// rule a scenario guards: the scenario must fail, with its seed and a
// shrunk schedule printed.
func TestScenariosCatchOldRules(t *testing.T) {
	n := 0
	for _, s := range Scenarios() {
		for _, r := range s.OldRules {
			n++
			t.Run(s.Name+"/"+r.Knob, func(t *testing.T) {
				_, err := s.RunOldRule(r)
				var f *Failure
				if !errors.As(err, &f) {
					t.Fatalf("%s passes with the old rule %q (%s): %v", s.Name, r.Name, r.Knob, err)
				}
				if len(f.Schedule) > len(s.Ops) || !strings.Contains(err.Error(), "shortest failing schedule") {
					t.Fatalf("no shrunk schedule: %v", err)
				}
				t.Logf("%s with %s fails as it must:\n%v", s.Name, r.Knob, err)
			})
		}
	}
	if n < 5 {
		t.Fatalf("only %d old-rule runs", n)
	}
}

// TestScenarioOutcomes pins what each scenario must end with.
func TestScenarioOutcomes(t *testing.T) {
	for _, s := range Scenarios() {
		w, err := NewWorld(s.Config)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range s.Ops {
			if err := w.Do(op); err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
		}
		if _, err := w.Finish(); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		for _, n := range w.nodes {
			switch s.Name {
			case "S1":
				// b and c are concurrent siblings; c (after a) beat a
				// although a's clock was ahead; lww reads b (1.5 h ahead
				// beats c's capped clock).
				vs, _ := n.r.Versions("x")
				if len(vs) != 2 || string(vs[0].Value)+string(vs[1].Value) != "bc" && string(vs[0].Value)+string(vs[1].Value) != "cb" {
					t.Fatalf("S1: %s has %+v", n.name(), vs)
				}
				if v, err := n.r.Get("x"); err != nil || string(v) != "b" {
					t.Fatalf("S1: %s reads %q %v", n.name(), v, err)
				}
			case "S2":
				if v, err := n.r.CounterValue("n"); err != nil || v != 10 {
					t.Fatalf("S2: %s counts %d %v", n.name(), v, err)
				}
			case "S6":
				vs, _ := n.r.Versions("x")
				if len(vs) != 2 {
					t.Fatalf("S6: %s has %+v", n.name(), vs)
				}
			case "S11", "S13", "S14":
				if n.r.Store().Pending() != 0 {
					t.Fatalf("%s: %s has pending writes", s.Name, n.name())
				}
			}
		}
		w.Close()
	}
}
