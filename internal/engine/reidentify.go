package engine

import (
	"context"
	"fmt"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// Reidentify gives this directory a new replica id, for a directory that
// was copied from another (or restored from a backup) and so shares its id:
// Push and Pull stop with ErrCloned until it is done.
//
// It keeps the data and re-stamps the unpushed changes: every version
// carrying an old-id dot above the highest counter this directory ever
// published is dropped (the other directory may have issued the same dots
// with other values), the old id's clock entries are lowered to that
// counter, staged segments are discarded, and every key in the outbox is
// written again, with its value as read before, under the new id. The new
// id registers on the next sync, and pulls to the tip before it pushes.
//
// Limit: old-id writes of the other directory that reached this one through
// a third replica before the clone was detected cannot be told apart from
// its own; the pull-side checks (a segment under this id that it never
// staged, a clock entry above its counter) stop such merges in the common
// cases.
func (r *Engine) Reidentify(ctx context.Context) (clock.ReplicaID, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	old := r.ID()
	newID := clock.NewReplicaID()
	pub, err := r.meta("published")
	if err != nil {
		return old, err
	}
	published := u64(pub)
	// Read the outbox's values as they read now, and the records to clean.
	type redo struct {
		key     string
		value   []byte
		deleted bool
		kind    string // a counter or set key: state holds its joined state
		state   []byte
	}
	var dirty []redo
	var suspect []string
	err = r.st.View(func(v *store.View) error {
		if err := v.Marks("", func(key string, _ uint64) (bool, error) {
			st, ok, err := v.Record(key)
			if err != nil || !ok {
				return err == nil, err
			}
			p := r.opts.Policies.For(key)
			if kind := crdtKind(p); kind != "" && !r.knob(func(k *Knobs) bool { return k.RestampAsText }) {
				state, _, err := joined(kind, st.Record, false)
				if err != nil {
					return false, policyErr(key, p, err)
				}
				dirty = append(dirty, redo{key: key, kind: kind, state: state})
				return true, nil
			}
			res, err := merge.Read(p, key, st.Record)
			if err != nil || res.Conflict {
				// Keep every sibling's value reachable: re-stamp the lww pick.
				res, _ = merge.LWW{}.Resolve(key, st.Versions)
			}
			dirty = append(dirty, redo{key: key, value: res.Value, deleted: res.Deleted})
			return true, nil
		}); err != nil {
			return err
		}
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			if st.Clock.Get(old) > published {
				suspect = append(suspect, key)
			}
			return true, nil
		})
	})
	if err != nil {
		return old, wrapClosed(err)
	}
	var stagedNames []string
	err = r.st.View(func(v *store.View) error {
		return v.MetaScan("stage/", func(name string, _ []byte) (bool, error) {
			stagedNames = append(stagedNames, name)
			return true, nil
		})
	})
	if err != nil {
		return old, wrapClosed(err)
	}
	err = r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		for _, key := range suspect {
			st, ok, err := tx.Record(key)
			if err != nil || !ok {
				return err
			}
			var keep []merge.Version
			for _, v := range st.Versions {
				if v.Dot.Replica == old && v.Dot.Counter > published {
					continue
				}
				keep = append(keep, v)
			}
			c := st.Clock.Clone()
			c[old] = published
			if published == 0 {
				delete(c, old)
			}
			st.Record = merge.Record{Clock: c, Versions: keep}
			if err := tx.PutRecord(key, st); err != nil {
				return err
			}
		}
		for _, n := range stagedNames {
			tx.DeleteMeta(n)
		}
		tx.DeleteMeta("registry")
		tx.DeleteMeta("ready")
		tx.DeleteMeta("published")
		tx.ChangeReplicaID(newID)
		for _, d := range dirty {
			if d.kind != "" {
				// A counter or set key stays state: the old id's
				// unpublished entries move to the new write's dot.
				if err := r.reidentifyState(tx, d.key, d.kind, d.state, old, published); err != nil {
					return err
				}
				continue
			}
			// A key that reads as deleted gets a fresh tombstone: others
			// may hold it live.
			if _, err := tx.Write(d.key, d.value, d.deleted); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return old, fmt.Errorf("replica: reidentify: %w", wrapClosed(err))
	}
	r.idp.Store(&newID)
	r.manifest = nil
	r.reg = regState{}
	return newID, nil
}

// reidentifyState writes a dirty counter or set key again under the new
// id: its joined state as it was before reidentify, the old id's
// unpublished entries moved to the write's dot (see
// merge.CounterState.Reidentify). It is not joined with the cleaned record:
// dropping the old id's unpublished versions also dropped entries of other
// replicas they carried, which the cleaned clock still covers, so a join
// would take them for removed.
func (r *Engine) reidentifyState(tx *store.Tx, key, kind string, state []byte, old clock.ReplicaID, published uint64) error {
	p := r.opts.Policies.For(key)
	return r.crdtUpdate(tx, key, func(_ merge.Record, d clock.Dot) ([]byte, bool, error) {
		if kind == merge.NameCounter {
			kept, err := merge.DecodeCounter(state)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			return kept.Reidentify(old, published, d).Encode(), true, nil
		}
		kept, err := merge.DecodeSet(state)
		if err != nil {
			return nil, false, policyErr(key, p, err)
		}
		return kept.Reidentify(old, published, d).Encode(), true, nil
	})
}
