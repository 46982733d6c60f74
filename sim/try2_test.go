package sim

import (
	"testing"
)

func TestTryScenarios(t *testing.T) {
	for _, s := range Scenarios() {
		rep, err := s.Run()
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
		} else {
			for _, l := range rep.Trace {
				t.Log(l)
			}
		}
		for _, r := range s.OldRules {
			_, err := s.RunOldRule(r)
			if err == nil {
				t.Errorf("%s with %s: no failure", s.Name, r.Name)
			} else {
				t.Logf("%s with %s: %v", s.Name, r.Name, err)
			}
		}
	}
}
