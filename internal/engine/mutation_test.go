package engine_test

// Tests for bugs planted by mutation testing that the suite used to miss:
// each fails with the planted rule (sim's old rule, through engine.Hooks) and passes without it.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// TestCursorOnlyWithLastChunk: a segment applied in several transactions
// moves the cursor only in the last; a crash between them (here the
// process dies at the step, its transactions kept) re-applies the segment,
// and nothing of it is skipped.
func TestCursorOnlyWithLastChunk(t *testing.T) {
	for _, planted := range []bool{false, true} {
		t.Run(fmt.Sprint("planted=", planted), func(t *testing.T) {
			w := newWorld(t, nil)
			a := w.node("A", 0, nil)
			k := plantedRule(planted, "CursorFirst")
			k.ApplyChunk = 3
			b := w.node("B", 0, k)
			for i := range 10 {
				a.put(fmt.Sprintf("k%02d", i), "v")
			}
			a.sync()
			b.armed = "pull:chunk"
			if _, err := b.r.Pull(w.ctx); !errors.Is(err, errCrash) {
				t.Fatalf("B was to die between two transactions of the segment: %v", err)
			}
			err := w.settle("A", "B")
			t.Logf("settle: %v", err)
			if planted && err == nil {
				t.Fatal("the cursor advanced before the segment was applied, and nothing noticed")
			}
			if !planted && err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCollectWaitsForOutbox: a record whose key was deleted here and not
// pushed is not collected, even when the delete lands while the
// compaction runs (after it pushed); else the delete is never published.
func TestCollectWaitsForOutbox(t *testing.T) {
	for _, planted := range []bool{false, true} {
		t.Run(fmt.Sprint("planted=", planted), func(t *testing.T) {
			w := newWorld(t, nil)
			r := w.node("R", time.Hour, nil)
			x := w.node("X", 0, plantedRule(planted, "CollectIgnoresMark"))
			r.put("k", "v")
			r.sync()
			x.sync()
			r.sync()
			x.pauses = map[string]func(){"compact:acks": func() { x.del("k") }}
			_, _ = x.r.Compact(w.ctx, engine.CompactOptions{})
			w.err = nil // a compaction that cannot finish is not the point
			err := w.settle("R", "X")
			t.Logf("settle: %v", err)
			if planted && err == nil {
				t.Fatal("a dirty key was collected, and nothing noticed")
			}
			if !planted && err != nil {
				t.Fatal(err)
			}
			if !planted {
				if got := reads(r); got != "" {
					t.Fatalf("R reads %q after X's delete", got)
				}
			}
		})
	}
}
