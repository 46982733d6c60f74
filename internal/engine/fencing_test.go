package engine_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

func countLog(t *testing.T, b remote.Backend) int {
	t.Helper()
	n := 0
	for _, err := range b.List(context.Background(), remote.LogPrefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestCopiedDirectoryIsFenced copies a replica directory on disk: the
// second copy to push gets ErrCloned and publishes nothing; after
// reidentify it syncs and everything converges.
func TestCopiedDirectoryIsFenced(t *testing.T) {
	ctx := context.Background()
	b, err := fileremote.New(t.TempDir(), &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	a, err := engine.Init(dirA, "file://x", &engine.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "k", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	if err := a.Put(ctx, "shared-unpushed", []byte("u")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if out, err := exec.Command("cp", "-a", dirA, dirB).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	a, err = engine.Open(dirA, &engine.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := engine.Open(dirB, &engine.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a.ID() != c.ID() {
		t.Fatal("copy has another id")
	}
	if err := a.Put(ctx, "k", []byte("from-a")); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "k", []byte("from-copy")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(ctx); err != nil {
		t.Fatal(err)
	}
	n := countLog(t, b)
	_, err = c.Push(ctx)
	if !errors.Is(err, engine.ErrCloned) {
		t.Fatalf("push from the copy: %v", err)
	}
	if countLog(t, b) != n {
		t.Fatal("the copy published a segment")
	}
	// Its pull sees a segment under its id that it never staged.
	if _, err := c.Pull(ctx); !errors.Is(err, engine.ErrCloned) {
		t.Fatalf("pull on the copy: %v", err)
	}
	old := c.ID()
	nid, err := c.Reidentify(ctx)
	if err != nil || nid == old {
		t.Fatalf("reidentify: %v", err)
	}
	mustSync(t, c)
	mustSync(t, a)
	mustSync(t, c)
	if sa, sc := state(t, a), state(t, c); sa != sc {
		t.Fatalf("diverged after reidentify:\n%s\n%s", sa, sc)
	}
	// The copy's edit came back as a new edit that wins.
	if v, _ := a.Get("k"); string(v) != "from-copy" {
		t.Fatalf("k = %q", v)
	}
}

// TestRegistrySwapCrashIsNotAClone kills a pusher between the registry
// swap and persisting its ETag, and makes swaps ambiguous: never ErrCloned.
func TestRegistrySwapCrashIsNotAClone(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	n := newNode(t, b, 0, 0)
	if _, err := n.r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := n.r.Put(ctx, "k", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		n.crashAt = "registry:swapped"
		if _, err := n.r.Push(ctx); !errors.Is(err, errCrash) {
			t.Fatalf("push: %v", err)
		}
		n.crash()
		if _, err := n.r.Push(ctx); err != nil {
			t.Fatalf("push after a crash between swap and commit: %v", err)
		}
	}
	// Ambiguous swaps: every PutIfMatch lands but reports an error.
	fr := faultremote.New(b, rand.New(rand.NewPCG(1, 1)), faultremote.Options{AmbiguousRate: 1,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	n.b = fr
	n.r.Close()
	n.open()
	for i := range 5 {
		if err := n.r.Put(ctx, "k", []byte{byte(10 + i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.r.Push(ctx); err != nil {
			t.Fatalf("push with ambiguous writes: %v", err)
		}
	}
	if v, _ := n.r.Get("k"); v[0] != 14 {
		t.Fatalf("k = %v", v)
	}
}
