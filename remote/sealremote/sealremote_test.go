package sealremote_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/remote/segment"
)

func newKeys(t testing.TB) *sealremote.Keys {
	t.Helper()
	k, err := sealremote.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealed(t testing.TB, inner remote.Backend, storeID string, k *sealremote.Keys) *sealremote.Backend {
	t.Helper()
	b, id, err := sealremote.Create(t.Context(), inner, storeID, k)
	if err != nil || id != storeID {
		t.Fatal(id, err)
	}
	return b
}

// emptied returns a sealing backend over inner with its key objects
// deleted once loaded (refresh off): the suite wants an empty backend.
func emptied(t *testing.T, inner remote.Backend) remote.Backend {
	t.Helper()
	b := sealed(t, inner, "store-1", newKeys(t))
	b.RefreshEvery = -1
	for info, err := range inner.List(t.Context(), sealremote.KeysPrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		if err := inner.Delete(t.Context(), info.Key); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestConformanceMem(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return emptied(t, memremote.New(t.Name()))
	})
}

func TestConformanceFile(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		fb, err := fileremote.New(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return emptied(t, fb)
	})
}

// TestConformanceS3: the suite over the seal on the real S3 test server
// (versitygw; skipped without it, failing under CI).
func TestConformanceS3(t *testing.T) {
	srv := s3test.Config(t)
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		client, bucket := srv.NewBucket(t)
		be, err := s3remote.New(client, bucket, "sealed", nil)
		if err != nil {
			t.Fatal(err)
		}
		return emptied(t, be)
	})
}

// emptiedB is a sealing backend over inner with refresh off, for benchmarks.
func emptiedB(b *testing.B, inner remote.Backend) *sealremote.Backend {
	s := sealed(b, inner, "store-1", newKeys(b))
	s.RefreshEvery = -1
	return s
}

// TestNoPlaintext: the stored body shows nothing of what was put.
func TestNoPlaintext(t *testing.T) {
	mem := memremote.New("m")
	b := sealed(t, mem, "s1", newKeys(t))
	secret := []byte("the-secret-value-0123456789")
	if _, err := b.Put(t.Context(), "log/00000000000000000001", secret); err != nil {
		t.Fatal(err)
	}
	raw, err := mem.Get(t.Context(), "log/00000000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Data, secret) || len(raw.Data) != len(secret)+sealremote.Overhead {
		t.Fatalf("stored body %q", raw.Data)
	}
	got, err := b.Get(t.Context(), "log/00000000000000000001")
	if err != nil || !bytes.Equal(got.Data, secret) {
		t.Fatalf("Get = %q, %v", got.Data, err)
	}
}

// TestTamperSwapMove: a flipped byte, a body moved to another name, and a
// body of another store all fail as corrupt, naming the object.
func TestTamperSwapMove(t *testing.T) {
	ctx := t.Context()
	mem := memremote.New("m")
	k := newKeys(t)
	b := sealed(t, mem, "s1", k)
	for _, n := range []string{"log/00000000000000000001", "log/00000000000000000002"} {
		if _, err := b.Put(ctx, n, []byte("body of "+n)); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(n string) []byte {
		o, err := mem.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return o.Data
	}
	wantCorrupt := func(what, name string) {
		t.Helper()
		_, err := b.Get(ctx, name)
		if !errors.Is(err, segment.ErrCorrupt) || !errors.Is(err, sealremote.ErrTampered) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: Get = %v, want a corrupt error naming %s", what, err, name)
		}
	}
	// Swap: position 2 gets position 1's sealed body.
	if _, err := mem.Put(ctx, "log/00000000000000000002", raw("log/00000000000000000001")); err != nil {
		t.Fatal(err)
	}
	wantCorrupt("swapped", "log/00000000000000000002")
	// Flip one byte of the ciphertext.
	d := raw("log/00000000000000000001")
	d[len(d)-20] ^= 1
	if _, err := mem.Put(ctx, "log/00000000000000000001", d); err != nil {
		t.Fatal(err)
	}
	wantCorrupt("flipped", "log/00000000000000000001")
	// Another store's body, same name and same device key.
	other := sealed(t, memremote.New("o"), "s2", k)
	if _, err := other.Put(ctx, "log/00000000000000000003", []byte("x")); err != nil {
		t.Fatal(err)
	}
	o3, _ := other.Inner().Get(ctx, "log/00000000000000000003")
	if _, err := mem.Put(ctx, "log/00000000000000000003", o3.Data); err != nil {
		t.Fatal(err)
	}
	wantCorrupt("other store", "log/00000000000000000003")
	// Truncated.
	if _, err := mem.Put(ctx, "log/00000000000000000004", []byte{1, 0}); err != nil {
		t.Fatal(err)
	}
	wantCorrupt("truncated", "log/00000000000000000004")
}

