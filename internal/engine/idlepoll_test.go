package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// TestIdlePollCost: a replica polling an idle store every 5 s of its
// (injected) wall clock for a day and an hour costs one GET a poll; it
// lists once instead, when its last listing is a day old (ListEvery
// defaults to the registry refresh), and rewrites its registry once, when the
// unchanged ack's refresh is due. The per-hour figure goes to
// BENCHMARKS.md ("Live sync").
func TestIdlePollCost(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("idle")
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Backend: b, Durability: store.Relaxed,
		Wall: func() time.Time { return wall }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(ctx); err != nil { // publishes the ack the first sync moved
		t.Fatal(err)
	}
	poll := func(n int) remote.Counts {
		before := b.Stats().Snapshot()
		for range n {
			wall = wall.Add(5 * time.Second)
			if _, err := r.Pull(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return b.Stats().Snapshot().Sub(before)
	}
	hour := poll(720)
	if hour != (remote.Counts{Get: 720}) {
		t.Fatalf("an idle hour at 5 s: %+v, want 720 GETs and nothing else", hour)
	}
	t.Logf("idle hour at a 5 s interval: %d GET, %d LIST, %d PUT, %d DELETE", hour.Get, hour.List, hour.Put, hour.Delete)
	day := poll(24 * 720)
	if day.List != 1 || day.Put != 1 || day.Delete != 0 || day.Get != 24*720-1 {
		t.Fatalf("the next idle day at 5 s: %+v, want one GET a poll but one that lists, one registry write", day)
	}
	t.Logf("the next idle day: %d GET, %d LIST, %d PUT", day.Get, day.List, day.Put)
}
