package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/store"
)

// Collection, snapshots, bootstrap, retirement and rebase (issue 7): how
// the simulator runs them and how the oracle follows them.
//
//   - OpCompact runs engine.Compact. Collection deletes a record whole and
//     joins its clock into the replica's G; a later local write of the key
//     starts from G, so the oracle takes G as what such a write had seen
//     (World.write). A snapshot's G is joined into the clocks of the
//     records a new replica wrote before it bootstrapped; the oracle adds
//     the writes G covers to the causal past of those writes (afterSync),
//     as the replica claims.
//   - A rebase (a retired replica back online, or one that fell below the
//     prune floor) discards the replica's records, loads the newest
//     snapshot, pulls and re-stamps the keys that were dirty (its offline
//     edits) as new local writes with new dots. The oracle records each
//     re-stamped version as a new write of that replica, made after every
//     earlier write of the key by that replica (whose value it carries)
//     and after what its clock covers (afterSync). Only a key that was
//     marked dirty before the operation may be re-stamped; any other new
//     version is reported by the dots invariant as a version no write made.
//   - Convergence: after collection one replica may have collected a record
//     another still holds as a tombstone; both read the key as deleted.
//     With these operations on, the replicas are compared by what their
//     reads show plus the full record (versions and clock) of every key
//     that reads as live (a conflict counts as live), not by the raw
//     records of deleted keys. Causality and siblings are checked on every
//     record any replica still holds; a key no replica holds must read as
//     deleted by the oracle's writes (it was collected whole: no
//     acknowledged write may have vanished with it).
//   - No resurrection: a key every replica reads as deleted between two
//     operations, each having seen every write of it (its record's clock,
//     or its G when it holds none, covers them: a quiescent point for the
//     key), with no write of it since (and no write of it lost to a
//     power loss since), must never read live again (checkDead). A power
//     loss clears these marks: it may take back pulled state not yet
//     fsynced (a pull that failed half-way), which is not a resurrection.

// RuleResurrection: a key every replica read as deleted, with no write
// since, reads live again.
const RuleResurrection = "resurrection"

// RuleRetiredOnline: a replica retired although it pulled successfully
// within RetireAfter (with acks after every pull its registry is fresh).
const RuleRetiredOnline = "retired-online"

// checkRetired: a successful pull (or sync, or compaction) rewrites the
// replica's registry once its last write is RegistryRefresh old by the
// replica's wall clock. So a replica whose last successful pull started
// less than RetireAfter - RegistryRefresh ago (less its backward clock
// jumps and its drift) has a registry younger than RetireAfter by server
// time, and must not be retired (S21).
//
// The retirement is judged at the time it was written (at), which a pause
// of the compaction after it (at compact:retired or later) leaves behind
// (seed 880 of the absence sweep), against the last pull that ended
// before it.
func (w *World) checkRetired(ids []string, after, at time.Duration) *Violation {
	if after <= 0 {
		after = engine.DefaultRetireAfter
	}
	refresh := w.cfg.RegistryRefresh
	if refresh <= 0 {
		refresh = engine.DefaultRegistryRefresh
	}
	for _, id := range ids {
		for _, m := range w.nodes {
			if m.id.String() != id {
				continue
			}
			last, ok := time.Duration(0), false
			for _, p := range m.pulls {
				if p.end <= at {
					last, ok = p.start, true
				}
			}
			if !ok {
				continue
			}
			slack := time.Duration(float64(refresh-m.jump)*1.001) + time.Second
			if at-last < after-slack {
				return violate(RuleRetiredOnline, "%s was retired at %s although it pulled successfully at %s, less than RetireAfter (%s) less RegistryRefresh (%s) before",
					m.name(), fmtDur(at), fmtDur(last), after, refresh)
			}
		}
	}
	return nil
}

// pullSpan is a successful pull: when it started and ended.
type pullSpan struct{ start, end time.Duration }

// compact runs Compact on n.
func (w *World) compact(n *node, op Op) (string, *Violation) {
	n.retiredAtSet = false
	cs, err := n.r.Compact(context.Background(), engine.CompactOptions{Prune: op.Prune, Grace: op.Grace,
		RetireAfter: op.RetireAfter, PartSize: 256})
	var retired []string
	for _, id := range cs.Retired {
		name := id
		for _, m := range w.nodes {
			if m.id.String() == id {
				name = m.name()
			}
		}
		retired = append(retired, name)
	}
	out := fmt.Sprintf("snapshot at %d (%d records, %d parts), collected %d, pruned %d", cs.Position, cs.Records, cs.Parts, cs.Collected, cs.Pruned)
	if len(retired) > 0 {
		out += ", retired " + strings.Join(retired, " ")
	}
	at := w.now
	if n.retiredAtSet {
		at = n.retiredAt
	}
	if v := w.checkRetired(cs.Retired, op.RetireAfter, at); v != nil {
		return out, v
	}
	w.rep.Collected += int64(cs.Collected)
	w.rep.Pruned += int64(cs.Pruned)
	w.rep.Retired += int64(len(cs.Retired))
	if err != nil {
		return w.failedOp(n, out, err, true)
	}
	w.rep.Compactions++
	return out, nil
}

