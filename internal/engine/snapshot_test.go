package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// TestCompactBootstrapPrune: many pushes, a snapshot, pruning; a new
// replica bootstraps from the snapshot plus later segments and ends
// identical; the object count is O(replicas + parts), not O(pushes).
func TestCompactBootstrapPrune(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := mk(t)
			a := newReplicaOpts(t, b, engine.Options{})
			c := newReplicaOpts(t, b, engine.Options{})
			for i := range 40 {
				w := a
				if i%2 == 1 {
					w = c
				}
				if err := w.Put(ctx, fmt.Sprintf("k%03d", i%25), []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
				mustSync(t, w)
			}
			mustSync(t, a)
			mustSync(t, c)
			if n := len(objects(t, b, remote.LogPrefix)); n < 40 {
				t.Fatalf("log has %d segments", n)
			}
			cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
			if err != nil {
				t.Fatal(err)
			}
			if cs.Records != 25 || cs.Parts < 1 || cs.Pruned < 35 {
				t.Fatalf("compact %+v", cs)
			}
			all := objects(t, b, "")
			// manifest + 2 registries + snapshot index and parts + the few
			// log segments above the min ack.
			if len(all) > 3+1+cs.Parts+2 {
				t.Fatalf("after pruning %d objects: %v", len(all), all)
			}
			// Writes after the snapshot, then a new replica bootstraps.
			if err := c.Put(ctx, "after", []byte("snap")); err != nil {
				t.Fatal(err)
			}
			mustSync(t, c)
			d := newReplicaOpts(t, b, engine.Options{})
			ps, err := d.Pull(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ps.Segments > 3 {
				t.Fatalf("bootstrap replayed %d segments", ps.Segments)
			}
			mustSync(t, a)
			mustSync(t, c)
			mustSync(t, d)
			if sa, sd := state(t, a), state(t, d); sa != sd {
				t.Fatalf("bootstrapped replica differs:\n%s\nvs\n%s", sd, sa)
			}
			if d.Len() != 26 {
				t.Fatalf("len %d", d.Len())
			}
		})
	}
}

// TestCollection: deletes are collected once every non-retired replica has
// acknowledged them, and not before; a later write starts from G and wins
// everywhere (S5), and no deleted key comes back.
func TestCollection(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplicaOpts(t, b, engine.Options{})
	c := newReplicaOpts(t, b, engine.Options{})
	for i := range 30 {
		if err := a.Put(ctx, fmt.Sprintf("k%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, a)
	mustSync(t, c)
	for i := range 20 {
		if err := a.Delete(ctx, fmt.Sprintf("k%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, a)
	// c has not pulled the deletes: its ack is below them. Nothing goes.
	cs, err := a.Compact(ctx, engine.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Collected != 0 {
		t.Fatalf("collected %d before c acknowledged", cs.Collected)
	}
	mustSync(t, c) // c pulls and acks
	cs, err = a.Compact(ctx, engine.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Collected != 20 {
		t.Fatalf("collected %d, want 20", cs.Collected)
	}
	keys := 0
	for range a.Keys("") {
		keys++
	}
	if keys != 10 || a.Len() != 10 {
		t.Fatalf("a holds %d records, len %d", keys, a.Len())
	}
	// S5: a collected a key, c has not; a writes it again.
	if err := a.Put(ctx, "k00", []byte("again")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, c)
	for _, r := range []*engine.Engine{a, c} {
		if v, err := r.Get("k00"); err != nil || string(v) != "again" {
			t.Fatalf("k00 = %q %v", v, err)
		}
		if _, err := r.Get("k01"); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("deleted key back: %v", err)
		}
	}
	mustSync(t, a)
	if a.Len() != c.Len() {
		t.Fatalf("len %d vs %d", a.Len(), c.Len())
	}
}

// TestRetirementAndRebase: a replica silent past RetireAfter is retired;
// the log is pruned past it; when it comes back it rebases, and its offline
// edits come back as new edits that win; everyone converges (S10).
func TestRetirementAndRebase(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := memremote.NewWithOptions("t", memremote.Options{Now: func() time.Time { now = now.Add(time.Second); return now }})
	if err != nil {
		t.Fatal(err)
	}
	a := newReplicaOpts(t, b, engine.Options{})
	away := newReplicaOpts(t, b, engine.Options{})
	if err := a.Put(ctx, "shared", []byte("a0")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, away)
	// away goes offline and edits.
	if err := away.Put(ctx, "shared", []byte("offline-edit")); err != nil {
		t.Fatal(err)
	}
	if err := away.Put(ctx, "mine", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := a.Put(ctx, fmt.Sprint("k", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a)
	}
	now = now.Add(40 * 24 * time.Hour)
	cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Retired) != 1 || cs.Retired[0] != away.ID().String() || cs.Pruned == 0 {
		t.Fatalf("compact %+v", cs)
	}
	if logs := objects(t, b, remote.LogPrefix); len(logs) > 1 {
		t.Fatalf("log not pruned past the retired replica: %v", logs)
	}
	// away comes back: its push learns it was retired, rebases, and pushes
	// its edits as new ones.
	if _, err := away.Sync(ctx); err != nil {
		t.Fatalf("sync after retirement: %v", err)
	}
	mustSync(t, away)
	mustSync(t, a)
	if sa, sw := state(t, a), state(t, away); sa != sw {
		t.Fatalf("diverged after rebase:\n%s\nvs\n%s", sa, sw)
	}
	for _, r := range []*engine.Engine{a, away} {
		if v, _ := r.Get("shared"); string(v) != "offline-edit" {
			t.Fatalf("shared = %q", v)
		}
		if v, _ := r.Get("mine"); string(v) != "x" {
			t.Fatalf("mine = %q", v)
		}
	}
	regs := objects(t, b, remote.ReplicasPrefix)
	if len(regs) != 2 {
		t.Fatalf("registries %v", regs)
	}
	obj, err := b.Get(ctx, remote.RegistryKey(away.ID()))
	if err != nil || strings.Contains(string(obj.Data), `"retired": true`) {
		t.Fatalf("still retired: %s %v", obj.Data, err)
	}
}
