package engine_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/enginetest"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
	"pgregory.net/rapid"
)

// registry gives every key the policy name, except "c/" (counter), "s/"
// (set) and "j/" (json).
func causalRegistry(name string) *merge.Registry {
	reg := merge.NewRegistry()
	for prefix, n := range map[string]string{"": name, "c/": merge.NameCounter, "s/": merge.NameSet, "j/": merge.NameJSON} {
		p, _ := merge.Builtin(n)
		reg.Set(prefix, p)
	}
	return reg
}

func causalReplica(t testing.TB, b remote.Backend, policy string) *engine.Engine {
	t.Helper()
	return newReplicaOpts(t, b, engine.Options{Policies: causalRegistry(policy)})
}

// values returns the values of key's versions, in canonical order, a
// tombstone as "-".
func values(t testing.TB, r *engine.Engine, key string) []string {
	t.Helper()
	vs, err := r.Versions(key)
	if err != nil {
		t.Fatalf("versions %q: %v", key, err)
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v.Value)
		if v.Deleted {
			out[i] = "-"
		}
	}
	slices.Sort(out)
	return out
}

func mustGetCtx(t testing.TB, r *engine.Engine, key string) engine.CausalContext {
	t.Helper()
	_, cc, err := r.GetWithContext(key)
	if err != nil {
		t.Fatalf("get %q with context: %v", key, err)
	}
	if cc == "" {
		t.Fatalf("get %q: empty context for a live key", key)
	}
	return cc
}

// TestContextWriteLocalRace: a read-modify-write racing a local write
// keeps the racing write as a sibling (mv: a conflict; lww: the later HLC
// reads), where a plain Put supersedes it; a context covering every
// version is a plain Put.
func TestContextWriteLocalRace(t *testing.T) {
	ctx := context.Background()
	for _, pol := range []string{merge.NameMV, merge.NameLWW} {
		t.Run(pol, func(t *testing.T) {
			r := causalReplica(t, memremote.New("t"), pol)
			if err := r.Put(ctx, "k", []byte("v0")); err != nil {
				t.Fatal(err)
			}
			v, cc, err := r.GetWithContext("k")
			if err != nil || string(v) != "v0" || cc == "" {
				t.Fatalf("GetWithContext = %q, %q, %v", v, cc, err)
			}
			if err := r.Put(ctx, "k", []byte("racer")); err != nil {
				t.Fatal(err)
			}
			if err := r.PutWithContext(ctx, "k", []byte("v0+1"), cc); err != nil {
				t.Fatal(err)
			}
			if got := values(t, r, "k"); !slices.Equal(got, []string{"racer", "v0+1"}) {
				t.Fatalf("versions %v, want racer and v0+1", got)
			}
			got, err := r.Get("k")
			var ce *engine.ConflictError
			switch pol {
			case merge.NameMV:
				if !errors.As(err, &ce) || len(ce.Versions) != 2 {
					t.Fatalf("mv Get = %q, %v; want a conflict of 2", got, err)
				}
				if _, cc2, err := r.GetWithContext("k"); !errors.As(err, &ce) || cc2 == "" {
					t.Fatalf("GetWithContext of a conflict = %q, %v", cc2, err)
				}
			case merge.NameLWW:
				if err != nil || string(got) != "v0+1" {
					t.Fatalf("lww Get = %q, %v; want the later write v0+1", got, err)
				}
			}
			// A write with the current context settles the siblings.
			cc = mustGetCtxAny(t, r, "k")
			if err := r.PutWithContext(ctx, "k", []byte("merged"), cc); err != nil {
				t.Fatal(err)
			}
			if got := values(t, r, "k"); !slices.Equal(got, []string{"merged"}) {
				t.Fatalf("after a write with the current context: %v", got)
			}
			// "" is Put: everything superseded.
			if err := r.Put(ctx, "k", []byte("racer2")); err != nil {
				t.Fatal(err)
			}
			if err := r.PutWithContext(ctx, "k", []byte("plain"), ""); err != nil {
				t.Fatal(err)
			}
			if got := values(t, r, "k"); !slices.Equal(got, []string{"plain"}) {
				t.Fatalf("a write with no context: %v", got)
			}
		})
	}
}

