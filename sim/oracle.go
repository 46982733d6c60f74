package sim

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/vmihailenco/msgpack/v5"
)

// event is one acknowledged local write: the ground truth the oracle keeps
// outside the replicas.
type event struct {
	n     int // index in oracle.events
	key   string
	node  int
	opID  int
	dot   clock.Dot
	value []byte
	del   bool
	time  clock.HLC
	// past: the events of the same key that happened before this one (its
	// writer had seen them), transitively closed.
	past map[int]bool
	// applied: the engine's apply number of the write (for durability).
	applied uint64
	// lost: a power loss took the write before any fsync covered it (only
	// possible with Relaxed durability); it never happened.
	lost bool
	// published: where the write was first seen outside its writer (a log
	// position or another replica); "" while only its writer has it.
	published string

	kind  Kind   // the operation that wrote it (OpBatch items count as put or del)
	delta int64  // OpAdd: the increment
	elem  string // OpSetAdd, OpSetRemove: the member; OpPatch: the field
	field string // OpPatch: the value assigned to the field, "" for a removal (the increment or the member for docInc, docAdd, docRemove)
	// restamped: a reidentify re-stamp of a json key (absence.go): the
	// assignments and set members its state moved from the old id to its
	// own dot, each keeping the HLC of the assignment it re-tags
	// (merge.DocState.Reidentify).
	restamped []docAssign
	// byG: the events of past that only the bootstrap's G put there
	// (joinG): the record's clock covers them, the version's own state
	// (of a json key) does not, so its assignments do not replace theirs.
	byG map[int]bool
}

// pastByG adds event q to e's causal past as joinG does: covered by the
// G a bootstrap joined into e's record, not seen by e's own state.
func (e *event) pastByG(q int) {
	if e.past[q] {
		return
	}
	e.past[q] = true
	if e.byG == nil {
		e.byG = map[int]bool{}
	}
	e.byG[q] = true
}

// saw reports whether e's own state saw event q: q is in its causal past,
// and not only through the G a bootstrap joined into its record later.
func (e *event) saw(q int) bool { return e.past[q] && !e.byG[q] }

func (e *event) String() string {
	var what string
	switch {
	case e.del:
		what = "del " + e.key
	case e.kind == OpSetAdd || e.kind == OpSetRemove:
		what = fmt.Sprintf("%s %s %s", e.kind, e.key, e.elem)
	case e.kind == OpAdd:
		what = fmt.Sprintf("add %s%+d", e.key, e.delta)
	case e.kind == OpPatch && e.field == "":
		what = fmt.Sprintf("patch %s -%s", e.key, e.elem)
	case e.kind == OpPatch:
		what = fmt.Sprintf("patch %s %s=%s", e.key, e.elem, e.field)
	default:
		what = fmt.Sprintf("%s=%s", e.key, e.value)
	}
	return fmt.Sprintf("%s (op #%d by %s, dot %s)", what, e.opID, replicaName(e.node), dotName(e.dot))
}

// oracle is the ground truth: every acknowledged write, with the writes
// its writer had seen.
type oracle struct {
	names  map[clock.ReplicaID]string
	events []*event
	byKey  map[string][]*event
	byDot  map[clock.Dot]*event // the event a dot names now (a lost one may be reissued)
	// twins: events of a dot that byDot already names, issued again by a
	// directory that shares its id with the first writer (a copy, or a
	// restored copy of itself) before fencing caught it (absence.go).
	twins map[clock.Dot][]*event
	// family: the replica a copied replica was copied from (transitively);
	// restored: replicas put back from a copy of themselves.
	family   map[int]int
	restored map[int]bool
	// gaveUp: by replica, the ids it reidentified away from, each with the
	// counter it had published under it (see abandoned).
	gaveUp map[int]map[clock.ReplicaID]uint64
	// droppedBy: the events a reidentify dropped (by event number).
	droppedBy map[int]bool
	// adopted: by replica, the versions under its own id of another
	// directory's history (a twin's, or its earlier self's) that a rebase
	// of it loaded from a snapshot after discarding every record (see
	// adopt).
	adopted map[int]map[adoptKey]adoption
}

