package engine

// Re-stamping: writing a dirty key again as a new local write, after a
// rebase discarded its record or reidentify gave the replica a new id.

import (
	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// restampState writes a kept CRDT state back after a rebase: the join of
// the key's current state (it starts from the record now, or G) and the
// kept one, as one local write under a fresh dot. The kept state's own
// entries carry dots that never reached the others, or that they already
// hold: the join counts each exactly once.
func (r *Engine) restampState(tx *store.Tx, key, kind string, state []byte) error {
	p := r.opts.Policies.For(key)
	return r.crdtUpdateLoaded(tx, key, func(start merge.Record, d clock.Dot) ([]byte, bool, error) {
		if kind == merge.NameCounter {
			kept, err := merge.DecodeCounter(state)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			cur, err := merge.CounterOf(start)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			return cur.Join(kept).Encode(), true, nil
		}
		kept, err := merge.DecodeSet(state)
		if err != nil {
			return nil, false, policyErr(key, p, err)
		}
		cur, err := merge.SetOf(start)
		if err != nil {
			return nil, false, policyErr(key, p, err)
		}
		return cur.Join(kept).Encode(), true, nil
	})
}

// keptOf is what keepDirty keeps of a dirty key with record rec.
func (r *Engine) keptOf(key string, rec merge.Record) (keptValue, error) {
	p := r.opts.Policies.For(key)
	if kind := crdtKind(p); kind != "" && !r.knob(func(k *Knobs) bool { return k.RestampAsText }) {
		state, _, err := joined(kind, rec, false)
		if err != nil {
			return keptValue{}, policyErr(key, p, err)
		}
		return keptValue{Key: key, Kind: kind, State: state}, nil
	}
	res, err := merge.Read(p, key, rec)
	if err != nil || res.Conflict {
		res, _ = merge.LWW{}.Resolve(key, rec.Versions)
	}
	return keptValue{Key: key, Value: res.Value, Deleted: res.Deleted}, nil
}
