package engine

// Re-stamping: writing a dirty key again as a new local write under a
// fresh dot, after a rebase discarded its record (rebase.go) or reidentify
// gave this directory a new id (reidentify.go). Both keep the dirty keys
// the same way (keptOf) and write them back with restamp (absence rule 6).

import (
	"bytes"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// keptValue is a dirty key's value as it read before a re-stamp; a rebase
// keeps it in m/rebase/<key> until it is over. A counter, set or json key keeps
// its joined CRDT state (with its context) in State, Kind naming the CRDT:
// it is written back as state, never as the text it reads as (absence
// rule 6).
type keptValue struct {
	Key     string `msgpack:"k"`
	Value   []byte `msgpack:"v"`
	Deleted bool   `msgpack:"d"`
	Kind    string `msgpack:"c,omitempty"`
	State   []byte `msgpack:"s,omitempty"`
	// Passive: a counter or set key that was not dirty, kept only for
	// reads and updates while the rebase is pending; not re-stamped.
	Passive bool `msgpack:"p,omitempty"`
}

// keptOf is what a re-stamp keeps of a dirty key with record rec: its
// joined CRDT state, or the value it reads as (the lww pick when its
// policy fails or reports a conflict, so that every sibling's value stays
// reachable).
func (r *Engine) keptOf(key string, rec merge.Record) (keptValue, error) {
	p := r.opts.Policies.For(key)
	if kind := crdtKind(p); kind != "" && r.rules.KeepCRDTState() {
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

// dirtyKept reads what a re-stamp keeps of every dirty key (the outbox)
// that has a record, in key order.
func (r *Engine) dirtyKept(v *store.View) ([]keptValue, error) {
	var kept []keptValue
	err := v.OutboxMarks("", func(key string, _ uint64) (bool, error) {
		st, ok, err := v.Record(key)
		if err != nil || !ok {
			return err == nil, err
		}
		k, err := r.keptOf(key, st.Record)
		if err != nil {
			return false, err
		}
		kept = append(kept, k)
		return true, nil
	})
	return kept, err
}

// reidentified says how reidentify re-stamps a CRDT key: the old id's
// entries above published move to the write's dot.
type reidentified struct {
	old       clock.ReplicaID
	published uint64
}

// restamp writes the kept key k again as one local write under a fresh
// dot of this replica's (current) id. A plain key is written with its kept
// value; one that read as deleted gets a fresh tombstone, as others may
// hold it live. A counter or set key stays state:
//
//   - after a rebase (re nil): the join of the key's current state (it
//     starts from the record now, or G, without a pending rebase's kept
//     state) and the kept one. The kept state's own entries carry dots that
//     never reached the others, or that they already hold: the join counts
//     each exactly once.
//   - after reidentify: the kept state alone, the old id's unpublished
//     entries moved to the write's dot (see merge.CounterState.Reidentify).
//     It is not joined with the cleaned record: dropping the old id's
//     unpublished versions also dropped entries of other replicas they
//     carried, which the cleaned clock still covers, so a join would take
//     them for removed.
//
// The change feed follows its rule, every change to what Get returns: a
// re-stamp that leaves the key reading as before (what Get returned
// before the re-stamp began: the kept value while a rebase is pending) is
// no entry, one that changes it (concurrent versions settled into one) is
// a local write's.
func (r *Engine) restamp(tx *store.Tx, k keptValue, re *reidentified, before readAs) error {
	settled := func(value []byte, deleted bool, d clock.Dot) {
		after := r.readOf(k.Key, merge.Record{Versions: []merge.Version{{Dot: d, Value: value, Deleted: deleted}}})
		if after.same(before) {
			tx.SkipFeed(k.Key)
		}
	}
	if k.Kind == "" {
		_, _, err := tx.WriteFunc(k.Key, func(_ merge.Record, d clock.Dot) ([]byte, bool, bool, error) {
			settled(k.Value, k.Deleted, d)
			return k.Value, k.Deleted, true, nil
		})
		return err
	}
	p := r.opts.Policies.For(k.Key)
	update := r.crdtUpdateLoaded
	if re != nil {
		update = r.crdtUpdate
	}
	return update(tx, k.Key, func(start merge.Record, d clock.Dot) ([]byte, bool, error) {
		state, err := restampedState(k, start, d, re)
		if err != nil {
			return nil, false, policyErr(k.Key, p, err)
		}
		settled(state, false, d)
		return state, true, nil
	})
}

// readAs is what Get returns for a key, as far as the change feed tells
// changes apart: live or not, the value, and whether it reads as a
// conflict or holds concurrent versions (the feed's conflict flag).
type readAs struct {
	live     bool
	value    []byte
	conflict bool // or unreadable: never the same as anything
}

// same reports whether a and b read the same, neither a conflict.
func (a readAs) same(b readAs) bool {
	return !a.conflict && !b.conflict && a.live == b.live && (!a.live || bytes.Equal(a.value, b.value))
}

// readOf is what Get returns for key with record rec.
func (r *Engine) readOf(key string, rec merge.Record) readAs {
	if len(rec.Versions) == 0 {
		return readAs{}
	}
	p := r.opts.Policies.For(key)
	res, err := merge.Read(p, key, rec)
	if err != nil {
		return readAs{conflict: true}
	}
	return readAs{live: !res.Deleted, value: res.Value,
		conflict: res.Conflict || (len(rec.Versions) > 1 && crdtKind(p) == "")}
}

// readsAs is what Get of key returns in tx (a pending rebase's kept value
// included).
func (r *Engine) readsAs(tx *store.Tx, key string) (readAs, error) {
	st, ok, err := tx.Record(key)
	if err != nil {
		return readAs{}, err
	}
	rec, ok, err := r.withKept(tx, key, st.Record, ok)
	if err != nil || !ok {
		return readAs{}, err
	}
	return r.readOf(key, rec), nil
}

// restampedState is the state restamp writes for the CRDT key k, starting
// from the record start under dot d.
func restampedState(k keptValue, start merge.Record, d clock.Dot, re *reidentified) ([]byte, error) {
	if k.Kind == merge.NameJSON {
		kept, err := merge.DecodeDoc(k.State)
		if err != nil {
			return nil, err
		}
		if re != nil {
			return kept.Reidentify(re.old, re.published, d).Encode(), nil
		}
		cur, err := merge.DocOf(start)
		if err != nil {
			return nil, err
		}
		return cur.Join(kept).Encode(), nil
	}
	if k.Kind == merge.NameCounter {
		kept, err := merge.DecodeCounter(k.State)
		if err != nil {
			return nil, err
		}
		if re != nil {
			return kept.Reidentify(re.old, re.published, d).Encode(), nil
		}
		cur, err := merge.CounterOf(start)
		if err != nil {
			return nil, err
		}
		return cur.Join(kept).Encode(), nil
	}
	kept, err := merge.DecodeSet(k.State)
	if err != nil {
		return nil, err
	}
	if re != nil {
		return kept.Reidentify(re.old, re.published, d).Encode(), nil
	}
	cur, err := merge.SetOf(start)
	if err != nil {
		return nil, err
	}
	return cur.Join(kept).Encode(), nil
}