// mustGetCtxAny returns key's context whatever the read found.
func mustGetCtxAny(t testing.TB, r *engine.Engine, key string) engine.CausalContext {
	t.Helper()
	_, cc, err := r.GetWithContext(key)
	if err != nil && !errors.Is(err, engine.ErrConflict) && !errors.Is(err, engine.ErrNotFound) {
		t.Fatal(err)
	}
	return cc
}

// TestContextWriteAbsentKey: an absent key reads with a context that
// covers nothing, so a create made with it keeps a create that raced it
// (here since the read) as a sibling; "" still writes as Put.
func TestContextWriteAbsentKey(t *testing.T) {
	ctx := context.Background()
	r := causalReplica(t, memremote.New("t"), merge.NameMV)
	_, cc, err := r.GetWithContext("new")
	if !errors.Is(err, engine.ErrNotFound) || cc == "" {
		t.Fatalf("absent key: %q, %v; want ErrNotFound with a context", cc, err)
	}
	if vec, err := engine.ContextVector(cc); err != nil || len(vec) != 0 {
		t.Fatalf("absent key's context: %v, %v; want an empty vector", vec, err)
	}
	if vs, vcc, err := r.VersionsWithContext("new"); !errors.Is(err, engine.ErrNotFound) || vcc != cc || vs != nil {
		t.Fatalf("absent key versions: %v %q, %v", vs, vcc, err)
	}
	if err := r.PutWithContext(ctx, "other", []byte("x"), cc); !errors.Is(err, engine.ErrBadContext) {
		t.Fatalf("the absent key's context on another key: %v", err)
	}
	if err := r.Put(ctx, "new", []byte("racer")); err != nil {
		t.Fatal(err)
	}
	if err := r.PutWithContext(ctx, "new", []byte("x"), cc); err != nil {
		t.Fatal(err)
	}
	if got := values(t, r, "new"); !slices.Equal(got, []string{"racer", "x"}) {
		t.Fatalf("versions %v, want the racing create kept beside ours", got)
	}
	if err := r.PutWithContext(ctx, "new", []byte("y"), ""); err != nil {
		t.Fatal(err)
	}
	if got := values(t, r, "new"); !slices.Equal(got, []string{"y"}) {
		t.Fatal(got)
	}
}

// TestDeleteWithContext: a delete with an old context leaves the racing
// write as a sibling of its tombstone; the deleted key reads with its
// tombstones' context, which a later write carries to supersede them; a
// key not live gives ErrNotFound and writes nothing.
func TestDeleteWithContext(t *testing.T) {
	ctx := context.Background()
	r := causalReplica(t, memremote.New("t"), merge.NameMV)
	if err := r.Put(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	cc := mustGetCtx(t, r, "k")
	if err := r.Put(ctx, "k", []byte("racer")); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteWithContext(ctx, "k", cc); err != nil {
		t.Fatal(err)
	}
	if got := values(t, r, "k"); !slices.Equal(got, []string{"-", "racer"}) {
		t.Fatalf("versions %v, want a tombstone and racer", got)
	}
	// Delete with the current context: only the tombstone is left.
	cc = mustGetCtxAny(t, r, "k")
	if err := r.DeleteWithContext(ctx, "k", cc); err != nil {
		t.Fatal(err)
	}
	if got := values(t, r, "k"); !slices.Equal(got, []string{"-"}) {
		t.Fatalf("versions %v, want one tombstone", got)
	}
	_, dcc, err := r.GetWithContext("k")
	if !errors.Is(err, engine.ErrNotFound) || dcc == "" {
		t.Fatalf("deleted key: %q, %v; want ErrNotFound with the tombstone's context", dcc, err)
	}
	before := enginetest.State(t, r)
	if err := r.DeleteWithContext(ctx, "k", dcc); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("delete of a deleted key: %v", err)
	}
	if err := r.DeleteWithContext(ctx, "absent", ""); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("delete of an absent key: %v", err)
	}
	if enginetest.State(t, r) != before {
		t.Fatal("a delete of a key not live wrote")
	}
	// A write after reading the deletion supersedes the tombstone.
	if err := r.PutWithContext(ctx, "k", []byte("back"), dcc); err != nil {
		t.Fatal(err)
	}
	if got := values(t, r, "k"); !slices.Equal(got, []string{"back"}) {
		t.Fatalf("versions %v", got)
	}
}

