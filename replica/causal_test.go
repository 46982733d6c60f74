package replica

import (
	"context"
	"errors"
	"testing"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/store"
)

func openCausal(t *testing.T, dir string, b remote.Backend, pol string) *Replica {
	t.Helper()
	reg := merge.NewRegistry()
	p, _ := merge.Builtin(pol)
	reg.Set("", p)
	r, err := Init(dir, "file://unused", &Options{Backend: b, Policies: reg, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestContextWriteKeepsRacingWrite: a read-modify-write racing a write on
// another replica (pulled after the read) keeps it as a sibling on both
// replicas once synced; a plain Put would have superseded it.
func TestContextWriteKeepsRacingWrite(t *testing.T) {
	ctx := context.Background()
	b := must(fileremote.New(t.TempDir(), nil))
	a := openCausal(t, t.TempDir(), b, "mv")
	bb := openCausal(t, t.TempDir(), b, "mv")
	if err := a.Put(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Replica{a, bb, a} {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	v, cc, err := a.GetWithContext("k")
	if err != nil || string(v) != "v0" || cc == "" {
		t.Fatalf("GetWithContext = %q, %q, %v", v, cc, err)
	}
	if err := bb.Put(ctx, "k", []byte("from-b")); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.PutWithContext(ctx, "k", []byte("from-a"), cc); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Replica{a, bb, a} {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*Replica{a, bb} {
		vs, err := r.Versions("k")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, v := range vs {
			got[string(v.Value)] = true
		}
		if len(vs) != 2 || !got["from-a"] || !got["from-b"] {
			t.Fatalf("replica %s holds %d versions %v, want from-a and from-b", r.ID().Short(), len(vs), got)
		}
		var ce *ConflictError
		if _, err := r.Get("k"); !errors.As(err, &ce) {
			t.Fatalf("Get under mv = %v, want a conflict", err)
		}
	}
}
