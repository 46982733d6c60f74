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
	re := &reidentified{old: old, published: u64(pub)}
	dirty, suspect, staged, err := r.readReidentify(old, re.published)
	if err != nil {
		return old, err
	}
	err = r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		// What Get returns now for the keys re-stamped: the change feed
		// records a re-stamp only when it changes that (restamp), and
		// nothing for their unpublished versions dropped meanwhile.
		before := make([]readAs, len(dirty))
		restamped := map[string]bool{}
		for i, k := range dirty {
			var err error
			if before[i], err = r.readsAs(tx, k.Key); err != nil {
				return err
			}
			restamped[k.Key] = true
		}
		if ok, err := dropUnpublished(tx, suspect, re, restamped); err != nil || !ok {
			return err
		}
		for _, n := range staged {
			tx.DeleteMeta(n)
		}
		tx.DeleteMeta("registry")
		tx.DeleteMeta("ready")
		tx.DeleteMeta("published")
		tx.ChangeReplicaID(newID)
		for i, k := range dirty {
			// Written again under the new id: a counter or set key as
			// state, the old id's unpublished entries moved to the new
			// write's dot.
			if err := r.restamp(tx, k, re, before[i]); err != nil {
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

// readReidentify reads what reidentify changes: the outbox's keys as they
// read now (keptOf), the keys whose clock holds an old-id dot above
// published, and the staged segments.
func (r *Engine) readReidentify(old clock.ReplicaID, published uint64) (dirty []keptValue, suspect, staged []string, err error) {
	err = r.st.View(func(v *store.View) error {
		var err error
		if dirty, err = r.dirtyKept(v); err != nil {
			return err
		}
		if err := v.Records("", "", func(key string, st store.Stored) (bool, error) {
			if st.Clock.Get(old) > published {
				suspect = append(suspect, key)
			}
			return true, nil
		}); err != nil {
			return err
		}
		return v.MetaScan("stage/", func(name string, _ []byte) (bool, error) {
			staged = append(staged, name)
			return true, nil
		})
	})
	return dirty, suspect, staged, wrapClosed(err)
}

// dropUnpublished drops from the records of keys every version with an
// old-id dot above published, and lowers the old id's clock entries to
// published. It reports false, as it always has, when a key has no record
// (the transaction then ends there). The change feed records nothing for
// the keys in restamped: restamp decides.
func dropUnpublished(tx *store.Tx, keys []string, re *reidentified, restamped map[string]bool) (bool, error) {
	for _, key := range keys {
		st, ok, err := tx.Record(key)
		if err != nil || !ok {
			return false, err
		}
		var keep []merge.Version
		for _, v := range st.Versions {
			if v.Dot.Replica == re.old && v.Dot.Counter > re.published {
				continue
			}
			keep = append(keep, v)
		}
		c := st.Clock.Clone()
		c[re.old] = re.published
		if re.published == 0 {
			delete(c, re.old)
		}
		st.Record = merge.Record{Clock: c, Versions: keep}
		if restamped[key] {
			tx.SkipFeed(key)
		}
		if err := tx.PutRecord(key, st); err != nil {
			return false, err
		}
	}
	return true, nil
}