// adoptKey names a version by key and dot.
type adoptKey struct {
	key string
	dot clock.Dot
}

// adoption is a version a rebase loaded: its event, and how many events
// the oracle held then (a write of the same dot by the replica recorded
// since, after its counter went back, stands for its own again).
type adoption struct {
	e     *event
	since int
}

func newOracle(names map[clock.ReplicaID]string) *oracle {
	return &oracle{names: names, byKey: map[string][]*event{}, byDot: map[clock.Dot]*event{},
		twins: map[clock.Dot][]*event{}, family: map[int]int{}, restored: map[int]bool{},
		gaveUp: map[int]map[clock.ReplicaID]uint64{}, droppedBy: map[int]bool{}, adopted: map[int]map[adoptKey]adoption{}}
}

func (o *oracle) familyOf(i int) int {
	if f, ok := o.family[i]; ok {
		return f
	}
	return i
}

// mayTwin reports whether a write at node may reissue a dot that a write
// at prev issued: they are copies of one directory, or node was put back
// from a copy of itself.
func (o *oracle) mayTwin(prev, node int) bool {
	if prev == node {
		// Put back from a copy of itself, or copied: a copy made before
		// a power loss holds writes whose dots the crashed directory
		// issues again (seed 1821 of the restore sweep).
		if o.restored[node] || o.familyOf(node) != node {
			return true
		}
		for c, f := range o.family {
			if c != node && f == node {
				return true
			}
		}
		return false
	}
	return o.familyOf(prev) == o.familyOf(node)
}

// dotEvents returns the events a dot names: byDot's, then its twins.
func (o *oracle) dotEvents(d clock.Dot) []*event {
	var out []*event
	if e := o.byDot[d]; e != nil {
		out = append(out, e)
	}
	return append(out, o.twins[d]...)
}

func (e *event) is(key string, v merge.Version) bool {
	return e.key == key && e.del == v.Deleted && e.time == v.Time && bytes.Equal(e.value, v.Value)
}

// match returns the event that made version v of key: the one of its
// dot with the same content, a live one first.
func (o *oracle) match(key string, v merge.Version) *event {
	var m *event
	for _, e := range o.dotEvents(v.Dot) {
		if e.is(key, v) && (m == nil || m.lost && !e.lost) {
			m = e
		}
	}
	return m
}

// abandon notes that node reidentified away from id, having published
// its dots up to published, and dropped the versions dropped (which exist
// nowhere else: a re-stamp carries them, or they are lost).
func (o *oracle) abandon(node int, id clock.ReplicaID, published uint64, dropped []*event) {
	if o.gaveUp[node] == nil {
		o.gaveUp[node] = map[clock.ReplicaID]uint64{}
	}
	o.gaveUp[node][id] = published
	for _, e := range dropped {
		o.droppedBy[e.n] = true
	}
}

// abandoned reports whether node gave up dot d: it reidentified away from
// d's id before publishing d. Reidentify dropped node's versions of such
// dots and lowered node's clock entries of that id to what it published,
// so an entry of node's clocks covering d came from another directory's
// version of d since.
func (o *oracle) abandoned(node int, d clock.Dot) bool {
	p, ok := o.gaveUp[node][d.Replica]
	return ok && d.Counter > p
}

// adopt notes that a rebase of node loaded e, a version under node's own
// id that another directory's history made: node discarded every record
// first, its own versions of that dot with them (their values live on
// only in the kept values it re-stamps under new dots), so from now on a
// clock entry of node covering e's dot in a record of e's key stands for
// e, which node held (seed 480 of the kill sweep: a copy resumed the
// rebase its original had begun, loaded a snapshot holding the original's
// published re-stamp of a dot the copy had issued too, and re-stamped its
// own write over it).
func (o *oracle) adopt(node int, e *event) {
	if o.adopted[node] == nil {
		o.adopted[node] = map[adoptKey]adoption{}
	}
	o.adopted[node][adoptKey{e.key, e.dot}] = adoption{e: e, since: len(o.events)}
}

