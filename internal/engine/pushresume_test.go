package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// TestPushFinishesInterrupted: a push interrupted after its first
// segment's upload leaves segments staged; the keys written afterwards sit
// only in the outbox. The next push uploads the staged segments and then
// stages and sends the rest: nothing is pending after it, and a peer
// reads every key. (Before, it sent only the staged segments and returned
// with the rest unmentioned.)
func TestPushFinishesInterrupted(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newNode(t, b, 0, store.Sync)
	if _, err := a.r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := a.r.Put(ctx, fmt.Sprintf("first-%02d", i), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	a.crashAt = "push:committed" // after the first of several segments (cap 512 bytes)
	if _, err := a.r.Push(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("interrupted push: %v", err)
	}
	a.crash()
	for i := range 10 {
		if err := a.r.Put(ctx, fmt.Sprintf("later-%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := a.r.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Pending != 0 || a.r.Store().OutboxLen() != 0 {
		t.Fatalf("after the resumed push: %+v, outbox %d", ps, a.r.Store().OutboxLen())
	}
	c := newNode(t, b, 0, store.Sync)
	if _, err := c.r.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.r.Len(); n != 50 {
		t.Fatalf("peer holds %d keys, want 50", n)
	}
}
