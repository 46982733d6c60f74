package sim

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/replica"
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

func openReplica(t *testing.T, b remote.Backend) *replica.Replica {
	t.Helper()
	r, err := replica.Open("", &replica.Options{Engine: store.NewMem(), Create: true, Backend: b,
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
