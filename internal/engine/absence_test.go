package engine_test

// Absence cases the simulator's text schedules (sim/testdata/schedules,
// S16-S21) cannot express: S20r (unpushed counter and set changes across a
// reidentify; the simulator has no reidentify operation), and regression
// tests that need a scripted pause at a step. Each converges, with every
// acknowledged write kept, under the real rules; S20r loses a write with
// the old rule it guards (sim.OldRule.Set).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// advance moves the store's clock and every replica's wall clock on by d
// (time passing while replicas sleep).
func (w *world) advance(d time.Duration) {
	w.now = w.now.Add(d)
	for _, n := range w.nodes {
		n.wall.t = n.wall.t.Add(d)
	}
}

// compactRetire compacts with pruning and retires replicas silent for an
// hour (by server time).
func (n *snode) compactRetire() engine.CompactStats {
	cs, err := n.r.Compact(n.w.ctx, engine.CompactOptions{Prune: true, Grace: -1, RetireAfter: time.Hour})
	n.w.step(err)
	return cs
}

// busy makes n write and push a few times, so the log grows past every
// position a sleeping replica knew.
func (n *snode) busy(tag string, times int) {
	for i := range times {
		n.put(fmt.Sprintf("%s%d", tag, i), "x")
		n.sync()
	}
}

// copyOf opens a second directory holding a copy of n's (same id).
func (w *world) copyOf(n *snode, name string) *snode {
	c := &snode{name: name, eng: n.eng.Clone(), id: n.id, w: w, knobs: n.knobs,
		wall: &fakeWall{t: n.wall.t}}
	c.open()
	w.nodes[name] = c
	w.t.Cleanup(func() { c.r.Close() })
	return c
}

// restore puts a backup of n's directory back in place (same id).
func (n *snode) restore(backup *snode) {
	n.r.Close()
	n.eng = backup.eng.Clone()
	n.open()
}

// want checks that every named replica reads key as value.
func (w *world) want(key, value string, names ...string) error {
	for _, name := range names {
		got := reads(w.nodes[name])
		if !strings.Contains(" "+got, " "+key+"="+value+" ") {
			return fmt.Errorf("lost: %s reads %q, want %s=%s", name, got, key, value)
		}
	}
	return nil
}

