package engine

// Collection: deleting records that read as deleted once every replica
// has acknowledged them (package doc, "Collection").

import (
	"context"
	"github.com/ebreplica/ebreplica/internal/protocol"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// collect deletes the records that may be collected (conditions in the
// package doc; the caller has read the acks and pulled since) and joins
// their clocks into G.
func (r *Engine) collect(ctx context.Context, floor uint64) (int, error) {
	var keys []string
	err := r.st.View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			ok, err := r.collectible(v.OutboxMark, key, st, floor)
			if ok {
				keys = append(keys, key)
			}
			return err == nil, err
		})
	})
	if err != nil {
		return 0, wrapClosed(err)
	}
	n := 0
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), r.chunk())]
		keys = keys[len(chunk):]
		err := r.st.UpdateSync(ctx, func(tx *store.Tx) error {
			m, err := r.collectChunk(tx, chunk, floor)
			n += m
			return err
		})
		if err != nil {
			return n, wrapClosed(err)
		}
	}
	return n, nil
}

// collectChunk collects in tx those of keys that may still be collected
// (checked again: the view they were chosen from is gone), and reports
// how many it collected.
func (r *Engine) collectChunk(tx *store.Tx, keys []string, floor uint64) (int, error) {
	n := 0
	g, err := tx.G()
	if err != nil {
		return n, err
	}
	for _, key := range keys {
		st, ok, err := tx.Record(key)
		if err != nil {
			return n, err
		}
		if !ok {
			continue
		}
		if ok, err := r.collectible(tx.OutboxMark, key, st, floor); err != nil {
			return n, err
		} else if !ok {
			continue
		}
		if keep, whole := r.rules.CollectRecord(st.Record); !whole {
			// An old rule's partial collection (the simulator's).
			st.Record = keep
			if err := tx.PutRecord(key, st); err != nil {
				return n, err
			}
			n++
			continue
		}
		g.JoinInPlace(st.Clock)
		if err := tx.DeleteRecord(key); err != nil {
			return n, err
		}
		n++
	}
	tx.SetG(g)
	return n, nil
}

// collectible applies Rules.Collectible to one record. What costs (the
// policy's read, the outbox mark) is read only when the rule, given the
// most favourable answer for it, could still say yes.
func (r *Engine) collectible(mark func(string) (uint64, bool, error), key string, st store.Stored, floor uint64) (bool, error) {
	c := protocol.Candidate{Pos: st.Pos, ReadsDeleted: true}
	if !r.rules.Collectible(c, floor) {
		return false, nil
	}
	c.ReadsDeleted = readsDeletedNoUserCode(r.opts.Policies.For(key), st.Record)
	if !r.rules.Collectible(c, floor) {
		return false, nil
	}
	_, dirty, err := mark(key)
	if err != nil {
		return false, err
	}
	c.Dirty = dirty
	return r.rules.Collectible(c, floor), nil
}

// readsDeletedNoUserCode decides condition (1) of collection without
// running user code: every sibling a tombstone, or an lww winner that is.
func readsDeletedNoUserCode(p merge.Policy, rec merge.Record) bool {
	if len(rec.Versions) == 0 {
		return false
	}
	if rec.Deleted() {
		return true
	}
	if _, ok := merge.Builtin(p.Name()); ok && !isFunc(p) {
		// Built-in reads (lww's winner, an emptied counter or set) run no
		// user code.
		return !merge.Live(p, "", rec)
	}
	return false
}

func isFunc(p merge.Policy) bool {
	_, ok := p.(*merge.Func)
	return ok
}
