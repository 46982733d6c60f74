package store_test

import (
	"context"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/store"
)

// TestOutboxQueue: the queue holds exactly one entry per dirty key, at its
// current mark, in mark order; cleared keys leave it.
func TestOutboxQueue(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(store.NewMem(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	write := func(k string) {
		t.Helper()
		if err := s.Update(ctx, func(tx *store.Tx) error { _, err := tx.Write(k, []byte("v"), false); return err }); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"b", "a", "c", "a"} {
		write(k)
	}
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.ClearOutboxMark("c") }); err != nil {
		t.Fatal(err)
	}
	var got []string
	var marks []uint64
	err = s.View(func(v *store.View) error {
		return v.OutboxOrder(0, func(k string, m uint64) (bool, error) {
			got = append(got, k)
			marks = append(marks, m)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// b was written at 1, a at 2 then 4; c cleared.
	if len(got) != 2 || got[0] != "b" || got[1] != "a" || marks[0] != 1 || marks[1] != 4 {
		t.Fatalf("queue %v %v", got, marks)
	}
	if s.OutboxLen() != 2 {
		t.Fatalf("pending %d", s.OutboxLen())
	}
}
