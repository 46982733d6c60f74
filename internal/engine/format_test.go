package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// format1Expect is testdata/format1/expect.json: what the store held, read
// through the store's API by the code that wrote the directory (format 1:
// r/<key> with an 8-byte pos, o/<key> marks, q/<mark><key> queue).
type format1Expect struct {
	Live, Pending int64
	Records       map[string]struct {
		Pos    uint64
		Record []byte // merge.EncodeRecord
		Mark   uint64
		Marked bool
	}
	Order []struct {
		Key  string
		Mark uint64
	}
}

// copyFormat1 copies testdata/format1 (a replica directory and its file
// remote, written by the format-1 code: 300 keys pushed, then 50 of them
// overwritten, 10 deleted and 30 new ones written, not pushed) to a
// temporary directory.
func copyFormat1(t *testing.T) (dir string, want format1Expect) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "f1")
	if out, err := exec.Command("cp", "-r", filepath.Join("testdata", "format1"), dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Records) != 330 || want.Pending != 90 || len(want.Order) != 90 {
		t.Fatalf("fixture: %d records, %d pending, %d queued", len(want.Records), want.Pending, len(want.Order))
	}
	return dir, want
}

// TestOpenFormat1Directory opens a replica directory written by the
// format-1 code: every record, outbox mark, the pending and live counts and
// the outbox order read back as that code wrote them, and a push sends
// exactly the dirty keys, after which nothing is pending.
func TestOpenFormat1Directory(t *testing.T) {
	ctx := context.Background()
	dir, want := copyFormat1(t)
	b, err := fileremote.New(filepath.Join(dir, "remote"), &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := engine.Open(filepath.Join(dir, "replica"), &engine.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st := r.Store()
	if st.Len() != want.Live || st.OutboxLen() != want.Pending {
		t.Fatalf("live %d pending %d, want %d and %d", st.Len(), st.OutboxLen(), want.Live, want.Pending)
	}
	var dirty []string
	err = st.View(func(v *store.View) error {
		n := 0
		if err := v.Records("", "", func(key string, s store.Stored) (bool, error) {
			n++
			w, ok := want.Records[key]
			if !ok {
				t.Errorf("record %q was not written", key)
				return true, nil
			}
			enc, err := merge.EncodeRecord(s.Record)
			if err != nil {
				return false, err
			}
			if s.Pos != w.Pos || !bytes.Equal(enc, w.Record) {
				t.Errorf("record %q: pos %d %x, want %d %x", key, s.Pos, enc, w.Pos, w.Record)
			}
			m, marked, err := v.OutboxMark(key)
			if err != nil {
				return false, err
			}
			if m != w.Mark || marked != w.Marked {
				t.Errorf("mark of %q: %d %v, want %d %v", key, m, marked, w.Mark, w.Marked)
			}
			return true, nil
		}); err != nil {
			return err
		}
		if n != len(want.Records) {
			t.Errorf("%d records, want %d", n, len(want.Records))
		}
		low, err := v.OutboxLow()
		if err != nil {
			return err
		}
		i := 0
		if err := v.OutboxOrder(low, func(key string, mark uint64) (bool, error) {
			if i >= len(want.Order) || want.Order[i].Key != key || want.Order[i].Mark != mark {
				t.Errorf("outbox order #%d: %q %d", i, key, mark)
			}
			dirty = append(dirty, key)
			i++
			return true, nil
		}); err != nil {
			return err
		}
		if i != len(want.Order) {
			t.Errorf("outbox order has %d keys, want %d", i, len(want.Order))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cnt, err := countLiveView(st); err != nil || cnt != want.Live {
		t.Fatalf("live by scan %d (%v), want %d", cnt, err, want.Live)
	}

	before := logNames(t, dir)
	stats, err := r.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending != 0 || st.OutboxLen() != 0 {
		t.Fatalf("after the push: %d pending (stats %d)", st.OutboxLen(), stats.Pending)
	}
	var sent []string
	for _, name := range logNames(t, dir) {
		if slices.Contains(before, name) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "remote", "log", name))
		if err != nil {
			t.Fatal(err)
		}
		seg, err := segment.Decode("log/"+name, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range seg.Entries {
			sent = append(sent, e.Key)
		}
	}
	slices.Sort(sent)
	slices.Sort(dirty)
	if !slices.Equal(sent, dirty) {
		t.Fatalf("the push sent %d keys %v, want the %d dirty ones %v", len(sent), sent, len(dirty), dirty)
	}
	// Nothing is left to push.
	stats, err = r.Push(ctx)
	if err != nil || stats.Records != 0 {
		t.Fatalf("second push: %+v %v", stats, err)
	}
}

func countLiveView(st *store.Store) (n int64, err error) {
	err = st.View(func(v *store.View) error {
		n, err = v.CountLive()
		return err
	})
	return n, err
}

func logNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "remote", "log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// pushedKeys pushes r and returns the keys of the segments the push
// added to the file remote at root.
func pushedKeys(t *testing.T, r *engine.Engine, root string) []string {
	t.Helper()
	names := func() []string {
		ents, err := os.ReadDir(filepath.Join(root, "log"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	before := names()
	if _, err := r.Push(context.Background()); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, name := range names() {
		if slices.Contains(before, name) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, "log", name))
		if err != nil {
			t.Fatal(err)
		}
		seg, err := segment.Decode("log/"+name, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range seg.Entries {
			keys = append(keys, e.Key)
		}
	}
	slices.Sort(keys)
	return keys
}

// TestPushSkipsStaleListings: the outbox log still lists a key whose mark
// was cleared (here by hand; a push that failed after committing part of
// its segments leaves the same) or that was written again: a push sends
// each dirty key once, and no clean one.
func TestPushSkipsStaleListings(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	b, err := fileremote.New(root, &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := engine.Init(filepath.Join(t.TempDir(), "r"), "file://x", &engine.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Batch(ctx, func(b *engine.Batch) error {
		for _, k := range []string{"a", "b", "c", "d"} {
			b.Put(k, []byte("1"))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, "c", []byte("2")); err != nil { // listed twice
		t.Fatal(err)
	}
	if err := r.Store().Update(ctx, func(tx *store.Tx) error {
		if err := tx.ClearOutboxMark("a"); err != nil {
			return err
		}
		return tx.ClearOutboxMark("d")
	}); err != nil {
		t.Fatal(err)
	}
	if got := pushedKeys(t, r, root); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("the push sent %v, want [b c]", got)
	}
	if n := r.Store().OutboxLen(); n != 0 {
		t.Fatalf("%d pending after the push", n)
	}
	if err := r.Put(ctx, "d", []byte("3")); err != nil {
		t.Fatal(err)
	}
	if got := pushedKeys(t, r, root); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("the next push sent %v, want [d]", got)
	}
}
