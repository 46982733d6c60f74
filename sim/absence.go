package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// The absence fault model: pauses at every step, crashes after any
// transaction, directory backups put back, directory copies running
// alongside (Config.Pauses, CrashTx, Backups, Copies).
//
//   - OpPause runs Via on R and, at Step (engine.Hooks.Step), runs Nested
//     on the same goroutine while R waits inside its operation: the logical
//     clock (so every wall clock and the store's LastModified) moves on by
//     Pause first, then each nested operation runs as World.Do runs one
//     (with its own Advance). Nested operations that would sync R are
//     skipped (R holds its sync lock); writes to R are made, and count as
//     dirty for what R's operation does next (a rebase may re-stamp them).
//     The no-resurrection check is not run while a replica is paused: it
//     reads every replica between operations, and R is inside one.
//   - OpCrash with Tx: the engine wrapper fails the (Tx+1)-th transaction of
//     Via and everything after it (the replica's remote view too: a dead
//     process sends nothing), then the world loses what no fsync covered and
//     reopens, as for a crash at a step.
//   - OpBackup saves a copy of R's directory (its engine's keys); OpRestore
//     closes R, puts the copy back and reopens it with the same id. Every
//     write R acknowledged after the copy and never published is gone with
//     the disk: the oracle drops it (as a Relaxed power loss); a published
//     one must survive (on the remote, and on the replicas that pulled it).
//   - OpCopy copies R's directory into a new replica To with the same id
//     and the same clock, running alongside from then on.
//
// A restored or copied directory shares its id with another history (its
// own earlier self, or its twin). Fencing must stop it with ErrCloned
// before it publishes a second history under that id; the simulator then
// runs Reidentify, as a user would, and carries on. ErrCloned of any other
// replica is still a violation. Until the verdict, such a directory may
// issue dots its twin (or its earlier self) also issued: the oracle keeps
// both events (twins), matches a version it sees to the one with the same
// content, and fails the run when both are published (a dot naming two
// versions). A rebase discards every record first: an own-id version it
// then loads from a snapshot is what its clock entries of that dot stand
// for (oracle.adopt). Reidentify drops the old id's versions above the
// counter the directory published and re-stamps its dirty keys under the
// new id; the oracle records each re-stamped version as a new write whose
// causal past is what its record's clock covers (the replica's claim) plus
// the dropped versions of the key that exist nowhere else (it carries
// them); a dropped version that exists nowhere else and was not re-stamped
// is lost. A re-stamp of a json key holds the old id's unpublished
// assignments and set members under its own dot, each keeping its HLC
// (merge.DocState.Reidentify): the oracle takes each for an assignment of
// the re-stamp's (event.restamped, checked against the acknowledged writes
// it re-tags), which only a write that saw the re-stamp replaces, and the
// dropped versions' own as moved (oracle.document).

// errAbort ends a paused operation whose nested operations broke an
// invariant.
var errAbort = errors.New("sim: a nested operation broke an invariant")

// genPause fills in a pause of o.R at a step of AllSteps, with its nested
// operations, from a source seeded by the operation.
func genPause(cfg Config, o Op, replicas int) Op {
	rng := rand.New(rand.NewPCG(cfg.Seed^uint64(o.ID+1)*0x2545f4914f6cdd1d, 0x9a05e))
	o.Kind = OpPause
	o.Step = AllSteps[rng.IntN(len(AllSteps))]
	switch {
	case strings.HasPrefix(o.Step, "compact:"):
		o.Via = OpCompact
	case strings.HasPrefix(o.Step, "pull:"):
		o.Via = []Kind{OpPull, OpSync, OpCompact}[rng.IntN(3)]
	case strings.HasPrefix(o.Step, "push:"):
		o.Via = []Kind{OpPush, OpSync, OpCompact}[rng.IntN(3)]
	default: // registry:swapped, rebase:*
		o.Via = []Kind{OpPush, OpPull, OpSync, OpCompact}[rng.IntN(4)]
	}
	retire := cfg.RetireAfter
	if retire <= 0 {
		retire = engine.DefaultRetireAfter
	}
	maxPause := cfg.MaxPause
	if maxPause <= 0 {
		maxPause = 5 * retire
	}
	if rng.IntN(4) == 0 {
		o.Pause = time.Duration(rng.IntN(3000)) * time.Millisecond
	} else {
		o.Pause = time.Duration(rng.Int64N(int64(maxPause))).Truncate(time.Millisecond)
	}
	o.Nested = genNested(cfg, rng, o.ID, o.R, replicas, retire)
	return o
}

