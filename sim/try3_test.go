package sim

import (
	"testing"
)

func TestTryS13(t *testing.T) {
	s := s13()
	cfg := s.Config
	cfg.UnsyncedStaging = true
	rep, err := Replay(cfg, s.Ops)
	for _, l := range rep.Trace {
		t.Log(l)
	}
	t.Log(err)
}
