package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// Finish stops the faults (partitions end, no more injected faults or
// crashes), runs sync rounds — every replica syncs once per round, in
// order — until the replicas are identical with nothing left to push (at
// least 2 rounds, at most Config.MaxRounds), then checks every invariant
// against the oracle. It returns the report (also on failure) and the
// violation, if any.
func (w *World) Finish() (Report, error) {
	if w.done {
		return w.rep, errors.New("sim: Finish called twice")
	}
	w.done = true
	v := w.finish()
	w.collectStats()
	if v != nil {
		w.rep.Failure = v.Error()
		return w.rep, v
	}
	return w.rep, nil
}

func (w *World) finish() *Violation {
	ctx := context.Background()
	for _, n := range w.nodes {
		n.cutUntil = 0
		n.view.setCut(false)
		n.armed, n.pauseAt, n.atStep = "", "", ""
		n.view.begin(nil)
	}
	anyRetired := false
	for _, n := range w.nodes {
		anyRetired = anyRetired || w.collecting && w.retired(n)
	}
	if anyRetired {
		// A retired replica rebases on the newest snapshot; if the
		// compaction that retired it failed before writing one, it cannot
		// (TestFoundRetiredWithoutSnapshot). Compact once, with no faults,
		// on the first replica that can, as an operator would.
		for _, n := range w.nodes {
			pre := w.beforeSync(n)
			cs, err := n.r.Compact(ctx, engine.CompactOptions{Grace: -1, PartSize: 256})
			if v := w.afterSync(n, 999_999, pre); v != nil {
				return v
			}
			w.tracef("final compaction by %s: snapshot at %d, collected %d, err %v", n.name(), cs.Position, cs.Collected, err)
			if err == nil {
				w.rep.Collected += int64(cs.Collected)
				break
			}
		}
	}
	var digests []string
	var records []map[string]merge.Record
	var shown []map[string]string
	rounds := w.cfg.MaxRounds
	if w.collecting {
		rounds = max(rounds, 6)
	}
	for round := 1; round <= rounds; round++ {
		var parts []string
		pushed := false
		for _, n := range w.nodes {
			pre := w.beforeSync(n)
			s, err := n.r.Sync(ctx)
			w.rep.Conflicts += int64(s.Pull.Conflicts)
			if (errors.Is(err, engine.ErrCloned) || errors.Is(err, engine.ErrDuplicateID)) && n.mayClone {
				// A copied or restored directory: reidentify, as its user
				// would, and sync again. What the sync did before its
				// verdict (a resumed rebase's re-stamps) is recorded first:
				// reidentify drops and carries those versions.
				if v := w.afterSync(n, 1_000_000+round, pre); v != nil {
					return v
				}
				out, v := w.reidentify(n, 1_000_000+round)
				w.tracef("final round %d: %s cloned (a correct verdict): %s", round, n.name(), out)
				if v != nil {
					return v
				}
				pushed = true
				pre = w.beforeSync(n)
				s, err = n.r.Sync(ctx)
				w.rep.Conflicts += int64(s.Pull.Conflicts)
			}
			if err != nil {
				return violate(RuleError, "final sync round %d: %s: %v", round, n.name(), err)
			}
			if v := w.afterSync(n, 1_000_000+round, pre); v != nil {
				return v
			}
			pushed = pushed || s.Push.Segments > 0
			parts = append(parts, fmt.Sprintf("%s pulled %d pushed %d", n.name(), s.Pull.Segments, s.Push.Segments))
		}
		digests, records, shown = digests[:0], records[:0], shown[:0]
		for _, n := range w.nodes {
			d, recs, err := w.digest(n)
			if err != nil {
				return violate(RuleError, "digest of %s: %v", n.name(), err)
			}
			if w.collecting {
				// Compare what reads show (see collect.go).
				var sh map[string]string
				if d, sh, err = w.visibleDigest(n); err != nil {
					return violate(RuleError, "digest of %s: %v", n.name(), err)
				}
				shown = append(shown, sh)
			}
			digests = append(digests, d)
			records = append(records, recs)
		}
		same := true
		for _, d := range digests {
			same = same && d == digests[0]
		}
		w.tracef("final round %d: %s; identical=%v", round, strings.Join(parts, ", "), same)
		switch {
		case !same:
			w.rep.Rounds = 0
		case w.rep.Rounds == 0:
			w.rep.Rounds = round
		}
		quiet := true
		for _, n := range w.nodes {
			quiet = quiet && n.r.Store().OutboxLen() == 0
		}
		if w.collecting && pushed {
			// Reads may agree while a replica that synced early in the
			// round has yet to pull a later push (a stale tombstone):
			// only a round with no push has every replica at the tip.
			quiet = false
		}
		if same && quiet && round >= 2 {
			break // identical, nothing left to push: more rounds move nothing
		}
	}
	if w.rep.Rounds == 0 {
		if w.collecting {
			return w.divergedVisible(shown)
		}
		return w.diverged(records)
	}
	w.rep.Converged = true
	w.rep.Digest = digests[0]
	for _, n := range w.nodes {
		if v := w.checkNode(n); v != nil {
			return v
		}
		if p := n.r.Store().OutboxLen(); p != 0 {
			return violate(RuleConvergence, "%s still has %d unpushed keys after the final rounds", n.name(), p)
		}
		var live int64
		if err := n.r.Store().View(func(v *store.View) error {
			var err error
			live, err = v.CountLive()
			return err
		}); err != nil {
			return violate(RuleError, "recount at %s: %v", n.name(), err)
		}
		if live != n.r.Len() {
			return violate(RuleCount, "%s: Len says %d live keys, a recount finds %d", n.name(), n.r.Len(), live)
		}
	}
	final := records[0]
	keys := w.or.keys()
	for _, recs := range records {
		for k := range recs {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		rec, ok := final[k]
		held := 0
		for i, recs := range records {
			r, ok := recs[k]
			if !ok {
				continue
			}
			held++
			if i == 0 || w.collecting {
				// Identical everywhere without collection; with it, a
				// tombstone one replica holds and another collected.
				if v := w.or.checkSiblings(k, r.Versions); v != nil {
					return v
				}
			}
		}
		if held == 0 && len(w.or.maximal(k)) > 0 {
			if !w.collecting || !w.or.readsDeleted(k, w.cfg) {
				return violate(RuleCausality, "%s is gone from every replica; its latest writes were %s", k, fmtEvents(w.or.maximal(k)))
			}
			// Collected whole everywhere: it must read as deleted (below).
		}
		if !ok && held == 0 && len(w.or.maximal(k)) == 0 {
			if v := w.or.checkSiblings(k, nil); v != nil {
				return v
			}
		}
		if v := w.checkRead(k); v != nil {
			return v
		}
		if w.cfg.UserPolicy == nil && w.cfg.Policy == PolicyLWW && len(rec.Versions) > 1 {
			w.rep.LostUpdates += int64(len(rec.Versions) - 1)
		}
	}
	return nil
}

func fmtEvents(evs []*event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.String()
	}
	return strings.Join(s, ", ")
}