// adoptedBy returns the version of p's key and dot a rebase of node loaded
// (adopt), unless node wrote that dot of the key again since.
func (o *oracle) adoptedBy(node int, p *event) (*event, bool) {
	a, ok := o.adopted[node][adoptKey{p.key, p.dot}]
	if !ok || a.e.lost {
		return nil, false
	}
	for _, q := range o.dotEvents(p.dot) {
		if q.node == node && q.n >= a.since && !q.lost && q.key == p.key {
			return nil, false
		}
	}
	return a.e, true
}

// seenBy reports whether a clock entry of node covering p's dot stands
// for p: the version of that dot a rebase of node loaded, if any (adopt);
// else node's own event of that dot if it issued one, else byDot's.
func (o *oracle) seenBy(node int, p *event) bool {
	if a, ok := o.adoptedBy(node, p); ok {
		return a == p
	}
	// A record's clock speaks of writes of its own key: a twin's write of
	// another key under the same dot says nothing about p.
	for _, q := range o.dotEvents(p.dot) {
		if q.node == node && !q.lost && q.key == p.key && !(o.droppedBy[q.n] && o.abandoned(node, q.dot)) {
			return q == p
		}
	}
	if o.abandoned(node, p.dot) {
		// node's own version of this dot is gone with the id (reidentify
		// dropped it, and it exists nowhere else): the entry stands for
		// the one other version of the dot of this key, if there is one
		// (seed 2412 of the restore sweep: a copy, reidentified, rebased on
		// a snapshot holding its twin's published write of the dot and
		// re-stamped over it).
		var others []*event
		for _, q := range o.dotEvents(p.dot) {
			if !q.lost && q.key == p.key && !o.droppedBy[q.n] {
				others = append(others, q)
			}
		}
		if len(others) == 1 {
			return others[0] == p
		}
	}
	b := o.byDot[p.dot]
	if b != nil && b.key != p.key {
		return true
	}
	// Twins of this key, neither of them node's own: the entry stands for
	// the one that could reach node. One only its writer's directory (and
	// copies of it) holds cannot have, when the other was published (seed
	// 645 of the restore sweep: a rebase re-stamp made after pulling the
	// copy's published twin covers that one).
	if b != nil && b != p && !b.lost && b.published == "" && p.published != "" && o.familyOf(b.node) != o.familyOf(node) {
		return true
	}
	return b == p
}

func dotName(d clock.Dot) string { return fmt.Sprintf("%s:%d", d.Replica.Short(), d.Counter) }

func (o *oracle) dot(d clock.Dot) string {
	if n, ok := o.names[d.Replica]; ok {
		return fmt.Sprintf("%s:%d", n, d.Counter)
	}
	return dotName(d)
}

// Violation is a broken invariant, as World.Do and World.Finish return it
// (Run and Replay wrap it in a *Failure).
type Violation struct {
	Rule   string // one of the Rule constants
	Detail string
}

func (v *Violation) Error() string { return v.Rule + ": " + v.Detail }

func violate(rule, format string, a ...any) *Violation {
	return &Violation{Rule: rule, Detail: fmt.Sprintf(format, a...)}
}

// Rules, as failures name them.
const (
	RuleConvergence = "convergence" // (1) replicas differ after syncing
	RuleCausality   = "causality"   // (2) a write lost to one it happened before, or survived one that saw it
	RuleSiblings    = "siblings"    // (3) a concurrent write is missing from the siblings
	RuleDurability  = "durability"  // (4) an acknowledged, fsynced write was lost
	RuleDots        = "dots"        // (5) a dot names two versions, or a lost write was published
	RuleRead        = "read"        // the policy's read disagrees with the oracle (lww winner, counter sum, set members)
	RuleCount       = "count"       // Len disagrees with a recount
	RuleError       = "error"       // an operation failed with no fault to explain it
)

