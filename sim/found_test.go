package sim

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// Bugs the simulator found in replica/registry.go, reduced to plain
// tests. Both were fixed by the owners (adopt a new ETag over our own
// last body; read the manifest until two reads agree).

// damaging corrupts the first read of one object by replacing old with
// new in its bytes, as a flipped bit can (a nil error, no checksum to
// catch it).
type damaging struct {
	remote.Backend
	key      string
	old, new []byte
	done     atomic.Bool
}

func (d *damaging) Get(ctx context.Context, key string) (remote.Object, error) {
	obj, err := d.Backend.Get(ctx, key)
	if err == nil && key == d.key && bytes.Contains(obj.Data, d.old) && d.done.CompareAndSwap(false, true) {
		obj.Data = bytes.Replace(obj.Data, d.old, d.new, 1)
	}
	return obj, err
}

func openReplica(t *testing.T, b remote.Backend) *engine.Engine {
	t.Helper()
	r, err := engine.Open("", &engine.Options{Engine: store.NewMem(), Create: true, Backend: b,
		Wall: func() time.Time { return Epoch }, ID: clock.NewReplicaID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestManifestDamagedReadGivesNoVerdict: store.json carries no checksum;
// one damaged read of a store that does use lww (a flipped bit turning
// "lww" into "lxw") stopped a joining replica with ErrPolicyMismatch
// ("remote store uses other merge policies"), found by the sweep at high
// fault rates.
func TestManifestDamagedReadGivesNoVerdict(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("found")
	if _, err := openReplica(t, mem).Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b := openReplica(t, &damaging{Backend: mem, key: remote.ManifestKey, old: []byte(`"lww"`), new: []byte(`"lxw"`)})
	if _, err := b.Connect(ctx); err != nil {
		t.Fatalf("one damaged read of store.json stops a replica of the same store: %v", err)
	}
}

// TestRegistryRewrittenWithItsOwnBytes: a registry object rewritten with
// the same bytes under a new ETag (a restored or copied bucket, a store
// that re-applies a delayed create) wedged every later push of its
// replica: the swap read back its own last nonce, took it for "the swap
// did not land", retried with the stale ETag and gave up — on every push.
// Found by the sweep through late duplicates of create-only writes.
func TestRegistryRewrittenWithItsOwnBytes(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("found")
	a := openReplica(t, mem)
	if err := a.Put(ctx, "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(ctx); err != nil {
		t.Fatal(err)
	}
	key := remote.RegistryKey(a.ID())
	if err := mem.SetObject(key, mem.Objects()[key]); err != nil { // same bytes, new ETag
		t.Fatal(err)
	}
	for i := range 3 {
		if err := a.Put(ctx, "k", []byte{byte('2' + i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Push(ctx); err != nil {
			t.Fatalf("push %d after the registry object was rewritten with its own bytes: %v", i+1, err)
		}
	}
}

// Bugs the simulator found in the engine's compaction (issue 7; then replica/snapshot.go), reduced to
// plain tests. They fail until the owners fix them; the sweep counts them
// (Report.RetiredCompacts, StuckRebases, RebaseLost) instead of failing.

// failing fails the Gets and create-only Puts of keys containing prefix,
// while on is set.
type failing struct {
	remote.Backend
	prefix string
	on     atomic.Bool
}

func (f *failing) Get(ctx context.Context, key string) (remote.Object, error) {
	if f.on.Load() && strings.Contains(key, f.prefix) {
		return remote.Object{}, fmt.Errorf("injected: %w", remote.ErrTransient)
	}
	return f.Backend.Get(ctx, key)
}

func (f *failing) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	if f.on.Load() && strings.Contains(key, f.prefix) {
		return "", fmt.Errorf("injected: %w", remote.ErrTransient)
	}
	return f.Backend.PutIfAbsent(ctx, key, data)
}

// retireWorld is two replicas on one store whose server clock the test
// moves, each through its own wrapper: A and B sync, B writes k=offline
// without syncing, an hour passes.
func retireWorld(t *testing.T, dirty bool, wrapA, wrapB func(remote.Backend) remote.Backend) (a, b *engine.Engine) {
	t.Helper()
	ctx := context.Background()
	now := Epoch
	mem, err := memremote.NewWithOptions("found", memremote.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	open := func(be remote.Backend) *engine.Engine {
		r, err := engine.Open("", &engine.Options{Engine: store.NewMem(), Create: true, Backend: be,
			Wall: func() time.Time { return now }, ID: clock.NewReplicaID(), AckInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b = open(wrapA(mem)), open(wrapB(mem))
	for _, r := range []*engine.Engine{a, b, a} {
		if err := r.Put(ctx, "seed", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if dirty {
		if err := b.Put(ctx, "k", []byte("offline")); err != nil {
			t.Fatal(err)
		}
	}
	// A moves on without B, so B's ack holds the prune floor down (only
	// such a replica is retired: absence rule 7).
	if err := a.Put(ctx, "later", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	return a, b
}

func same(b remote.Backend) remote.Backend { return b }

// TestFoundCompactOnRetiredReplica: Compact on a replica that was retired
// while silent, with nothing staged and nothing new to pull, fails with
// ErrRetired at its own registry swap instead of rebasing as a push or a
// pull does (Compact's swapRegistry after pullLocked). Found by the
// collection sweep (seed 2500: "A compact ... failed with replica: this
// replica was retired by its peers").
func TestFoundCompactOnRetiredReplica(t *testing.T) {
	ctx := context.Background()
	a, b := retireWorld(t, false, same, same)
	cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1, RetireAfter: time.Minute})
	if err != nil || len(cs.Retired) != 1 {
		t.Fatalf("compact: %+v %v", cs, err)
	}
	if _, err := b.Compact(ctx, engine.CompactOptions{}); err != nil {
		t.Fatalf("compact on a retired replica must rebase, not fail: %v", err)
	}
}

// TestFoundRetiredWithoutSnapshot: Compact retires silent replicas before
// it writes its snapshot. When it then fails (here a transient error
// writing a snapshot part), the retired replica has no snapshot to rebase
// on: its every push and pull fails with "rebase: no snapshot" until some
// other compaction succeeds. Found by the collection sweep (seeds 2641,
// 2669, 4141, 6528).
func TestFoundRetiredWithoutSnapshot(t *testing.T) {
	ctx := context.Background()
	fa := &failing{prefix: remote.SnapPrefix}
	a, b := retireWorld(t, true, func(m remote.Backend) remote.Backend { fa.Backend = m; return fa }, same)
	fa.on.Store(true)
	// Fixed: a compaction retires only after its snapshot is written, so
	// one that fails on the snapshot retires nobody.
	cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1, RetireAfter: time.Minute})
	if err == nil || len(cs.Retired) != 0 {
		t.Fatalf("the compaction was to fail on its snapshot, retiring nobody: %+v %v", cs, err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatalf("B, retired by a compaction that wrote no snapshot, cannot sync: %v", err)
	}
}

// TestFoundRebaseLosesOfflineEdits: rebase deletes the records and dirty
// marks (synced) and keeps the offline edits in memory only until it has
// loaded the snapshot and pulled; a transient error in between (or a
// crash) loses them: the next rebase finds nothing dirty. Found by the
// collection sweep (seed 2600: an offline batch of C, retired, lost when
// C's compaction hit a read timeout mid-rebase; "siblings: k0=C30.0 is
// missing").
func TestFoundRebaseLosesOfflineEdits(t *testing.T) {
	ctx := context.Background()
	fb := &failing{prefix: "/part-"}
	a, b := retireWorld(t, true, same, func(m remote.Backend) remote.Backend { fb.Backend = m; return fb })
	if cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1, RetireAfter: time.Minute}); err != nil || len(cs.Retired) != 1 {
		t.Fatalf("compact: %+v %v", cs, err)
	}
	fb.on.Store(true)
	if _, err := b.Sync(ctx); err == nil {
		t.Fatal("the rebase was to fail reading the snapshot")
	}
	// A write between the interrupted rebase and its resumption is kept
	// too (sweep seed 4764).
	if err := b.Put(ctx, "between", []byte("later")); err != nil {
		t.Fatal(err)
	}
	fb.on.Store(false)
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get("k"); err != nil || string(v) != "offline" {
		t.Fatalf("B's offline edit k=offline is gone after a rebase that failed once: %q %v", v, err)
	}
	if v, err := b.Get("between"); err != nil || string(v) != "later" {
		t.Fatalf("a write made while the rebase was interrupted is gone: %q %v", v, err)
	}
}
