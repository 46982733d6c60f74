package proptest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/sim"
	"github.com/ebreplica/ebreplica/store"
	"pgregory.net/rapid"
)

// Metamorphic tests of the simulator, after pebble's metamorphic package:
// the same generated operations, run in different orders or on different
// configurations that must not matter, reach the same state (the digest
// of every key's clock and versions).

// writes draws the local writes of a schedule: every replica writes a few
// keys; none has seen another's writes yet.
func writes(t *rapid.T, replicas int, policy string) []sim.Op {
	n := rapid.IntRange(1, 12).Draw(t, "writes")
	ops := make([]sim.Op, n)
	for i := range ops {
		r := rapid.IntRange(0, replicas-1).Draw(t, "replica")
		key := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "key")
		switch policy {
		case sim.PolicyCounter:
			ops[i] = sim.Op{R: r, Kind: sim.OpAdd, Key: key, Delta: rapid.Int64Range(-5, 5).Draw(t, "delta")}
		case sim.PolicySet:
			kind := rapid.SampledFrom([]sim.Kind{sim.OpSetAdd, sim.OpSetAdd, sim.OpSetRemove}).Draw(t, "set op")
			ops[i] = sim.Op{R: r, Kind: kind, Key: key, Elem: rapid.SampledFrom([]string{"x", "y"}).Draw(t, "elem")}
		default:
			if rapid.IntRange(0, 4).Draw(t, "delete?") == 0 {
				ops[i] = sim.Op{R: r, Kind: sim.OpDelete, Key: key}
			} else {
				ops[i] = sim.Op{R: r, Kind: sim.OpPut, Key: key, Value: fmt.Sprintf("%c%d", 'A'+r, i)}
			}
		}
	}
	return ops
}

func number(ops []sim.Op) []sim.Op {
	out := make([]sim.Op, len(ops))
	for i, op := range ops {
		op.ID = i
		op.Advance = time.Second
		out[i] = op
	}
	return out
}

func calmConfig(seed uint64, replicas int, policy string) sim.Config {
	return sim.Config{Seed: seed, Replicas: replicas, Policy: policy, Faults: -1, Crashes: -1, Partitions: -1,
		Jumps: -1, Skew: 24 * time.Hour}
}

// TestSimSyncOrderDoesNotMatter: once every replica has written
// concurrently, the order in which they push and pull does not change the
// state they converge to: merging is commutative, associative and
// idempotent, on real replicas.
func TestSimSyncOrderDoesNotMatter(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		replicas := rapid.IntRange(2, 4).Draw(t, "replicas")
		policy := rapid.SampledFrom([]string{sim.PolicyLWW, sim.PolicyMV, sim.PolicyCounter, sim.PolicySet}).Draw(t, "policy")
		ws := writes(t, replicas, policy)
		var syncs []sim.Op
		for r := range replicas {
			syncs = append(syncs, sim.Op{R: r, Kind: sim.OpPush}, sim.Op{R: r, Kind: sim.OpPull})
		}
		cfg := calmConfig(rapid.Uint64().Draw(t, "seed"), replicas, policy)
		var digest string
		for i := range 3 {
			order := rapid.Permutation(syncs).Draw(t, fmt.Sprint("sync order ", i))
			rep, err := sim.Replay(cfg, number(append(append([]sim.Op{}, ws...), order...)))
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && rep.Digest != digest {
				t.Fatalf("sync order %d reached state %s, order 0 reached %s", i, rep.Digest, digest)
			}
			digest = rep.Digest
		}
	})
}

// TestSimConfigurationsAgree: the same schedule reaches the same state on
// the mem engine and on Badger, with Sync and Relaxed durability, with raw
// and zstd segments — with remote faults and partitions on (crashes off:
// a power loss means different things on each).
func TestSimConfigurationsAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		policy := rapid.SampledFrom([]string{sim.PolicyLWW, sim.PolicyMV, sim.PolicyCounter, sim.PolicySet}).Draw(t, "policy")
		base := sim.Config{
			Seed: rapid.Uint64().Draw(t, "seed"), Replicas: 3, Policy: policy, Ops: rapid.IntRange(5, 40).Draw(t, "ops"),
			Faults: rapid.SampledFrom([]float64{-1, 0.1, 0.4}).Draw(t, "faults"), Crashes: -1, SegmentCap: 1 << 20,
		}
		ops, err := sim.Generate(base)
		if err != nil {
			t.Fatal(err)
		}
		var first sim.Report
		for i, vary := range []func(*sim.Config){
			func(*sim.Config) {},
			func(c *sim.Config) { c.Durability = store.Relaxed },
			func(c *sim.Config) { c.Codec = "zstd" },
			func(c *sim.Config) { c.Engine = sim.EngineBadger },
		} {
			if i == 3 && rapid.IntRange(0, 4).Draw(t, "badger?") > 0 {
				continue // Badger is slow to open: one case in five
			}
			cfg := base
			vary(&cfg)
			rep, err := sim.Replay(cfg, ops)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = rep
				continue
			}
			if rep.Digest != first.Digest || rep.Writes != first.Writes || rep.Conflicts != first.Conflicts {
				t.Fatalf("variant %d: state %s (%d writes, %d conflicts), base: %s (%d writes, %d conflicts)\n%s\n---\n%s",
					i, rep.Digest, rep.Writes, rep.Conflicts, first.Digest, first.Writes, first.Conflicts,
					strings.Join(rep.Trace, "\n"), strings.Join(first.Trace, "\n"))
			}
		}
	})
}

// TestSimSchedules: rapid generates whole schedules (any operation of any
// replica, crashes and partitions included) and shrinks a failing one.
func TestSimSchedules(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		replicas := rapid.IntRange(1, 4).Draw(t, "replicas")
		policy := rapid.SampledFrom([]string{sim.PolicyLWW, sim.PolicyMV, sim.PolicyCounter, sim.PolicySet}).Draw(t, "policy")
		ops := writes(t, replicas, policy)
		n := rapid.IntRange(0, 20).Draw(t, "others")
		for range n {
			r := rapid.IntRange(0, replicas-1).Draw(t, "replica")
			op := sim.Op{R: r, Kind: rapid.SampledFrom([]sim.Kind{sim.OpPush, sim.OpPull, sim.OpSync, sim.OpCrash, sim.OpPartition, sim.OpClockJump}).Draw(t, "kind")}
			switch op.Kind {
			case sim.OpCrash:
				op.Step = rapid.SampledFrom(append([]string{""}, sim.Steps...)).Draw(t, "step")
				op.Via = sim.OpSync
			case sim.OpPartition:
				op.For = rapid.IntRange(1, 5).Draw(t, "for")
			case sim.OpClockJump:
				op.Jump = -time.Duration(rapid.IntRange(1, 3600).Draw(t, "back")) * time.Second
			}
			at := rapid.IntRange(0, len(ops)).Draw(t, "at")
			ops = append(ops[:at], append([]sim.Op{op}, ops[at:]...)...)
		}
		cfg := sim.Config{Seed: rapid.Uint64().Draw(t, "seed"), Replicas: replicas, Policy: policy,
			Faults:     rapid.SampledFrom([]float64{-1, 0.2, 0.5}).Draw(t, "faults"),
			Durability: rapid.SampledFrom([]store.Durability{store.Sync, store.Relaxed}).Draw(t, "durability")}
		if _, err := sim.Replay(cfg, number(ops)); err != nil {
			t.Fatal(err)
		}
	})
}