// checkVersion checks one version seen somewhere (a replica, or a log
// segment when node is -1) against the ground truth: its dot names
// exactly this version.
func (o *oracle) checkVersion(node int, where, key string, v merge.Version) *Violation {
	e := o.byDot[v.Dot]
	if e == nil && len(o.twins[v.Dot]) == 0 {
		return violate(RuleDots, "%s holds version %s of %s that no acknowledged write made (a write lost in a crash was published?)", where, o.dot(v.Dot), key)
	}
	if m := o.match(key, v); m != nil {
		e = m
	} else if e == nil {
		e = o.twins[v.Dot][0]
	}
	if e.lost {
		return violate(RuleDots, "%s holds %s, a write lost in a power loss of its writer (or with its disk) before it was published: it was published", where, e)
	}
	if !e.is(key, v) {
		return violate(RuleDots, "dot %s names two versions: %s holds %s deleted=%v time=%s value=%q, but it was issued for %s deleted=%v time=%s value=%q",
			o.dot(v.Dot), where, key, v.Deleted, v.Time, v.Value, e.key, e.del, e.time, e.value)
	}
	// Publication: seen in the log, or on a replica that is no copy of
	// the writer's directory.
	if e.published == "" && node != e.node && (node < 0 || o.familyOf(node) != o.familyOf(e.node)) {
		e.published = where
	}
	if e.published != "" {
		for _, t := range o.dotEvents(v.Dot) {
			if t != e && !t.lost && t.published != "" && !t.is(key, v) {
				return violate(RuleDots, "dot %s names two published versions: %s (seen at %s) and %s (seen at %s): a copied or restored directory published a second history under its id",
					o.dot(v.Dot), e, e.published, t, t.published)
			}
		}
	}
	return nil
}

// record adds a write made at node with the given dot and version, whose
// writer had the record before (the zero Record if none).
func (o *oracle) record(node, opID int, key string, before merge.Record, v merge.Version, applied uint64) (*event, *Violation) {
	twin := false
	if old := o.byDot[v.Dot]; old != nil && !old.lost {
		if !o.mayTwin(old.node, node) {
			return nil, violate(RuleDots, "write %s at %s reuses dot %s of %s", key, replicaName(node), o.dot(v.Dot), old)
		}
		twin = true
	}
	e := &event{n: len(o.events), key: key, node: node, opID: opID, dot: v.Dot, value: v.Value, del: v.Deleted,
		time: v.Time, applied: applied, past: map[int]bool{}}
	for _, p := range o.byKey[key] {
		if p.lost {
			continue
		}
		if before.Clock.Covers(p.dot) && o.seenBy(node, p) || holds(before, p) {
			e.past[p.n] = true
			for q := range p.past {
				if !o.events[q].lost {
					e.past[q] = true
				}
			}
		}
	}
	o.events = append(o.events, e)
	o.byKey[key] = append(o.byKey[key], e)
	if twin {
		o.twins[v.Dot] = append(o.twins[v.Dot], e)
	} else {
		o.byDot[v.Dot] = e
	}
	return e, nil
}

// holds reports whether rec holds p's version (its dot, with p's content).
func holds(rec merge.Record, p *event) bool {
	for _, v := range rec.Versions {
		if v.Dot == p.dot && p.is(p.key, v) {
			return true
		}
	}
	return false
}

// loseAfter marks node's writes acknowledged after apply number durable as
// lost (a power loss), and returns them. (A lost write that was already
// published is a violation, its dot will be issued again, unless a copy
// of the directory still holds it: the caller judges, see
// World.powerLoss.)
func (o *oracle) loseAfter(node int, durable uint64) []*event {
	var lost []*event
	for _, e := range o.events {
		if e.node == node && !e.lost && e.applied > durable {
			e.lost = true
			lost = append(lost, e)
		}
	}
	return lost
}

