package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// feedAfter returns r's change-feed entries after since, as they are now.
func feedAfter(t *testing.T, r *engine.Engine, since uint64) []engine.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // what the feed holds now, no waiting for more
	var out []engine.Change
	for c, err := range r.Watch(ctx, "", since) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func lastSeq(t *testing.T, r *engine.Engine) uint64 {
	t.Helper()
	cs := feedAfter(t, r, 0)
	if len(cs) == 0 {
		return 0
	}
	return cs[len(cs)-1].Seq
}

// getAll is what Get returns for each key.
func getAll(r *engine.Engine, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		v, err := r.Get(k)
		out[k] = fmt.Sprintf("%q %v", v, err)
	}
	return out
}

// TestFeedReidentify: reidentify re-stamps the unpushed writes under the
// new id; the change feed follows its rule, every change to what Get
// returns: a re-stamp that leaves a key reading as it did is no entry (a
// put or a delete written again), one that changes it is one entry, a
// local put (two concurrent versions settled into one: the one Get
// showed under lww, one of the conflict under mv). A counter re-stamped
// with the same sum is no entry.
func TestFeedReidentify(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("feed")
	reg := crdtPolicies(t)
	a := newReplicaOpts(t, b, engine.Options{Policies: reg})
	o := newReplicaOpts(t, b, engine.Options{Policies: reg})
	for _, k := range []string{"same", "sib", "gone", "mv/k"} {
		if err := a.Put(ctx, k, []byte(k+"0")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.CounterAdd(ctx, "c/n", 5); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, o)
	// A counter both add to, and a key under mv both write: at A two
	// versions each, the counter reading their sum, the mv key a conflict.
	if _, err := a.CounterAdd(ctx, "c/n", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := o.CounterAdd(ctx, "c/n", 3); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "mv/k", []byte("from-a")); err != nil {
		t.Fatal(err)
	}
	if err := o.Put(ctx, "mv/k", []byte("from-o")); err != nil {
		t.Fatal(err)
	}
	// Unpushed at A: a put, a delete, and a put that o overwrites
	// concurrently (A pulls it: two versions).
	if err := a.Put(ctx, "same", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "sib", []byte("from-a")); err != nil {
		t.Fatal(err)
	}
	if err := o.Put(ctx, "sib", []byte("from-o")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, o)
	if _, err := a.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sib", "c/n", "mv/k"} {
		if vs, err := a.Versions(k); err != nil || len(vs) != 2 {
			t.Fatalf("%s: %d versions, %v; want two", k, len(vs), err)
		}
	}
	if n, err := a.CounterValue("c/n"); err != nil || n != 10 {
		t.Fatalf("c/n = %d, %v", n, err)
	}
	var ce *engine.ConflictError
	if _, err := a.Get("mv/k"); !errors.As(err, &ce) {
		t.Fatalf("mv/k: %v, want a conflict", err)
	}
	before := getAll(a, "same", "sib", "gone")
	seq := lastSeq(t, a)
	oldID := a.ID()
	if _, err := a.Reidentify(ctx); err != nil {
		t.Fatal(err)
	}
	if a.ID() == oldID {
		t.Fatal("reidentify kept the id")
	}
	if after := getAll(a, "same", "sib", "gone"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("reads changed: %v, then %v", before, after)
	}
	got := feedAfter(t, a, seq)
	if n, err := a.CounterValue("c/n"); err != nil || n != 10 {
		t.Fatalf("c/n = %d, %v after reidentify", n, err)
	}
	if v, err := a.Get("mv/k"); err != nil || (string(v) != "from-a" && string(v) != "from-o") {
		t.Fatalf("mv/k = %q, %v after reidentify: want one of the two", v, err)
	}
	want := []engine.Change{
		{Seq: seq + 1, Key: "mv/k", Op: "put", Origin: "local", Conflict: false},
		{Seq: seq + 2, Key: "sib", Op: "put", Origin: "local", Conflict: false},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the feed after reidentify: %+v, want %+v", got, want)
	}
	// The re-stamped writes go out and reach o as they read at A.
	mustSync(t, a)
	mustSync(t, o)
	if ra, ro := getAll(a, "same", "sib", "gone", "mv/k"), getAll(o, "same", "sib", "gone", "mv/k"); fmt.Sprint(ra) != fmt.Sprint(ro) {
		t.Fatalf("after sync: A %v, o %v", ra, ro)
	}
}

// TestFeedRebase: a replica retired while offline rebases when it comes
// back, re-stamping its offline writes; its feed has no entry for the
// re-stamps (what Get returned for those keys never changed: a pending
// rebase reads them as kept), and has the keys the snapshot and the log
// brought, each key's last entry agreeing with Get: a key deleted
// elsewhere meanwhile, which the rebase learns from the snapshot, ends
// with a delete.
func TestFeedRebase(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := memremote.NewWithOptions("t", memremote.Options{Now: func() time.Time { now = now.Add(time.Second); return now }})
	if err != nil {
		t.Fatal(err)
	}
	a := newReplicaOpts(t, b, engine.Options{})
	away := newReplicaOpts(t, b, engine.Options{})
	for _, k := range []string{"shared", "stay", "old"} {
		if err := a.Put(ctx, k, []byte("a0")); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, a)
	mustSync(t, away)
	if err := a.Delete(ctx, "old"); err != nil { // away never pulls it: the snapshot has it
		t.Fatal(err)
	}
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
	if cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1}); err != nil || len(cs.Retired) != 1 {
		t.Fatalf("compact %+v, %v", cs, err)
	}
	seq := lastSeq(t, away)
	if _, err := away.Sync(ctx); err != nil {
		t.Fatalf("sync after retirement: %v", err)
	}
	mustSync(t, away)
	got := feedAfter(t, away, seq)
	last := map[string]engine.Change{}
	for _, c := range got {
		if c.Origin == "local" {
			t.Errorf("the rebase's feed has a local entry (a re-stamp that left the key reading as it did): %+v", c)
		}
		last[c.Key] = c
	}
	if c, ok := last["mine"]; ok {
		t.Errorf("mine read x all along, the feed has %+v", c)
	}
	for i := range 10 {
		k := fmt.Sprint("k", i)
		if c, ok := last[k]; !ok || c.Op != "put" || c.Origin != "remote" {
			t.Errorf("%s came from the snapshot or the log: last entry %+v (%v)", k, c, ok)
		}
	}
	for k, v := range map[string]string{"shared": "offline-edit", "mine": "x", "stay": "a0"} {
		if got, err := away.Get(k); err != nil || string(got) != v {
			t.Errorf("%s = %q, %v; want %q", k, got, err, v)
		}
	}
	if _, err := away.Get("old"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("old: %v, want not found", err)
	}
	// Whatever the feed says of a key last, Get agrees: the key that went
	// (deleted elsewhere, learnt from the snapshot) has a delete.
	for k, c := range last {
		_, err := away.Get(k)
		if (c.Op == "put") != (err == nil) {
			t.Errorf("%s: last entry %+v, Get %v", k, c, err)
		}
	}
	if c, ok := last["old"]; !ok || c.Op != "delete" {
		t.Errorf("old read a0 before the rebase and not found after: last entry %+v (%v), want a delete", c, ok)
	}
	if t.Failed() {
		t.Logf("the feed during the rebase: %+v", got)
	}
}