// settleReidentify is settle for schedules where a copy is expected to be
// told it is a copy: a replica stopped with ErrCloned reidentifies (as the
// error tells its user to) and syncs on.
func (w *world) settleReidentify(names ...string) error {
	for range 4 {
		for _, name := range names {
			n := w.nodes[name]
			_, err := n.r.Sync(w.ctx)
			if errors.Is(err, engine.ErrCloned) {
				if _, err := n.r.Reidentify(w.ctx); err != nil {
					return fmt.Errorf("%s: reidentify: %w", name, err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: final sync: %w", name, err)
			}
		}
	}
	ref := reads(w.nodes[names[0]])
	for _, name := range names[1:] {
		if got := reads(w.nodes[name]); got != ref {
			return fmt.Errorf("diverged: %s reads %q, %s reads %q", names[0], ref, name, got)
		}
	}
	return nil
}

// absenceSchedules are the absence schedules the simulator cannot
// express (it has no reidentify operation); S16-S21 are text files in
// sim/testdata/schedules, run by sim's TestSchedules.
var absenceSchedules = []schedule{
	{
		name: "S20r", guard: "re-stamping CRDT state as read text (reidentify)",
		knob: oldRule("RestampAsText"),
		run: func(w *world, old *engine.Hooks) error {
			w.pol = absenceCRDTPolicies()
			r := w.node("R", 0, nil)
			x := w.node("X", 0, old)
			if _, err := r.r.CounterAdd(w.ctx, "cnt/total", 1); err != nil {
				return err
			}
			if err := r.r.SetAdd(w.ctx, "set/s", "z"); err != nil {
				return err
			}
			r.sync()
			x.sync()
			if _, err := x.r.CounterAdd(w.ctx, "cnt/total", 5); err != nil {
				return err
			}
			if err := x.r.SetAdd(w.ctx, "set/s", "a"); err != nil {
				return err
			}
			if _, err := x.r.Reidentify(w.ctx); err != nil {
				return err
			}
			if err := w.settle("R", "X"); err != nil {
				return err
			}
			if err := w.want("cnt/total", "6", "R", "X"); err != nil {
				return err
			}
			return w.want("set/s", "a\nz", "R", "X")
		},
	},
}

func absenceCRDTPolicies() *merge.Registry {
	reg := merge.NewRegistry()
	reg.Set("cnt/", merge.Counter{})
	reg.Set("set/", merge.Set{})
	return reg
}

func TestAbsenceSchedules(t *testing.T) { runSchedules(t, absenceSchedules) }

// TestClearRepairsUnreadableCRDT: a counter key left holding text (as the
// old rebase wrote it) reads with an error; Clear (and so Delete) makes it
// readable and writable again, on every replica once synced.
func TestClearRepairsUnreadableCRDT(t *testing.T) {
	w := newWorld(t, nil)
	w.pol = absenceCRDTPolicies()
	r := w.node("R", 0, nil)
	x := w.node("X", 0, nil)
	if err := x.r.Store().Update(w.ctx, func(tx *store.Tx) error {
		_, err := tx.Write("cnt/total", []byte("6"), false) // the old rule's raw text
		return err
	}); err != nil {
		t.Fatal(err)
	}
	x.sync()
	r.sync()
	if _, err := r.r.CounterValue("cnt/total"); !errors.Is(err, merge.ErrBadState) {
		t.Fatalf("an unreadable counter reads: %v", err)
	}
	if err := r.r.Delete(w.ctx, "cnt/total"); err != nil {
		t.Fatalf("delete of an unreadable counter: %v", err)
	}
	if _, err := r.r.CounterAdd(w.ctx, "cnt/total", 2); err != nil {
		t.Fatal(err)
	}
	if err := w.settle("R", "X"); err != nil {
		t.Fatal(err)
	}
	if err := w.want("cnt/total", "2", "R", "X"); err != nil {
		t.Fatal(err)
	}
}

// TestPosNeverGoesDown: a record's pos is the highest log position that
// carries it here. A's own push of k lands at 2 before A pulls 1 (B's
// winning tombstone of k); applying 1 must not lower k's pos to 1, or A
// collects k — its own write a with it — against acks of 1 while nobody
// has applied 2, and diverges once C's later write of k comes back whole
// (found by the simulator's absence sweep, seed 64).
func TestPosNeverGoesDown(t *testing.T) {
	w := newWorld(t, nil)
	a := w.node("A", 2*time.Hour, nil) // a beats c under lww...
	b := w.node("B", 3*time.Hour, nil) // ...and T beats a
	c := w.node("C", 0, nil)
	a.sync()
	b.sync()
	c.sync()
	b.put("k", "b")
	b.del("k") // T, concurrent with a below
	b.push()   // position 1
	b.pull()
	c.pull()
	a.put("k", "a")
	a.push() // position 2, before A pulled 1
	if _, err := a.r.Compact(w.ctx, engine.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	c.put("k", "c") // has seen T, not a
	c.push()
	if err := w.settle("A", "B", "C"); err != nil {
		t.Fatal(err)
	}
}

// TestInterruptedRebaseKeepsCounter: a rebase that stops after discarding
// the records (its snapshot part vanished: a concurrent prune, a network
// error, a crash) leaves it pending; an Add made then starts from the kept
// state, not from zero, so the published running total is not superseded
// by the delta (found by the real-process chaos test). Reads see the kept
// values meanwhile.
func TestInterruptedRebaseKeepsCounter(t *testing.T) {
	w := newWorld(t, nil)
	w.pol = absenceCRDTPolicies()
	a := w.node("A", 0, nil)
	c := w.node("C", 0, nil)
	if _, err := a.r.CounterAdd(w.ctx, "cnt/x", 97); err != nil {
		t.Fatal(err)
	}
	if _, err := a.r.CounterAdd(w.ctx, "cnt/y", 50); err != nil { // published, not dirty at the rebase
		t.Fatal(err)
	}
	a.put("p", "kept")
	a.sync()
	c.sync()
	c.put("k", "v")
	c.sync()
	w.advance(2 * time.Hour)
	if cs := c.compactRetire(); len(cs.Retired) != 1 {
		t.Fatalf("A was not retired: %+v (%v)", cs, w.err)
	}
	if _, err := a.r.CounterAdd(w.ctx, "cnt/x", 62); err != nil { // dirty when the rebase starts
		t.Fatal(err)
	}
	a.put("p", "offline")
	saved := map[string][]byte{}
	a.pauses = map[string]func(){"rebase:kept": func() {
		for key, data := range w.b.Objects() {
			if strings.Contains(key, "/part-") {
				saved[key] = data
				if err := w.b.Delete(w.ctx, key); err != nil {
					t.Fatal(err)
				}
			}
		}
	}}
	if _, err := a.r.Push(w.ctx); err == nil {
		t.Fatal("the rebase loaded a snapshot whose part is gone")
	}
	// The rebase is pending, the records discarded: reads and writes go on.
	if got, err := a.r.Get("p"); err != nil || string(got) != "offline" {
		t.Fatalf("p reads %q, %v while the rebase is pending", got, err)
	}
	if got, err := a.r.CounterValue("cnt/x"); err != nil || got != 159 {
		t.Fatalf("cnt/x reads %d, %v while the rebase is pending, want 159", got, err)
	}
	if got, err := a.r.CounterAdd(w.ctx, "cnt/x", 33); err != nil || got != 192 {
		t.Fatalf("Add while the rebase is pending: %d, %v; want 192", got, err)
	}
	if got, err := a.r.CounterAdd(w.ctx, "cnt/y", 5); err != nil || got != 55 {
		t.Fatalf("Add of a clean counter while the rebase is pending: %d, %v; want 55", got, err)
	}
	for key, data := range saved {
		if err := w.b.SetObject(key, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.settle("A", "C"); err != nil {
		t.Fatal(err)
	}
	if err := w.want("cnt/x", "192", "A", "C"); err != nil {
		t.Fatal(err)
	}
	if err := w.want("cnt/y", "55", "A", "C"); err != nil {
		t.Fatal(err)
	}
	if err := w.want("p", "offline", "A", "C"); err != nil {
		t.Fatal(err)
	}
}

// TestRestoredBootstrapKeepsOwnPublished: a directory restored from a
// backup taken before its first pull bootstraps from a snapshot that holds
// a write of its own (published by its newer life); those dots are
// published, so the reidentify its clone verdict asks for keeps them
// (found by the simulator, restore sweep seed 708).
func TestRestoredBootstrapKeepsOwnPublished(t *testing.T) {
	w := newWorld(t, nil)
	a := w.node("A", 0, nil)
	c := w.node("C", 0, nil)
	a.put("k2", "a")
	backup := w.copyOf(a, "backup")
	backup.r.Close()
	delete(w.nodes, "backup")
	a.sync()
	c.sync()
	c.compact(false)
	a.restore(backup)
	if _, err := a.r.Sync(w.ctx); !errors.Is(err, engine.ErrCloned) {
		t.Fatalf("restored A synced with no clone verdict: %v", err)
	}
	if _, err := a.r.Reidentify(w.ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.settle("A", "C"); err != nil {
		t.Fatal(err)
	}
	ca, _ := a.r.Versions("k2")
	cc, _ := c.r.Versions("k2")
	if len(ca) != len(cc) {
		t.Fatalf("A holds %d versions of k2, C %d: %+v / %+v", len(ca), len(cc), ca, cc)
	}
}

// flipIndexOnce damages the first read of every snapshot index in a way
// that still decodes: the field name "parts" loses a letter.
type flipIndexOnce struct {
	*memremote.Backend
	seen map[string]bool
}

func (f *flipIndexOnce) Get(ctx context.Context, key string) (remote.Object, error) {
	obj, err := f.Backend.Get(ctx, key)
	if err == nil && strings.HasSuffix(key, "/index") && !f.seen[key] {
		f.seen[key] = true
		obj.Data = bytes.Replace(obj.Data, []byte(`"parts"`), []byte(`"pa_ts"`), 1)
	}
	return obj, err
}

// TestDamagedIndexReadPrunesNothing: one damaged read of a snapshot index
// that still decodes (as listing no parts) does not make a pruner delete
// the snapshot's live parts.
func TestDamagedIndexReadPrunesNothing(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("t")
	a := newReplica(t, mem, 0)
	if err := a.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	f := &flipIndexOnce{Backend: mem, seen: map[string]bool{}}
	b := newReplica(t, f, 0)
	mustSync(t, b)
	if _, err := b.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1}); err != nil {
		t.Fatal(err)
	}
	n := newReplica(t, mem, 0)
	mustSync(t, n)
	if got, err := n.Get("k"); err != nil || string(got) != "v" {
		t.Fatalf("a replica bootstrapped after the prune reads %q, %v", got, err)
	}
}

// ambiguousIndex applies the create of a snapshot index but answers an
// error (an ambiguous write), and damages the first read-back of it so
// that it still decodes but names another compactor.
type ambiguousIndex struct {
	*memremote.Backend
	damaged bool
}

func (a *ambiguousIndex) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	etag, err := a.Backend.PutIfAbsent(ctx, key, data)
	if err == nil && strings.HasSuffix(key, "/index") {
		return "", fmt.Errorf("ambiguous: %w", remote.ErrTransient)
	}
	return etag, err
}

func (a *ambiguousIndex) Get(ctx context.Context, key string) (remote.Object, error) {
	obj, err := a.Backend.Get(ctx, key)
	if err == nil && strings.HasSuffix(key, "/index") && !a.damaged {
		a.damaged = true
		obj.Data = bytes.Replace(obj.Data, []byte(`"nonce": "`), []byte(`"nonce": "x`), 1)
	}
	return obj, err
}

// TestAmbiguousIndexKeepsParts: a compactor whose index create answered
// an error, and whose read-back was damaged, does not take its own index
// for another compactor's and delete the parts it lists.
func TestAmbiguousIndexKeepsParts(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("t")
	a := newReplica(t, &ambiguousIndex{Backend: mem}, 0)
	if err := a.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	if _, err := a.Compact(ctx, engine.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	n := newReplica(t, mem, 0)
	mustSync(t, n)
	if got, err := n.Get("k"); err != nil || string(got) != "v" {
		t.Fatalf("a replica bootstrapped from the snapshot reads %q, %v", got, err)
	}
}

// TestRebasePausedPastNewerSnapshot: a rebase that pauses between loading
// a snapshot and pulling after it, while another replica snapshots again
// and prunes past it, starts again on the newer snapshot instead of
// stopping on a "missing" log position (found by the real-process chaos
// test), and keeps the offline edit.
func TestRebasePausedPastNewerSnapshot(t *testing.T) {
	w := newWorld(t, nil)
	a := w.node("A", 0, nil)
	c := w.node("C", 0, nil)
	a.put("a", "1")
	a.sync()
	c.sync()
	c.busy("c", 2)
	w.advance(2 * time.Hour)
	if cs := c.compactRetire(); len(cs.Retired) != 1 {
		t.Fatalf("A was not retired: %+v (%v)", cs, w.err)
	}
	a.put("k", "offline")
	a.pauses = map[string]func(){"rebase:loaded": func() {
		c.busy("d", 3)
		c.compactRetire() // a newer snapshot, and the log pruned past A's
	}}
	a.sync()
	if err := w.settle("A", "C"); err != nil {
		t.Fatal(err)
	}
	if err := w.want("k", "offline", "A", "C"); err != nil {
		t.Fatal(err)
	}
}

// TestUnretirePausedPastPrune: a rebase that pauses after re-stamping and
// before it un-retires, while another replica prunes past its cursor,
// pulls again after the un-retire: its push must not land in a freed
// position that the check after the create (now reading "not retired")
// would let it commit (found by the simulator, absence seed 1606).
func TestUnretirePausedPastPrune(t *testing.T) {
	w := newWorld(t, nil)
	a := w.node("A", 0, nil)
	c := w.node("C", 0, nil)
	a.put("a", "1")
	a.sync()
	c.sync()
	c.busy("c", 2)
	w.advance(2 * time.Hour)
	if cs := c.compactRetire(); len(cs.Retired) != 1 {
		t.Fatalf("A was not retired: %+v (%v)", cs, w.err)
	}
	a.put("k", "offline")
	a.pauses = map[string]func(){"rebase:restamped": func() {
		c.busy("d", 3)
		c.compactRetire()
	}}
	a.sync()
	a.put("k2", "after")
	a.sync()
	if err := w.settle("A", "C"); err != nil {
		t.Fatal(err)
	}
	if err := w.want("k", "offline", "A", "C"); err != nil {
		t.Fatal(err)
	}
	if err := w.want("k2", "after", "A", "C"); err != nil {
		t.Fatal(err)
	}
}
