package memremote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

func TestConformance(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return memremote.New(t.Name())
	})
}

func TestConformanceSmallPages(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		b, err := memremote.NewWithOptions(t.Name(), memremote.Options{PageSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func BenchmarkMemremote(b *testing.B) {
	remotetest.RunBenchmarks(b, func(b *testing.B) remote.Backend { return memremote.New(b.Name()) })
}

func TestOptions(t *testing.T) {
	if _, err := memremote.NewWithOptions("x", memremote.Options{PageSize: -1}); err == nil {
		t.Error("negative PageSize accepted")
	}
}

func TestDeterministic(t *testing.T) {
	run := func() []string {
		b := memremote.New("det")
		ctx := context.Background()
		var trace []string
		for i := range 5 {
			etag, err := b.Put(ctx, "k", []byte("same"))
			if err != nil {
				t.Fatal(err)
			}
			obj, _ := b.Get(ctx, "k")
			trace = append(trace, etag, obj.LastModified.Format(time.RFC3339Nano))
			if i == 2 {
				if err := b.Delete(ctx, "k"); err != nil {
					t.Fatal(err)
				}
			}
		}
		return trace
	}
	a, c := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(c) {
		t.Fatalf("two runs differ:\n%q\n%q", a, c)
	}
	// Same content, new write: new ETag (the per-key counter survives
	// deletes), and the logical clock moved 1 ms per write.
	seen := map[string]bool{}
	for i := 0; i < len(a); i += 2 {
		if seen[a[i]] {
			t.Errorf("ETag %s reused", a[i])
		}
		seen[a[i]] = true
	}
	if want := memremote.Epoch.Add(time.Millisecond).Format(time.RFC3339Nano); a[1] != want {
		t.Errorf("first LastModified %s, want %s", a[1], want)
	}
}

func TestClock(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	b, err := memremote.NewWithOptions("clock", memremote.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := b.Put(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	obj, err := b.Get(ctx, "k")
	if err != nil || !obj.LastModified.Equal(now) {
		t.Fatalf("LastModified = %v, %v; want %v", obj.LastModified, err, now)
	}
	later := now.Add(time.Hour)
	b.SetClock(func() time.Time { return later })
	if _, err := b.Put(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	for info, err := range b.List(ctx, "", "") {
		if err != nil || !info.LastModified.Equal(later) {
			t.Fatalf("List LastModified = %v, %v; want %v", info.LastModified, err, later)
		}
	}
}

func TestDirectAccess(t *testing.T) {
	b := memremote.New("direct")
	ctx := context.Background()
	etag, err := b.Put(ctx, "a/1", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "a/2", []byte("two")); err != nil {
		t.Fatal(err)
	}
	before := b.Stats().Snapshot()

	snap := b.Objects()
	if len(snap) != 2 || string(snap["a/1"]) != "one" || string(snap["a/2"]) != "two" {
		t.Fatalf("Objects() = %q", snap)
	}
	snap["a/1"][0] = 'X' // a copy
	if err := b.SetObject("a/1", []byte("damaged")); err != nil {
		t.Fatal(err)
	}
	obj, err := b.Get(ctx, "a/1")
	if err != nil || string(obj.Data) != "damaged" || obj.ETag == etag {
		t.Fatalf("after SetObject: %q %s %v", obj.Data, obj.ETag, err)
	}
	if _, err := b.PutIfMatch(ctx, "a/1", []byte("x"), etag); !errors.Is(err, remote.ErrPrecondition) {
		t.Fatalf("CAS with the ETag before SetObject = %v", err)
	}
	if !b.RemoveObject("a/2") || b.RemoveObject("a/2") {
		t.Fatal("RemoveObject reported wrongly")
	}
	if got := b.Keys(); len(got) != 1 || got[0] != "a/1" || b.Len() != 1 {
		t.Fatalf("Keys() = %q", got)
	}
	if err := b.SetObject("bad//key", nil); !errors.Is(err, remote.ErrInvalidKey) {
		t.Fatalf("SetObject(bad key) = %v", err)
	}
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	got := b.Objects()
	if len(got) != 2 || !bytes.Equal(got["a/1"], []byte("Xne")) || string(got["a/2"]) != "two" {
		t.Fatalf("after Restore: %q", got)
	}
	// Gets above counted; direct access did not.
	if d := b.Stats().Snapshot().Sub(before); d != (remote.Counts{Get: 1, Put: 1, BytesIn: 7, BytesOut: 1}) {
		t.Errorf("counters moved by %+v", d)
	}
}

func TestListPages(t *testing.T) {
	b, err := memremote.NewWithOptions("pages", memremote.Options{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 9 {
		if _, err := b.Put(ctx, fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		startAfter string
		n, pages   int
	}{{"", 9, 3}, {"k0", 8, 3}, {"k2", 6, 2}, {"k8", 0, 1}} {
		before := b.Stats().Snapshot()
		n := 0
		for _, err := range b.List(ctx, "k", tc.startAfter) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if d := b.Stats().Snapshot().Sub(before); n != tc.n || d.List != int64(tc.pages) {
			t.Errorf("List after %q: %d objects in %d pages, want %d in %d", tc.startAfter, n, d.List, tc.n, tc.pages)
		}
	}
}
