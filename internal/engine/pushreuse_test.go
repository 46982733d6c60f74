package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// TestPushCommitKeepsWritesSinceStaging: a push's commit reuses the record
// entries staging read for the keys no write touched since (the store's
// RecordWatch), and reads the others again. Local writes do not wait for
// a push (only pulls, rebases, collection, reidentify and history hold
// its lock), so one may land between staging and the commit: here each
// kind (a put, a delete, a batch, a counter add) lands at each point of
// the push between them (staged, fenced, uploaded; and after the first of
// several segments committed, before the next's commit). The write must
// survive the commit (read back locally), its key stay pending, and the
// next push send it: a peer reads the write's result. (Commit a touched
// key from its staged entry and the write is lost: the mark is cleared,
// the old record put back.)
func TestPushCommitKeepsWritesSinceStaging(t *testing.T) {
	ctx := context.Background()
	writes := []struct {
		name  string
		write func(r *engine.Engine, key string) error
		check func(r *engine.Engine, key string) error
	}{
		{"put", func(r *engine.Engine, key string) error { return r.Put(ctx, key, []byte("second")) }, wantValue("second")},
		{"delete", func(r *engine.Engine, key string) error { return r.Delete(ctx, key) }, func(r *engine.Engine, key string) error {
			if v, err := r.Get(key); !errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("deleted %s reads %q %v", key, v, err)
			}
			return nil
		}},
		{"batch", func(r *engine.Engine, key string) error {
			return r.Batch(ctx, func(b *engine.Batch) error { b.Put(key, []byte("batched")); return nil })
		}, wantValue("batched")},
	}
	for _, step := range []string{"push:staged", "push:fenced", "push:uploaded", "push:committed"} {
		for _, w := range writes {
			t.Run(step+"/"+w.name, func(t *testing.T) {
				b := memremote.New("t")
				var r *engine.Engine
				fired := false
				// The last key: in the last segment, committed after
				// "push:committed" fired for the first.
				const key = "k-39"
				var hookErr error
				r, err := engine.Open("", &engine.Options{Engine: store.NewMem(), Create: true, ID: clock.NewReplicaID(), Backend: b,
					SegmentCap: 512, Durability: store.Sync,
					Hooks: &engine.Hooks{Step: func(s string) error {
						if s == step && !fired && r != nil {
							fired = true
							hookErr = w.write(r, key)
						}
						return nil
					}}})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if _, err := r.Sync(ctx); err != nil {
					t.Fatal(err)
				}
				for i := range 40 {
					if err := r.Put(ctx, fmt.Sprintf("k-%02d", i), append([]byte("first-"), make([]byte, 100)...)); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := r.Push(ctx); err != nil {
					t.Fatal(err)
				}
				if !fired || hookErr != nil {
					t.Fatalf("the write at %s: fired %v, %v", step, fired, hookErr)
				}
				if err := w.check(r, key); err != nil {
					t.Fatalf("after the push: %v", err)
				}
				pending := map[string]bool{}
				for p, err := range r.Pending() {
					if err != nil {
						t.Fatal(err)
					}
					pending[p.Key] = true
				}
				if !pending[key] || len(pending) != 1 {
					t.Fatalf("pending after the push: %v, want only %s", pending, key)
				}
				if _, err := r.Push(ctx); err != nil {
					t.Fatal(err)
				}
				if n := r.Store().OutboxLen(); n != 0 {
					t.Fatalf("outbox after the second push: %d", n)
				}
				peer, err := engine.Open("", &engine.Options{Engine: store.NewMem(), Create: true, ID: clock.NewReplicaID(), Backend: b})
				if err != nil {
					t.Fatal(err)
				}
				defer peer.Close()
				if _, err := peer.Pull(ctx); err != nil {
					t.Fatal(err)
				}
				if err := w.check(peer, key); err != nil {
					t.Fatalf("peer: %v", err)
				}
				if v, err := peer.Get("k-00"); err != nil || string(v[:6]) != "first-" {
					t.Fatalf("peer reads k-00 %q %v", v, err)
				}
			})
		}
	}
}

func wantValue(want string) func(r *engine.Engine, key string) error {
	return func(r *engine.Engine, key string) error {
		if v, err := r.Get(key); err != nil || string(v) != want {
			return fmt.Errorf("%s reads %q %v, want %q", key, v, err, want)
		}
		return nil
	}
}