// genNested draws the operations others run during a pause of paused:
// writes (to any replica, the paused one too), syncs, and compactions with
// pruning and retirement, often one last.
func genNested(cfg Config, rng *rand.Rand, id, paused, replicas int, retire time.Duration) []Op {
	other := func() int {
		if replicas < 2 {
			return paused
		}
		r := rng.IntN(replicas - 1)
		if r >= paused {
			r++
		}
		return r
	}
	key := func() string { return fmt.Sprintf("k%d", min(rng.IntN(cfg.Keys), rng.IntN(cfg.Keys))) }
	kind := cfg.kind()
	n := 1 + rng.IntN(7)
	var ops []Op
	for i := range n {
		o := Op{ID: 10_000_000 + id*100 + i, Advance: time.Duration(1+rng.IntN(3000)) * time.Millisecond}
		switch y := rng.IntN(100); {
		case y < 35:
			o.R = other()
			if rng.IntN(4) == 0 {
				o.R = paused
			}
			switch kind {
			case kindCounter:
				o.Kind, o.Key, o.Delta = OpAdd, key(), int64(rng.IntN(9)-3)
			case kindSet:
				o.Kind, o.Key, o.Elem = []Kind{OpSetAdd, OpSetAdd, OpSetRemove}[rng.IntN(3)], key(), fmt.Sprintf("e%d", rng.IntN(4))
			case kindJSON:
				o.Kind, o.Key, o.Elem, o.Value = OpPatch, key(), docLeaves[rng.IntN(len(docLeaves))], fmt.Sprintf("%s%d", replicaName(o.R), o.ID)
				if rng.IntN(3) == 0 {
					o.Elem, o.Value = docRemovable[rng.IntN(len(docRemovable))], ""
				}
				if v := docOpValue(o.Elem, o.ID); v != "" {
					o.Value = v
				}
			default:
				o.Kind, o.Key, o.Value = OpPut, key(), fmt.Sprintf("%s%d", replicaName(o.R), o.ID)
				if rng.IntN(4) == 0 {
					o.Kind, o.Value = OpDelete, ""
				}
			}
		case y < 75:
			o.R, o.Kind = other(), []Kind{OpPush, OpPull, OpSync, OpSync}[rng.IntN(4)]
		case y < 90:
			o.R, o.Kind, o.Prune, o.Grace, o.RetireAfter = other(), OpCompact, true, -1, retire
		default:
			o.R, o.Kind = other(), OpCrash
		}
		ops = append(ops, o)
	}
	if rng.IntN(2) == 0 {
		ops = append(ops, Op{ID: 10_000_000 + id*100 + n, R: other(), Kind: OpCompact, Prune: true, Grace: -1,
			RetireAfter: retire, Advance: time.Second})
	}
	return ops
}

// runVia runs the operation a pause, a crash after a transaction, or a
// copy at a step happens in.
func (w *World) runVia(n *node, via Kind) (string, *Violation) {
	if via == OpCompact {
		return w.compact(n, Op{Prune: true, Grace: -1, RetireAfter: w.cfg.RetireAfter})
	}
	if via != OpPush && via != OpPull {
		via = OpSync
	}
	return w.syncOp(n, via)
}

