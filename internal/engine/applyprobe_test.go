package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// writer300 opens an in-memory replica on be and writes k0000..k0299
// (value "a") in one batch, the i-th write to key number at(i).
func writer300(t *testing.T, be *memremote.Backend, at func(i int) int) *engine.Engine {
	t.Helper()
	a, err := engine.Open("", &engine.Options{Engine: store.NewMem(), Create: true, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Batch(context.Background(), func(b *engine.Batch) error {
		for i := range 300 {
			b.Put(fmt.Sprintf("k%04d", at(i)), []byte("a"))
		}
		return nil
	}); err != nil {
		a.Close()
		t.Fatal(err)
	}
	return a
}

// probeSource pushes k0000..k0299 (value "a") from a replica of its own
// to a new memremote: one segment, in key order.
func probeSource(t *testing.T) *memremote.Backend {
	t.Helper()
	ctx := context.Background()
	be := memremote.New("probe")
	a := writer300(t, be, func(i int) int { return i })
	defer a.Close()
	if ps, err := a.Push(ctx); err != nil || ps.Records != 300 {
		t.Fatalf("push: %+v, %v", ps, err)
	}
	return be
}

// TestPullIntoNewReplicaLooksUpNoRecord: a new replica pulling a segment
// finds each chunk's key range empty with one probe and reads no record
// (before, it looked up each of the 300 keys, and each lookup missed).
func TestPullIntoNewReplicaLooksUpNoRecord(t *testing.T) {
	be := probeSource(t)
	eng := &countingEngine{Mem: store.NewMem(), gets: map[string]int{}}
	b, err := engine.Open("", &engine.Options{Engine: eng, Create: true, Backend: be,
		Hooks: &engine.Hooks{ApplyChunk: 50}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	eng.take()
	ps, err := b.Pull(context.Background())
	if err != nil || ps.Records != 300 || ps.Changed != 300 || ps.Conflicts != 0 {
		t.Fatalf("pull: %+v, %v", ps, err)
	}
	if g := eng.take(); g["r/"] != 0 {
		t.Errorf("a pull of 300 new keys into an empty replica read %d records, want 0", g["r/"])
	}
	if b.Len() != 300 {
		t.Errorf("Len %d, want 300", b.Len())
	}
	for i := range 300 {
		if v, err := b.Get(fmt.Sprintf("k%04d", i)); err != nil || string(v) != "a" {
			t.Fatalf("k%04d: %q, %v", i, v, err)
		}
	}
}

// TestPullMergesKeysTheReplicaHolds: a pull into a replica that already
// holds some of a chunk's keys (its own concurrent writes, and a
// tombstone) merges them: both versions stay. A probe that wrongly found
// such a chunk empty would adopt the remote record whole, overwriting the
// local one (the local write lost: a divergence). The chunks (50 records)
// whose range holds no local key are applied without lookups; the two
// that do are looked up key by key.
func TestPullMergesKeysTheReplicaHolds(t *testing.T) {
	for _, kind := range []string{"mem", "badger-dir"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			be := probeSource(t)
			o := &engine.Options{Create: true, Backend: be, Hooks: &engine.Hooks{ApplyChunk: 50}}
			var eng *countingEngine
			dir := ""
			if kind == "mem" {
				eng = &countingEngine{Mem: store.NewMem(), gets: map[string]int{}}
				o.Engine = eng
			} else {
				dir = t.TempDir()
			}
			b, err := engine.Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for i := 100; i < 110; i++ {
				if err := b.Put(ctx, fmt.Sprintf("k%04d", i), []byte("b")); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Put(ctx, "k0200", []byte("b")); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, "k0200"); err != nil {
				t.Fatal(err)
			}
			if eng != nil {
				eng.take()
			}
			ps, err := b.Pull(ctx)
			if err != nil || ps.Records != 300 {
				t.Fatalf("pull: %+v, %v", ps, err)
			}
			if eng != nil {
				if g := eng.take(); g["r/"] != 100 {
					t.Errorf("the pull read %d records, want 100 (the keys of the two chunks whose range holds local keys)", g["r/"])
				}
			}
			if ps.Conflicts != 11 {
				t.Errorf("pull: %d conflicts, want 11 (k0100..k0109, k0200)", ps.Conflicts)
			}
			for i := range 300 {
				key := fmt.Sprintf("k%04d", i)
				vs, err := b.Versions(key)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				local := (i >= 100 && i < 110) || i == 200
				if !local {
					if len(vs) != 1 || string(vs[0].Value) != "a" {
						t.Fatalf("%s: %+v, want A's version only", key, vs)
					}
					continue
				}
				if len(vs) != 2 {
					t.Fatalf("%s: %d versions %+v, want A's and B's: the pull overwrote the local record", key, len(vs), vs)
				}
				var ours bool
				for _, v := range vs {
					if v.Replica == b.ID() {
						ours = true
						if v.Deleted != (i == 200) || (i != 200 && string(v.Value) != "b") {
							t.Errorf("%s: B's version %+v", key, v)
						}
					}
				}
				if !ours {
					t.Errorf("%s: B's version is gone: %+v", key, vs)
				}
			}
			// B's local writes are still to be pushed.
			if st, err := b.Status(); err != nil || st.Pending != 11 {
				t.Errorf("status: pending %d, %v; want 11", st.Pending, err)
			}
		})
	}
}

// TestBootstrapLooksUpNoRecord: a new replica loading a snapshot (its parts
// are in key order) finds each chunk's key range empty, and reads no
// record, though the log the snapshot replaced is in no key order (a pull
// of it, chunk after chunk, finds the earlier chunks' keys in each range
// and looks records up key by key).
func TestBootstrapLooksUpNoRecord(t *testing.T) {
	ctx := context.Background()
	be := memremote.New("probe-boot")
	a := writer300(t, be, func(i int) int { return i * 7 % 300 })
	defer a.Close()
	if _, err := a.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if cs, err := a.Compact(ctx, engine.CompactOptions{}); err != nil || cs.Records != 300 {
		t.Fatalf("compact: %+v, %v", cs, err)
	}
	eng := &countingEngine{Mem: store.NewMem(), gets: map[string]int{}}
	d, err := engine.Open("", &engine.Options{Engine: eng, Create: true, Backend: be,
		Hooks: &engine.Hooks{ApplyChunk: 25}}) // bootstrap chunks: 4x, 100 records
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	eng.take()
	if _, err := d.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if g := eng.take(); g["r/"] != 0 {
		t.Errorf("a bootstrap of 300 keys into an empty replica read %d records, want 0", g["r/"])
	}
	if d.Len() != 300 {
		t.Errorf("Len %d, want 300", d.Len())
	}
	for i := range 300 {
		if v, err := d.Get(fmt.Sprintf("k%04d", i)); err != nil || string(v) != "a" {
			t.Fatalf("k%04d: %q, %v", i, v, err)
		}
	}
}
