package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// engineDump renders every key and value of a memory engine.
func engineDump(t *testing.T, eng *store.Mem) string {
	t.Helper()
	var b strings.Builder
	err := eng.View(func(r store.Reader) error {
		return r.Scan(nil, nil, func(k, v []byte) (bool, error) {
			fmt.Fprintf(&b, "%q=%x\n", k, v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ignoringServer wraps inner in a server that ignores the given conditions.
func ignoringServer(inner remote.Backend, ifNoneMatch, ifMatch bool) remote.Backend {
	return faultremote.New(inner, rand.New(rand.NewPCG(3, 4)), faultremote.Options{
		IgnoreIfNoneMatch: ifNoneMatch, IgnoreIfMatch: ifMatch,
	})
}

// probeNode is a replica on a memory engine that survives reopening, with a
// wall clock the test sets.
type probeNode struct {
	t    *testing.T
	eng  *store.Mem
	id   clock.ReplicaID
	wall time.Time
	r    *engine.Engine
}

func newProbeNode(t *testing.T) *probeNode {
	n := &probeNode{t: t, eng: store.NewMem(), id: clock.NewReplicaID(), wall: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	t.Cleanup(func() {
		if n.r != nil {
			n.r.Close()
		}
	})
	return n
}

// open (re)opens the replica on b, as a new process would.
func (n *probeNode) open(b remote.Backend) {
	n.t.Helper()
	if n.r != nil {
		n.r.Close()
	}
	r, err := engine.Open("", &engine.Options{Engine: n.eng, Create: true, ID: n.id, Backend: b,
		Wall: func() time.Time { return n.wall }, Durability: store.Relaxed})
	if err != nil {
		n.t.Fatal(err)
	}
	n.r = r
}

func TestConnectRefusesStoreIgnoringConditionalWrites(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name                 string
		ifNoneMatch, ifMatch bool
		want                 string
	}{
		{"IfNoneMatch", true, false, "ignores If-None-Match"},
		{"IfMatch", false, true, "ignores If-Match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := memremote.New("t")
			n := newProbeNode(t)
			n.open(ignoringServer(inner, tc.ifNoneMatch, tc.ifMatch))
			if err := n.r.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			before := engineDump(t, n.eng)
			created, err := n.r.Connect(ctx)
			if !errors.Is(err, remote.ErrNoConditionalWrites) || !strings.Contains(err.Error(), tc.want) || created {
				t.Fatalf("Connect to a store that %s = %v, %v; want ErrNoConditionalWrites", tc.want, created, err)
			}
			if after := engineDump(t, n.eng); after != before {
				t.Errorf("a refused Connect changed local state:\nbefore %s\nafter  %s", before, after)
			}
			if objs := inner.Objects(); len(objs) != 0 {
				t.Errorf("a refused Connect left %d objects on the remote", len(objs))
			}
			// Push and pull connect first, and are refused the same way.
			if _, err := n.r.Push(ctx); !errors.Is(err, remote.ErrNoConditionalWrites) {
				t.Errorf("push: %v", err)
			}
			if _, err := n.r.Pull(ctx); !errors.Is(err, remote.ErrNoConditionalWrites) {
				t.Errorf("pull: %v", err)
			}
			// The same replica, pointed at a server that honours them,
			// creates the store and pushes its write.
			n.r.SetBackend(inner)
			if created, err := n.r.Connect(ctx); err != nil || !created {
				t.Fatalf("Connect to a good store: %v, %v", created, err)
			}
			if _, err := n.r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if n.r.Store().OutboxLen() != 0 {
				t.Fatalf("pending %d", n.r.Store().OutboxLen())
			}
		})
	}
}

// TestConnectProbesDaily: a connect probes when it registers the replica,
// and then only when the last success is a day old (or in the future), so
// a push and an idle pull of a reopened replica cost what they did.
func TestConnectProbesDaily(t *testing.T) {
	ctx := context.Background()
	inner := memremote.New("t")
	bad := ignoringServer(inner, true, true)
	n := newProbeNode(t)
	probes := func(fn func()) int64 {
		before := inner.Stats().Snapshot()
		fn()
		return inner.Stats().Snapshot().Sub(before).Delete // the probe's cleanup is the only DELETE
	}

	n.open(inner)
	if p := probes(func() {
		if _, err := n.r.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}); p != 1 {
		t.Fatalf("registering connect probed %d times, want 1", p)
	}
	if _, err := n.r.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// Reopened within the day: no probe; an uncontended push is 2 PUTs,
	// an idle pull 1 request.
	n.wall = n.wall.Add(engine.ProbeMaxAge - time.Minute)
	n.open(inner)
	if err := n.r.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	ps, err := n.r.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Requests.Put != 2 || ps.Requests.List != 0 || ps.Requests.Delete != 0 {
		t.Fatalf("first push after reopening: %+v", ps.Requests)
	}
	if _, err := n.r.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	n.open(inner)
	pl, err := n.r.Pull(ctx)
	if err != nil || pl.Requests.Requests() != 1 {
		t.Fatalf("idle pull after reopening: %+v %v", pl.Requests, err)
	}

	// Within the day a server that started ignoring conditions goes
	// unnoticed (that is the price of a free connect) ...
	n.open(bad)
	if _, err := n.r.Connect(ctx); err != nil {
		t.Fatalf("connect within the day: %v", err)
	}
	// ... and a day after the last probe, it is refused.
	n.wall = n.wall.Add(time.Minute)
	n.open(bad)
	if _, err := n.r.Connect(ctx); !errors.Is(err, remote.ErrNoConditionalWrites) {
		t.Fatalf("connect a day after the last probe: %v", err)
	}
	// A refused probe records nothing: the next connect probes again.
	n.open(inner)
	if p := probes(func() {
		if _, err := n.r.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}); p != 1 {
		t.Fatalf("connect after a refused probe probed %d times, want 1", p)
	}
	n.open(inner)
	if p := probes(func() { _, _ = n.r.Connect(ctx) }); p != 0 {
		t.Fatalf("connect right after a probe probed %d times", p)
	}

	// A wall clock set back before the last probe: probe again.
	n.wall = n.wall.Add(-time.Hour)
	n.open(inner)
	if p := probes(func() {
		if _, err := n.r.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}); p != 1 {
		t.Fatalf("connect with the clock set back probed %d times, want 1", p)
	}
}

// TestRegisteringConnectAlwaysProbes: a connect that registers the replica
// probes even with a fresh probe on record. Here the record is left by a
// registration refused as a duplicate id; without the probe, the retry on
// a server that ignores If-None-Match would overwrite the other replica's
// registry object.
func TestRegisteringConnectAlwaysProbes(t *testing.T) {
	ctx := context.Background()
	inner := memremote.New("t")
	a := newProbeNode(t)
	a.open(inner)
	if _, err := a.r.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b := newProbeNode(t)
	b.id = a.id
	b.open(inner)
	if _, err := b.r.Connect(ctx); !errors.Is(err, engine.ErrDuplicateID) {
		t.Fatalf("a second replica with the same id: %v", err)
	}
	objs := inner.Objects()
	b.open(ignoringServer(inner, true, false))
	before := engineDump(t, b.eng)
	if _, err := b.r.Connect(ctx); !errors.Is(err, remote.ErrNoConditionalWrites) {
		t.Fatalf("registering on an ignoring server with a fresh probe on record: %v", err)
	}
	if engineDump(t, b.eng) != before {
		t.Error("a refused registration changed local state")
	}
	if after := inner.Objects(); len(after) != len(objs) {
		t.Errorf("a refused registration changed the remote: %d objects, had %d", len(after), len(objs))
	} else {
		for k, v := range objs {
			if string(after[k]) != string(v) {
				t.Errorf("a refused registration rewrote %s", k)
			}
		}
	}
}