// causalSnapshot is what a refused write must leave unchanged: every record's
// bytes, the outbox and the dot counter.
func causalSnapshot(t testing.TB, r *engine.Engine) string {
	t.Helper()
	var marks []string
	for p, err := range r.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		marks = append(marks, p.Key)
	}
	var counter uint64
	if err := r.Store().Update(context.Background(), func(tx *store.Tx) error {
		counter = tx.Counter()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s\npending %v\ncounter %d", enginetest.State(t, r), marks, counter)
}

// TestBadContext: a malformed context, one of another key, or a context
// given for a counter, set or json key is refused with a clear error and
// writes nothing (every record's bytes, the outbox and the dot counter
// unchanged).
func TestBadContext(t *testing.T) {
	ctx := context.Background()
	r := causalReplica(t, memremote.New("t"), merge.NameMV)
	for _, k := range []string{"k", "other"} {
		if err := r.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	good := mustGetCtx(t, r, "k")
	raw, err := base64.RawURLEncoding.DecodeString(string(good))
	if err != nil {
		t.Fatal(err)
	}
	enc := func(b []byte) engine.CausalContext {
		return engine.CausalContext(base64.RawURLEncoding.EncodeToString(b))
	}
	with := func(f func(b []byte) []byte) engine.CausalContext {
		return enc(f(slices.Clone(raw)))
	}
	id := r.ID()
	entry := func(id clock.ReplicaID, varint ...byte) []byte { return append(slices.Clone(id[:]), varint...) }
	head := raw[:9]
	bad := map[string]engine.CausalContext{
		"not base64":        "!!not-a-context!!",
		"padded":            good + "=",
		"std alphabet":      engine.CausalContext(strings.NewReplacer("-", "+", "_", "/").Replace(string(good)) + "+/"),
		"wrong version":     with(func(b []byte) []byte { b[0] = 2; return b }),
		"truncated":         enc(raw[:len(raw)-1]),
		"trailing byte":     with(func(b []byte) []byte { return append(b, 0) }),
		"zero counter":      enc(append(slices.Clone(head), entry(id, 0)...)),
		"zero replica":      enc(append(slices.Clone(head), entry(clock.ReplicaID{}, 1)...)),
		"long varint":       enc(append(slices.Clone(head), entry(id, 0x81, 0x00)...)),
		"overflowing count": enc(append(slices.Clone(head), entry(id, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)...)),
		"out of order": enc(append(append(slices.Clone(head), entry(clock.ReplicaID{2}, 1)...),
			entry(clock.ReplicaID{1}, 1)...)),
		"duplicate": enc(append(append(slices.Clone(head), entry(clock.ReplicaID{1}, 1)...),
			entry(clock.ReplicaID{1}, 2)...)),
		"too long":       engine.CausalContext(strings.Repeat("A", 1<<20+1)),
		"of another key": mustGetCtx(t, r, "other"),
	}
	before := causalSnapshot(t, r)
	for name, cc := range bad {
		if err := r.PutWithContext(ctx, "k", []byte("x"), cc); !errors.Is(err, engine.ErrBadContext) {
			t.Errorf("%s: put = %v, want ErrBadContext", name, err)
		}
		if err := r.DeleteWithContext(ctx, "k", cc); !errors.Is(err, engine.ErrBadContext) {
			t.Errorf("%s: delete = %v, want ErrBadContext", name, err)
		}
		if name != "of another key" {
			if _, err := engine.ContextVector(cc); !errors.Is(err, engine.ErrBadContext) {
				t.Errorf("%s: ContextVector = %v, want ErrBadContext", name, err)
			}
		}
	}
	if err := r.PutWithContext(ctx, "", []byte("x"), good); !errors.Is(err, engine.ErrInvalidKey) {
		t.Errorf("empty key: %v", err)
	}
	if err := r.PutWithContext(ctx, "k", make([]byte, engine.DefaultMaxValueSize+1), good); !errors.Is(err, engine.ErrValueTooLarge) {
		t.Errorf("value too large: %v", err)
	}
	if after := causalSnapshot(t, r); after != before {
		t.Fatalf("a refused write changed the replica:\nbefore %s\nafter  %s", before, after)
	}
	// The good context still works.
	if err := r.PutWithContext(ctx, "k", []byte("ok"), good); err != nil {
		t.Fatal(err)
	}
	if got := values(t, r, "k"); !slices.Equal(got, []string{"ok"}) {
		t.Fatal(got)
	}
}

// TestContextWriteCRDT: counter, set and json keys refuse a context
// (ErrWrongPolicy, nothing written) and take "" as Put and Delete do; their
// reads return the key's context.
func TestContextWriteCRDT(t *testing.T) {
	ctx := context.Background()
	r := causalReplica(t, memremote.New("t"), merge.NameMV)
	if _, err := r.CounterAdd(ctx, "c/n", 2); err != nil {
		t.Fatal(err)
	}
	if err := r.SetAdd(ctx, "s/m", "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, "j/d", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	before := causalSnapshot(t, r)
	for _, k := range []string{"c/n", "s/m", "j/d"} {
		cc := mustGetCtx(t, r, k)
		if err := r.PutWithContext(ctx, k, []byte(`{"a":2}`), cc); !errors.Is(err, engine.ErrWrongPolicy) {
			t.Errorf("%s: put with a context = %v, want ErrWrongPolicy", k, err)
		}
		if err := r.DeleteWithContext(ctx, k, cc); !errors.Is(err, engine.ErrWrongPolicy) {
			t.Errorf("%s: delete with a context = %v, want ErrWrongPolicy", k, err)
		}
	}
	if err := r.PutWithContext(ctx, "c/n", []byte("1"), ""); !errors.Is(err, engine.ErrWrongPolicy) {
		t.Errorf("counter put without a context = %v, want ErrWrongPolicy as Put", err)
	}
	if after := causalSnapshot(t, r); after != before {
		t.Fatalf("a refused write changed the replica:\nbefore %s\nafter  %s", before, after)
	}
	if err := r.PutWithContext(ctx, "j/d", []byte(`{"b":2}`), ""); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get("j/d"); err != nil || string(v) != `{"b":2}` {
		t.Fatalf("json put without a context: %s, %v", v, err)
	}
	if err := r.DeleteWithContext(ctx, "s/m", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetMembers("s/m"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("set after a delete without a context: %v", err)
	}
}

// TestContextVector: the vector a context carries is the key's clock: an
// entry per replica that wrote it, covering each version's dot.
func TestContextVector(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("t")
	a := causalReplica(t, mem, merge.NameMV)
	b := causalReplica(t, mem, merge.NameMV)
	for i, r := range []*engine.Engine{a, b, a} {
		if err := r.Put(ctx, "k", []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
		mustSync(t, r)
	}
	vs, cc, err := a.VersionsWithContext("k")
	if err != nil {
		t.Fatal(err)
	}
	vec, err := engine.ContextVector(cc)
	if err != nil {
		t.Fatal(err)
	}
	if len(vec) != 2 || vec[a.ID().String()] == 0 || vec[b.ID().String()] == 0 {
		t.Fatalf("vector %v, want entries for %s and %s", vec, a.ID(), b.ID())
	}
	for _, v := range vs {
		if vec[v.Replica.String()] < v.Counter {
			t.Fatalf("vector %v does not cover version %s:%d", vec, v.Replica, v.Counter)
		}
	}
	if m, err := engine.ContextVector(""); err != nil || len(m) != 0 {
		t.Fatalf("ContextVector(\"\") = %v, %v", m, err)
	}
}

// TestContextWriteTwoReplicas: A reads, B writes and syncs, A pulls then
// writes with its old context: both versions survive on both replicas
// after sync, and a write of the merged value with the new context settles
// them everywhere.
func TestContextWriteTwoReplicas(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"mem", "file"} {
		t.Run(name, func(t *testing.T) {
			b := backends()[name](t)
			a := causalReplica(t, b, merge.NameMV)
			bb := causalReplica(t, b, merge.NameMV)
			if err := a.Put(ctx, "k", []byte("v0")); err != nil {
				t.Fatal(err)
			}
			mustSync(t, a)
			mustSync(t, bb)
			cc := mustGetCtx(t, a, "k")
			if err := bb.Put(ctx, "k", []byte("from-b")); err != nil {
				t.Fatal(err)
			}
			mustSync(t, bb)
			mustSync(t, a) // pulls from-b
			if err := a.PutWithContext(ctx, "k", []byte("from-a"), cc); err != nil {
				t.Fatal(err)
			}
			mustSync(t, a)
			mustSync(t, bb)
			want := []string{"from-a", "from-b"}
			for _, r := range []*engine.Engine{a, bb} {
				if got := values(t, r, "k"); !slices.Equal(got, want) {
					t.Fatalf("%s holds %v, want %v", r.ID().Short(), got, want)
				}
			}
			if enginetest.State(t, a) != enginetest.State(t, bb) {
				t.Fatal("the replicas' records differ")
			}
			cc = mustGetCtxAny(t, bb, "k")
			if err := bb.PutWithContext(ctx, "k", []byte("settled"), cc); err != nil {
				t.Fatal(err)
			}
			mustSync(t, bb)
			mustSync(t, a)
			for _, r := range []*engine.Engine{a, bb} {
				if got := values(t, r, "k"); !slices.Equal(got, []string{"settled"}) {
					t.Fatalf("%s holds %v after the settling write", r.ID().Short(), got)
				}
			}
		})
	}
}

// TestContextFromAheadReplica: a context read on a replica that had seen a
// write the writing replica has not yet pulled covers a dot the writer has
// never seen; the writer takes it as not covered, so that write, once
// pulled, stays as a sibling instead of being lost.
func TestContextFromAheadReplica(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("t")
	a := causalReplica(t, mem, merge.NameMV)
	b := causalReplica(t, mem, merge.NameMV)
	if err := a.Put(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, b)
	if err := b.Put(ctx, "k", []byte("from-b")); err != nil {
		t.Fatal(err)
	}
	ccB := mustGetCtx(t, b, "k") // covers from-b, which a has not seen
	mustSync(t, b)
	if err := a.PutWithContext(ctx, "k", []byte("from-a"), ccB); err != nil {
		t.Fatal(err)
	}
	if got := values(t, a, "k"); !slices.Equal(got, []string{"from-a"}) {
		t.Fatalf("a holds %v", got)
	}
	mustSync(t, a)
	mustSync(t, b)
	for _, r := range []*engine.Engine{a, b} {
		if got := values(t, r, "k"); !slices.Equal(got, []string{"from-a", "from-b"}) {
			t.Fatalf("%s holds %v, want from-a and from-b", r.ID().Short(), got)
		}
	}
}

// dotOf names a version.
func dotOf(v engine.Version) string { return fmt.Sprintf("%s:%d", v.Replica, v.Counter) }

func covered(vec map[string]uint64, v engine.Version) bool {
	return vec[v.Replica.String()] >= v.Counter
}

// TestContextWritesConverge is the property: random interleavings of
// reads with context, writes and deletes with (possibly stale, possibly
// another replica's) contexts, plain writes, pulls, pushes and syncs
// across 2-3 replicas
// converge to identical versions on every replica, and no version is
// ever dropped unless a write superseded it: a plain write supersedes
// what its replica holds, a context write only what it holds and its
// context covers. Each write is checked on the spot (the versions after
// it are exactly the kept ones plus the new one) and at the end (every
// replica holds exactly the versions written and never superseded).
func TestContextWritesConverge(t *testing.T) {
	ctx := context.Background()
	keys := []string{"a", "b"}
	rapid.Check(t, func(rt *rapid.T) {
		pol := rapid.SampledFrom([]string{merge.NameMV, merge.NameLWW}).Draw(rt, "policy")
		n := rapid.IntRange(2, 3).Draw(rt, "replicas")
		mem := memremote.New("t")
		reps := make([]*engine.Engine, n)
		for i := range reps {
			w := &enginetest.FakeWall{T: enginetest.Start}
			r, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Backend: mem,
				Wall: w.Now, Durability: store.Relaxed, AckInterval: -1, Policies: causalRegistry(pol)})
			if err != nil {
				rt.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Connect(ctx); err != nil {
				rt.Fatal(err)
			}
			reps[i] = r
		}
		held := func(r *engine.Engine, key string) map[string]engine.Version {
			vs, err := r.Versions(key)
			if err != nil && !errors.Is(err, engine.ErrNotFound) {
				rt.Fatal(err)
			}
			out := map[string]engine.Version{}
			for _, v := range vs {
				out[dotOf(v)] = v
			}
			return out
		}
		created := map[string]map[string]bool{} // key -> dots written
		dead := map[string]map[string]bool{}    // key -> dots superseded
		for _, k := range keys {
			created[k], dead[k] = map[string]bool{}, map[string]bool{}
		}
		contexts := map[string][]engine.CausalContext{} // key -> contexts read, any replica
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for i := range steps {
			r := reps[rapid.IntRange(0, n-1).Draw(rt, "replica")]
			key := rapid.SampledFrom(keys).Draw(rt, "key")
			op := rapid.SampledFrom([]string{"read", "put", "putctx", "delctx", "sync", "pull", "push"}).Draw(rt, "op")
			before := held(r, key)
			var cc engine.CausalContext
			if op == "putctx" || op == "delctx" {
				if cs := contexts[key]; len(cs) > 0 && rapid.IntRange(0, 5).Draw(rt, "fresh") > 0 {
					cc = cs[rapid.IntRange(0, len(cs)-1).Draw(rt, "ctx")]
				}
			}
			var err error
			switch op {
			case "read":
				if rapid.Bool().Draw(rt, "versions") {
					_, cc, err = r.VersionsWithContext(key)
				} else {
					_, cc, err = r.GetWithContext(key)
				}
				if err != nil && !errors.Is(err, engine.ErrNotFound) && !errors.Is(err, engine.ErrConflict) {
					rt.Fatal(err)
				}
				if cc != "" {
					contexts[key] = append(contexts[key], cc)
				}
				continue
			case "sync":
				if _, err := r.Sync(ctx); err != nil {
					rt.Fatal(err)
				}
				continue
			case "pull":
				if _, err := r.Pull(ctx); err != nil {
					rt.Fatal(err)
				}
				continue
			case "push":
				if _, err := r.Push(ctx); err != nil {
					rt.Fatal(err)
				}
				continue
			case "put":
				err = r.Put(ctx, key, fmt.Appendf(nil, "v%d", i))
			case "putctx":
				err = r.PutWithContext(ctx, key, fmt.Appendf(nil, "v%d", i), cc)
			case "delctx":
				err = r.DeleteWithContext(ctx, key, cc)
			}
			after := held(r, key)
			if errors.Is(err, engine.ErrNotFound) && op == "delctx" {
				if len(after) != len(before) {
					rt.Fatalf("a refused delete changed %q: %v -> %v", key, before, after)
				}
				continue
			}
			if err != nil {
				rt.Fatalf("%s %q: %v", op, key, err)
			}
			vec, err := engine.ContextVector(cc)
			if err != nil {
				rt.Fatal(err)
			}
			var fresh []string
			for d := range after {
				if _, ok := before[d]; !ok {
					fresh = append(fresh, d)
				}
			}
			if len(fresh) != 1 {
				rt.Fatalf("%s %q: %d new versions (%v -> %v)", op, key, len(fresh), before, after)
			}
			created[key][fresh[0]] = true
			for d, v := range before {
				superseded := cc == "" || covered(vec, v)
				_, kept := after[d]
				if superseded == kept {
					rt.Fatalf("%s %q with context %v: version %s (%q) kept=%v, superseded=%v",
						op, key, vec, d, v.Value, kept, superseded)
				}
				if superseded {
					dead[key][d] = true
				}
			}
		}
		// Converge: two rounds of syncs reach every replica.
		for range 2 {
			for _, r := range reps {
				if _, err := r.Sync(ctx); err != nil {
					rt.Fatal(err)
				}
			}
		}
		for _, key := range keys {
			var want []string
			for d := range created[key] {
				if !dead[key][d] {
					want = append(want, d)
				}
			}
			slices.Sort(want)
			var first []engine.Version
			for i, r := range reps {
				vs, err := r.Versions(key)
				if err != nil && !errors.Is(err, engine.ErrNotFound) {
					rt.Fatal(err)
				}
				var got []string
				for _, v := range vs {
					got = append(got, dotOf(v))
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					rt.Fatalf("replica %d holds %v of %q, want %v (written and never superseded)", i, got, key, want)
				}
				if i == 0 {
					first = vs
				} else if !slices.EqualFunc(first, vs, func(x, y engine.Version) bool {
					return dotOf(x) == dotOf(y) && string(x.Value) == string(y.Value) &&
						x.Deleted == y.Deleted && x.Time == y.Time && x.Winner == y.Winner
				}) {
					rt.Fatalf("replicas 0 and %d differ on %q: %v / %v", i, key, first, vs)
				}
			}
		}
	})
}

// TestContextDecodeAnything: arbitrary strings, and arbitrary bytes
// behind a valid version byte, never panic the decoder.
func TestContextDecodeAnything(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		s := rapid.String().Draw(rt, "s")
		_, _ = engine.ContextVector(engine.CausalContext(s))
		b := rapid.SliceOfN(rapid.Byte(), 0, 80).Draw(rt, "b")
		_, _ = engine.ContextVector(engine.CausalContext(base64.RawURLEncoding.EncodeToString(append([]byte{1}, b...))))
	})
}
