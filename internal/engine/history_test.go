package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// manualClock is a wall clock the test moves; the memory remote takes its
// LastModified times from it too (the server's time).
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// clocked is a memory remote and replicas sharing one manual clock.
func clocked(t *testing.T) (*manualClock, remote.Backend, func() *engine.Engine) {
	clk := &manualClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	b, err := memremote.NewWithOptions("hist", memremote.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return clk, b, func() *engine.Engine { return newReplicaOpts(t, b, engine.Options{Wall: clk.now}) }
}

func put(t *testing.T, r *engine.Engine, k, v string) {
	t.Helper()
	if err := r.Put(context.Background(), k, []byte(v)); err != nil {
		t.Fatal(err)
	}
}

func get(r *engine.Engine, k string) string {
	v, err := r.Get(k)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(v)
}

// TestHistory: every version a key held, oldest first, with its origin
// and position; a key never written has none; compaction with the
// default retention moves the start up to the snapshot and keeps the
// version current there.
func TestHistory(t *testing.T) {
	ctx := context.Background()
	clk, _, mk := clocked(t)
	a, c := mk(), mk()
	clk.advance(time.Hour)
	put(t, a, "k", "v1")
	mustSync(t, a)
	clk.advance(time.Hour)
	mustSync(t, c)
	put(t, c, "k", "v2")
	put(t, c, "other", "x")
	mustSync(t, c)
	clk.advance(time.Hour)
	mustSync(t, a)
	if err := a.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	hs, start, err := a.History(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if start.Position != 0 || len(hs) != 3 {
		t.Fatalf("start %+v, %d versions: %+v", start, len(hs), hs)
	}
	want := []struct {
		v   string
		del bool
		by  *engine.Engine
	}{{"v1", false, a}, {"v2", false, c}, {"", true, a}}
	for i, w := range want {
		h := hs[i]
		if string(h.Value) != w.v || h.Deleted != w.del || h.Replica != w.by.ID() {
			t.Errorf("version %d: %+v, want %q deleted %v by %s", i, h, w.v, w.del, w.by.ID().Short())
		}
		if i > 0 && (h.Position <= hs[i-1].Position || h.Time <= hs[i-1].Time) {
			t.Errorf("version %d not after %d: %+v", i, i-1, hs)
		}
	}
	if hs, _, err := a.History(ctx, "never"); err != nil || len(hs) != 0 {
		t.Fatalf("unknown key: %+v, %v", hs, err)
	}
	if _, _, err := a.History(ctx, ""); !errors.Is(err, engine.ErrInvalidKey) {
		t.Fatalf("empty key: %v", err)
	}
	// Compaction (default retention) prunes the log below its snapshot:
	// history starts there, with the record as the snapshot holds it.
	mustSync(t, c)
	clk.advance(time.Hour)
	cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	put(t, a, "k", "v3")
	mustSync(t, a)
	hs, start, err = a.History(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// The delete was collected by that compaction (every replica had
	// applied it): the snapshot holds no record of k.
	if start.Position != cs.Position || start.Time.IsZero() || len(hs) != 1 || string(hs[0].Value) != "v3" || hs[0].Position <= cs.Position {
		t.Fatalf("after compaction: start %+v (snapshot %d), %+v", start, cs.Position, hs)
	}
}

// TestRetentionKeepsHistory: with keep_snapshots 2 a second compaction
// keeps the first snapshot and the log above it, so the past before the
// second snapshot stays restorable; with the default retention it is
// pruned. (Planted: prune ignoring retention fails this test.)
func TestRetentionKeepsHistory(t *testing.T) {
	for _, keep := range []int{0, 2} {
		ctx := context.Background()
		clk, b, mk := clocked(t)
		a := mk()
		if keep > 0 {
			if err := a.SetRetention(ctx, engine.Retention{KeepSnapshots: keep}); err != nil {
				t.Fatal(err)
			}
		}
		if ret, err := a.RetentionInForce(ctx); err != nil || ret.KeepSnapshots != keep {
			t.Fatalf("retention %+v, %v", ret, err)
		}
		clk.advance(time.Hour)
		put(t, a, "k", "old")
		mustSync(t, a)
		clk.advance(time.Hour)
		first, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Hour)
		put(t, a, "k", "mid")
		mustSync(t, a)
		midTime := clk.advance(30 * time.Minute)
		clk.advance(30 * time.Minute)
		put(t, a, "k", "new")
		mustSync(t, a)
		clk.advance(time.Hour)
		second, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
		if err != nil {
			t.Fatal(err)
		}
		snaps := objects(t, b, remote.SnapPrefix)
		hasFirst := false
		for _, s := range snaps {
			hasFirst = hasFirst || strings.HasPrefix(s, remote.SnapDir(first.Position))
		}
		logs := objects(t, b, remote.LogPrefix)
		_, start, err := a.History(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "r")
		_, rerr := a.Restore(ctx, engine.RestoreOptions{Into: dir, At: midTime})
		if keep == 0 {
			if hasFirst || start.Position != second.Position || !errors.Is(rerr, engine.ErrBeforeHistory) {
				t.Fatalf("default retention: first snapshot kept %v, start %d (second %d), restore %v", hasFirst, start.Position, second.Position, rerr)
			}
			if !strings.Contains(rerr.Error(), "oldest restorable time") {
				t.Fatalf("error does not name the oldest time: %v", rerr)
			}
			continue
		}
		if !hasFirst || start.Position != first.Position || len(logs) < int(second.Position-first.Position) {
			t.Fatalf("keep 2: snapshots %v, start %d (first %d), log %v", snaps, start.Position, first.Position, logs)
		}
		if rerr != nil {
			t.Fatalf("restore inside retention: %v", rerr)
		}
		rr, err := engine.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := get(rr, "k"); got != "mid" {
			t.Fatalf("restored k = %q, want mid", got)
		}
		rr.Close()
	}
}

// TestRestore: a restore by time and by position rebuilds the store as it
// was, in a read-only directory; the live store is untouched; bad input
// is refused with nothing written.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	clk, _, mk := clocked(t)
	a, c := mk(), mk()
	clk.advance(time.Hour)
	put(t, a, "k", "v1")
	put(t, a, "docs/a", "A")
	mustSync(t, a)
	t1 := clk.advance(time.Hour)
	mustSync(t, c)
	put(t, c, "k", "v2")
	mustSync(t, c)
	mustSync(t, a)
	mustSync(t, c) // every ack at the tip: the compaction prunes the log
	clk.advance(time.Hour)
	if _, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1}); err != nil {
		t.Fatal(err)
	}
	t2 := clk.advance(30 * time.Minute)
	clk.advance(30 * time.Minute)
	put(t, a, "k", "v3")
	mustSync(t, a)
	liveBefore := state(t, a)

	dir := filepath.Join(t.TempDir(), "at-t2")
	rs, err := a.Restore(ctx, engine.RestoreOptions{Into: dir, At: t2})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Keys != 2 || rs.Base == 0 {
		t.Fatalf("restore %+v", rs)
	}
	if state(t, a) != liveBefore {
		t.Fatal("restore changed the live store")
	}
	rr, err := engine.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(rr, "k"); got != "v2" || get(rr, "docs/a") != "A" {
		t.Fatalf("restored k = %q", got)
	}
	if err := rr.Put(ctx, "k", []byte("x")); !errors.Is(err, engine.ErrReadOnly) {
		t.Fatalf("write to a restored copy: %v", err)
	}
	if err := rr.Delete(ctx, "k"); !errors.Is(err, engine.ErrReadOnly) {
		t.Fatalf("delete in a restored copy: %v", err)
	}
	if info, ok, err := rr.Restored(); err != nil || !ok || info.Position != rs.Position {
		t.Fatalf("restored info %+v %v %v", info, ok, err)
	}
	rr.Close()

	// By position: the tip is today's store.
	dir2 := filepath.Join(t.TempDir(), "tip")
	rs2, err := a.Restore(ctx, engine.RestoreOptions{Into: dir2, ByPosition: true, Position: rs.Position + 1})
	if err != nil {
		t.Fatal(err)
	}
	rr, err = engine.Open(dir2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(rr, "k"); got != "v3" || rr.Len() != 2 {
		t.Fatalf("restored at %d: k = %q", rs2.Position, got)
	}
	rr.Close()

	// Bad input: nothing written anywhere.
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep"), []byte("mine"), 0o644)
	fresh := filepath.Join(t.TempDir(), "fresh")
	for _, c := range []struct {
		name string
		o    engine.RestoreOptions
		is   error
		msg  string
	}{
		{"before the history", engine.RestoreOptions{Into: fresh, At: t1}, engine.ErrBeforeHistory, "oldest restorable time"},
		{"future", engine.RestoreOptions{Into: fresh, At: clk.now().Add(time.Hour)}, engine.ErrFutureTime, "after now"},
		{"both", engine.RestoreOptions{Into: fresh, At: t2, ByPosition: true, Position: 3}, nil, "not both"},
		{"neither", engine.RestoreOptions{Into: fresh}, nil, "give a time or a position"},
		{"not empty", engine.RestoreOptions{Into: full, At: t2}, nil, "not empty"},
		{"past the end", engine.RestoreOptions{Into: fresh, ByPosition: true, Position: 1000}, nil, "past the log's end"},
		{"below the start", engine.RestoreOptions{Into: fresh, ByPosition: true, Position: 1}, engine.ErrBeforeHistory, "oldest restorable position"},
	} {
		_, err := a.Restore(ctx, c.o)
		if err == nil || c.is != nil && !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v", c.name, err)
		}
		if _, serr := os.Stat(fresh); !errors.Is(serr, os.ErrNotExist) {
			t.Fatalf("%s: %s was created", c.name, fresh)
		}
		if ents, _ := os.ReadDir(full); len(ents) != 1 {
			t.Fatalf("%s: %s changed: %v", c.name, full, ents)
		}
	}
	if state(t, a) != liveBefore {
		t.Fatal("bad restores changed the live store")
	}
}

