package sim

import (
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// The absence schedules of DESIGN.md (S16-S21): a replica paused past the
// retirement age, killed after a registry swap and kept away, copied while
// a swap is pending, restored from a copy below the prune floor, retired
// with unpushed CRDT changes, idle while nobody pushes. Each converges
// with the absence rules, and fails with its old rule restored
// (engine.Knobs, on the replicas the schedule names).

// absent is the base config of the absence schedules: calm, acks after
// every pull, a retirement age of a minute, idle registries refreshed
// every 10 s.
func absent(policy string, replicas int) Config {
	c := calm(policy, make([]time.Duration, replicas)...)
	c.AckInterval = -1
	c.RetireAfter = time.Minute
	c.RegistryRefresh = 10 * time.Second
	return c
}

// pause scripts a pause of r at step during via: the clock moves on by d,
// then the operations nested scripts run.
func (s *script) pause(r int, step string, via Kind, d time.Duration, nested func(n *script)) {
	var sub script
	nested(&sub)
	base := 1000 * (len(*s) + 1)
	for i := range sub {
		sub[i].ID = base + i
	}
	s.do(r, OpPause, Op{Step: step, Via: via, Pause: d, Nested: sub})
}

// retireAndPrune: with the clock moved past the retirement age by the
// caller, b writes and pushes, c pulls it (its ack moves), and b compacts
// with pruning: every silent replica that holds the floor down is retired
// and the log is pruned up to the new snapshot.
func (s *script) retireAndPrune(b, c int) {
	s.put(b, "b", "moved on")
	s.push(b)
	s.sync(c)
	s.do(b, OpCompact, Op{Prune: true, Grace: -1, RetireAfter: time.Minute})
}

func (s *script) backup(r int)     { s.do(r, OpBackup, Op{}) }
func (s *script) restore(r int)    { s.do(r, OpRestore, Op{}) }
func (s *script) copyTo(r, to int) { s.do(r, OpCopy, Op{To: to}) }
func (s *script) syncAll(n int) {
	for r := range n {
		s.sync(r)
	}
}

func knob(name, knob string, set func(*engine.Knobs), replicas ...int) OldRule {
	return knobOn(name, knob, set, replicas...)
}

// absenceScenarios returns S16-S21.
func absenceScenarios() []Scenario {
	return []Scenario{s16(), s17(), s18(), s19(), s19b(), s20(), s21()}
}

// S16: A's registry swap lands and A dies before it records the ETag
// (registry:swapped), and stays away past the retirement age; B retires it
// and prunes past its cursor. Back, A's push fails its swap and reads the
// object back: the retired body must win over "my own pending nonce" (the
// old retirer rewrote the body with the flag flipped, same nonce), or A
// takes the swap for its own, uploads into a freed position and clears its
// outbox: x is lost.
func s16() Scenario {
	const A, B, C = 0, 1, 2
	var s script
	s.syncAll(3)
	s.put(A, "x", "1")
	s.crash(A, "registry:swapped", OpPush)
	s.do(B, OpPut, Op{Key: "b", Value: "away", Advance: 2 * time.Minute})
	s.retireAndPrune(B, C)
	s.push(A)
	return Scenario{Name: "S16", Title: "killed after a registry swap, away past retirement, pushes after the pruning",
		Guards: "adopting a retired body as one's own write", Config: absent(PolicyLWW, 3), Ops: s,
		OldRules: []OldRule{knob("retired is not sticky", "RetiredNotSticky", func(k *engine.Knobs) { k.RetiredNotSticky = true }, A, B, C)}}
}

// S17: A pauses between its fence and its upload (push:fenced) past the
// retirement age; meanwhile B writes, C acks, B retires A and prunes the
// log past A's known tip. A's upload then creates a freed position: it
// must read its registry after the create (push:checked), find itself
// retired, keep its outbox and rebase; committing at once loses x.
func s17() Scenario {
	const A, B, C = 0, 1, 2
	var s script
	s.syncAll(3)
	s.put(A, "x", "1")
	s.pause(A, "push:fenced", OpPush, 2*time.Minute, func(n *script) { n.retireAndPrune(B, C) })
	s.sync(A)
	return Scenario{Name: "S17", Title: "a pusher paused between fence and upload past the retirement age",
		Guards: "creating a freed log position", Config: absent(PolicyLWW, 3), Ops: s,
		OldRules: []OldRule{knob("commit without reading the registry", "CommitUnchecked", func(k *engine.Knobs) { k.CommitUnchecked = true }, A)}}
}

// S18: A's directory is copied to D while A's ack swap is pending (at
// registry:swapped during a pull). D pushes first: its swap fails, and
// the read-back finds the pending nonce it inherited landed. Taking that
// for its own fence lets D publish under A's id; then A, whose ETag is
// still current, publishes too: one dot, two values. The inherited swap
// must be adopted and followed by a fresh CAS, which only one copy wins.
func s18() Scenario {
	const A, B, D = 0, 1, 2
	var s script
	s.syncAll(2)
	s.put(A, "x", "1")
	s.push(A)
	s.put(B, "b", "1")
	s.push(B)
	s.do(A, OpCopy, Op{Step: "registry:swapped", Via: OpPull, To: D})
	s.put(D, "k", "from the copy")
	s.push(D)
	s.put(A, "k", "from the original")
	s.push(A)
	s.syncAll(3)
	return Scenario{Name: "S18", Title: "a directory copied while an ack swap is pending; both copies push",
		Guards: "an adopted swap taken as a fence", Config: absent(PolicyLWW, 2), Ops: s,
		OldRules: []OldRule{knob("an inherited swap is a fence", "InheritedFence", func(k *engine.Knobs) { k.InheritedFence = true }, A, D)}}
}

// S19: A's directory is saved during its first pull (registered, not yet
// ready); A then writes, pushes, and the others move on, compact and
// prune the whole log; A's directory is put back. Nothing is listed after
// its cursor: "up to date" would let it push at a freed position with
// dots its earlier self already published. It must rebase (its cursor is
// below the newest snapshot) only on a registry body it wrote: this one
// was written by its later self, so ErrCloned, then reidentify. Rebasing
// anyway loads the snapshot's A dots above its counter, and its next write
// issues one of them again.
func s19() Scenario {
	const A, B, C = 0, 1, 2
	var s script
	// Saved registered but not yet ready: listed, nothing applied.
	s.do(A, OpBackup, Op{Step: "pull:listed", Via: OpPull})
	s.sync(B)
	s.sync(C)
	s.sync(A)
	s.put(A, "x", "1")
	s.push(A)
	s.sync(B)
	s.sync(C)
	s.sync(A)
	s.put(B, "b", "1")
	s.push(B)
	s.sync(C)
	s.sync(A)
	s.do(B, OpCompact, Op{Prune: true, Grace: -1, RetireAfter: time.Minute})
	s.restore(A)
	s.put(A, "y", "after the restore")
	s.push(A)
	s.syncAll(3)
	return Scenario{Name: "S19", Title: "a directory restored from a copy below the prune floor",
		Guards: `"nothing listed" taken for "up to date"; a dot counter below the snapshot's own entries`,
		Config: absent(PolicyLWW, 3), Ops: s,
		OldRules: []OldRule{
			knob(`"nothing listed" is "up to date"`, "NothingListedUpToDate", func(k *engine.Knobs) { k.NothingListedUpToDate = true }, A),
		}}
}

// S19b: the gap variant, with two live directories. A's directory is
// copied to D during its first pull (registered, not ready); A writes,
// pushes, the log is pruned up to a snapshot holding A's dots. D starts
// late: below the snapshot it must rebase, and only on a registry body it
// wrote (ErrCloned here). Rebasing anyway (and un-retiring, taking the
// registry over) lets D publish a dot A is publishing at the same time
// (A is fenced, its upload pending): one dot, two values.
//
// (S19 itself cannot fail with RebaseAnyRegistry alone: with one live
// directory the registry read-back and the pull-side check stop the
// restored copy, and loading the snapshot raises its dot counter past the
// snapshot's own entries, so no dot is issued twice.)
func s19b() Scenario {
	const A, B, C, D = 0, 1, 2, 3
	var s script
	s.do(A, OpCopy, Op{Step: "pull:listed", Via: OpPull, To: D})
	s.sync(B)
	s.sync(C)
	s.sync(A)
	s.put(A, "x", "1")
	s.push(A)
	s.syncAll(3)
	s.put(B, "b", "1")
	s.push(B)
	s.sync(C)
	s.sync(A)
	s.do(B, OpCompact, Op{Prune: true, Grace: -1, RetireAfter: time.Minute})
	s.put(A, "z", "from A")
	s.pause(A, "push:fenced", OpPush, time.Second, func(n *script) {
		n.put(D, "y", "from the copy")
		n.push(D)
	})
	s.syncAll(4)
	return Scenario{Name: "S19b", Title: "a copy below the prune floor rebases while its original pushes",
		Guards: "rebasing on a registry body another directory wrote; loading own future dots",
		Config: absent(PolicyLWW, 3), Ops: s,
		OldRules: []OldRule{
			knob("rebase on any registry, loading own future dots", "RebaseAnyRegistry", func(k *engine.Knobs) { k.RebaseAnyRegistry = true }, A, D),
		}}
}

// S20: A adds 5 to a counter and stays away unpushed past the retirement
// age; B retires it. A's rebase re-stamps its dirty counter: as state
// (its increments kept, joined with what the snapshot holds); as the text
// it reads ("5"), the counter's state is gone.
func s20() Scenario {
	const A, B, C = 0, 1, 2
	var s script
	s.syncAll(3)
	s.add(B, "n", 2)
	s.syncAll(3)
	s.add(A, "n", 5)
	s.do(B, OpAdd, Op{Key: "n", Delta: 1, Advance: 2 * time.Minute})
	s.push(B)
	s.sync(C)
	s.do(B, OpCompact, Op{Prune: true, Grace: -1, RetireAfter: time.Minute})
	s.sync(A)
	s.syncAll(3)
	return Scenario{Name: "S20", Title: "a replica with an unpushed counter change is retired and rebases",
		Guards: "re-stamping CRDT state as read text", Config: absent(PolicyCounter, 3), Ops: s,
		OldRules: []OldRule{knob("re-stamp as text", "RestampAsText", func(k *engine.Knobs) { k.RestampAsText = true }, A)}}
}

// S21: nobody pushes for longer than the retirement age while A keeps
// pulling; then B pushes once and compacts with pruning. A, online all
// along, holds the floor down (its ack is below the new snapshot) but
// must not be retired: its idle pulls refresh its registry.
func s21() Scenario {
	const A, B = 0, 1
	var s script
	s.syncAll(2)
	for range 6 {
		s.do(A, OpPull, Op{Advance: 15 * time.Second})
	}
	s.put(B, "b", "1")
	s.push(B)
	s.do(B, OpCompact, Op{Prune: true, Grace: -1, RetireAfter: time.Minute})
	return Scenario{Name: "S21", Title: "an idle replica that only pulls, across the retirement age",
		Guards: "an ack refreshed only when the cursor moves", Config: absent(PolicyLWW, 2), Ops: s,
		OldRules: []OldRule{knob("refresh only when the cursor moves", "RefreshOnlyOnMove", func(k *engine.Knobs) { k.RefreshOnlyOnMove = true }, A)}}
}
