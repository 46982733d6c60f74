package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestOutboxMarkOneRequest: a request that reads, sets, clears and sets a
// key's outbox mark again (a push's commit reads the mark, then clears it;
// a write may follow in the same group) sees its own changes, and leaves
// the by-key marks, the queue and the pending count agreeing: each key's
// mark is read from the engine once per request and then kept in the
// request, so the cached answer must follow every change.
func TestOutboxMarkOneRequest(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		// Committed before: a marked at 3, b at 4 (a mark lives in its
		// key's record: both have one).
		if err := s.Update(ctx, func(tx *Tx) error {
			for _, k := range []string{"a", "b"} {
				if err := tx.PutRecord(k, Stored{Pos: 1}); err != nil {
					return err
				}
			}
			if err := tx.SetOutboxMark("c", 2); err == nil {
				return errors.New("a mark on a key without a record was accepted")
			}
			if err := tx.SetOutboxMark("a", 3); err != nil {
				return err
			}
			return tx.SetOutboxMark("b", 4)
		}); err != nil {
			t.Fatal(err)
		}
		err := s.Update(ctx, func(tx *Tx) error {
			check := func(key string, want uint64, wantOK bool) error {
				c, ok, err := tx.OutboxMark(key)
				if err != nil || c != want && wantOK || ok != wantOK {
					return fmt.Errorf("mark of %s: %d %v %v, want %d %v", key, c, ok, err, want, wantOK)
				}
				return nil
			}
			if err := check("a", 3, true); err != nil {
				return err
			}
			if err := tx.ClearOutboxMark("a"); err != nil {
				return err
			}
			if err := check("a", 0, false); err != nil {
				return err
			}
			if err := tx.ClearOutboxMark("a"); err != nil { // twice: nothing more
				return err
			}
			if err := tx.SetOutboxMark("a", 9); err != nil {
				return err
			}
			if err := check("a", 9, true); err != nil {
				return err
			}
			// b: cleared without being read first, then set again.
			if err := tx.ClearOutboxMark("b"); err != nil {
				return err
			}
			if err := tx.SetOutboxMark("b", 10); err != nil {
				return err
			}
			if err := tx.SetOutboxMark("b", 11); err != nil {
				return err
			}
			return check("b", 11, true)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := s.OutboxLen(); n != 2 {
			t.Errorf("OutboxLen %d, want 2", n)
		}
		type mk struct {
			key  string
			mark uint64
		}
		var byKey, queue []mk
		if err := s.View(func(v *View) error {
			if err := v.OutboxMarks("", func(key string, c uint64) (bool, error) {
				byKey = append(byKey, mk{key, c})
				return true, nil
			}); err != nil {
				return err
			}
			return v.OutboxOrder(0, func(key string, c uint64) (bool, error) {
				queue = append(queue, mk{key, c})
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		want := []mk{{"a", 9}, {"b", 11}}
		if !slices.Equal(byKey, want) || !slices.Equal(queue, want) {
			t.Errorf("marks by key %v, queue %v; want both %v", byKey, queue, want)
		}
		if _, marks := recount(t, s); marks != 2 {
			t.Errorf("recount: %d marks", marks)
		}
	})
}