// pause runs at the step a pause waits at: the clock moves on, the nested
// operations run. A violation among them is kept for Do and ends the
// paused operation.
func (w *World) pause(n *node, op *Op) {
	if n.pausedPre != nil {
		// What the operation did so far that the oracle cannot see (a
		// rebase's re-stamped writes, already pushed perhaps) must be known
		// before the log is checked and others read it.
		if v := w.afterSync(n, w.opID, *n.pausedPre); v != nil {
			w.nestedV = v
			return
		}
	}
	if v := w.checkLog(); v != nil { // what it uploaded so far is published
		w.nestedV = v
		return
	}
	w.now += max(op.Pause, 0)
	w.tracef("%s  %s paused at %s for %s (now %s); meanwhile:", w.indent(), n.name(), op.Step, op.Pause, fmtDur(w.now))
	n.paused = true
	w.depth++
	for _, sub := range op.Nested {
		if err := w.Do(sub); err != nil {
			var v *Violation
			if !errors.As(err, &v) {
				v = violate(RuleError, "%v", err)
			}
			w.nestedV = v
			break
		}
	}
	w.depth--
	n.paused = false
	w.rep.Pauses++
}

func (w *World) indent() string { return strings.Repeat("    ", w.depth) }

// anyPaused reports whether some replica waits inside an operation.
func (w *World) anyPaused() bool {
	for _, n := range w.nodes {
		if n.paused {
			return true
		}
	}
	return false
}

// allowedWhilePaused: what may run on a replica that waits inside an
// operation (it holds its sync lock).
func allowedWhilePaused(o Op) bool {
	switch o.Kind {
	case OpPut, OpDelete, OpBatch, OpAdd, OpSetAdd, OpSetRemove, OpPatch, OpPartition, OpHeal, OpClockJump, OpOffline:
		return true
	case OpBackup, OpCopy:
		return o.Step == ""
	}
	return false
}

// crashVia runs Via with a power failure armed after its Tx-th
// transaction.
func (w *World) crashVia(n *node, op Op) (string, *Violation) {
	if n.eng.mem == nil {
		return "skipped (badger cannot lose power)", nil
	}
	n.eng.crashAfter, n.eng.txSeen = op.Tx, 0
	n.killing = op.Kill
	crashes := w.rep.Crashes
	out, v := w.runVia(n, op.Via)
	n.eng.crashAfter, n.killing = 0, false
	if v != nil || n.r == nil || w.rep.Crashes != crashes {
		return out, v // the power loss is done (syncOp)
	}
	if !n.eng.dead.Load() {
		return out + fmt.Sprintf(" (tx %d not reached)", op.Tx), nil
	}
	if op.Kill {
		crashed, v := w.kill(n, fmt.Sprintf("after tx %d", op.Tx))
		return out + "; " + crashed, v
	}
	crashed, v := w.powerLoss(n, fmt.Sprintf("after tx %d", op.Tx))
	return out + "; " + crashed, v
}

// kill ends node n's process (kill -9) where its engine died: every
// transaction written so far stays, synced or not (the operating system
// holds it), and the replica reopens on the same engine and id. Nothing is
// lost, so the oracle has nothing to drop.
func (w *World) kill(n *node, where string) (string, *Violation) {
	if err := n.r.Close(); err != nil && !errors.Is(err, engine.ErrClosed) {
		return "", violate(RuleError, "closing %s: %v", n.name(), err)
	}
	n.r = nil
	n.eng.dead.Store(false)
	n.eng.crashAfter, n.eng.txSeen = 0, 0
	w.rep.Crashes++
	if err := n.open(); err != nil {
		return "", violate(RuleError, "%v", err)
	}
	return "killed " + where, nil
}

// snapshotDir copies n's directory.
func (w *World) snapshotDir(n *node) (*dirCopy, error) {
	if n.eng.mem == nil {
		return nil, errors.New("badger: no directory copies")
	}
	return &dirCopy{mem: n.eng.mem.Clone(), applied: n.eng.applied.Load(), id: n.id}, nil
}