// diverged describes the first key on which the replicas differ.
func (w *World) diverged(records []map[string]merge.Record) *Violation {
	for _, k := range unionKeys(records) {
		var lines []string
		differ := false
		for i, recs := range records {
			r, ok := recs[k]
			if !ok || !r.Equal(records[0][k]) {
				differ = true
			}
			if ok {
				lines = append(lines, fmt.Sprintf("%s has %s", replicaName(i), fmtRecord(w.or, r)))
			} else {
				lines = append(lines, fmt.Sprintf("%s has no record", replicaName(i)))
			}
		}
		if differ {
			return violate(RuleConvergence, "replicas differ on %s after %d sync rounds: %s", k, w.cfg.MaxRounds, strings.Join(lines, "; "))
		}
	}
	return violate(RuleConvergence, "replicas differ after %d sync rounds", w.cfg.MaxRounds)
}

// read is what a Get returns, for comparisons.
type read struct {
	value    string
	notFound bool
	conflict int // siblings surfaced
	err      string
}

func (r read) String() string {
	switch {
	case r.notFound:
		return "not found"
	case r.conflict > 0:
		return fmt.Sprintf("conflict of %d versions", r.conflict)
	case r.err != "":
		return "error " + r.err
	}
	return strconv.Quote(r.value)
}

