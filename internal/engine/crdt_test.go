package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// jsonMerge merges two JSON objects key by key (the larger encoding wins a
// key both hold); a live version wins over a tombstone. Deterministic,
// commutative, associative and idempotent on canonical JSON.
func jsonMerge(_ string, a, b merge.Version) (merge.Version, error) {
	switch {
	case a.Deleted:
		return b, nil
	case b.Deleted:
		return a, nil
	}
	var ma, mb map[string]json.RawMessage
	if err := json.Unmarshal(a.Value, &ma); err != nil {
		return merge.Version{}, err
	}
	if err := json.Unmarshal(b.Value, &mb); err != nil {
		return merge.Version{}, err
	}
	for k, v := range mb {
		if cur, ok := ma[k]; !ok || bytes.Compare(v, cur) > 0 {
			ma[k] = v
		}
	}
	out, err := json.Marshal(ma)
	return merge.Version{Value: out}, err
}

func crdtPolicies(t *testing.T) *merge.Registry {
	t.Helper()
	reg, err := merge.ParsePolicies([]string{"c/=counter", "s/=set", "mv/=mv", "j/=json-merge"},
		map[string]merge.Policy{"json-merge": merge.NewFunc("json-merge", jsonMerge)})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// memReplicas opens n in-memory replicas sharing the registry.
func memReplicas(t *testing.T, n int, reg *merge.Registry) []*engine.Engine {
	t.Helper()
	out := make([]*engine.Engine, n)
	for i := range out {
		r, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Policies: reg, Durability: store.Relaxed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		out[i] = r
	}
	return out
}

// exchange merges from's record of key into to's, as a pull would, with no
// network: read the raw record from one store, Merge it into the other's.
func exchange(t *testing.T, from, to *engine.Engine, key string) {
	t.Helper()
	var rec merge.Record
	var ok bool
	err := from.Store().View(func(v *store.View) error {
		st, found, err := v.Record(key)
		rec, ok = st.Record, found
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return
	}
	err = to.Store().Update(context.Background(), func(tx *store.Tx) error {
		cur, _, err := tx.Record(key)
		if err != nil {
			return err
		}
		return tx.PutRecord(key, store.Stored{Record: merge.Merge(cur.Record, rec), Pos: cur.Pos})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// exchangeAll has every replica merge every other's record of key.
func exchangeAll(t *testing.T, rs []*engine.Engine, key string) {
	t.Helper()
	for range 2 {
		for _, to := range rs {
			for _, from := range rs {
				if from != to {
					exchange(t, from, to, key)
				}
			}
		}
	}
}

func mustAdd(t *testing.T, r *engine.Engine, key string, delta int64) int64 {
	t.Helper()
	n, err := r.CounterAdd(context.Background(), key, delta)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func counterIs(t *testing.T, r *engine.Engine, key string, want int64) {
	t.Helper()
	got, err := r.CounterValue(key)
	if err != nil || got != want {
		t.Fatalf("Counter(%q) = %d, %v; want %d", key, got, err, want)
	}
	v, err := r.Get(key)
	if err != nil || string(v) != fmt.Sprint(want) {
		t.Fatalf("Get(%q) = %q, %v; want %d", key, v, err, want)
	}
}

func membersAre(t *testing.T, r *engine.Engine, key string, want ...string) {
	t.Helper()
	got, err := r.SetMembers(key)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("SetMembers(%q) = %q, %v; want %q", key, got, err, want)
	}
}

func TestCounterOneReplica(t *testing.T) {
	ctx := context.Background()
	r := memReplicas(t, 1, crdtPolicies(t))[0]
	if _, err := r.CounterValue("c/x"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("missing counter: %v", err)
	}
	if n := mustAdd(t, r, "c/x", 5); n != 5 {
		t.Fatalf("add 5 = %d", n)
	}
	if n := mustAdd(t, r, "c/x", -8); n != -3 {
		t.Fatalf("add -8 = %d", n)
	}
	counterIs(t, r, "c/x", -3)
	if r.Len() != 1 {
		t.Fatalf("len %d", r.Len())
	}
	vs, err := r.Versions("c/x")
	if err != nil || len(vs) != 1 {
		t.Fatalf("a local update replaces the version: %v, %v", vs, err)
	}

	// Delete writes a tombstone; a later add starts from zero.
	if err := r.Delete(ctx, "c/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CounterValue("c/x"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("deleted counter: %v", err)
	}
	if n := mustAdd(t, r, "c/x", 2); n != 2 {
		t.Fatalf("add after delete = %d, want 2", n)
	}
	// Clear, too.
	if err := r.Clear(ctx, "c/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("c/x"); !errors.Is(err, engine.ErrNotFound) || r.Len() != 0 {
		t.Fatalf("cleared counter: %v, len %d", err, r.Len())
	}
	if err := r.Clear(ctx, "c/x"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("clear twice: %v", err)
	}
	if n := mustAdd(t, r, "c/x", 0); n != 0 || r.Len() != 1 {
		t.Fatalf("add 0 = %d, len %d: the counter exists again, at 0", n, r.Len())
	}
	counterIs(t, r, "c/x", 0)
}

func TestCRDTWrongPolicyAndBadInput(t *testing.T) {
	ctx := context.Background()
	r := memReplicas(t, 1, crdtPolicies(t))[0]
	for name, err := range map[string]error{
		"add on lww":       func() error { _, err := r.CounterAdd(ctx, "plain", 1); return err }(),
		"counter on set":   func() error { _, err := r.CounterValue("s/x"); return err }(),
		"set add on mv":    r.SetAdd(ctx, "mv/x", "a"),
		"set rm on ctr":    r.SetRemove(ctx, "c/x", "a"),
		"members of json":  func() error { _, err := r.SetMembers("j/x"); return err }(),
		"clear on lww":     func() error { r.Put(ctx, "plain", []byte("v")); return r.Clear(ctx, "plain") }(),
		"add on empty key": func() error { _, err := r.CounterAdd(ctx, "", 1); return err }(),
	} {
		if err == nil || (!errors.Is(err, engine.ErrWrongPolicy) && !errors.Is(err, engine.ErrInvalidKey)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, m := range []string{"", "a\nb", "\xff"} {
		if err := r.SetAdd(ctx, "s/x", "ok", m); err == nil {
			t.Errorf("member %q accepted", m)
		}
	}
	if _, err := r.Versions("s/x"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a rejected add wrote: %v", err)
	}
	// A plain value under a counter prefix is refused, alone or in a batch,
	// and writes nothing.
	if err := r.Put(ctx, "c/raw", []byte("12")); !errors.Is(err, engine.ErrWrongPolicy) {
		t.Fatalf("put of raw bytes on a counter key: %v", err)
	}
	if err := r.Batch(ctx, func(b *engine.Batch) error { b.Put("ok", []byte("1")); b.Put("s/raw", []byte("x")); return nil }); !errors.Is(err, engine.ErrWrongPolicy) {
		t.Fatalf("batch put of raw bytes on a set key: %v", err)
	}
	if _, err := r.Versions("c/raw"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a refused put wrote: %v", err)
	}
	if _, err := r.Get("ok"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a refused batch wrote: %v", err)
	}
}

func TestSetOneReplica(t *testing.T) {
	ctx := context.Background()
	r := memReplicas(t, 1, crdtPolicies(t))[0]
	if err := r.SetAdd(ctx, "s/x", "b", "a", "c"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRemove(ctx, "s/x", "c", "zzz"); err != nil {
		t.Fatal(err)
	}
	membersAre(t, r, "s/x", "a", "b")
	if v, err := r.Get("s/x"); err != nil || string(v) != "a\nb" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	// Removing absent members writes nothing.
	before := r.Store().OutboxLen()
	vs, _ := r.Versions("s/x")
	if err := r.SetRemove(ctx, "s/x", "zzz"); err != nil {
		t.Fatal(err)
	}
	if after, _ := r.Versions("s/x"); after[0].Counter != vs[0].Counter || r.Store().OutboxLen() != before {
		t.Fatalf("a remove of nothing wrote")
	}
	// The last member gone, the set reads as deleted.
	if err := r.SetRemove(ctx, "s/x", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetMembers("s/x"); !errors.Is(err, engine.ErrNotFound) || r.Len() != 0 {
		t.Fatalf("empty set: %v, len %d", err, r.Len())
	}
	if err := r.SetAdd(ctx, "s/x", "z"); err != nil {
		t.Fatal(err)
	}
	membersAre(t, r, "s/x", "z")
	checkLiveCount(t, r)
}

func checkLiveCount(t *testing.T, r *engine.Engine) {
	t.Helper()
	var n int64
	if err := r.Store().View(func(v *store.View) error {
		var err error
		n, err = v.CountLive()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != r.Len() {
		t.Fatalf("Len %d, but %d live keys", r.Len(), n)
	}
}

func TestConcurrentAddsOneReplica(t *testing.T) {
	r := memReplicas(t, 1, crdtPolicies(t))[0]
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := r.CounterAdd(context.Background(), "c/hits", 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	counterIs(t, r, "c/hits", 200)
}

// Five replicas add concurrently and exchange records in seeded random
// orders, interleaved with more adds; after a full exchange every replica
// reads the exact sum.
func TestCounterConvergesAcrossReplicas(t *testing.T) {
	rs := memReplicas(t, 5, crdtPolicies(t))
	for seed := uint64(1); seed <= 4; seed++ {
		key := fmt.Sprintf("c/seed-%d", seed)
		rng := rand.New(rand.NewPCG(seed, 0))
		var sum int64
		for i, r := range rs {
			sum += mustAdd(t, r, key, int64(i+1)) // concurrent: nothing exchanged yet
		}
		for range 40 {
			i, j := rng.IntN(len(rs)), rng.IntN(len(rs))
			if rng.IntN(3) == 0 {
				d := rng.Int64N(11) - 5
				mustAdd(t, rs[i], key, d)
				sum += d
			} else if i != j {
				exchange(t, rs[i], rs[j], key)
			}
		}
		exchangeAll(t, rs, key)
		for i, r := range rs {
			if got, err := r.CounterValue(key); err != nil || got != sum {
				t.Fatalf("seed %d: replica %d reads %d, %v; want %d", seed, i, got, err, sum)
			}
		}
	}
}

// S2 (DESIGN.md): Z and B increment concurrently; C increments after seeing
// Z; whatever order the others merge them in, everyone reads 3.
func TestCounterS2(t *testing.T) {
	rs := memReplicas(t, 5, crdtPolicies(t))
	z, b, c, x, y := rs[0], rs[1], rs[2], rs[3], rs[4]
	const key = "c/s2"
	mustAdd(t, z, key, 1)
	mustAdd(t, b, key, 1)
	exchange(t, z, c, key)
	mustAdd(t, c, key, 1)
	// x merges B then C then Z; y merges Z then C then B.
	for _, from := range []*engine.Engine{b, c, z} {
		exchange(t, from, x, key)
	}
	for _, from := range []*engine.Engine{z, c, b} {
		exchange(t, from, y, key)
	}
	counterIs(t, x, key, 3)
	counterIs(t, y, key, 3)
	exchangeAll(t, rs, key)
	for _, r := range rs {
		counterIs(t, r, key, 3)
	}
}

func TestCounterDeleteSemantics(t *testing.T) {
	ctx := context.Background()
	rs := memReplicas(t, 2, crdtPolicies(t))
	a, b := rs[0], rs[1]
	for _, clear := range []bool{false, true} {
		key := fmt.Sprintf("c/del-%v", clear)
		mustAdd(t, a, key, 5)
		exchange(t, a, b, key)
		// A deletes and adds 1; B, concurrently, adds 2.
		var err error
		if clear {
			err = a.Clear(ctx, key)
		} else {
			err = a.Delete(ctx, key)
		}
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, a, key, 1)
		mustAdd(t, b, key, 2)
		exchangeAll(t, rs, key)
		// The 5 the delete saw is gone, both later increments count.
		counterIs(t, a, key, 3)
		counterIs(t, b, key, 3)
	}
}

func TestSetConcurrentAddRemove(t *testing.T) {
	ctx := context.Background()
	rs := memReplicas(t, 3, crdtPolicies(t))
	a, b, c := rs[0], rs[1], rs[2]
	const key = "s/tags"
	if err := a.SetAdd(ctx, key, "x", "y"); err != nil {
		t.Fatal(err)
	}
	exchangeAll(t, rs, key)
	// B removes x and y; A concurrently adds x again; C adds z.
	if err := b.SetRemove(ctx, key, "x", "y"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAdd(ctx, key, "x"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAdd(ctx, key, "z"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetMembers(key); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("B removed every member: %v", err)
	}
	exchangeAll(t, rs, key)
	// The concurrent add of x wins; the remove of y, which nobody re-added, holds.
	for _, r := range rs {
		membersAre(t, r, key, "x", "z")
		checkLiveCount(t, r)
	}
	// A remove that saw every add wins.
	if err := c.SetRemove(ctx, key, "x"); err != nil {
		t.Fatal(err)
	}
	exchangeAll(t, rs, key)
	for _, r := range rs {
		membersAre(t, r, key, "z")
	}
}

func TestMVKeepsSiblingsUntilWritten(t *testing.T) {
	ctx := context.Background()
	rs := memReplicas(t, 3, crdtPolicies(t))
	a, b := rs[0], rs[1]
	const key = "mv/doc"
	if err := a.Put(ctx, key, []byte("from a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, key, []byte("from b")); err != nil {
		t.Fatal(err)
	}
	exchangeAll(t, rs, key)
	for i, r := range rs {
		_, err := r.Get(key)
		var ce *engine.ConflictError
		if !errors.Is(err, engine.ErrConflict) || !errors.As(err, &ce) || len(ce.Versions) != 2 {
			t.Fatalf("replica %d: Get = %v, want a conflict of 2 versions", i, err)
		}
		vals := []string{string(ce.Versions[0].Value), string(ce.Versions[1].Value)}
		slices.Sort(vals)
		if !slices.Equal(vals, []string{"from a", "from b"}) {
			t.Fatalf("replica %d: siblings %q", i, vals)
		}
		// Resolve cannot choose under mv.
		if err := r.Resolve(ctx, key); !errors.Is(err, engine.ErrConflict) || !errors.As(err, &ce) || len(ce.Versions) != 2 {
			t.Fatalf("replica %d: Resolve = %v", i, err)
		}
	}
	// A later write collapses them everywhere.
	if err := rs[2].Put(ctx, key, []byte("settled")); err != nil {
		t.Fatal(err)
	}
	exchangeAll(t, rs, key)
	for i, r := range rs {
		if v, err := r.Get(key); err != nil || string(v) != "settled" {
			t.Fatalf("replica %d: %q, %v", i, v, err)
		}
		if vs, _ := r.Versions(key); len(vs) != 1 {
			t.Fatalf("replica %d keeps %d versions", i, len(vs))
		}
	}
}

func TestFuncPolicyConverges(t *testing.T) {
	ctx := context.Background()
	rs := memReplicas(t, 3, crdtPolicies(t))
	const key = "j/profile"
	for i, doc := range []string{`{"name":"ann"}`, `{"age":3}`, `{"name":"bob","x":1}`} {
		if err := rs[i].Put(ctx, key, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	// Different merge orders on different replicas.
	exchange(t, rs[2], rs[0], key)
	exchange(t, rs[1], rs[0], key)
	exchange(t, rs[0], rs[1], key)
	exchange(t, rs[1], rs[2], key)
	const want = `{"age":3,"name":"bob","x":1}`
	for i, r := range rs {
		if v, err := r.Get(key); err != nil || string(v) != want {
			t.Fatalf("replica %d: %s, %v; want %s", i, v, err, want)
		}
	}
	// Resolve writes the merged value back as one version.
	if err := rs[0].Resolve(ctx, key); err != nil {
		t.Fatal(err)
	}
	if vs, err := rs[0].Versions(key); err != nil || len(vs) != 1 || string(vs[0].Value) != want {
		t.Fatalf("after Resolve: %v, %v", vs, err)
	}
	exchangeAll(t, rs, key)
	for i, r := range rs {
		vs, err := r.Versions(key)
		if err != nil || len(vs) != 1 {
			t.Fatalf("replica %d: %d versions, %v", i, len(vs), err)
		}
		if v, err := r.Get(key); err != nil || string(v) != want {
			t.Fatalf("replica %d after resolve: %s, %v", i, v, err)
		}
	}
}

func TestResolveCollapses(t *testing.T) {
	ctx := context.Background()
	rs := memReplicas(t, 2, crdtPolicies(t))
	a, b := rs[0], rs[1]
	if err := a.Resolve(ctx, "nothing"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("resolve of a missing key: %v", err)
	}
	// lww: the winner is written back.
	a.Put(ctx, "k", []byte("a"))
	b.Put(ctx, "k", []byte("b"))
	exchange(t, b, a, "k")
	want, err := a.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Resolve(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if vs, _ := a.Versions("k"); len(vs) != 1 || !bytes.Equal(vs[0].Value, want) || vs[0].Replica != a.ID() {
		t.Fatalf("lww resolve: %+v, want one version %q written here", vs, want)
	}
	// A single version is left alone.
	before, _ := a.Versions("k")
	if err := a.Resolve(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if after, _ := a.Versions("k"); after[0].Counter != before[0].Counter {
		t.Fatalf("resolve of a single version wrote")
	}
	// Counter and set: the joined state; tombstones: a tombstone.
	mustAdd(t, a, "c/n", 2)
	mustAdd(t, b, "c/n", 3)
	a.SetAdd(ctx, "s/m", "x")
	b.SetAdd(ctx, "s/m", "y")
	mustAdd(t, a, "c/gone", 1)
	exchange(t, a, b, "c/gone")
	if a.Delete(ctx, "c/gone") != nil || b.Delete(ctx, "c/gone") != nil {
		t.Fatal("delete failed")
	}
	for _, k := range []string{"c/n", "s/m", "c/gone"} {
		exchange(t, b, a, k)
		if vs, _ := a.Versions(k); len(vs) != 2 {
			t.Fatalf("%s: %d versions before Resolve", k, len(vs))
		}
		if err := a.Resolve(ctx, k); err != nil {
			t.Fatal(err)
		}
		if vs, _ := a.Versions(k); len(vs) != 1 {
			t.Fatalf("%s: %+v after Resolve", k, vs)
		}
	}
	// Deleting a counter clears it: the resolved state reads as deleted.
	if _, err := a.CounterValue("c/gone"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("c/gone after delete and resolve: %v", err)
	}
	counterIs(t, a, "c/n", 5)
	membersAre(t, a, "s/m", "x", "y")
	// Collapsing keeps the contributions: B, adding again, still sums.
	exchange(t, a, b, "c/n")
	mustAdd(t, b, "c/n", 1)
	exchange(t, b, a, "c/n")
	counterIs(t, a, "c/n", 6)
	checkLiveCount(t, a)
}