// TestRevert: a replica deletes a prefix by mistake and overwrites a key;
// a revert on another replica to a time before writes the old values back
// as new local writes, and after a sync every replica reads them again.
// A dry run lists the same changes and writes nothing.
func TestRevert(t *testing.T) {
	ctx := context.Background()
	clk, _, mk := clocked(t)
	a, c := mk(), mk()
	clk.advance(time.Hour)
	put(t, a, "docs/1", "one")
	put(t, a, "docs/2", "two")
	put(t, a, "keep", "k0")
	mustSync(t, a)
	mustSync(t, c)
	good := clk.advance(30 * time.Minute)
	clk.advance(30 * time.Minute)
	for _, k := range []string{"docs/1", "docs/2"} {
		if err := c.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	put(t, c, "docs/3", "new")
	put(t, c, "keep", "k1")
	mustSync(t, c)
	clk.advance(time.Hour)
	mustSync(t, a)

	dry, err := a.Revert(ctx, engine.RevertOptions{To: good, Prefix: "docs/", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry) != 3 || dry[0].Key != "docs/1" || dry[2].Key != "docs/3" || !dry[2].Deleted || string(dry[1].Value) != "two" {
		t.Fatalf("dry run %+v", dry)
	}
	if get(a, "docs/1") != "<replica: not found: \"docs/1\">" || a.Store().OutboxLen() != 0 {
		t.Fatalf("dry run wrote: docs/1 %q, outbox %d", get(a, "docs/1"), a.Store().OutboxLen())
	}
	ch, err := a.Revert(ctx, engine.RevertOptions{To: good, Prefix: "docs/"})
	if err != nil || len(ch) != 3 {
		t.Fatalf("revert %+v, %v", ch, err)
	}
	mustSync(t, a)
	mustSync(t, c)
	for _, r := range []*engine.Engine{a, c} {
		if get(r, "docs/1") != "one" || get(r, "docs/2") != "two" || !strings.Contains(get(r, "docs/3"), "not found") || get(r, "keep") != "k1" {
			t.Fatalf("after revert and sync: docs/1 %q docs/2 %q docs/3 %q keep %q", get(r, "docs/1"), get(r, "docs/2"), get(r, "docs/3"), get(r, "keep"))
		}
	}
	// Named keys; nothing to do the second time.
	if ch, err := a.Revert(ctx, engine.RevertOptions{To: good, Keys: []string{"keep"}}); err != nil || len(ch) != 1 || string(ch[0].Value) != "k0" {
		t.Fatalf("revert keep: %+v %v", ch, err)
	}
	if ch, err := a.Revert(ctx, engine.RevertOptions{To: good, Keys: []string{"keep"}}); err != nil || len(ch) != 0 {
		t.Fatalf("second revert: %+v %v", ch, err)
	}
	// Bad input writes nothing.
	before := state(t, a)
	for _, o := range []engine.RevertOptions{
		{To: clk.now().Add(time.Hour), Prefix: "docs/"},
		{Prefix: "docs/"},
		{To: good},
		{To: good, Prefix: "docs/", Keys: []string{"keep"}},
		{To: good, Keys: []string{""}},
		{To: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Prefix: "docs/"},
	} {
		if _, err := a.Revert(ctx, o); err == nil {
			t.Errorf("revert %+v accepted", o)
		}
	}
	if state(t, a) != before {
		t.Fatal("a refused revert wrote")
	}
}

// TestHistoryRestoreBackends: history and a restore by position on every
// backend (the memory remote, a directory, the S3 test server), through a
// compaction: the restored copy equals the state the replica had then.
func TestHistoryRestoreBackends(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := mk(t)
			a := newReplicaOpts(t, b, engine.Options{})
			c := newReplicaOpts(t, b, engine.Options{})
			put(t, a, "k", "v1")
			put(t, a, "x", "1")
			mustSync(t, a)
			mustSync(t, c)
			put(t, c, "k", "v2")
			mustSync(t, c)
			mustSync(t, a)
			mid := state(t, a)
			cs, err := a.Compact(ctx, engine.CompactOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			put(t, c, "k", "v3")
			mustSync(t, c)
			mustSync(t, a)
			hs, start, err := a.History(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if start.Position != 0 || len(hs) != 3 || string(hs[0].Value) != "v1" || string(hs[2].Value) != "v3" {
				t.Fatalf("history from %d: %+v", start.Position, hs)
			}
			dir := filepath.Join(t.TempDir(), "r")
			rs, err := a.Restore(ctx, engine.RestoreOptions{Into: dir, ByPosition: true, Position: cs.Position})
			if err != nil {
				t.Fatal(err)
			}
			if rs.Base != cs.Position || rs.Segments != 0 || rs.Keys != 2 {
				t.Fatalf("restore %+v (snapshot %d)", rs, cs.Position)
			}
			rr, err := engine.Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer rr.Close()
			if get(rr, "k") != "v2" || get(rr, "x") != "1" {
				t.Fatalf("restored %s, want the state at %d: %s", state(t, rr), cs.Position, mid)
			}
			if err := rr.Put(ctx, "k", nil); !errors.Is(err, engine.ErrReadOnly) {
				t.Fatalf("write to the copy: %v", err)
			}
		})
	}
}

// TestHistoryGap: a log with a hole above every snapshot (damage) gives
// ErrNoHistory for history, restore and revert, and nothing is written.
func TestHistoryGap(t *testing.T) {
	ctx := context.Background()
	clk, b, mk := clocked(t)
	a := mk()
	for i := range 3 {
		clk.advance(time.Minute)
		put(t, a, "k", string(rune('a'+i)))
		mustSync(t, a)
	}
	if err := b.Delete(ctx, remote.LogKey(2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.History(ctx, "k"); !errors.Is(err, engine.ErrNoHistory) {
		t.Fatalf("history over a gap: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	if _, err := a.Restore(ctx, engine.RestoreOptions{Into: dir, ByPosition: true, Position: 3}); !errors.Is(err, engine.ErrNoHistory) {
		t.Fatalf("restore over a gap: %v", err)
	}
	noDirHere(t, dir)
	if _, err := a.Restore(ctx, engine.RestoreOptions{Into: dir, At: clk.now()}); !errors.Is(err, engine.ErrNoHistory) {
		t.Fatalf("restore by time over a gap: %v", err)
	}
	noDirHere(t, dir)
	before := state(t, a)
	if _, err := a.Revert(ctx, engine.RevertOptions{To: clk.now(), Keys: []string{"k"}}); !errors.Is(err, engine.ErrNoHistory) {
		t.Fatalf("revert over a gap: %v", err)
	}
	if state(t, a) != before {
		t.Fatal("a failed revert wrote")
	}
}

func noDirHere(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists: %v", dir, err)
	}
}

// TestRetentionByAge: keep_age 2h with a compaction every hour keeps the
// snapshots younger than 2h and the newest older one (so the time 2h ago
// stays restorable), and drops the rest; restoring 2h back works, 3.5h
// back is before the history.
func TestRetentionByAge(t *testing.T) {
	ctx := context.Background()
	clk, b, mk := clocked(t)
	a := mk()
	if err := a.SetRetention(ctx, engine.Retention{KeepAgeSeconds: 2 * 3600}); err != nil {
		t.Fatal(err)
	}
	var snaps []uint64
	for i := range 5 {
		clk.advance(time.Hour)
		put(t, a, "k", fmt.Sprint(i))
		cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, cs.Position)
	}
	have := map[uint64]bool{}
	for _, k := range objects(t, b, remote.SnapPrefix) {
		if p, rest, ok := remote.ParseSnapKey(k); ok && rest == "index" {
			have[p] = true
		}
	}
	// Written at 1h..5h, now 5h: 4h and 5h are younger than 2h, 3h is
	// exactly 2h old and covers the time 2h ago; 1h and 2h go.
	for i, p := range snaps {
		if want := i >= 2; have[p] != want {
			t.Fatalf("snapshot %d (written at %dh) kept %v, want %v: %v", p, i+1, have[p], want, have)
		}
	}
	now := clk.now()
	if _, err := a.Restore(ctx, engine.RestoreOptions{Into: filepath.Join(t.TempDir(), "r"), At: now.Add(-2 * time.Hour)}); err != nil {
		t.Fatalf("restore 2h back: %v", err)
	}
	if _, err := a.Restore(ctx, engine.RestoreOptions{Into: filepath.Join(t.TempDir(), "r"), At: now.Add(-210 * time.Minute)}); !errors.Is(err, engine.ErrBeforeHistory) {
		t.Fatalf("restore 3.5h back: %v", err)
	}
}