// unlose brings back a write a power loss took (a copy of its directory
// saved before held it, and was put back): its dot names it again, or
// names it as a twin when the dot was issued again in between and that
// write still stands.
func (o *oracle) unlose(e *event) {
	e.lost = false
	b := o.byDot[e.dot]
	switch {
	case b == e:
	case b == nil || b.lost:
		o.byDot[e.dot] = e
		o.twins[e.dot] = slices.DeleteFunc(o.twins[e.dot], func(t *event) bool { return t == e })
	case !slices.Contains(o.twins[e.dot], e):
		o.twins[e.dot] = append(o.twins[e.dot], e)
	}
}

// maximal returns the writes of key that no other write happened after,
// in canonical dot order: what the siblings must be once every replica
// has every write.
func (o *oracle) maximal(key string) []*event {
	evs := o.byKey[key]
	dominated := map[int]bool{}
	for _, e := range evs {
		if e.lost {
			continue
		}
		for p := range e.past {
			dominated[p] = true
		}
	}
	var out []*event
	for _, e := range evs {
		if !e.lost && !dominated[e.n] {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *event) int { return a.dot.Compare(b.dot) })
	return out
}

// live returns the writes of key that were not lost.
func (o *oracle) live(key string) []*event {
	var out []*event
	for _, e := range o.byKey[key] {
		if !e.lost {
			out = append(out, e)
		}
	}
	return out
}