func readG(n *node) (clock.Vector, error) {
	var g clock.Vector
	err := n.r.Store().View(func(v *store.View) error {
		var err error
		g, err = v.G()
		return err
	})
	return g, err
}

// preSync is what afterSync needs to know of a replica before a push,
// pull, sync or compaction: its dirty keys, and whether it has yet to
// bootstrap.
type preSync struct {
	marked  map[string]bool
	fresh   bool
	retired bool
}

// retired reports whether n's registry object says it was retired.
func (w *World) retired(n *node) bool {
	ctx := context.Background()
	obj, err := w.mem.Get(ctx, remote.RegistryKey(n.id))
	if err != nil {
		return false
	}
	data, err := w.plain(ctx, remote.RegistryKey(n.id), obj.Data)
	if err != nil {
		return false
	}
	body, err := format.DecodeRegistry(data)
	return err == nil && body.Retired
}

func (w *World) beforeSync(n *node) preSync {
	n.restampedAt, n.restampedClock = nil, nil
	p := preSync{marked: map[string]bool{}, retired: w.retired(n)}
	_ = n.r.Store().View(func(v *store.View) error {
		_, boot, _ := v.Meta("bootstrapped")
		p.fresh = !boot
		// Keys kept for an unfinished rebase (m/rebase/) are re-stamped
		// when it resumes: they count as dirty.
		if err := v.MetaScan("rebase/", func(name string, _ []byte) (bool, error) {
			p.marked[strings.TrimPrefix(name, "rebase/")] = true
			return true, nil
		}); err != nil {
			return err
		}
		return v.OutboxMarks("", func(key string, _ uint64) (bool, error) {
			p.marked[key] = true
			return true, nil
		})
	})
	return p
}

// afterSync follows what a push, pull, sync or compaction did that the
// oracle cannot see from outside: a rebase's re-stamped writes, and a
// bootstrap's G joined into the clocks of the writes made before it.
func (w *World) afterSync(n *node, opID int, pre preSync) *Violation {
	if n.r == nil {
		return nil
	}
	type held struct {
		key string
		rec merge.Record
	}
	var recs []held
	var boot bool
	var g clock.Vector
	err := n.r.Store().View(func(v *store.View) error {
		_, boot, _ = v.Meta("bootstrapped")
		var err error
		if g, err = v.G(); err != nil {
			return err
		}
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			recs = append(recs, held{key, st.Record})
			return true, nil
		})
	})
	if err != nil {
		return violate(RuleError, "scanning %s: %v", n.name(), err)
	}
	if pre.retired && w.retired(n) {
		// A rebase that failed half-way (a fault while loading the
		// snapshot or pulling) must still hold every offline edit
		// (TestFoundRebaseLosesOfflineEdits, fixed): an unpublished write
		// of a key neither dirty nor kept is a violation.
		lostKey := ""
		// Dirty keys stay dirty, or are kept for an unfinished rebase in
		// m/rebase/<key> (re-stamped when the rebase resumes).
		marked := map[string]bool{}
		_ = n.r.Store().View(func(v *store.View) error {
			if err := v.MetaScan("rebase/", func(name string, _ []byte) (bool, error) {
				marked[strings.TrimPrefix(name, "rebase/")] = true
				return true, nil
			}); err != nil {
				return err
			}
			return v.OutboxMarks("", func(key string, _ uint64) (bool, error) {
				marked[key] = true
				return true, nil
			})
		})
		for k := range pre.marked {
			if marked[k] {
				continue
			}
			for _, e := range w.or.byKey[k] {
				if e.node == n.i && !e.lost && e.published == "" && !w.or.supersededByOwn(e) {
					// Rebase keeps offline edits through errors and crashes
					// (m/rebase/): losing one is a violation.
					e.lost = true
					w.rep.RebaseLost++
					lostKey = k
				}
			}
		}
		if lostKey != "" {
			return violate(RuleDurability, "%s: a rebase that stopped half-way lost the offline edit of %s", n.name(), lostKey)
		}
	}
	applied := n.eng.applied.Load()
	for _, h := range recs {
		for _, v := range h.rec.Versions {
			if v.Dot.Replica != n.id {
				continue
			}
			e := w.or.match(h.key, v)
			switch {
			case (e == nil || e.lost) && pre.marked[h.key]:
				// Written by the rebase's re-stamp transaction, not by the
				// last one of the operation (seed 820 of the absence sweep:
				// a power loss took the push's commit, unsynced, and the
				// oracle took the synced re-stamp as lost with it).
				at, ok := n.restampedAt[h.key]
				if !ok {
					at = n.eng.lastWrote(h.key)
				}
				clk := h.rec.Clock
				if c, ok := n.restampedClock[h.key]; ok && c.Covers(v.Dot) {
					clk = c // the clock the re-stamp was written with
				}
				ne, viol := w.or.restamp(n.i, opID, h.key, clk, v, min(at, applied))
				if viol != nil {
					return viol
				}
				ne.kind = OpPut
				if v.Deleted {
					ne.kind = OpDelete
				}
				w.rep.Restamped++
				w.rep.Writes++
			case e != nil && !e.lost && pre.fresh && boot && len(g) > 0:
				w.or.joinG(e, g, h.rec)
			}
		}
	}
	return nil
}

