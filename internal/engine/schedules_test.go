package engine_test

// The harness of the scripted schedules (absence_test.go): a small
// cluster of engines on one memremote, driven step by step. The
// regression schedules of DESIGN.md (S1-S21) are datadriven files run by
// the simulator: sim/testdata/schedules (go test ./sim -run
// TestSchedules). Those that used to be written here as well (S3-S10,
// S12, S15) were moved there, with the same steps and the same old rules
// (S6 in this file's form as the second schedule of
// s06_stale_staged_segment.txt).

import (
	"context"
	"errors"
	"fmt"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/sim"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// world is a small scripted cluster on one memremote.
type world struct {
	t     *testing.T
	ctx   context.Context
	b     *memremote.Backend
	now   time.Time // the remote's clock (LastModified)
	knobs *engine.Hooks
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
	knobs *engine.Hooks
	w     *world
	// armed: the step at which the next operation dies; pauses: what
	// happens while the replica sleeps at a step (run once).
	armed  string
	pauses map[string]func()
}

func newWorld(t *testing.T, knobs *engine.Hooks) *world {
	w := &world{t: t, ctx: context.Background(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), knobs: knobs, nodes: map[string]*snode{}}
	var err error
	w.b, err = memremote.NewWithOptions("sched", memremote.Options{Now: func() time.Time { w.now = w.now.Add(time.Second); return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// node adds a replica whose wall clock is offset from the world's.
func (w *world) node(name string, offset time.Duration, k *engine.Hooks) *snode {
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
	k := &engine.Hooks{}
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
		Wall: n.wall.now, Durability: store.Relaxed, AckInterval: -1, Hooks: k,
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
	guard string                // the old rule
	knob  func(*protocol.Rules) // restores the old rule (sim.OldRule.Set)
	run   func(w *world, old *engine.Hooks) error
}

// runSchedules runs each schedule with the real rules (it must converge)
// and with its old rule (it must not).
// oldRule is the simulator's old rule of that name, as a change to a rule
// set: the old rules exist once, in sim/oldrules.go.
func oldRule(name string) func(*protocol.Rules) {
	r, ok := sim.OldRuleNamed(name)
	if !ok || r.Set == nil {
		panic("no old rule of the rule set named " + name)
	}
	return r.Set
}

// plantedRule is a node's hooks with the old rule name restored when on.
func plantedRule(on bool, name string) *engine.Hooks {
	rules := protocol.Default()
	if on {
		oldRule(name)(&rules)
	}
	return &engine.Hooks{Rules: &rules}
}

func runSchedules(t *testing.T, list []schedule) {
	for _, s := range list {
		t.Run(s.name, func(t *testing.T) {
			if err := s.run(newWorld(t, nil), nil); err != nil {
				t.Fatalf("%s (guards %s) failed with the real rules: %v", s.name, s.guard, err)
			}
			rules := protocol.Default()
			s.knob(&rules)
			old := &engine.Hooks{Rules: &rules}
			err := s.run(newWorld(t, old), old)
			if err == nil {
				t.Fatalf("%s converged with the old rule (%s): the schedule does not test it", s.name, s.guard)
			}
			t.Logf("%s with the old rule (%s): %v", s.name, s.guard, err)
		})
	}
}
