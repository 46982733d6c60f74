package replica_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"regexp"
	"slices"
	"testing"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// openCausal opens a new replica in a real directory, on b, with every key
// under pol.
func openCausal(t *testing.T, b remote.Backend, pol string) *replica.Replica {
	t.Helper()
	reg := merge.NewRegistry()
	p, _ := merge.Builtin(pol)
	reg.Set("", p)
	r, err := replica.Init(t.TempDir(), "file://unused", &replica.Options{Backend: b, Policies: reg, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func syncAll(t *testing.T, rs ...*replica.Replica) {
	t.Helper()
	for _, r := range rs {
		if _, err := r.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func versionValues(t *testing.T, r *replica.Replica, key string) []string {
	t.Helper()
	vs, err := r.Versions(key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		out = append(out, string(v.Value))
	}
	slices.Sort(out)
	return out
}

// TestContextWriteKeepsRacingWrite: a read-modify-write racing a write on
// another replica (pulled after the read) keeps it as a sibling on both
// replicas once synced, through Badger on disk and a directory remote; a
// plain Put with the same race supersedes it.
func TestContextWriteKeepsRacingWrite(t *testing.T) {
	ctx := context.Background()
	b, err := fileremote.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := openCausal(t, b, merge.NameMV)
	bb := openCausal(t, b, merge.NameMV)
	for _, k := range []string{"k", "plain"} {
		if err := a.Put(ctx, k, []byte("v0")); err != nil {
			t.Fatal(err)
		}
	}
	syncAll(t, a, bb, a)
	v, cc, err := a.GetWithContext("k")
	if err != nil || string(v) != "v0" || cc == "" {
		t.Fatalf("GetWithContext = %q, %q, %v", v, cc, err)
	}
	for _, k := range []string{"k", "plain"} {
		if err := bb.Put(ctx, k, []byte("from-b")); err != nil {
			t.Fatal(err)
		}
	}
	syncAll(t, bb)
	if _, err := a.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.PutWithContext(ctx, "k", []byte("from-a"), cc); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "plain", []byte("from-a")); err != nil {
		t.Fatal(err)
	}
	syncAll(t, a, bb, a)
	for _, r := range []*replica.Replica{a, bb} {
		if got := versionValues(t, r, "k"); !slices.Equal(got, []string{"from-a", "from-b"}) {
			t.Fatalf("replica %s holds %v, want from-a and from-b", r.ID().Short(), got)
		}
		var ce *replica.ConflictError
		_, cc, err := r.GetWithContext("k")
		if !errors.As(err, &ce) || cc == "" {
			t.Fatalf("GetWithContext under mv = %q, %v; want a conflict and its context", cc, err)
		}
		if got := versionValues(t, r, "plain"); !slices.Equal(got, []string{"from-a"}) {
			t.Fatalf("replica %s holds %v of the plain key, want from-a alone", r.ID().Short(), got)
		}
	}
}

// TestContextFacade: the context is URL- and header-safe, names the
// writers' clock entries, covers nothing for an absent key, and a malformed or
// foreign one is refused with ErrBadContext, writing nothing.
func TestContextFacade(t *testing.T) {
	ctx := context.Background()
	b, err := fileremote.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := openCausal(t, b, merge.NameLWW)
	if _, cc, err := r.GetWithContext("absent"); !errors.Is(err, replica.ErrNotFound) || cc == "" {
		t.Fatalf("absent key: %q, %v", cc, err)
	} else if vec, err := replica.ContextVector(cc); err != nil || len(vec) != 0 {
		t.Fatalf("absent key's context: %v, %v", vec, err)
	}
	for _, k := range []string{"k", "other"} {
		if err := r.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	vs, cc, err := r.VersionsWithContext("k")
	if err != nil || len(vs) != 1 {
		t.Fatal(vs, err)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(string(cc)) {
		t.Fatalf("context %q is not URL- and header-safe", cc)
	}
	vec, err := replica.ContextVector(cc)
	if err != nil || len(vec) != 1 || vec[r.ID().String()] != vs[0].Counter {
		t.Fatalf("ContextVector = %v, %v; want %s:%d", vec, err, r.ID(), vs[0].Counter)
	}
	_, foreign, err := r.GetWithContext("other")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []replica.CausalContext{"%%%", foreign, cc[:len(cc)-2]} {
		if err := r.PutWithContext(ctx, "k", []byte("x"), bad); !errors.Is(err, replica.ErrBadContext) {
			t.Errorf("put with %q: %v, want ErrBadContext", bad, err)
		}
		if err := r.DeleteWithContext(ctx, "k", bad); !errors.Is(err, replica.ErrBadContext) {
			t.Errorf("delete with %q: %v, want ErrBadContext", bad, err)
		}
	}
	if after, err := r.Versions("k"); err != nil || !slices.EqualFunc(after, vs, func(x, y replica.Version) bool {
		return x.Counter == y.Counter && x.Replica == y.Replica && string(x.Value) == string(y.Value)
	}) {
		t.Fatalf("a refused write changed the key: %v -> %v, %v", vs, after, err)
	}
	if err := r.DeleteWithContext(ctx, "k", cc); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteWithContext(ctx, "k", cc); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("delete of a deleted key: %v", err)
	}
}

// A read-modify-write that races another write keeps both: the key then
// holds two versions, which the mv policy surfaces as a conflict for the
// application to settle with one more write carrying the new context.
func ExampleReplica_PutWithContext() {
	ctx := context.Background()
	reg := merge.NewRegistry()
	reg.Set("", merge.MV{})
	r, err := replica.Init("", "mem://example", &replica.Options{InMemory: true, Policies: reg})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if err := r.Put(ctx, "cart", []byte("apples")); err != nil {
		log.Fatal(err)
	}

	v, cc, err := r.GetWithContext("cart") // read...
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Put(ctx, "cart", []byte("pears")); err != nil { // ...another writer...
		log.Fatal(err)
	}
	if err := r.PutWithContext(ctx, "cart", append(v, ",bread"...), cc); err != nil { // ...modify, write
		log.Fatal(err)
	}

	_, cc, err = r.GetWithContext("cart")
	var conflict *replica.ConflictError
	if errors.As(err, &conflict) {
		for _, v := range conflict.Versions {
			fmt.Println(string(v.Value))
		}
		// Settle: a write with the context of the conflict supersedes both.
		if err := r.PutWithContext(ctx, "cart", []byte("apples,bread,pears"), cc); err != nil {
			log.Fatal(err)
		}
	}
	v, _ = r.Get("cart")
	fmt.Println(string(v))
	// Output:
	// pears
	// apples,bread
	// apples,bread,pears
}
