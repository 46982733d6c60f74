package proptest_test

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/sim"
	"github.com/ebreplica/ebreplica/store"
	"pgregory.net/rapid"
)

// oldRule restores an old rule in the state machine, to watch rapid
// shrink the failure it causes to a minimal sequence of actions:
//
//	go test ./proptest -run TestSimStateMachine -sim.oldrule=hlc
var oldRule = flag.String("sim.oldrule", "", "restore an old rule in TestSimStateMachine: hlc, prune or unsynced (it must fail)")

// simMachine drives a sim.World, one rapid action at a time: the
// simulator's replicas, store, clocks and oracle, with rapid choosing the
// operations and shrinking a failure to the shortest sequence of them.
type simMachine struct {
	w        *sim.World
	cfg      sim.Config
	next     int // the next operation ID
	replicas int
	keys     []string
}

func (m *simMachine) do(t *rapid.T, op sim.Op) {
	op.ID = m.next
	m.next++
	op.Advance = time.Duration(rapid.IntRange(1, 5000).Draw(t, "ms")) * time.Millisecond
	if err := m.w.Do(op); err != nil {
		t.Fatalf("%s: %v\ntrace:\n%s", op, err, trace(m.w))
	}
}

func trace(w *sim.World) string {
	out := ""
	for _, l := range w.Trace() {
		out += "  " + l + "\n"
	}
	return out
}

func (m *simMachine) replica(t *rapid.T) int {
	return rapid.IntRange(0, m.replicas-1).Draw(t, "replica")
}
func (m *simMachine) key(t *rapid.T) string { return rapid.SampledFrom(m.keys).Draw(t, "key") }

func (m *simMachine) put(t *rapid.T) {
	r := m.replica(t)
	switch m.cfg.Policy {
	case sim.PolicyCounter:
		m.do(t, sim.Op{R: r, Kind: sim.OpAdd, Key: m.key(t), Delta: rapid.Int64Range(-3, 5).Draw(t, "delta")})
	case sim.PolicySet:
		m.do(t, sim.Op{R: r, Kind: sim.OpSetAdd, Key: m.key(t), Elem: rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "elem")})
	default:
		m.do(t, sim.Op{R: r, Kind: sim.OpPut, Key: m.key(t), Value: fmt.Sprintf("v%d", m.next)})
	}
}

func (m *simMachine) delete(t *rapid.T) {
	r := m.replica(t)
	switch m.cfg.Policy {
	case sim.PolicyCounter:
		m.do(t, sim.Op{R: r, Kind: sim.OpAdd, Key: m.key(t), Delta: -1})
	case sim.PolicySet:
		m.do(t, sim.Op{R: r, Kind: sim.OpSetRemove, Key: m.key(t), Elem: rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "elem")})
	default:
		m.do(t, sim.Op{R: r, Kind: sim.OpDelete, Key: m.key(t)})
	}
}

func (m *simMachine) sync(kind sim.Kind) func(*rapid.T) {
	return func(t *rapid.T) { m.do(t, sim.Op{R: m.replica(t), Kind: kind}) }
}

func (m *simMachine) crash(t *rapid.T) {
	r := m.replica(t)
	step := rapid.SampledFrom(append([]string{""}, sim.Steps...)).Draw(t, "step")
	via := rapid.SampledFrom([]sim.Kind{sim.OpPush, sim.OpPull, sim.OpSync}).Draw(t, "via")
	m.do(t, sim.Op{R: r, Kind: sim.OpCrash, Step: step, Via: via})
}

func (m *simMachine) partition(t *rapid.T) {
	m.do(t, sim.Op{R: m.replica(t), Kind: sim.OpPartition, For: rapid.IntRange(1, 10).Draw(t, "for")})
}

func (m *simMachine) heal(t *rapid.T) { m.do(t, sim.Op{R: m.replica(t), Kind: sim.OpHeal}) }

func (m *simMachine) jump(t *rapid.T) {
	back := time.Duration(rapid.IntRange(1, 3600).Draw(t, "back")) * time.Second
	m.do(t, sim.Op{R: m.replica(t), Kind: sim.OpClockJump, Jump: -back})
}

// TestSimStateMachine: rapid chooses the configuration and a sequence of
// actions — put, delete (or counter and set updates), push, pull, sync,
// crash at a step of push or pull (or at rest), partition, heal, clock
// jump — on real replicas in the simulator. The world checks the dots of
// every version it sees after each action; at the end the faults stop,
// the replicas sync until they agree, and every invariant is checked
// against the oracle. A failure shrinks to a minimal sequence.
func TestSimStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := sim.Config{
			Seed:       rapid.Uint64().Draw(t, "seed"),
			Replicas:   rapid.IntRange(2, 3).Draw(t, "replicas"),
			Policy:     rapid.SampledFrom([]string{sim.PolicyLWW, sim.PolicyMV, sim.PolicyCounter, sim.PolicySet}).Draw(t, "policy"),
			Faults:     rapid.SampledFrom([]float64{-1, 0.05, 0.3}).Draw(t, "faults"),
			Skew:       time.Duration(rapid.IntRange(0, 24).Draw(t, "skew hours"))*time.Hour + time.Millisecond,
			Durability: rapid.SampledFrom([]store.Durability{store.Sync, store.Relaxed}).Draw(t, "durability"),
			SegmentCap: rapid.SampledFrom([]int{1, 256}).Draw(t, "segment cap"),
		}
		switch *oldRule {
		case "hlc":
			sim.OldMergeByHLC.Apply(&cfg)
		case "prune":
			sim.OldPruneLosers.Apply(&cfg)
		case "unsynced":
			sim.OldUnsyncedStaging.Apply(&cfg)
			cfg.Durability = store.Relaxed
		}
		w, err := sim.NewWorld(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		m := &simMachine{w: w, cfg: cfg, replicas: cfg.Replicas, keys: []string{"k0", "k1", "k2"}}
		t.Repeat(map[string]func(*rapid.T){
			"put":       m.put,
			"delete":    m.delete,
			"push":      m.sync(sim.OpPush),
			"pull":      m.sync(sim.OpPull),
			"sync":      m.sync(sim.OpSync),
			"crash":     m.crash,
			"partition": m.partition,
			"heal":      m.heal,
			"jump":      m.jump,
		})
		if _, err := w.Finish(); err != nil {
			t.Fatalf("%v\ntrace:\n%s", err, trace(w))
		}
	})
}