// backup saves a copy of n's directory, at rest or at a step of Via.
func (w *World) backup(n *node, op Op) (string, *Violation) {
	if n.eng.mem == nil {
		return "skipped (badger: no directory copies)", nil
	}
	if op.Step == "" {
		c, err := w.snapshotDir(n)
		if err != nil {
			return "", violate(RuleError, "copying %s: %v", n.name(), err)
		}
		w.backups[n.i] = c
		w.rep.Backups++
		return "saved", nil
	}
	n.atStep, n.atStepOp, n.atHit = op.Step, &op, false
	out, v := w.runVia(n, op.Via)
	n.atStep, n.atStepOp = "", nil
	if !n.atHit {
		out += " (step not reached: nothing saved)"
	}
	return out, v
}

// restore puts n's saved copy back.
func (w *World) restore(n *node) (string, *Violation) {
	c := w.backups[n.i]
	if c == nil || n.eng.mem == nil {
		return "skipped: no saved copy", nil
	}
	if c.id != n.id {
		return "skipped: the saved copy is of another id (reidentified since)", nil
	}
	if err := n.r.Close(); err != nil && !errors.Is(err, engine.ErrClosed) {
		return "", violate(RuleError, "closing %s: %v", n.name(), err)
	}
	n.r = nil
	clear(w.dead)
	var lost int
	for _, e := range w.or.events {
		// (A copy of the directory made since still holds its writes:
		// those are not gone, seed 408 of the restore sweep.)
		if e.node == n.i && !e.lost && e.applied > c.applied && e.published == "" &&
			!w.heldElsewhere(n, n.id, e.key, e.version()) && !w.carried(e) {
			e.lost = true
			lost++
		}
	}
	n.eng.restore(c.mem)
	n.mayClone, n.restored = true, true
	w.or.restored[n.i] = true
	delete(w.or.adopted, n.i) // what a rebase loaded since the copy is gone with the disk
	w.rep.Restores++
	w.rep.LostWrites += int64(lost)
	if err := n.open(); err != nil {
		return "", violate(RuleError, "%v", err)
	}
	out := fmt.Sprintf("restored the copy; %d unpublished writes made since are gone", lost)
	if back := w.revive(n); back > 0 {
		out += fmt.Sprintf("; %d writes a power loss took after the copy are back", back)
	}
	return out, nil
}

// revive un-loses the writes of n's directory (or of a directory it was
// copied from) that a power loss took from the disk but that n holds
// again: a copy of a directory reads what the operating system holds,
// fsynced or not (store.Mem.Clone), so a backup saved before the power
// loss, once put back, holds the writes it took (seed 319 of the restore
// sweep). Each must then survive, or be superseded, like any other; its
// dot, if issued again after the power loss, names twins (the restored
// directory is fenced like a copy). It returns how many came back.
func (w *World) revive(n *node) int {
	back := 0
	_ = n.r.Store().View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			for _, ver := range st.Versions {
				for _, e := range w.or.byKey[key] {
					if e.lost && e.dot == ver.Dot && e.is(key, ver) && w.or.familyOf(e.node) == w.or.familyOf(n.i) {
						w.or.unlose(e)
						back++
						break
					}
				}
			}
			return true, nil
		})
	})
	w.rep.LostWrites -= int64(back)
	return back
}

// copyDir copies n's directory into a new replica op.To, at rest or at a
// step of Via.
func (w *World) copyDir(n *node, op Op) (string, *Violation) {
	if n.eng.mem == nil {
		return "skipped (badger: no directory copies)", nil
	}
	if op.To != len(w.nodes) || op.To >= 26 {
		return fmt.Sprintf("skipped: %s is not the next replica", replicaName(op.To)), nil
	}
	if op.Step == "" {
		return w.copyNow(n, op.To)
	}
	n.atStep, n.atStepOp = op.Step, &op
	out, v := w.runVia(n, op.Via)
	n.atStep, n.atStepOp = "", nil
	if len(w.nodes) <= op.To {
		out += " (step not reached: no copy)"
	}
	return out, v
}