// supersededByOwn reports whether a later write of e's writer to e's key
// (a rebase's re-stamp, made earlier in the same operation and recorded
// when it paused) carries e on: it is not lost with the outbox mark.
func (o *oracle) supersededByOwn(e *event) bool {
	for _, p := range o.byKey[e.key] {
		if p != e && p.node == e.node && !p.lost && p.past[e.n] {
			return true
		}
	}
	return false
}

// restamp records a version a rebase wrote at node: a new write made after
// every earlier write of key by node (it carries the value of the last;
// but for those under an id node gave up, see abandoned) and after every
// write its clock covers.
func (o *oracle) restamp(node, opID int, key string, clk clock.Vector, v merge.Version, applied uint64) (*event, *Violation) {
	// The record's clock covers the re-stamp's own dot: what the writer had
	// seen stops below it (a twin's write of that dot, by a copy, was not
	// seen: seed 57 of the absence sweep).
	if clk[v.Dot.Replica] >= v.Dot.Counter {
		clk = clk.Clone()
		clk[v.Dot.Replica] = v.Dot.Counter - 1
	}
	e, viol := o.record(node, opID, key, merge.Record{Clock: clk}, v, applied)
	if viol != nil {
		return nil, viol
	}
	for _, p := range o.byKey[key] {
		if p == e || p.lost || p.node != node {
			continue
		}
		if o.abandoned(node, p.dot) && !o.droppedBy[p.n] {
			// A write under an id node reidentified away from, that exists
			// elsewhere: node no longer holds it nor covers it, unless its
			// clock says so (record). A copy that holds it publishes it
			// beside this re-stamp: reidentify's limit (seed 2001 of the
			// absence sweep). (One that existed nowhere else was dropped,
			// and is carried: by reidentify's re-stamp, or by a kept value
			// this re-stamp writes.)
			continue
		}
		e.past[p.n] = true
		for q := range p.past {
			if !o.events[q].lost {
				e.past[q] = true
			}
		}
	}
	return e, nil
}

// joinG adds to e's causal past the writes of its key that g covers and
// that e's record (rec, after the bootstrap) no longer holds: the
// bootstrap joined the snapshot's G into the clock of e's record, which
// then dominates every record collected before the snapshot. G is a
// version vector, so it also covers writes of the key that were never
// collected (a writer's dots need not reach the log in order); those the
// record still holds as siblings stay concurrent. (A weakening: the
// oracle takes the replica's word for what G superseded.) Only the
// version's record saw them: its own state did not (event.byG), which a
// json document's fields tell apart (seed 9643 of the json absence sweep).
func (o *oracle) joinG(e *event, g clock.Vector, rec merge.Record) {
	for _, p := range o.byKey[e.key] {
		if p == e || p.lost || !g.Covers(p.dot) || rec.Contains(p.dot) || o.byDot[p.dot] != p || p.past[e.n] {
			continue
		}
		e.pastByG(p.n)
		for q := range p.past {
			if !o.events[q].lost && q != e.n {
				e.pastByG(q)
			}
		}
	}
}

// eventCounts counts the events of key, all and lost.
func (o *oracle) eventCounts(key string) deadMark {
	var m deadMark
	for _, e := range o.byKey[key] {
		m.events++
		if e.lost {
			m.lost++
		}
	}
	return m
}