// TestDevices: a second device opens the store once added; a removed
// device cannot read what is written after its removal, nor forge the
// next epoch; a key that is no recipient gets ErrNoKey.
func TestDevices(t *testing.T) {
	ctx := t.Context()
	mem := memremote.New("m")
	ka, kb, kc := newKeys(t), newKeys(t), newKeys(t)
	a := sealed(t, mem, "s1", ka)
	if _, err := sealremote.Open(ctx, mem, "s1", kb); !errors.Is(err, sealremote.ErrNoKey) || !strings.Contains(err.Error(), kb.Recipient()) {
		t.Fatalf("Open with a stranger's key = %v", err)
	}
	if _, err := a.Put(ctx, "log/00000000000000000001", []byte("before")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []*sealremote.Keys{kb, kc} {
		if _, err := a.AddRecipient(ctx, k.Recipient()); err != nil {
			t.Fatal(err)
		}
	}
	c, err := sealremote.Open(ctx, mem, "s1", kc)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "log/00000000000000000001"); err != nil || string(got.Data) != "before" {
		t.Fatalf("added device reads %q, %v", got.Data, err)
	}
	rs, err := a.Recipients(ctx)
	if err != nil || len(rs) != 3 {
		t.Fatalf("Recipients = %v, %v", rs, err)
	}
	if _, err := a.Rotate(ctx, ka.Recipient()); err == nil {
		t.Fatal("removing this device's own key was accepted")
	}
	e, err := a.Rotate(ctx, kc.Recipient())
	if err != nil || e != 2 {
		t.Fatalf("Rotate = %d, %v", e, err)
	}
	if _, err := a.Put(ctx, "log/00000000000000000002", []byte("after")); err != nil {
		t.Fatal(err)
	}
	// The removed device: its old backend cannot open the new object, and
	// a fresh open says it was removed.
	if _, err := c.Get(ctx, "log/00000000000000000002"); err == nil {
		t.Fatal("the removed device read an object written after its removal")
	}
	if _, err := sealremote.Open(ctx, mem, "s1", kc); !errors.Is(err, sealremote.ErrNoKey) || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("Open by the removed device = %v", err)
	}
	// b is still a recipient and reads both.
	bb, err := sealremote.Open(ctx, mem, "s1", kb)
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]string{"log/00000000000000000001": "before", "log/00000000000000000002": "after"} {
		if got, err := bb.Get(ctx, n); err != nil || string(got.Data) != want {
			t.Fatalf("b reads %s = %q, %v", n, got.Data, err)
		}
	}
	rs, _ = a.Recipients(ctx)
	if len(rs) != 2 {
		t.Fatalf("after remove, recipients %v", rs)
	}
	// The removed device forges epoch 3 with a key of its own, endorsed by
	// the only key it has (epoch 1): the others refuse it.
	if err := forgeEpoch(t, mem, kc, []string{ka.Recipient(), kb.Recipient()}); err != nil {
		t.Fatal(err)
	}
	if _, err := sealremote.Open(ctx, mem, "s1", kb); !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), "endorsed") {
		t.Fatalf("Open after a forged epoch = %v", err)
	}
}