// copyNow makes the copy: a new node with n's id, clock and directory.
func (w *World) copyNow(n *node, to int) (string, *Violation) {
	c, err := w.snapshotDir(n)
	if err != nil {
		return "", violate(RuleError, "copying %s: %v", n.name(), err)
	}
	m := c.mem
	cp := &node{w: w, i: to, id: n.id, offset: n.offset, driftPPM: n.driftPPM, jump: n.jump,
		mayClone: true, cutUntil: n.cutUntil, offUntil: n.offUntil}
	cp.eng = &diskModel{oldUnsyncedPush: w.cfg.UnsyncedStaging, oldUnsyncedPending: w.cfg.UnsyncedPending, mem: m}
	cp.eng.Engine = m
	cp.view = &view{w: w, node: to, eng: cp.eng}
	cp.view.setCut(n.view.isCut())
	if err := cp.open(); err != nil {
		return "", violate(RuleError, "%v", err)
	}
	w.nodes = append(w.nodes, cp)
	n.mayClone = true
	w.or.family[to] = w.or.familyOf(n.i)
	w.rep.Copies++
	return fmt.Sprintf("copied to %s", cp.name()), nil
}

// atStep runs a backup or a copy armed at a step.
func (n *node) atStepNow() {
	op := n.atStepOp
	n.atStep, n.atStepOp = "", nil
	w := n.w
	switch op.Kind {
	case OpBackup:
		c, err := w.snapshotDir(n)
		if err != nil {
			w.nestedV = violate(RuleError, "copying %s: %v", n.name(), err)
			return
		}
		w.backups[n.i] = c
		w.rep.Backups++
		w.tracef("%s  %s saved at %s", w.indent(), n.name(), op.Step)
	case OpCopy:
		out, v := w.copyNow(n, op.To)
		if v != nil {
			w.nestedV = v
			return
		}
		w.tracef("%s  %s at %s: %s", w.indent(), n.name(), op.Step, out)
	}
}

// uuidMu serialises Reidentify's id draw, made deterministic by seeding
// the uuid package's (global) source for the call.
var uuidMu sync.Mutex

type rngReader struct{ r *rand.Rand }

func (x rngReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(x.r.Uint32())
	}
	return len(p), nil
}