// keys returns every key written, sorted.
func (o *oracle) keys() []string {
	var out []string
	for k, evs := range o.byKey {
		for _, e := range evs {
			if !e.lost {
				out = append(out, k)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkSiblings compares the final versions of key with the maximal
// writes: invariants (2) and (3).
func (o *oracle) checkSiblings(key string, got []merge.Version) *Violation {
	want := o.maximal(key)
	has := map[clock.Dot]bool{}
	for _, v := range got {
		has[v.Dot] = true
	}
	wanted := map[clock.Dot]bool{}
	for _, e := range want {
		wanted[e.dot] = true
	}
	for _, e := range want {
		if has[e.dot] {
			continue
		}
		// Who beat it? A surviving version it did not happen before, or
		// nothing at all.
		var over []string
		for _, v := range got {
			if f := o.byDot[v.Dot]; f != nil && !f.past[e.n] {
				over = append(over, f.String())
			}
		}
		if len(want) > 1 {
			return violate(RuleSiblings, "%s is missing from the siblings of %s: no write saw it, yet the replicas keep only %s",
				e, key, strings.Join(over, ", "))
		}
		return violate(RuleCausality, "%s, the latest write of %s, lost to %s", e, key, strings.Join(over, ", "))
	}
	for _, v := range got {
		if wanted[v.Dot] {
			continue
		}
		f := o.byDot[v.Dot]
		var after []string
		for _, e := range want {
			if f != nil && e.past[f.n] {
				after = append(after, e.String())
			}
		}
		what := o.dot(v.Dot)
		if f != nil {
			what = f.String()
		}
		return violate(RuleCausality, "%s survives on %s although %s happened after it", what, key, strings.Join(after, " and "))
	}
	return nil
}

// lwwWinner is the lww rule, written out independently of merge: the
// largest HLC, then the largest replica id, then the largest counter.
func lwwWinner(evs []*event) *event {
	var best *event
	for _, e := range evs {
		if best == nil || e.time > best.time ||
			e.time == best.time && (e.dot.Replica.Compare(best.dot.Replica) > 0 ||
				e.dot.Replica == best.dot.Replica && e.dot.Counter > best.dot.Counter) {
			best = e
		}
	}
	return best
}

// counterSum is the exact value a counter must read: the sum of every
// acknowledged increment that was not lost.
func (o *oracle) counterSum(key string) (sum int64, any bool) {
	for _, e := range o.live(key) {
		sum += e.delta
		any = true
	}
	return sum, any
}

// setMembers is the add-wins observed-remove set: an element is in when
// some add of it was seen by no remove of it.
func (o *oracle) setMembers(key string) []string {
	evs := o.live(key)
	in := map[string]bool{}
	for _, a := range evs {
		if a.kind != OpSetAdd {
			continue
		}
		removed := false
		for _, r := range evs {
			if r.kind == OpSetRemove && r.elem == a.elem && r.past[a.n] {
				removed = true
				break
			}
		}
		if !removed {
			in[a.elem] = true
		}
	}
	out := []string{}
	for e := range in {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// docAssign is an assignment of a field of a json document (field: its
// dotted path, value: the string assigned), or, with field docAdd, the add
// of the set member value: a patch's, under its event's dot and HLC, or
// one that a reidentify re-stamp (ev) moved to its own dot, keeping the
// HLC of the assignment it re-tags.
type docAssign struct {
	ev    *event
	field string
	value string
	time  clock.HLC
	dot   clock.Dot
}

// assigns returns what e assigns: the field of a patch that assigns one
// (or adds a member), or the re-tagged assignments of a re-stamp.
func (e *event) assigns() []docAssign {
	if e.kind == OpPatch && e.field != "" && e.elem != docInc && e.elem != docRemove {
		return []docAssign{{ev: e, field: e.elem, value: e.field, time: e.time, dot: e.dot}}
	}
	return e.restamped
}

// removes reports whether e, a write that saw an assignment of field,
// replaces or removes it: a patch of the same field, or a removal of it or
// of the object holding it. (A re-stamp replaces nothing: it re-tags.)
func (e *event) removes(field string) bool {
	if e.kind != OpPatch || e.elem == docInc || e.elem == docAdd || e.elem == docRemove {
		return false
	}
	return e.elem == field || e.field == "" && strings.HasPrefix(field, e.elem+".")
}

// document is the json document key must read as (notFound when it has no
// fields), written out independently of merge for the json workload
// (docLeaves): an assignment of a field survives unless a later write that
// saw it assigned the same field or removed it or the object holding it
// (add-wins); of the surviving assignments of a field, the lww rule picks
// the value. conflict: some field has two or more surviving assignments of
// different values (what json-mv reads as a conflict). The counter field
// "visits" (docInc, present once incremented) reads the sum of every
// increment; the set field "tags" (docAdd, docRemove: present, maybe
// empty, once written) holds a member when some add of it was seen by no
// remove of it.
//
// A reidentify re-stamp re-tags the old id's unpublished assignments and
// members with its own dot, each keeping its HLC (event.restamped): a new
// assignment, which only a write that saw the re-stamp replaces, and which
// the lww rule ranks by its old HLC and its new dot. The dropped version
// it carries (which exists nowhere else, oracle.droppedBy) keeps no
// assignment of its own where the re-stamp holds it. Its counter entry
// folds increments the oracle counts through their own events.
func (o *oracle) document(key string) (doc string, notFound, conflict bool) {
	evs := o.live(key)
	tree := map[string]any{}
	var visits int64
	for _, a := range evs {
		if a.kind != OpPatch {
			continue
		}
		switch a.elem {
		case docInc:
			n, _ := strconv.ParseInt(a.field, 10, 64)
			visits += n
			tree["visits"] = visits
		case docRemove, docAdd:
			if tree["tags"] == nil {
				tree["tags"] = []string{}
			}
		}
	}
	// moved: a dropped version's assignment that a re-stamp carrying it
	// holds under its own dot.
	moved := func(as docAssign) bool {
		if !o.droppedBy[as.ev.n] {
			return false
		}
		for _, r := range evs {
			if !r.saw(as.ev.n) {
				continue
			}
			for _, m := range r.restamped {
				if m.field == as.field && m.value == as.value && m.time == as.time {
					return true
				}
			}
		}
		return false
	}
	survivors := map[string][]docAssign{}
	tags := map[string]bool{}
	for _, a := range evs {
		for _, as := range a.assigns() {
			if as.field == docAdd {
				removed := false
				for _, r := range evs {
					if r.kind == OpPatch && r.elem == docRemove && r.field == as.value && r.saw(a.n) {
						removed = true
						break
					}
				}
				if !removed {
					tags[as.value] = true
				}
				continue
			}
			dead := moved(as)
			for _, r := range evs {
				if dead {
					break
				}
				dead = r.saw(a.n) && r.removes(as.field)
			}
			if !dead {
				survivors[as.field] = append(survivors[as.field], as)
			}
		}
	}
	if len(tags) > 0 {
		tree["tags"] = slices.Sorted(maps.Keys(tags))
	}
	for field, as := range survivors {
		for _, e := range as[1:] {
			conflict = conflict || e.value != as[0].value
		}
		v := lwwAssign(as).value
		if top, sub, nested := strings.Cut(field, "."); nested {
			m, _ := tree[top].(map[string]any)
			if m == nil {
				m = map[string]any{}
				tree[top] = m
			}
			m[sub] = v
		} else {
			tree[field] = v
		}
	}
	if len(tree) == 0 {
		return "", true, false
	}
	b, _ := json.Marshal(tree) // keys sorted, as the policy writes them
	return string(b), false, conflict
}

// lwwAssign is the HLC rule between assignments of a field: the largest
// HLC, then the largest replica id, then the largest counter.
func lwwAssign(as []docAssign) docAssign {
	best := as[0]
	for _, e := range as[1:] {
		if e.time > best.time ||
			e.time == best.time && (e.dot.Replica.Compare(best.dot.Replica) > 0 ||
				e.dot.Replica == best.dot.Replica && e.dot.Counter > best.dot.Counter) {
			best = e
		}
	}
	return best
}

// restampedDoc notes in e, a reidentify re-stamp of a json key whose
// writer gave up id old having published its dots up to published, the
// assignments and members its state (a merge.DocState, decoded here
// independently of package merge) holds under e's own dot: the ones
// reidentify moved from the old id. Each must be one the old id made,
// above published, with the same value and HLC, and that no write e's
// writer had seen replaced: a re-stamp re-tags, it never invents nor
// brings back.
func (o *oracle) restampedDoc(e *event, old clock.ReplicaID, published uint64, state []byte) *Violation {
	entries, err := docEntries(state)
	if err != nil {
		return violate(RuleError, "re-stamp %s: %v", e, err)
	}
	for _, en := range entries {
		if en.dot != e.dot {
			continue
		}
		var as docAssign
		switch {
		case en.member:
			as = docAssign{ev: e, field: docAdd, value: en.value, time: en.time, dot: e.dot}
		case en.counter || en.mark:
			continue // folded increments (counted through their own events), the set's or an object's mark
		default:
			var v string
			if json.Unmarshal([]byte(en.value), &v) != nil {
				return violate(RuleDots, "re-stamp %s holds %s=%s, which no write of the workload assigns", e, en.field, en.value)
			}
			as = docAssign{ev: e, field: en.field, value: v, time: en.time, dot: e.dot}
		}
		if !o.retags(e, as, old, published) {
			what := fmt.Sprintf("%s=%s", as.field, as.value)
			if en.member {
				what = "member " + as.value
			}
			return violate(RuleDots, "re-stamp %s holds %s (HLC %d) under its own dot: no live write of the old id above %d assigned it unreplaced",
				e, what, as.time, published)
		}
		e.restamped = append(e.restamped, as)
	}
	return nil
}

// retags reports whether as, held by the re-stamp e under its own dot, is
// an assignment (or add) of the old id above published, of e's key, that
// no write e had seen replaced or removed.
func (o *oracle) retags(e *event, as docAssign, old clock.ReplicaID, published uint64) bool {
	for _, q := range o.byKey[e.key] {
		if q == e || q.lost || q.dot.Replica != old || q.dot.Counter <= published {
			continue
		}
		for _, qa := range q.assigns() {
			if qa.field != as.field || qa.value != as.value || !as.member() && qa.time != as.time {
				continue
			}
			replaced := false
			for _, r := range o.byKey[e.key] {
				if r != e && !r.lost && e.past[r.n] && r.saw(q.n) && (as.member() && r.kind == OpPatch && r.elem == docRemove && r.field == as.value || r.removes(as.field)) {
					replaced = true
					break
				}
			}
			if !replaced {
				return true
			}
		}
	}
	return false
}

func (a docAssign) member() bool { return a.field == docAdd }

// fieldPath is the dotted path of the field a assigns ("tags" for a
// member).
func (a docAssign) fieldPath() string {
	if a.member() {
		return "tags"
	}
	return a.field
}

// docEntry is an entry of a json document's state: a field's assignment
// (value: compact JSON), the mark of an object or of a set, a counter
// entry, or a set member (value: the member).
type docEntry struct {
	field   string // dotted path
	dot     clock.Dot
	time    clock.HLC
	value   string
	mark    bool
	counter bool
	member  bool
}

// docEntries decodes a json document's state (merge.DocState.Encode:
// ["jsondoc1", context, [[path, [entry...]]...]], a path its keys each
// preceded by its length as a uvarint, an entry [replica, counter, hlc,
// value] or [replica, counter, hlc, kind, payload]).
func docEntries(b []byte) ([]docEntry, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	if n, err := dec.DecodeArrayLen(); err != nil || n != 3 {
		return nil, fmt.Errorf("not a json document state (%d, %v)", n, err)
	}
	if err := dec.Skip(); err != nil { // the tag
		return nil, err
	}
	if err := dec.Skip(); err != nil { // the context
		return nil, err
	}
	paths, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	var out []docEntry
	for range paths {
		if _, err := dec.DecodeArrayLen(); err != nil {
			return nil, err
		}
		p, err := dec.DecodeBytes()
		if err != nil {
			return nil, err
		}
		var keys []string
		for len(p) > 0 {
			l, w := binary.Uvarint(p)
			if w <= 0 || l > uint64(len(p)-w) {
				return nil, fmt.Errorf("malformed path %q", p)
			}
			keys = append(keys, string(p[w:w+int(l)]))
			p = p[w+int(l):]
		}
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		for range n {
			l, err := dec.DecodeArrayLen()
			if err != nil {
				return nil, err
			}
			id, err := dec.DecodeBytes()
			if err != nil || len(id) != 16 {
				return nil, fmt.Errorf("entry replica %x: %v", id, err)
			}
			e := docEntry{field: strings.Join(keys, ".")}
			copy(e.dot.Replica[:], id)
			if e.dot.Counter, err = dec.DecodeUint64(); err != nil {
				return nil, err
			}
			t, err := dec.DecodeUint64()
			if err != nil {
				return nil, err
			}
			e.time = clock.HLC(t)
			kind := uint64(0)
			if l == 5 {
				if kind, err = dec.DecodeUint64(); err != nil {
					return nil, err
				}
			}
			switch kind {
			case 0: // an assignment; empty for an object's mark
				v, err := dec.DecodeBytes()
				if err != nil {
					return nil, err
				}
				e.value, e.mark = string(v), len(v) == 0
			case 1: // a counter entry: [P, N]
				e.counter = true
				if err := dec.Skip(); err != nil {
					return nil, err
				}
			case 2, 3: // the set's mark, a member
				v, err := dec.DecodeBytes()
				if err != nil {
					return nil, err
				}
				e.value, e.mark, e.member = string(v), kind == 2, kind == 3
			default:
				return nil, fmt.Errorf("entry kind %d", kind)
			}
			out = append(out, e)
		}
	}
	return out, nil
}
