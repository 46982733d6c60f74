package engine

import (
	"fmt"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
	"github.com/vmihailenco/msgpack/v5"
)

// Reads and writes while a rebase is pending.
//
// A rebase keeps the dirty keys (m/rebase/<key>), then discards every
// record and loads the newest snapshot; an error or a crash in between
// leaves the rebase pending (m/rebasing) with the records gone, and the
// replica keeps answering local reads and writes until a push, pull or
// compaction resumes it. Meanwhile a kept key reads as kept, and a counter
// or set update starts from the kept state joined with the current one:
// else an Add made then would start from zero, fold this replica's running
// total into a new entry holding only the delta, and supersede the
// published total for good (found by the real-process chaos test: counter
// increments lost after an interrupted rebase). Every counter and set key
// is kept for this (the clean ones passively: not re-stamped). A plain key
// written since (dirty again) reads as written.
//
// Limit: a clean plain key (not dirty when the rebase began) reads as not
// found while the rebase is pending, and a write to it then starts from G:
// it comes out concurrent with the key's published versions instead of
// superseding them (a sibling under mv; under lww the later HLC wins).
// Nothing is lost; keeping every key's value would double a rebase's
// writes.

// keptReader is what withKept reads: a View or a Tx.
type keptReader interface {
	Meta(name string) ([]byte, bool, error)
	OutboxMark(key string) (uint64, bool, error)
}

// withKept returns the record a read or a local update of key sees: rec
// (ok: the key has a record), or, while a rebase is pending and the key is
// kept, the kept value (a plain key not written since) or, for a counter,
// set or json key, one version holding the key's state joined with the
// kept one.
func (r *Engine) withKept(m keptReader, key string, rec merge.Record, ok bool) (merge.Record, bool, error) {
	if !r.rebasePending.Load() {
		return rec, ok, nil
	}
	b, found, err := m.Meta("rebase/" + key)
	if err != nil || !found {
		return rec, ok, err
	}
	var k keptValue
	if err := msgpack.Unmarshal(b, &k); err != nil {
		return rec, ok, fmt.Errorf("%w: m/rebase/%s: %v", store.ErrCorrupt, key, err)
	}
	if k.Kind != "" {
		// The key's state (with its record's clock: G when it has no
		// record) and the kept one, joined as two states, as a rebase's
		// re-stamp joins them (restamp): as siblings of one record, each
		// version's members stayed and only the join's context took in
		// the record's clock, so a kept member the loaded state had
		// removed (then collected) came back.
		if state, err := restampedState(k, rec, clock.Dot{}, nil); err == nil {
			return merge.Record{Clock: rec.Clock, Versions: []merge.Version{{Value: state}}}, true, nil
		}
		// Unreadable: as siblings, for the read to report it.
		out := merge.Record{Clock: rec.Clock, Versions: append(append([]merge.Version(nil), rec.Versions...), merge.Version{Value: k.State})}
		return out, true, nil
	}
	if _, dirty, err := m.OutboxMark(key); err != nil || dirty {
		return rec, ok, err
	}
	return merge.Record{Clock: rec.Clock, Versions: []merge.Version{{Value: k.Value, Deleted: k.Deleted}}}, true, nil
}
