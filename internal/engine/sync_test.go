package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/enginetest"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

type fakeWall struct{ t time.Time }

func (w *fakeWall) now() time.Time { w.t = w.t.Add(time.Millisecond); return w.t }

// The helpers the fsck tests share (internal/enginetest).
var (
	backends       = enginetest.Backends
	state          = enginetest.State
	objects        = enginetest.Objects
	newReplicaOpts = enginetest.NewReplica
	mustSync       = enginetest.MustSync
)

func newReplica(t *testing.T, b remote.Backend, offset time.Duration) *engine.Engine {
	t.Helper()
	w := &fakeWall{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(offset)}
	r, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Backend: b, Wall: w.now, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, err := r.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func dump(t *testing.T, r *engine.Engine) string {
	t.Helper()
	out := ""
	for it, err := range r.Scan("") {
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s=%s(%d) ", it.Key, it.Value, it.NumVersions)
	}
	return out
}

func TestSyncConverges(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplica(t, b, 2*time.Hour)
	c := newReplica(t, b, -30*time.Minute)
	d := newReplica(t, b, 0)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Put(ctx, "x", []byte("a1")))
	must(c.Put(ctx, "x", []byte("c1")))
	must(d.Put(ctx, "y", []byte("d1")))
	for range 2 {
		for _, r := range []*engine.Engine{a, c, d} {
			mustSync(t, r)
		}
	}
	da, dc, dd := dump(t, a), dump(t, c), dump(t, d)
	if da != dc || dc != dd {
		t.Fatalf("diverged:\n%s\n%s\n%s", da, dc, dd)
	}
	// a is 2h ahead, so lww picks a1 among the concurrent writes.
	if v, _ := c.Get("x"); string(v) != "a1" {
		t.Fatalf("x = %q", v)
	}
	// c, 2.5h behind a, writes after seeing a's write: it wins.
	must(c.Put(ctx, "x", []byte("c2")))
	mustSync(t, c)
	mustSync(t, a)
	if v, _ := a.Get("x"); string(v) != "c2" {
		t.Fatalf("causally later write lost: x = %q", v)
	}
	if a.Len() != 2 || c.Len() != 2 {
		t.Fatalf("len %d %d", a.Len(), c.Len())
	}
}

func TestPushRequestCounts(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplica(t, b, 0)
	mustSync(t, a) // first pull (ready gate)
	for i := range 100 {
		if err := a.Put(ctx, fmt.Sprintf("k%03d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := a.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two PUTs (the registry swap, the segment) and one GET: the registry
	// read after the create that absence rule 3 requires before a commit.
	if ps.Requests.Put != 2 || ps.Requests.List != 0 || ps.Requests.Get != 1 || ps.Records != 100 {
		t.Fatalf("push stats %+v", ps)
	}
	pl, err := a.Pull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One LIST, plus the registry write that publishes the new ack.
	if pl.Requests.List != 1 || pl.Requests.Get != 0 || pl.Requests.Put > 1 || pl.Skipped != 1 {
		t.Fatalf("pull stats %+v", pl)
	}
	pl, err = a.Pull(ctx)
	if err != nil || pl.Requests.Requests() != 1 || pl.Requests.Get != 1 {
		t.Fatalf("idle pull %+v %v", pl, err)
	}
	if n := a.Store().OutboxLen(); n != 0 {
		t.Fatalf("pending %d", n)
	}
}

func TestClonedDirectoryFenced(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplica(t, b, 0)
	mustSync(t, a)
	id := a.ID()
	// A copy: same id, same registry state (simulate by opening a second
	// in-memory replica with the same id and copying the registry meta).
	c, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Backend: b, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Connect(ctx); !errors.Is(err, engine.ErrDuplicateID) {
		t.Fatalf("second registration of one id: %v", err)
	}
}
