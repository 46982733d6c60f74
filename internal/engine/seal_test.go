package engine_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

func sealKeys(t *testing.T) *sealremote.Keys {
	t.Helper()
	k, err := sealremote.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealedReplica opens a replica in memory on b with device key k
// (Encrypt: the first of a store) and connects it.
func sealedReplica(t *testing.T, b remote.Backend, k *sealremote.Keys, encrypt bool) (*engine.Engine, error) {
	t.Helper()
	r, err := engine.Open("", &engine.Options{InMemory: true, Create: true, Backend: b, Keys: k, Encrypt: encrypt, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	_, err = r.Connect(t.Context())
	return r, err
}

// grepBucket fails when any file under root holds any of needles.
func grepBucket(t *testing.T, root string, needles ...string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		for _, s := range needles {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds plaintext %q", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSealedStoreEndToEnd: two devices share an encrypted store on a
// directory remote through pushes, pulls, a compaction with pruning and
// a bootstrap from its snapshot; no object holds a key or a value in the
// clear; a device that is no recipient, or has no key, writes nothing.
func TestSealedStoreEndToEnd(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	fb, err := fileremote.New(root, &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ka, kb := sealKeys(t), sealKeys(t)
	a, err := sealedReplica(t, fb, ka, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := a.Put(ctx, fmt.Sprintf("zq-secret-key-%03d", i), fmt.Appendf(nil, "zq-secret-value-%03d-%s", i, strings.Repeat("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, a)
	// Not a recipient yet: a one-line ErrNoKey, and no registry written.
	if _, err := sealedReplica(t, fb, kb, false); !errors.Is(err, engine.ErrNoKey) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("stranger's Connect = %v", err)
	}
	// No key at all: refused before anything is written.
	if _, err := sealedReplica(t, fb, nil, false); !errors.Is(err, engine.ErrKeyRequired) {
		t.Fatalf("keyless Connect = %v", err)
	}
	regs := 0
	for info, err := range fb.List(ctx, remote.ReplicasPrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		regs++
		_ = info
	}
	if regs != 1 {
		t.Fatalf("%d registries after refused connects, want 1", regs)
	}
	sa, err := sealremote.Open(ctx, fb, storeID(t, fb), ka)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.AddRecipient(ctx, kb.Recipient()); err != nil {
		t.Fatal(err)
	}
	b, err := sealedReplica(t, fb, kb, false)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	if v, err := b.Get("zq-secret-key-007"); err != nil || !strings.HasPrefix(string(v), "zq-secret-value-007-") {
		t.Fatalf("b reads %q, %v", v, err)
	}
	if err := b.Delete(ctx, "zq-secret-key-000"); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "zq-secret-key-b", []byte("zq-secret-value-b")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	mustSync(t, a)
	// A rotation, then a compaction: the snapshot is sealed under the new
	// epoch (a's backend rotated itself; its engine reads keys/ afresh).
	epoch, err := sa.Rotate(ctx)
	if err != nil || epoch != 2 {
		t.Fatalf("Rotate = %d, %v", epoch, err)
	}
	// (no SetBackend: compaction reads keys/ afresh itself)
	if _, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1}); err != nil {
		t.Fatal(err)
	}
	snaps := 0
	for info, err := range fb.List(ctx, remote.SnapPrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		obj, err := fb.Get(ctx, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint32(obj.Data[1:5]); got != epoch {
			t.Errorf("%s is sealed under epoch %d, want %d", info.Key, got, epoch)
		}
		snaps++
	}
	if snaps < 2 {
		t.Fatalf("%d snapshot objects", snaps)
	}
	// A third device bootstraps from the sealed snapshot.
	kc := sealKeys(t)
	if _, err := sa.AddRecipient(ctx, kc.Recipient()); err != nil {
		t.Fatal(err)
	}
	c, err := sealedReplica(t, fb, kc, false)
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, c)
	if s, want := state(t, c), state(t, a); s != want {
		t.Fatalf("bootstrapped state differs:\n%s\nvs\n%s", s, want)
	}
	if rep, err := c.Verify(ctx, engine.VerifyOptions{}); err != nil || !rep.OK {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if n := grepBucket(t, root, "zq-secret", "secret-key", "secret-value", "vvvvvvvv"); n < 5 {
		t.Fatalf("only %d objects in the bucket", n)
	}
}

func storeID(t *testing.T, b remote.Backend) string {
	t.Helper()
	m, ok, err := engine.ReadManifest(t.Context(), b)
	if err != nil || !ok || !m.Encrypted() {
		t.Fatalf("manifest %+v: %v", m, err)
	}
	return m.RemoteID
}

// TestSealedTamper: a flipped byte in a sealed segment, and a segment
// swapped for another, stop the pull at that object, naming it, with
// nothing applied; verify reports each as corrupt.
func TestSealedTamper(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	fb, err := fileremote.New(root, &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ka := sealKeys(t)
	a, err := sealedReplica(t, fb, ka, true)
	if err != nil {
		t.Fatal(err)
	}
	// b connects first (registered, nothing pulled), sharing a's key.
	b, err := sealedReplica(t, fb, ka, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := a.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Push(ctx); err != nil {
			t.Fatal(err)
		}
	}
	seg := func(pos uint64) string { return filepath.Join(root, filepath.FromSlash(remote.LogKey(pos))) }
	one, err := os.ReadFile(seg(1))
	if err != nil {
		t.Fatal(err)
	}
	two, _ := os.ReadFile(seg(2))
	check := func(what string, pos uint64) {
		t.Helper()
		name := remote.LogKey(pos)
		_, err := b.Pull(ctx)
		if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: pull = %v, want corrupt naming %s", what, err, name)
		}
		if b.Len() != 0 {
			t.Fatalf("%s: %d keys applied", what, b.Len())
		}
		rep, err := b.Verify(ctx, engine.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range rep.Problems {
			found = found || p.Object == name && p.Kind == engine.KindCorrupt
		}
		if rep.OK || !found {
			t.Fatalf("%s: verify = %+v, want %s corrupt", what, rep.Problems, name)
		}
	}
	// Swapped: position 1 holds position 2's sealed body (a valid segment
	// of this store, sealed for another name).
	if err := os.WriteFile(seg(1), two, 0o644); err != nil {
		t.Fatal(err)
	}
	check("swapped", 1)
	flipped := bytes.Clone(one)
	flipped[len(flipped)/2] ^= 0x01
	if err := os.WriteFile(seg(1), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	check("flipped", 1)
	// Restored, the pull goes through.
	if err := os.WriteFile(seg(1), one, 0o644); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	if b.Len() != 2 {
		t.Fatalf("after restore, %d keys", b.Len())
	}
}

// TestKeyOnPlainStore: a key for a store that is not encrypted is
// refused, and a key without Encrypt for no store writes nothing.
func TestKeyOnPlainStore(t *testing.T) {
	fb, err := fileremote.New(t.TempDir(), &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealedReplica(t, fb, sealKeys(t), false); !errors.Is(err, engine.ErrNotEncrypted) {
		t.Fatalf("Connect with a key and no store = %v", err)
	}
	for info, err := range fb.List(t.Context(), "", "") {
		t.Fatalf("a refused connect wrote %s (%v)", info.Key, err)
	}
	if _, err := sealedReplica(t, fb, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := sealedReplica(t, fb, sealKeys(t), false); !errors.Is(err, engine.ErrNotEncrypted) {
		t.Fatalf("Connect with a key to a plain store = %v", err)
	}
}
