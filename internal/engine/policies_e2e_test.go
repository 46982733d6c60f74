package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// TestPoliciesAcrossBackends: every policy over real syncing through the
// memory, directory and S3 backends: 5 replicas' concurrent increments sum
// exactly; a remove concurrent with an add keeps the add; mv keeps both
// concurrent writes on every replica until a later write collapses them; a
// JSON-merging callback converges; a mismatched policy set is refused.
func TestPoliciesAcrossBackends(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := mk(t)
			var rs []*engine.Engine
			for i := range 5 {
				w := &fakeWall{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i-2) * time.Hour)}
				r, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Backend: b,
					Wall: w.now, Durability: store.Relaxed, Policies: crdtPolicies(t), AckInterval: -1})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				if _, err := r.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				rs = append(rs, r)
			}
			syncAll := func() {
				for range 2 {
					for _, r := range rs {
						mustSync(t, r)
					}
				}
			}
			// Counter: concurrent increments from 5 replicas.
			want := int64(0)
			for i, r := range rs {
				for j := range 3 {
					d := int64(i*10 + j - 7)
					mustAdd(t, r, "c/hits", d)
					want += d
				}
			}
			// Set: A adds x; everyone syncs; B removes x while C adds x again.
			if err := rs[0].SetAdd(ctx, "s/tags", "x", "y"); err != nil {
				t.Fatal(err)
			}
			syncAll()
			if err := rs[1].SetRemove(ctx, "s/tags", "x", "y"); err != nil {
				t.Fatal(err)
			}
			if err := rs[2].SetAdd(ctx, "s/tags", "x"); err != nil {
				t.Fatal(err)
			}
			// mv: two concurrent writes.
			if err := rs[3].Put(ctx, "mv/doc", []byte("from-3")); err != nil {
				t.Fatal(err)
			}
			if err := rs[4].Put(ctx, "mv/doc", []byte("from-4")); err != nil {
				t.Fatal(err)
			}
			// func: concurrent JSON objects merge key by key.
			if err := rs[0].Put(ctx, "j/profile", []byte(`{"name":"Ada"}`)); err != nil {
				t.Fatal(err)
			}
			if err := rs[1].Put(ctx, "j/profile", []byte(`{"city":"London"}`)); err != nil {
				t.Fatal(err)
			}
			syncAll()
			for i, r := range rs {
				counterIs(t, r, "c/hits", want)
				membersAre(t, r, "s/tags", "x")
				_, err := r.Get("mv/doc")
				var ce *engine.ConflictError
				if !errors.As(err, &ce) || len(ce.Versions) != 2 {
					t.Fatalf("replica %d: mv/doc: %v", i, err)
				}
				v, err := r.Get("j/profile")
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]string
				if err := json.Unmarshal(v, &m); err != nil || m["name"] != "Ada" || m["city"] != "London" {
					t.Fatalf("replica %d: j/profile = %s %v", i, v, err)
				}
			}
			// A later write collapses the mv siblings everywhere.
			if err := rs[2].Put(ctx, "mv/doc", []byte("settled")); err != nil {
				t.Fatal(err)
			}
			syncAll()
			for i, r := range rs {
				if v, err := r.Get("mv/doc"); err != nil || string(v) != "settled" {
					t.Fatalf("replica %d: mv/doc = %q %v", i, v, err)
				}
				if vs, _ := r.Versions("mv/doc"); len(vs) != 1 {
					t.Fatalf("replica %d: %d siblings after the collapsing write", i, len(vs))
				}
			}
			// A replica with other policies is refused by the store, and
			// nothing changes.
			before := objects(t, b, "")
			odd := merge.NewRegistry()
			odd.Set("", merge.MV{})
			r, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Backend: b, Policies: odd})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Connect(ctx); !errors.Is(err, engine.ErrPolicyMismatch) {
				t.Fatalf("mismatched policies: %v", err)
			}
			if after := objects(t, b, ""); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("a refused replica changed the store:\n%v\n%v", before, after)
			}
		})
	}
}
