package engine

import (
	"context"
	"fmt"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// JSON documents (the json policy): a document key holds a merge.DocState,
// a CRDT like the counter and set states, and is written as JSON Merge
// Patches (RFC 7396). A patch is one local write in one transaction: it
// reads the key's record, joins the states of its live siblings
// (merge.DocOf), applies the patch under the dot and the HLC of the write
// (so a field's assignment carries its version's HLC), and writes one new
// version. A patch may hold counter and set operations ({"visits":
// {"$inc":1}}, {"tags":{"$add":["a"]}}; see merge.JSON). Put of a json key
// writes the patch from the document read here to the new one
// (merge.DocState.Replace), so that only the fields it changes are
// stamped; a put is data (no operations) and keeps the counter and set
// fields whose value it leaves unchanged. Delete clears the document
// (observed-remove, as for counters and sets).

// ErrBadPatch: a write of a json key that is not a JSON object, or a patch
// with a malformed operation.
var ErrBadPatch = merge.ErrBadPatch

// ErrFieldKind: a patch operation on a field of another kind ($inc on a
// field that is not a counter, $add or $remove on one that is not a set).
// It also matches ErrBadPatch.
var ErrFieldKind = merge.ErrFieldKind

// Patch applies the JSON Merge Patch patch (RFC 7396) to the document key:
// every field it names is assigned, a null removes the field, a nested
// object is merged into an object field. Only the fields it names are
// stamped, so concurrent patches of different fields all survive. A
// field's value {"$inc": N} adds N to a counter field, {"$add": [...]} and
// {"$remove": [...]} change a set field, {"$counter": N} and {"$set": [...]}
// make the field a counter or a set (merge.JSON). The key's policy must be
// merge.JSON (ErrWrongPolicy otherwise); a patch that is not a JSON object,
// or holds a malformed operation, gives ErrBadPatch, an operation on a
// field of another kind ErrFieldKind, and a patch or a resulting state
// over the value limit ErrValueTooLarge; on any error nothing is written.
// A key that does not exist, or reads as deleted here, starts from the
// empty document.
func (r *Engine) Patch(ctx context.Context, key string, patch []byte) error {
	return r.docWrite(ctx, key, patch, merge.DocState.Patch)
}

// docWrite writes the json key with the state op computes from its joined
// state, the write's dot and an HLC reading, after checking input.
func (r *Engine) docWrite(ctx context.Context, key string, input []byte,
	op func(s merge.DocState, d clock.Dot, t clock.HLC, input []byte) (merge.DocState, error)) error {
	p, err := r.requirePolicy(key, merge.NameJSON)
	if err != nil {
		return err
	}
	if err := r.checkValue(key, input); err != nil {
		return err
	}
	if err := checkDocWrite(key, input, op); err != nil {
		return err
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		return r.docUpdate(tx, key, p, input, op)
	}))
}

// checkDocInput fails unless input is a whole document a put can write (a
// JSON object), before any write.
func checkDocInput(key string, input []byte) error {
	return checkDocWrite(key, input, merge.DocState.Replace)
}

// checkDocWrite fails unless op accepts input on the empty document (a
// JSON object, well-formed operations), before any write. What depends on
// the document (an operation on a field of another kind, ErrFieldKind)
// fails inside the write's transaction, which then writes nothing.
func checkDocWrite(key string, input []byte,
	op func(s merge.DocState, d clock.Dot, t clock.HLC, input []byte) (merge.DocState, error)) error {
	if _, err := op(merge.DocState{}, clock.Dot{Replica: clock.ReplicaID{1}, Counter: 1}, 0, input); err != nil {
		return fmt.Errorf("replica: json key %q: %w", key, err)
	}
	return nil
}

func (r *Engine) docUpdate(tx *store.Tx, key string, p merge.Policy, input []byte,
	op func(s merge.DocState, d clock.Dot, t clock.HLC, input []byte) (merge.DocState, error)) error {
	return r.crdtUpdate(tx, key, func(rec merge.Record, d clock.Dot) ([]byte, bool, error) {
		s, err := merge.DocOf(rec)
		if err != nil {
			return nil, false, policyErr(key, p, err)
		}
		out, err := op(s, d, tx.WriteTime(), input)
		if err != nil {
			return nil, false, fmt.Errorf("replica: json key %q: %w", key, err)
		}
		return out.Encode(), true, nil
	})
}

// clearDoc is the op of a batch's delete of a json key.
func clearDoc(s merge.DocState, _ clock.Dot, _ clock.HLC, _ []byte) (merge.DocState, error) {
	return s.Clear(), nil
}

// DocOperations returns the document the json key reads as in operation
// form (merge.DocState.Operations: a counter field is {"$counter":N}, a set
// field {"$set":[...]}, a field named "$x" is written "$$x"), the form
// Batch.PutDoc writes back with every field's kind: ErrNotFound when the
// key does not exist or reads as deleted, a *ConflictError when json-mv
// reads it as a conflict, ErrWrongPolicy when its policy is not merge.JSON.
func (r *Engine) DocOperations(key string) ([]byte, error) {
	p, err := r.requirePolicy(key, merge.NameJSON)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = r.st.View(func(v *store.View) error {
		st, ok, err := v.Record(key)
		if err != nil {
			return err
		}
		rec, ok, err := r.withKept(v, key, st.Record, ok)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		res, err := merge.Read(p, key, rec)
		if err != nil {
			return policyErr(key, p, err)
		}
		if res.Conflict {
			return &ConflictError{Key: key, Versions: versions(rec, res)}
		}
		s, err := merge.DocOf(rec)
		if err != nil {
			return policyErr(key, p, err)
		}
		doc, ok := s.Operations()
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		out = doc
		return nil
	})
	return out, wrapClosed(err)
}

// PutDoc queues a whole-document write of the json key from doc in
// operation form, as DocOperations returns it (merge.DocState.ReplaceOps):
// the key comes to read exactly as doc, each field of the kind doc gives it
// ({"$counter":N} a counter, {"$set":[...]} a set, anything else a value or
// an object); fields doc leaves out are removed, and only what changes is
// written. Invalid input (a key whose policy is not merge.JSON, a doc that
// is not a JSON object, a malformed or unknown operation, $inc, $add or
// $remove, a doc over the value limit) makes the whole batch fail.
func (b *Batch) PutDoc(key string, doc []byte) {
	if b.err == nil {
		if _, b.err = b.r.requirePolicy(key, merge.NameJSON); b.err == nil {
			if b.err = b.r.checkValue(key, doc); b.err == nil {
				b.err = checkDocWrite(key, doc, merge.DocState.ReplaceOps)
			}
		}
	}
	b.ops = append(b.ops, batchOp{key: key, value: doc, ops: true})
}

// docPut is the op of a batch's write of a json key: the document as data
// (Put), or in operation form (PutDoc).
func docPut(ops bool) func(merge.DocState, clock.Dot, clock.HLC, []byte) (merge.DocState, error) {
	if ops {
		return merge.DocState.ReplaceOps
	}
	return merge.DocState.Replace
}
