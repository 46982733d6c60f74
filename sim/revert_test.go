package sim

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// TestRevertPrefixDeletedByMistake is the history scenario of issue 22 in
// the simulator's world (three replicas, one shared memory store whose
// LastModified is the logical clock; with the sealed store too): A writes
// docs/, everyone syncs; B deletes the whole prefix by mistake and
// overwrites another key, and the mistake spreads to every replica at the
// next sync, correctly. C, which saw it all, reverts docs/ to a time
// before the mistake; after one more round of syncs every replica reads
// docs/ as before, holds the same records, and the key outside the prefix
// keeps B's later value. A compaction in between (retention keeping two
// snapshots) leaves the time restorable.
func TestRevertPrefixDeletedByMistake(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			ctx := context.Background()
			cfg := calmConfig()
			cfg.Replicas, cfg.Sealed = 3, sealed
			w, err := NewWorld(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			do := func(r int, kind Kind, key, value string) {
				t.Helper()
				if err := w.Do(Op{Kind: kind, R: r, Key: key, Value: value, Advance: time.Minute}); err != nil {
					t.Fatalf("%s %s %s: %v", replicaName(r), kind, key, err)
				}
			}
			syncAll := func() {
				for range 2 {
					for r := range 3 {
						do(r, OpSync, "", "")
					}
				}
			}
			docs := map[string]string{"docs/1": "one", "docs/2": "two", "docs/3": "three"}
			for k, v := range docs {
				do(0, OpPut, k, v)
			}
			do(0, OpPut, "other", "before")
			syncAll()
			c := w.nodes[2].r
			if err := c.SetRetention(ctx, engine.Retention{KeepSnapshots: 2}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1}); err != nil {
				t.Fatal(err)
			}
			good := Epoch.Add(w.now).Add(30 * time.Second)
			// B's mistake, a minute later, spreads everywhere.
			for k := range docs {
				do(1, OpDelete, k, "")
			}
			do(1, OpPut, "other", "after")
			syncAll()
			if _, err := c.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1}); err != nil {
				t.Fatal(err)
			}
			for _, n := range w.nodes {
				if v, err := n.r.Get("docs/1"); err == nil {
					t.Fatalf("%s still reads docs/1 = %q after the mistake", n.name(), v)
				}
			}
			// A read-only copy as of then holds the prefix too.
			into := filepath.Join(t.TempDir(), "then")
			if _, err := c.Restore(ctx, engine.RestoreOptions{Into: into, At: good}); err != nil {
				t.Fatal(err)
			}
			then, err := engine.Open(into, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range docs {
				if got, err := then.Get(k); err != nil || string(got) != v {
					t.Fatalf("restored copy reads %s = %q, %v; want %q", k, got, err, v)
				}
			}
			then.Close()
			changes, err := c.Revert(ctx, engine.RevertOptions{To: good, Prefix: "docs/"})
			if err != nil {
				t.Fatal(err)
			}
			if len(changes) != len(docs) {
				t.Fatalf("revert wrote %+v", changes)
			}
			syncAll()
			var first string
			for _, n := range w.nodes {
				for k, v := range docs {
					if got, err := n.r.Get(k); err != nil || string(got) != v {
						t.Fatalf("%s reads %s = %q, %v after the revert; want %q", n.name(), k, got, err, v)
					}
				}
				if got, _ := n.r.Get("other"); string(got) != "after" {
					t.Fatalf("%s reads other = %q: the revert reached outside its prefix", n.name(), got)
				}
				d, _, err := w.digest(n)
				if err != nil {
					t.Fatal(err)
				}
				if first == "" {
					first = d
				} else if d != first {
					t.Fatalf("%s holds other records than A after the revert", n.name())
				}
			}
		})
	}
}