// forgeEpoch writes keys/0000000003-* as a removed device could: a key it
// chose, wrapped for the others, endorsed by epoch 1's key (the only one
// it holds). It builds the objects by rotating a copy of the store.
func forgeEpoch(t *testing.T, mem *memremote.Backend, k *sealremote.Keys, others []string) error {
	ctx := t.Context()
	cp := memremote.New("copy")
	for info, err := range mem.List(ctx, sealremote.KeysPrefix, "") {
		if err != nil {
			return err
		}
		e := info.Key[len(sealremote.KeysPrefix):][:10]
		if e != "0000000001" {
			continue // the copy holds only what the removed device could read
		}
		o, err := mem.Get(ctx, info.Key)
		if err != nil {
			return err
		}
		if _, err := cp.Put(ctx, info.Key, o.Data); err != nil {
			return err
		}
	}
	// A fake epoch 2 marker-less leftover makes the copy's next epoch 3.
	if _, err := cp.Put(ctx, "keys/0000000002-r-0000000000000000", []byte("{}")); err != nil {
		return err
	}
	f, err := sealremote.Open(ctx, cp, "s1", k)
	if err != nil {
		return err
	}
	for _, r := range others {
		if _, err := f.AddRecipient(ctx, r); err != nil {
			return err
		}
	}
	if _, err := f.Rotate(ctx); err != nil {
		return err
	}
	for info, err := range cp.List(ctx, "keys/0000000003", "") {
		if err != nil {
			return err
		}
		o, _ := cp.Get(ctx, info.Key)
		if _, err := mem.Put(ctx, info.Key, o.Data); err != nil {
			return err
		}
	}
	return nil
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	k := newKeys(t)
	if err := sealremote.WriteKeyFile(p, k); err != nil {
		t.Fatal(err)
	}
	if err := sealremote.WriteKeyFile(p, newKeys(t)); err == nil {
		t.Fatal("a key file was overwritten")
	}
	got, err := sealremote.LoadKeyFile(p)
	if err != nil || got.Recipient() != k.Recipient() {
		t.Fatalf("LoadKeyFile = %v, %v", got, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sealremote.LoadKeyFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a readable key file: %v", err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not a key\n"), 0o600)
	if _, err := sealremote.LoadKeyFile(junk); err == nil {
		t.Fatal("junk accepted as a key file")
	}
	if _, err := sealremote.ParseRecipient("age1nope"); err == nil {
		t.Fatal("a bad recipient was accepted")
	}
}

// TestCreateResumes: an init that stopped part way can run again: after
// its marker landed (store.json not yet written) Create returns the store
// id the keys are bound to; after only its wrapped key landed it reuses
// that key; another device's keys are refused.
func TestCreateResumes(t *testing.T) {
	ctx := t.Context()
	mem := memremote.New("m")
	k := newKeys(t)
	first := sealed(t, mem, "first-id", k)
	if _, err := first.Put(ctx, "log/00000000000000000001", []byte("x")); err != nil {
		t.Fatal(err)
	}
	again, id, err := sealremote.Create(ctx, mem, "second-id", k)
	if err != nil || id != "first-id" {
		t.Fatalf("Create again = %q, %v", id, err)
	}
	if got, err := again.Get(ctx, "log/00000000000000000001"); err != nil || string(got.Data) != "x" {
		t.Fatalf("resumed backend reads %q, %v", got.Data, err)
	}
	if _, _, err := sealremote.Create(ctx, mem, "third-id", newKeys(t)); !errors.Is(err, sealremote.ErrRotating) {
		t.Fatalf("Create over another device's keys = %v", err)
	}
	// Only the wrapped key landed: the marker is written with it.
	if err := mem.Delete(ctx, "keys/0000000001-epoch"); err != nil {
		t.Fatal(err)
	}
	b, id, err := sealremote.Create(ctx, mem, "fourth-id", k)
	if err != nil || id != "fourth-id" {
		t.Fatalf("Create after a lost marker = %q, %v", id, err)
	}
	if _, err := sealremote.Open(ctx, mem, "fourth-id", k); err != nil {
		t.Fatal(err)
	}
	_ = b
}