// checkDead checks the no-resurrection rule (see the top of this file) and
// marks the keys every replica reads as deleted now.
func (w *World) checkDead() *Violation {
	if w.cfg.kind() != kindRegister || w.cfg.UserPolicy != nil {
		return nil
	}
	for _, key := range w.or.keys() {
		cur := w.or.eventCounts(key)
		if mark, ok := w.dead[key]; ok {
			if mark.events != cur.events || mark.lost != cur.lost {
				delete(w.dead, key)
				continue
			}
			for _, n := range w.nodes {
				if n.i >= mark.nodes && !n.mayClone && !mark.held[n.i] {
					// Joined since the mark, and still catching up: it
					// replays the log (or a snapshot) and may read a state
					// older than the delete on its way, as any replica
					// behind did before the mark (seed 307 of the restore
					// sweep). Once it has seen every write of the key it
					// is held to the mark like the others, for good.
					if !w.seenAll(n, key) {
						continue
					}
					mark.held[n.i] = true
				}
				if got := get(n.r, key); !got.notFound && got.err == "" {
					return violate(RuleResurrection, "%s reads %s as %s, but every replica read it as deleted earlier and nobody wrote it since (its latest writes: %s)",
						n.name(), key, got, fmtEvents(w.or.maximal(key)))
				}
			}
			continue
		}
		all := true
		for _, n := range w.nodes {
			if !get(n.r, key).notFound || !w.seenAll(n, key) {
				all = false
				break
			}
		}
		if all {
			cur.nodes, cur.held = len(w.nodes), map[int]bool{}
			w.dead[key] = cur
		}
	}
	return nil
}

// seenAll reports whether node n has seen every write of key (its record's
// clock covers each, or its G does when it holds no record): a quiescent
// point for the key at n.
func (w *World) seenAll(n *node, key string) bool {
	var clk clock.Vector
	err := n.r.Store().View(func(v *store.View) error {
		st, ok, err := v.Record(key)
		if err != nil {
			return err
		}
		if ok {
			clk = st.Clock
			return nil
		}
		clk, err = v.G()
		return err
	})
	if err != nil {
		return false
	}
	for _, e := range w.or.byKey[key] {
		if !e.lost && !clk.Covers(e.dot) {
			return false
		}
	}
	return true
}

// visibleDigest is a hash of what node n's reads show: every key that
// reads live (or as a conflict) with its full record; keys that read as
// deleted are left out, whether their record is held or was collected.
func (w *World) visibleDigest(n *node) (string, map[string]string, error) {
	h := sha256.New()
	shown := map[string]string{}
	var keys []string
	recs := map[string]merge.Record{}
	err := n.r.Store().View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			keys = append(keys, key)
			recs[key] = st.Record
			return true, nil
		})
	})
	if err != nil {
		return "", nil, err
	}
	for _, key := range keys {
		rd := get(n.r, key)
		if rd.notFound {
			continue
		}
		b, err := merge.EncodeRecord(recs[key])
		if err != nil {
			return "", nil, err
		}
		shown[key] = rd.String() + " " + fmtRecord(w.or, recs[key])
		for _, part := range [][]byte{[]byte(key), []byte(rd.String()), b} {
			var l [8]byte
			binary.BigEndian.PutUint64(l[:], uint64(len(part)))
			h.Write(l[:])
			h.Write(part)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), shown, nil
}

// divergedVisible describes the first key the replicas read differently.
func (w *World) divergedVisible(shown []map[string]string) *Violation {
	for _, k := range unionKeys(shown) {
		var lines []string
		differ := false
		for i, m := range shown {
			s, ok := m[k]
			if !ok {
				s = "reads it as deleted"
			}
			if s != shown[0][k] || ok != (shown[0][k] != "") {
				differ = true
			}
			lines = append(lines, fmt.Sprintf("%s: %s", replicaName(i), s))
		}
		if differ {
			return violate(RuleConvergence, "replicas read %s differently after %d sync rounds: %s", k, w.cfg.MaxRounds, strings.Join(lines, "; "))
		}
	}
	return violate(RuleConvergence, "replicas differ after %d sync rounds", w.cfg.MaxRounds)
}

// readsDeleted reports whether key's maximal writes read as deleted under
// cfg's policy without user code: every one a tombstone, or (lww) the lww
// winner is one, or (set) the set is empty. Only such a key may be
// collected.
func (o *oracle) readsDeleted(key string, cfg Config) bool {
	switch cfg.kind() {
	case kindCounter:
		return false // a counter always reads its sum
	case kindSet:
		return len(o.setMembers(key)) == 0 // an emptied set reads as absent
	case kindJSON:
		_, absent, _ := o.document(key) // a document without fields reads as absent
		return absent
	}
	max := o.maximal(key)
	if len(max) == 0 {
		return true
	}
	if cfg.UserPolicy == nil && cfg.Policy == PolicyLWW {
		return lwwWinner(max).del
	}
	for _, e := range max {
		if !e.del {
			return false
		}
	}
	return true
}