func get(r *engine.Engine, key string) read {
	v, err := r.Get(key)
	var ce *engine.ConflictError
	switch {
	case err == nil:
		return read{value: string(v)}
	case errors.Is(err, engine.ErrNotFound):
		return read{notFound: true}
	case errors.As(err, &ce):
		return read{conflict: len(ce.Versions)}
	}
	return read{err: err.Error()}
}

// checkRead compares every replica's read of key with what the policy
// must return given the oracle's writes.
func (w *World) checkRead(key string) *Violation {
	maximal := w.or.maximal(key)
	var want read
	switch {
	case w.cfg.UserPolicy != nil:
		want = get(w.nodes[0].r, key) // only agreement can be checked
	case len(maximal) == 0:
		want = read{notFound: true}
	case w.cfg.Policy == PolicyLWW || w.cfg.Policy == PolicyMV && len(maximal) == 1:
		e := lwwWinner(maximal)
		if e.del {
			want = read{notFound: true}
		} else {
			want = read{value: string(e.value)}
		}
	case w.cfg.Policy == PolicyMV:
		want = read{notFound: true}
		for _, e := range maximal {
			if !e.del {
				want = read{conflict: versionCount(maximal)}
			}
		}
	case w.cfg.Policy == PolicyCounter:
		sum, _ := w.or.counterSum(key)
		want = read{value: strconv.FormatInt(sum, 10)}
	case w.cfg.Policy == PolicySet:
		members := w.or.setMembers(key)
		want = read{value: strings.Join(members, "\n"), notFound: len(members) == 0}
	case w.cfg.Policy == PolicyJSON || w.cfg.Policy == PolicyJSONMV:
		doc, absent, conflict := w.or.document(key)
		want = read{value: doc, notFound: absent}
		if conflict && w.cfg.Policy == PolicyJSONMV {
			want = read{conflict: versionCount(maximal)}
		}
	}
	for _, n := range w.nodes {
		if got := get(n.r, key); got != want {
			return violate(RuleRead, "%s reads %s as %s, want %s (policy %s; its latest writes: %s)",
				n.name(), key, got, want, w.cfg.policyName(), fmtEvents(maximal))
		}
	}
	return nil
}

// versionCount is how many versions the writes evs leave: one per dot.
// Twins of a dot with the same content (a copy and its original writing
// the same tombstone at the same HLC, seed 8229 of the absence sweep) are
// one version, which the replicas hold once; twins that differ break the
// dots rule before any read is checked.
func versionCount(evs []*event) int {
	dots := map[clock.Dot]bool{}
	for _, e := range evs {
		dots[e.dot] = true
	}
	return len(dots)
}

// collectStats adds the request counts and the clock skew seen to the
// report.
func (w *World) collectStats() {
	c := w.meter.Stats().Snapshot()
	w.rep.Requests = Requests{Put: c.Put, Get: c.Get, List: c.List, Delete: c.Delete}
	w.rep.BytesOut, w.rep.BytesIn = c.BytesOut, c.BytesIn
	w.rep.Cost = estimate(w.rep.Requests)
	for _, n := range w.nodes {
		if n.r == nil {
			continue
		}
		capped, _ := n.r.Store().Clock().SkewStats()
		w.rep.SkewCapped += int64(capped)
	}
}

// unionKeys returns every key of the maps, sorted.
func unionKeys[V any](ms []map[string]V) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}
