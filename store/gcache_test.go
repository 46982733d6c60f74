package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
)

// TestGroupGCache: G is decoded once per group and shared by the local
// writes of its requests; a SetG (kept or undone with its failing request)
// is seen by the next requests of the same group, and a caller of G gets
// its own copy.
func TestGroupGCache(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		release := make(chan struct{})
		blocked := blockWriter(t, s, release)
		r1, r2 := clock.NewReplicaID(), clock.NewReplicaID()
		g1 := clock.Vector{r1: 5}
		g2 := clock.Vector{r2: 7}
		clocks := map[string]clock.Vector{}
		write := func(key string) func(tx *Tx) error {
			return func(tx *Tx) error {
				v, err := tx.Write(key, []byte(key), false)
				if err != nil {
					return err
				}
				st, _, err := tx.Record(key)
				c := st.Clock.Clone()
				delete(c, v.Dot.Replica)
				clocks[key] = c
				return err
			}
		}
		var gotG clock.Vector
		fns := []func(tx *Tx) error{
			write("n1"),
			func(tx *Tx) error { tx.SetG(g1); return errors.New("undone") },
			write("n2"),
			func(tx *Tx) error { tx.SetG(g2); return nil },
			write("n3"),
			func(tx *Tx) error {
				g, err := tx.G()
				g[r1] = 99 // the caller's copy
				return err
			},
			func(tx *Tx) error {
				var err error
				gotG, err = tx.G()
				return err
			},
			write("n4"),
		}
		results := make([]chan error, len(fns))
		for i, fn := range fns {
			results[i] = make(chan error, 1)
			go func() { results[i] <- s.Update(ctx, fn) }()
			waitQueued(t, s, i+1)
		}
		close(release)
		if err := <-blocked; err != nil {
			t.Fatal(err)
		}
		for i, c := range results {
			if err := <-c; (err != nil) != (i == 1) {
				t.Errorf("request %d: %v", i, err)
			}
		}
		want := map[string]clock.Vector{"n1": {}, "n2": {}, "n3": g2, "n4": g2}
		for key, w := range want {
			if c := clocks[key]; c.Compare(w) != clock.Equal {
				t.Errorf("%s started from %v, want %v", key, c, w)
			}
		}
		if gotG.Compare(g2) != clock.Equal {
			t.Errorf("G = %v, want %v", gotG, g2)
		}
		if err := s.View(func(v *View) error {
			g, err := v.G()
			if err == nil && g.Compare(g2) != clock.Equal {
				err = fmt.Errorf("committed G = %v, want %v", g, g2)
			}
			return err
		}); err != nil {
			t.Error(err)
		}
	})
}
