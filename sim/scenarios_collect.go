package sim

import (
	"fmt"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

// The regression schedules of DESIGN.md about collection, pruning,
// bootstrap and snapshots (S3, S4, S5, S7, S8, S9, S10, S12, S15), ported
// from replica/schedules_test.go. Each restores its old rule on the
// replicas that schedule gives it to (Config.Knobs).

// knobOn is an old rule restored on the given replicas only.
func knobOn(name, knob string, set func(*engine.Knobs), replicas ...int) OldRule {
	return OldRule{Name: name, Knob: "Knobs." + knob, Apply: func(c *Config) {
		c.Knobs = func(i int, k *engine.Knobs) {
			for _, r := range replicas {
				if r == i {
					set(k)
				}
			}
		}
	}}
}

func (s *script) compact(r int, prune bool) {
	s.do(r, OpCompact, Op{Prune: prune, Grace: -1})
}

// join adds replica r (the next index) with the given clock offset.
func (s *script) join(r int, offset time.Duration) {
	s.do(r, OpBootstrap, Op{Jump: offset})
}

// collecting is the base config of the collection schedules: calm, acks
// after every pull, Relaxed durability (as in replica/schedules_test.go).
func collecting(offsets ...time.Duration) Config {
	c := calm(PolicyLWW, offsets...)
	c.AckInterval = -1
	c.Durability = store.Relaxed
	return c
}

// S3: X only pushes; counting its own push in its ack let R collect a
// tombstone X never pulled, and X's later concurrent write diverges.
func s3() Scenario {
	const R, X, Y = 0, 1, 2
	var s script
	s.put(R, "k", "v0")
	s.sync(R)
	s.sync(X)
	s.sync(Y)
	s.del(R, "k")
	s.push(R)
	s.pull(Y)
	s.put(X, "other", "1")
	s.push(X)
	s.put(X, "other", "2")
	s.push(X)
	s.compact(R, false)
	s.put(X, "k", "w")
	s.push(X)
	return Scenario{Name: "S3", Title: "a replica that only pushes, and a collected tombstone it never pulled",
		Guards: "ack counting one's own push", Config: collecting(time.Hour, -time.Hour, 0), Ops: s,
		OldRules: []OldRule{knobOn("ack counts one's own push", "AckIncludesOwnPush", func(k *engine.Knobs) { k.AckIncludesOwnPush = true }, X)}}
}

// S4: R collects against the acks without pulling to a tip listed after
// reading them; Y's concurrent write lands after.
func s4() Scenario {
	const R, X, Y = 0, 1, 2
	var s script
	s.put(R, "k", "v0")
	s.sync(R)
	s.sync(X)
	s.sync(Y)
	s.del(R, "k")
	s.sync(R)
	s.sync(X)
	s.put(Y, "k", "w")
	s.compact(R, false)
	s.push(Y)
	return Scenario{Name: "S4", Title: "collecting against the acks without pulling to a listed tip",
		Guards: "collecting against max ack instead of a listed tip", Config: collecting(time.Hour, 0, -time.Hour), Ops: s,
		OldRules: []OldRule{knobOn("collect against the max ack", "CollectAgainstMaxAck", func(k *engine.Knobs) { k.CollectAgainstMaxAck = true }, R)}}
}

// S5: R collects k, then writes it again; the write must start from G so
// that it dominates the tombstone S still holds.
func s5() Scenario {
	const A, R, S = 0, 1, 2
	var s script
	s.put(A, "k", "v0")
	s.sync(A)
	s.sync(R)
	s.sync(S)
	s.del(A, "k")
	s.sync(A)
	s.sync(R)
	s.sync(S)
	s.sync(A)
	s.compact(R, false)
	s.put(R, "k", "again")
	return Scenario{Name: "S5", Title: "a fresh write of a collected key", Guards: "fresh writes not starting from G",
		Config: collecting(3*time.Hour, 0, 0), Ops: s,
		OldRules: []OldRule{knobOn("fresh writes ignore G", "WriteIgnoresG", func(k *engine.Knobs) { k.WriteIgnoresG = true }, R)}}
}

// S7: a new replica writes a collected key before its first pull and
// pushes at once.
func s7() Scenario {
	const R, S, N = 0, 1, 2
	var s script
	s.put(R, "k", "v0")
	s.sync(R)
	s.sync(S)
	s.del(R, "k")
	s.sync(R)
	s.sync(S)
	s.sync(R)
	s.compact(R, false)
	s.join(N, -time.Hour)
	s.put(N, "k", "new")
	s.push(N)
	return Scenario{Name: "S7", Title: "a new replica writes a collected key before it pulled",
		Guards: "pull to the tip before the first push", Config: collecting(time.Hour, 0), Ops: s,
		OldRules: []OldRule{knobOn("push before the first pull", "PushBeforePull", func(k *engine.Knobs) { k.PushBeforePull = true }, N)}}
}

// S8: a winning tombstone sibling next to a concurrent live write: the
// record is collected whole or not at all.
func s8() Scenario {
	const R, X = 0, 1
	var s script
	s.put(R, "k", "v0")
	s.sync(R)
	s.sync(X)
	s.del(R, "k")
	s.put(X, "k", "w")
	s.sync(R)
	s.sync(X)
	s.sync(R)
	s.sync(X)
	s.compact(R, false)
	return Scenario{Name: "S8", Title: "collecting a record whose lww winner is a tombstone",
		Guards: "dropping a tombstone sibling instead of the record", Config: collecting(time.Hour, -time.Hour), Ops: s,
		OldRules: []OldRule{knobOn("drop the tombstone sibling", "DropTombstoneSibling", func(k *engine.Knobs) { k.DropTombstoneSibling = true }, R)}}
}

// S9: X merges the tombstone with its unpushed concurrent write; R
// collects; X's record comes back and must be taken whole.
func s9() Scenario {
	const R, X, Y = 0, 1, 2
	var s script
	s.put(R, "k", "v0")
	s.sync(R)
	s.sync(X)
	s.sync(Y)
	s.put(X, "k", "w")
	s.del(R, "k")
	s.sync(R)
	s.pull(X)
	s.sync(Y)
	s.compact(R, false)
	s.push(X)
	return Scenario{Name: "S9", Title: "a record for a collected key comes back",
		Guards: "filtering a returning record through G", Config: collecting(time.Hour, -time.Hour, 0), Ops: s,
		OldRules: []OldRule{knobOn("filter through G", "FilterThroughG", func(k *engine.Knobs) { k.FilterThroughG = true }, R)}}
}

// S10: R prunes after ten days; X, silent but not retired, pushes at the
// position after its cursor.
func s10() Scenario {
	const R, X = 0, 1
	var s script
	s.sync(R)
	s.sync(X)
	for i := range 6 {
		s.put(R, fmt.Sprint("k", i), "v")
		s.sync(R)
	}
	s.do(R, OpCompact, Op{Prune: true, Grace: -1, Advance: 10 * 24 * time.Hour})
	s.put(X, "late", "x")
	s.push(X)
	return Scenario{Name: "S10", Title: "pruning below a silent replica's ack",
		Guards: "reusing a freed log position", Config: collecting(0, 0), Ops: s,
		OldRules: []OldRule{knobOn("prune ignoring the acks", "PruneIgnoresAcks", func(k *engine.Knobs) { k.PruneIgnoresAcks = true }, R)}}
}

// S12: A snapshots an unpushed write, then loses it in a power loss and
// reissues its dot; N bootstraps from the snapshot.
func s12() Scenario {
	const A, B, N = 0, 1, 2
	var s script
	s.sync(A)
	s.sync(B)
	s.put(A, "k", "unpushed")
	s.compact(A, false)
	s.crash(A, "", 0)
	s.put(A, "k", "second")
	s.sync(A)
	s.join(N, 0)
	return Scenario{Name: "S12", Title: "a snapshot of unpushed data, then a power loss",
		Guards: "a snapshot of unpushed data", Config: collecting(0, 0), Ops: s,
		OldRules: []OldRule{knobOn("snapshot a dirty state", "SnapshotDirty", func(k *engine.Knobs) { k.SnapshotDirty = true }, A)}}
}

// S15: two compactors at one position; N bootstraps from the snapshot.
func s15() Scenario {
	const A, B, N = 0, 1, 2
	var s script
	for i := range 4 {
		s.put(A, fmt.Sprint("k", i), "v")
	}
	s.sync(A)
	s.sync(B)
	s.sync(A)
	s.del(A, "k0")
	s.sync(A)
	s.sync(B)
	s.sync(A)
	s.compact(B, false)
	s.compact(A, false)
	s.join(N, 0)
	return Scenario{Name: "S15", Title: "two compactors at one position", Guards: "mixed snapshot parts",
		Config: collecting(0, 0), Ops: s,
		OldRules: []OldRule{knobOn("parts without the compactor's nonce", "PartsWithoutNonce", func(k *engine.Knobs) { k.PartsWithoutNonce = true }, A, B)}}
}