// reidentify runs Reidentify on n after a correct ErrCloned verdict, and
// follows it in the oracle (see the top of this file).
func (w *World) reidentify(n *node, opID int) (string, *Violation) {
	ctx := context.Background()
	old := n.id
	pre := map[string]merge.Record{}
	var kept []string
	var published uint64
	err := n.r.Store().View(func(v *store.View) error {
		b, _, err := v.Meta("published")
		if err != nil {
			return err
		}
		if len(b) == 8 {
			published = uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
				uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
		}
		// Keys kept for an unfinished rebase (m/rebase/): their records
		// were discarded, their values wait to be re-stamped.
		if err := v.MetaScan("rebase/", func(name string, _ []byte) (bool, error) {
			kept = append(kept, strings.TrimPrefix(name, "rebase/"))
			return true, nil
		}); err != nil {
			return err
		}
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			pre[key] = st.Record
			return true, nil
		})
	})
	if err != nil {
		return "", violate(RuleError, "scanning %s: %v", n.name(), err)
	}
	uuidMu.Lock()
	uuid.SetRand(rngReader{rand.New(rand.NewPCG(w.cfg.Seed, uint64(opID)*31+uint64(n.i)+0x4e1d))})
	newID, err := n.r.Reidentify(ctx)
	uuid.SetRand(nil)
	uuidMu.Unlock()
	if err != nil {
		return "", violate(RuleError, "%s: reidentify: %v", n.name(), err)
	}
	n.id = newID
	w.or.names[newID] = n.name() + strings.Repeat("'", 1+w.reids[n.i])
	w.reids[n.i]++
	w.rep.Reidentified++
	// The versions reidentify dropped, by key: the old id's above the
	// published counter, matched to their events.
	dropped := map[string][]*event{}
	for key, rec := range pre {
		for _, v := range rec.Versions {
			if v.Dot.Replica != old || v.Dot.Counter <= published {
				continue
			}
			// Every event the version can stand for: twins of one dot
			// with the same content (a restored directory writing again
			// what its earlier self wrote) cannot be told apart, and both
			// go (seed 8137 of the json absence sweep).
			for _, e := range w.or.dotEvents(v.Dot) {
				if e.is(key, v) && !e.lost && e.published == "" && !w.heldElsewhere(n, old, key, v) && !w.carried(e) {
					dropped[key] = append(dropped[key], e)
				}
			}
		}
	}
	var all []*event
	for _, evs := range dropped {
		all = append(all, evs...)
	}
	// A kept key's unpublished writes under the old id exist nowhere else
	// either: no record holds them (the rebase discarded it), its kept
	// value carries them, and the resumed rebase re-stamps that under the
	// new id (seed 57 of the absence sweep). They are dropped too, but not
	// lost: the re-stamp carries them (restamp).
	for _, key := range kept {
		for _, e := range w.or.byKey[key] {
			if e.node == n.i && e.dot.Replica == old && e.dot.Counter > published && !e.lost && e.published == "" &&
				!slices.Contains(all, e) && !w.heldElsewhere(n, old, key, e.version()) {
				all = append(all, e)
			}
		}
	}
	w.or.abandon(n.i, old, published, all)
	applied := n.eng.applied.Load()
	restamped := map[string]bool{}
	post := map[string]merge.Record{}
	_ = n.r.Store().View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			post[key] = st.Record
			return true, nil
		})
	})
	for _, key := range sortedKeys(post) {
		rec := post[key]
		for _, v := range rec.Versions {
			if v.Dot.Replica != newID {
				continue
			}
			clk := rec.Clock.Clone()
			delete(clk, newID)
			e, viol := w.or.record(n.i, opID, key, merge.Record{Clock: clk}, v, applied)
			if viol != nil {
				return "", viol
			}
			e.kind = OpPut
			if v.Deleted {
				e.kind = OpDelete
			}
			var carried []*event
			for _, p := range dropped[key] {
				// The dropped version exists nowhere else: the re-stamp
				// carries it. What it had seen, the re-stamp claims only as
				// far as its clock does (reidentify lowers the old id's
				// entries): the rest is no longer its past either.
				e.past[p.n] = true
				carried = append(carried, p)
				for q := range p.past {
					qe := w.or.events[q]
					if qe.lost || qe.published != "" || w.heldElsewhere(n, old, qe.key, qe.version()) || w.carried(qe) {
						// Not gone: published, held by a twin, or (json)
						// carried by a published later write's state (seed
						// 9505 of the json absence sweep: a restored
						// directory's write replaced an assignment that
						// its earlier self published in a later version).
						continue
					}
					if qe.node == n.i && w.or.abandoned(n.i, qe.dot) {
						// Gone with the dropped version (which superseded it):
						// dropped too, so a clock entry of n covering its dot
						// later stands for a twin's version of that dot that
						// n pulled (seed 1140 of the json absence sweep: a
						// copy's write under a dot its original re-stamped
						// with when it rebased).
						w.or.droppedBy[qe.n] = true
					}
					if !e.past[q] {
						e.past[q] = true // gone with the dropped version: superseded too
						carried = append(carried, qe)
					}
				}
			}
			// Nor is it the past of the versions carried along with it (gone
			// too: they live on only through the re-stamp), else a write
			// published elsewhere that the re-stamp no longer covers would
			// count as superseded by a version that exists nowhere (seeds
			// 345, and 189, 309 of the restore sweep). It comes back as a
			// sibling of the re-stamp: the oracle wants it among the
			// maximal writes, so losing it still fails.
			withdrawn := map[int]bool{}
			for _, c := range carried {
				for q := range c.past {
					if !e.past[q] {
						delete(c.past, q)
						if !w.or.events[q].lost {
							withdrawn[q] = true
						}
					}
				}
			}
			w.rep.Withdrawn += int64(len(withdrawn))
			if w.cfg.kind() == kindJSON && !v.Deleted {
				// The assignments it moved to its dot, with their HLCs: new
				// assignments of their fields (oracle.document).
				if viol := w.or.restampedDoc(e, old, published, v.Value); viol != nil {
					return "", viol
				}
			}
			restamped[key] = true
			w.rep.Restamped++
			w.rep.Writes++
		}
	}
	lost := 0
	for key, evs := range dropped {
		if restamped[key] {
			continue
		}
		for _, e := range evs {
			e.lost = true
			lost++
		}
	}
	out := fmt.Sprintf("reidentified as %s (%d keys re-stamped", w.or.names[newID], len(restamped))
	if lost > 0 {
		out += fmt.Sprintf(", %d unpublished versions dropped", lost)
	}
	return out + ")", nil
}

