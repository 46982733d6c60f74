package engine_test

// The regression schedules of DESIGN.md about collection, pruning,
// bootstrap and snapshots, scripted step by step. Each must converge with
// the real rules, and each fails with the old rule it guards (swapped in
// through engine.Knobs), which shows the schedule really tests the rule.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

// world is a small scripted cluster on one memremote.
type world struct {
	t     *testing.T
	ctx   context.Context
	b     *memremote.Backend
	now   time.Time // the remote's clock (LastModified)
	knobs *engine.Knobs
	nodes map[string]*snode
	err   error           // the first failure of a step (a schedule may stop early)
	pol   *merge.Registry // the policies, when not schedPolicy for all
}

type snode struct {
	name  string
	eng   *store.Mem
	id    clock.ReplicaID
	wall  *fakeWall
	r     *engine.Engine
	knobs *engine.Knobs
	w     *world
	// armed: the step at which the next operation dies; pauses: what
	// happens while the replica sleeps at a step (run once).
	armed  string
	pauses map[string]func()
}

func newWorld(t *testing.T, knobs *engine.Knobs) *world {
	w := &world{t: t, ctx: context.Background(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), knobs: knobs, nodes: map[string]*snode{}}
	var err error
	w.b, err = memremote.NewWithOptions("sched", memremote.Options{Now: func() time.Time { w.now = w.now.Add(time.Second); return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// node adds a replica whose wall clock is offset from the world's.
func (w *world) node(name string, offset time.Duration, k *engine.Knobs) *snode {
	n := &snode{name: name, eng: store.NewMem(), id: clock.NewReplicaID(), w: w, knobs: k,
		wall: &fakeWall{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(offset)}}
	n.open()
	w.nodes[name] = n
	w.t.Cleanup(func() { n.r.Close() })
	if _, err := n.r.Connect(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (n *snode) open() {
	k := &engine.Knobs{}
	if n.knobs != nil {
		*k = *n.knobs
	}
	inner := k.Step
	k.Step = func(s string) error {
		if n.armed == s {
			n.armed = ""
			return errCrash
		}
		if f := n.pauses[s]; f != nil {
			delete(n.pauses, s)
			f()
		}
		if inner != nil {
			return inner(s)
		}
		return nil
	}
	r, err := engine.Open("", &engine.Options{Engine: n.eng, Create: true, ID: n.id, Backend: n.w.b,
		Wall: n.wall.now, Durability: store.Relaxed, AckInterval: -1, Knobs: k,
		Policies: n.w.policies()})
	if err != nil {
		n.w.t.Fatal(err)
	}
	n.r = r
}

var schedPolicy = "lww"

func (w *world) policies() *merge.Registry {
	if w.pol != nil {
		return w.pol
	}
	reg := merge.NewRegistry()
	if p, ok := merge.Builtin(schedPolicy); ok {
		reg.Set("", p)
	}
	return reg
}

func (w *world) step(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

func (n *snode) put(k, v string) { n.w.step(n.r.Put(n.w.ctx, k, []byte(v))) }
func (n *snode) del(k string)    { n.w.step(n.r.Delete(n.w.ctx, k)) }
func (n *snode) sync() {
	_, err := n.r.Sync(n.w.ctx)
	n.w.step(err)
}
func (n *snode) pull() {
	_, err := n.r.Pull(n.w.ctx)
	n.w.step(err)
}
func (n *snode) push() {
	_, err := n.r.Push(n.w.ctx)
	n.w.step(err)
}
func (n *snode) compact(prune bool) engine.CompactStats {
	cs, err := n.r.Compact(n.w.ctx, engine.CompactOptions{Prune: prune, Grace: -1})
	n.w.step(err)
	return cs
}

// crash loses everything not fsynced and reopens.
func (n *snode) crash() {
	n.r.Close()
	n.eng.Crash()
	n.open()
}

// reads is what a replica's reads show: every key with a record, as its
// policy reads it (collected and deleted keys both read as absent).
func reads(n *snode) string {
	var sb strings.Builder
	for k, err := range n.r.Keys("") {
		if err != nil {
			return "error: " + err.Error()
		}
		v, err := n.r.Get(k)
		var ce *engine.ConflictError
		switch {
		case errors.Is(err, engine.ErrNotFound):
			continue
		case errors.As(err, &ce):
			fmt.Fprintf(&sb, "%s=conflict(%d) ", k, len(ce.Versions))
		case err != nil:
			fmt.Fprintf(&sb, "%s=error(%v) ", k, err)
		default:
			fmt.Fprintf(&sb, "%s=%s ", k, v)
		}
	}
	return sb.String()
}

// settle syncs everyone (twice around) and reports a divergence or a
// failed step.
func (w *world) settle(names ...string) error {
	for range 3 {
		for _, name := range names {
			if _, err := w.nodes[name].r.Sync(w.ctx); err != nil {
				w.step(fmt.Errorf("%s: final sync: %w", name, err))
			}
		}
	}
	if w.err != nil {
		return w.err
	}
	ref := reads(w.nodes[names[0]])
	for _, name := range names[1:] {
		if got := reads(w.nodes[name]); got != ref {
			return fmt.Errorf("diverged: %s reads %q, %s reads %q", names[0], ref, name, got)
		}
	}
	return nil
}

type schedule struct {
	name  string
	guard string // the old rule
	knob  func(*engine.Knobs)
	run   func(w *world, old *engine.Knobs) error
}

var schedules = []schedule{
	{
		name: "S3", guard: "ack counting one's own push",
		knob: func(k *engine.Knobs) { k.AckIncludesOwnPush = true },
		run: func(w *world, old *engine.Knobs) error {
			r := w.node("R", time.Hour, nil)
			x := w.node("X", -time.Hour, old)
			y := w.node("Y", 0, nil)
			r.put("k", "v0")
			r.sync()
			x.sync()
			y.sync()
			r.del("k") // T, with the largest clock
			r.push()
			y.pull()
			// X only pushes: it never pulled the delete.
			x.put("other", "1")
			x.push()
			x.put("other", "2")
			x.push()
			r.compact(false)
			x.put("k", "w") // concurrent with T
			x.push()
			return w.settle("R", "X", "Y")
		},
	},
	{
		name: "S4", guard: "collecting against max ack instead of a listed tip",
		knob: func(k *engine.Knobs) { k.CollectAgainstMaxAck = true },
		run: func(w *world, old *engine.Knobs) error {
			r := w.node("R", time.Hour, old)
			x := w.node("X", 0, nil)
			y := w.node("Y", -time.Hour, nil)
			r.put("k", "v0")
			r.sync()
			x.sync()
			y.sync()
			r.del("k")
			r.sync()
			x.sync()        // X acks the delete; Y does not
			y.put("k", "w") // concurrent with the delete, not yet pushed
			r.compact(false)
			y.push() // lands after R collected
			return w.settle("R", "X", "Y")
		},
	},
	{
		name: "S5", guard: "fresh writes not starting from G",
		knob: func(k *engine.Knobs) { k.WriteIgnoresG = true },
		run: func(w *world, old *engine.Knobs) error {
			a := w.node("A", 3*time.Hour, nil) // far ahead: its HLC gets capped elsewhere
			r := w.node("R", 0, old)
			s := w.node("S", 0, nil)
			a.put("k", "v0")
			a.sync()
			r.sync()
			s.sync()
			a.del("k")
			a.sync()
			r.sync()
			s.sync()
			a.sync()
			r.compact(false) // R collects k; S still holds the tombstone
			r.put("k", "again")
			return w.settle("R", "S", "A")
		},
	},
	{
		name: "S6", guard: "ack not lowered to the staging base",
		knob: func(k *engine.Knobs) { k.AckIgnoresStaged = true },
		run: func(w *world, old *engine.Knobs) error {
			r := w.node("R", time.Hour, nil)
			y := w.node("Y", 0, nil)
			// X crashes once, right after staging its push.
			crashed := false
			k := &engine.Knobs{}
			if old != nil {
				*k = *old
			}
			k.Step = func(step string) error {
				if step == "push:staged" && !crashed {
					crashed = true
					return errCrash
				}
				return nil
			}
			x := w.node("X", -time.Hour, k)
			r.put("k", "v0")
			r.sync()
			x.sync()
			y.sync()
			x.put("k", "w") // concurrent with the delete below
			if _, err := x.r.Push(w.ctx); !errors.Is(err, errCrash) {
				return fmt.Errorf("X was to crash after staging: %v", err)
			}
			x.crash() // the staged segment (k=[w], base before the delete) survives
			r.del("k")
			r.sync()
			y.sync()
			x.pull() // X pulls past the delete and acks
			r.compact(false)
			x.push() // uploads the stale staged segment: k=[w] without T
			return w.settle("R", "X", "Y")
		},
	},
	{
		name: "S7", guard: "pull to the tip before the first push",
		knob: func(k *engine.Knobs) { k.PushBeforePull = true },
		run: func(w *world, old *engine.Knobs) error {
			r := w.node("R", time.Hour, nil)
			s := w.node("S", 0, nil)
			r.put("k", "v0")
			r.sync()
			s.sync()
			r.del("k")
			r.sync()
			s.sync()
			r.sync()
			r.compact(false) // R collects k; S keeps its tombstone
			n := w.node("N", -time.Hour, old)
			n.put("k", "new") // before it ever pulled
			n.push()
			return w.settle("R", "S", "N")
		},
	},
	{
		name: "S8", guard: "dropping a tombstone sibling instead of the record",
		knob: func(k *engine.Knobs) { k.DropTombstoneSibling = true },
		run: func(w *world, old *engine.Knobs) error {
			r := w.node("R", time.Hour, old)
			x := w.node("X", -time.Hour, nil)
			r.put("k", "v0")
			r.sync()
			x.sync()
			r.del("k")      // T wins by HLC
			x.put("k", "w") // concurrent
			r.sync()
			x.sync()
			r.sync()
			x.sync()
			r.compact(false)
			return w.settle("R", "X")
		},
	},
	{
		name: "S9", guard: "filtering a returning record through G",
		knob: func(k *engine.Knobs) { k.FilterThroughG = true },
		run: func(w *world, old *engine.Knobs) error {
			r := w.node("R", time.Hour, old)
			x := w.node("X", -time.Hour, nil)
			y := w.node("Y", 0, nil)
			r.put("k", "v0")
			r.sync()
			x.sync()
			y.sync()
			x.put("k", "w") // unpushed, concurrent with the delete
			r.del("k")
			r.sync()
			x.pull() // X merges T with its unpushed w: [T, w], still dirty
			y.sync()
			r.compact(false) // every ack covers T: R collects it
			x.push()         // pushes [T, w]
			return w.settle("R", "X", "Y")
		},
	},
	{
		name: "S10", guard: "reusing a freed log position",
		knob: func(k *engine.Knobs) { k.PruneIgnoresAcks = true },
		run: func(w *world, old *engine.Knobs) error {
			r := w.node("R", 0, old)
			x := w.node("X", 0, nil) // 10 days behind
			r.sync()
			x.sync()
			for i := range 6 {
				r.put(fmt.Sprint("k", i), "v")
				r.sync()
			}
			w.now = w.now.Add(10 * 24 * time.Hour)
			r.compact(true)
			x.put("late", "x")
			x.push() // tries the position after its cursor
			return w.settle("R", "X")
		},
	},
	{
		name: "S12", guard: "a snapshot of unpushed data",
		knob: func(k *engine.Knobs) { k.SnapshotDirty = true },
		run: func(w *world, old *engine.Knobs) error {
			a := w.node("A", 0, old)
			b := w.node("B", 0, nil)
			a.sync()
			b.sync()
			a.put("k", "unpushed") // Relaxed: not yet durable
			a.compact(false)
			a.crash() // the write and its dot are lost here...
			a.put("k", "second")
			a.sync()
			w.node("N", 0, nil) // bootstraps from the snapshot
			_ = b
			return w.settle("A", "B", "N")
		},
	},
	{
		name: "S15", guard: "mixed snapshot parts",
		knob: func(k *engine.Knobs) { k.PartsWithoutNonce = true },
		run: func(w *world, old *engine.Knobs) error {
			a := w.node("A", 0, old)
			b := w.node("B", 0, old)
			for i := range 4 {
				a.put(fmt.Sprint("k", i), "v")
			}
			a.sync()
			b.sync()
			a.sync()
			a.del("k0")
			a.sync()
			b.sync()
			a.sync()
			// Both at the same position; A collects, B compacted earlier
			// in its own view. B's parts are written, B "crashes" before its
			// index; A's compaction at the same position finishes.
			b.compact(false)
			a.compact(false)
			w.node("N", 0, nil)
			return w.settle("A", "B", "N")
		},
	},
}

func TestRegressionSchedules(t *testing.T) { runSchedules(t, schedules) }

// runSchedules runs each schedule with the real rules (it must converge)
// and with its old rule (it must not).
func runSchedules(t *testing.T, list []schedule) {
	for _, s := range list {
		t.Run(s.name, func(t *testing.T) {
			if err := s.run(newWorld(t, nil), nil); err != nil {
				t.Fatalf("%s (guards %s) failed with the real rules: %v", s.name, s.guard, err)
			}
			old := &engine.Knobs{}
			s.knob(old)
			err := s.run(newWorld(t, old), old)
			if err == nil {
				t.Fatalf("%s converged with the old rule (%s): the schedule does not test it", s.name, s.guard)
			}
			t.Logf("%s with the old rule (%s): %v", s.name, s.guard, err)
		})
	}
}
