package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

func openTemp(t *testing.T, o *engine.Options) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	r, err := engine.Init(dir, "mem://test", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestPutGetDeleteLen(t *testing.T) {
	ctx := context.Background()
	r := openTemp(t, nil)
	if err := r.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, "b", []byte{}); err != nil {
		t.Fatal(err)
	}
	v, err := r.Get("a")
	if err != nil || string(v) != "1" {
		t.Fatalf("get a = %q, %v", v, err)
	}
	if v, err := r.Get("b"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("get b = %#v, %v", v, err)
	}
	if r.Len() != 2 {
		t.Fatalf("len %d", r.Len())
	}
	if err := r.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("a"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := r.Delete(ctx, "a"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if r.Len() != 1 || r.Store().OutboxLen() != 2 {
		t.Fatalf("len %d pending %d", r.Len(), r.Store().OutboxLen())
	}
}

func TestConcurrentPutsGroupCommit(t *testing.T) {
	ctx := context.Background()
	r := openTemp(t, nil)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := r.Put(ctx, fmt.Sprintf("k%02d-%03d", g, i), []byte("v")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if r.Len() != 800 {
		t.Fatalf("len %d", r.Len())
	}
	var n int64
	err := r.Store().View(func(v *store.View) error {
		var err error
		n, err = v.CountLive()
		return err
	})
	if err != nil || n != 800 {
		t.Fatalf("count %d %v", n, err)
	}
	t.Logf("commits for 800 puts: %d", r.Store().Commits())
}