// carried reports whether a published write of a json key happened after
// e: its state carries e's assignments (or whatever superseded them), so
// e is not gone with an unpublished disk.
func (w *World) carried(e *event) bool {
	if w.cfg.kind() != kindJSON {
		return false
	}
	for _, f := range w.or.byKey[e.key] {
		if f != e && !f.lost && f.published != "" && f.past[e.n] {
			return true
		}
	}
	return false
}

// heldElsewhere reports whether a node other than n that still has id
// holds version v of key. Of a json key, a version of a later write holds
// it too when its state carries v's assignments (an entry of v's dot, HLC
// and value for each: seed 1809 of the json absence sweep, where the
// original of a copy holds, in its newer version, the assignment the
// copy's own write had replaced; reidentify no longer covers that one).
func (w *World) heldElsewhere(n *node, id clock.ReplicaID, key string, v merge.Version) bool {
	var as []docAssign
	if w.cfg.kind() == kindJSON {
		if e := w.or.match(key, v); e != nil {
			as = e.assigns()
		}
	}
	for _, m := range w.nodes {
		if m == n || m.id != id || m.r == nil {
			continue
		}
		rec, err := readRecord(m, key)
		if err != nil {
			continue
		}
		for _, h := range rec.Versions {
			if h.Dot == v.Dot && h.Deleted == v.Deleted && h.Time == v.Time && string(h.Value) == string(v.Value) {
				return true
			}
			if len(as) > 0 && !h.Deleted && carriesAll(h.Value, v.Dot, as) {
				return true
			}
		}
	}
	return false
}

// carriesAll reports whether the json document state holds every one of
// as, the assignments (or adds) of a write with dot d: an entry of its
// field with d, its HLC and its value.
func carriesAll(state []byte, d clock.Dot, as []docAssign) bool {
	entries, err := docEntries(state)
	if err != nil {
		return false
	}
	for _, a := range as {
		found := false
		for _, en := range entries {
			if en.dot != d || en.field != a.fieldPath() || en.mark || en.counter {
				continue
			}
			if a.member() {
				found = en.member && en.value == a.value
			} else {
				b, _ := json.Marshal(a.value)
				found = !en.member && en.time == a.time && en.value == string(b)
			}
			if found {
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string { return unionKeys([]map[string]V{m}) }

func (e *event) version() merge.Version {
	return merge.Version{Value: e.value, Deleted: e.del, Dot: e.dot, Time: e.time}
}
