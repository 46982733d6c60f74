package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// CRDT values and conflict resolution.
//
// A counter or set update is one local write in one transaction: it reads
// the key's record, joins the states of its live siblings (merge.CounterOf,
// merge.SetOf), applies the change under the dot the write is about to
// take, and writes one new version, which supersedes every sibling this
// replica holds. Siblings it has not seen yet stay siblings elsewhere and
// are joined at read time, so concurrent updates on any number of replicas
// all count. See package merge for the semantics of deletes.

// ErrWrongPolicy: a counter or set operation on a key whose merge policy is
// another one.
var ErrWrongPolicy = errors.New("replica: operation does not fit the key's merge policy")

// crdtKind returns merge.NameCounter, merge.NameSet or merge.NameJSON (for
// json and json-mv) for the built-in CRDT policies, "" for any other.
func crdtKind(p merge.Policy) string {
	switch p.(type) {
	case merge.Counter, *merge.Counter:
		return merge.NameCounter
	case merge.Set, *merge.Set:
		return merge.NameSet
	case merge.JSON, *merge.JSON:
		return merge.NameJSON
	}
	return ""
}

// joined returns the encoded join of the live states of rec under a CRDT
// policy of kind, with rec's clock as its context, emptied when clear.
// empty reports that it has no entries (it reads as deleted).
func joined(kind string, rec merge.Record, clear bool) (state []byte, empty bool, err error) {
	switch kind {
	case merge.NameCounter:
		s, err := merge.CounterOf(rec)
		if clear {
			s = s.Clear()
		}
		return s.Encode(), s.Empty(), err
	case merge.NameJSON:
		s, err := merge.DocOf(rec)
		if clear {
			s = s.Clear()
		}
		return s.Encode(), s.Empty(), err
	}
	s, err := merge.SetOf(rec)
	if clear {
		s = s.Clear()
	}
	return s.Encode(), s.Len() == 0, err
}

func (r *Engine) requirePolicy(key, want string) (merge.Policy, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	p := r.opts.Policies.For(key)
	if crdtKind(p) != want {
		return nil, fmt.Errorf("%w: key %q is governed by policy %q, not %q", ErrWrongPolicy, key, p.Name(), want)
	}
	return p, nil
}

// crdtUpdate writes a new state of a CRDT key computed by fn from the
// record the update starts from (the stored one, or one holding only G) and
// the write's dot; fn reports false to write nothing.
func (r *Engine) crdtUpdate(tx *store.Tx, key string, fn func(start merge.Record, d clock.Dot) ([]byte, bool, error)) error {
	_, _, err := tx.WriteFunc(key, func(start merge.Record, d clock.Dot) ([]byte, bool, bool, error) {
		if start.Clock.Covers(d) {
			return nil, false, false, fmt.Errorf("%w: key %q has already seen dot %v of this replica", ErrCloned, key, d)
		}
		start, _, err := r.withKept(tx, key, start, true) // a pending rebase's kept state
		if err != nil {
			return nil, false, false, err
		}
		state, write, err := fn(start, d)
		if err == nil && write {
			err = r.checkValue(key, state)
		}
		return state, false, write, err
	})
	return err
}

func policyErr(key string, p merge.Policy, err error) error {
	return &merge.PolicyError{Key: key, Policy: p.Name(), Err: err}
}

// CounterAdd adds delta (which may be negative) to the counter key and returns the
// counter's value here after the write. The key's policy must be
// merge.Counter (ErrWrongPolicy otherwise). A key that does not exist, or
// reads as deleted here, starts from zero.
func (r *Engine) CounterAdd(ctx context.Context, key string, delta int64) (int64, error) {
	p, err := r.requirePolicy(key, merge.NameCounter)
	if err != nil {
		return 0, err
	}
	var out int64
	err = r.st.Update(ctx, func(tx *store.Tx) error {
		return r.crdtUpdate(tx, key, func(rec merge.Record, d clock.Dot) ([]byte, bool, error) {
			s, err := merge.CounterOf(rec)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			s = s.Add(d, delta)
			out = s.Value()
			return s.Encode(), true, nil
		})
	})
	return out, wrapClosed(err)
}

// CounterValue returns the value of the counter key: ErrNotFound when the key
// does not exist or reads as deleted, ErrWrongPolicy when its policy is not
// merge.CounterValue.
func (r *Engine) CounterValue(key string) (int64, error) {
	p, err := r.requirePolicy(key, merge.NameCounter)
	if err != nil {
		return 0, err
	}
	var out int64
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
		s, err := merge.CounterOf(rec)
		if err != nil {
			return policyErr(key, p, err)
		}
		if s.Empty() {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		out = s.Value()
		return nil
	})
	return out, wrapClosed(err)
}

// checkMembers: set members are non-empty valid UTF-8 without newlines, so
// that the newline-joined text a plain read returns is unambiguous.
func checkMembers(key string, members []string) error {
	for _, m := range members {
		if m == "" || !utf8.ValidString(m) || strings.ContainsRune(m, '\n') {
			return fmt.Errorf("replica: set %q: member %q must be non-empty valid UTF-8 without newlines", key, m)
		}
	}
	return nil
}

// SetAdd adds members to the set key. An add wins over a concurrent remove
// of the same member; adding a member already there renews it. The key's
// policy must be merge.Set (ErrWrongPolicy otherwise). Members must be
// non-empty valid UTF-8 without newlines. Adding nothing writes nothing.
func (r *Engine) SetAdd(ctx context.Context, key string, members ...string) error {
	p, err := r.requirePolicy(key, merge.NameSet)
	if err != nil {
		return err
	}
	if err := checkMembers(key, members); err != nil || len(members) == 0 {
		return err
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		return r.crdtUpdate(tx, key, func(rec merge.Record, d clock.Dot) ([]byte, bool, error) {
			s, err := merge.SetOf(rec)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			return s.Add(d, members...).Encode(), true, nil
		})
	}))
}

// SetRemove removes members from the set key. It removes the adds of them
// this replica has seen; an add made concurrently elsewhere survives.
// Members that are not in the set here are ignored, and when none is,
// nothing is written. A set whose last member goes reads as deleted.
func (r *Engine) SetRemove(ctx context.Context, key string, members ...string) error {
	p, err := r.requirePolicy(key, merge.NameSet)
	if err != nil {
		return err
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		return r.crdtUpdate(tx, key, func(rec merge.Record, _ clock.Dot) ([]byte, bool, error) {
			s, err := merge.SetOf(rec)
			if err != nil {
				return nil, false, policyErr(key, p, err)
			}
			present := false
			for _, m := range members {
				present = present || s.Contains(m)
			}
			return s.Remove(members...).Encode(), present, nil
		})
	}))
}

// SetMembers returns the members of the set key in byte order: ErrNotFound
// when the key does not exist or reads as deleted (a set without members
// does), ErrWrongPolicy when its policy is not merge.Set.
func (r *Engine) SetMembers(key string) ([]string, error) {
	p, err := r.requirePolicy(key, merge.NameSet)
	if err != nil {
		return nil, err
	}
	var out []string
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
		s, err := merge.SetOf(rec)
		if err != nil {
			return policyErr(key, p, err)
		}
		if s.Len() == 0 {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		out = s.Members()
		return nil
	})
	return out, wrapClosed(err)
}

// Clear deletes the counter or set key with observed-remove semantics: it
// writes the empty state, which reads as deleted, wins over every change
// this replica has seen, and loses to changes made concurrently elsewhere,
// nothing else. Delete of a counter or set key calls Clear. A key that does
// not exist, or already reads as deleted, gives ErrNotFound and writes
// nothing. A key holding a sibling its policy cannot read (merge.ErrBadState:
// a counter written back as text by an older ebreplica's rebase) is cleared
// from its clock alone, so that it reads and updates again.
func (r *Engine) Clear(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	p := r.opts.Policies.For(key)
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		st, ok, err := tx.Record(key)
		if err != nil {
			return err
		}
		rec, ok, err := r.withKept(tx, key, st.Record, ok)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		cur := store.Stored{Record: rec, Pos: st.Pos}
		kind := crdtKind(p)
		if kind == "" {
			return fmt.Errorf("%w: key %q is governed by policy %q, not a counter or set (use Delete)", ErrWrongPolicy, key, p.Name())
		}
		_, empty, err := joined(kind, cur.Record, false)
		if errors.Is(err, merge.ErrBadState) {
			// A sibling holds bytes that are not this policy's state (an
			// older ebreplica's rebase wrote counters back as text): clear
			// the key from its clock alone, so it reads and updates again.
			// The clear covers every sibling here, unreadable ones too;
			// updates made concurrently elsewhere survive it.
			state, _, _ := joined(kind, merge.Record{Clock: cur.Clock}, true)
			_, err = tx.Write(key, state, false)
			return err
		}
		if err != nil {
			return policyErr(key, p, err)
		} else if empty {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		state, _, _ := joined(kind, cur.Record, true)
		_, err = tx.Write(key, state, false)
		return err
	}))
}

// Resolve collapses the concurrent versions of key into one, as a local
// write of what the key's policy reads: the winner under lww (a tombstone
// when the winner is one), the callback's result under a merge.NewFunc
// policy, the joined state under counter and set. Under mv, two or more
// versions are a choice only the application can make: Resolve returns a
// *ConflictError (ErrConflict) holding them, and the application settles
// it by writing (Put or Delete). A key with at most one version is left
// alone; a key with no record gives ErrNotFound. A policy error (a failing
// callback, a malformed CRDT state) is returned and nothing is written.
func (r *Engine) Resolve(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	p := r.opts.Policies.For(key)
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		cur, ok, err := tx.Record(key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		if len(cur.Versions) <= 1 {
			return nil
		}
		var state []byte
		switch kind := crdtKind(p); {
		case kind != "" && cur.Deleted():
			// Only tombstones: nothing to keep but the delete.
			_, err = tx.Write(key, nil, true)
			return err
		case kind != "":
			if state, _, err = joined(kind, cur.Record, false); err != nil {
				return policyErr(key, p, err)
			}
		default:
			res, err := merge.Read(p, key, cur.Record)
			switch {
			case err != nil:
				return err
			case res.Conflict:
				return fmt.Errorf("replica: resolve %q: policy %q leaves concurrent versions to the application: write the value you want: %w",
					key, p.Name(), &ConflictError{Key: key, Versions: versions(cur.Record, res)})
			case res.Deleted:
				_, err = tx.Write(key, nil, true)
				return err
			}
			state = res.Value
		}
		if err := r.checkValue(key, state); err != nil {
			return err
		}
		_, err = tx.Write(key, state, false)
		return err
	}))
}

// crdtUpdateLoaded is crdtUpdate starting from the stored record alone (or
// G), without a pending rebase's kept state: the rebase's re-stamp joins
// the kept state with the loaded one itself, as two states, so that a kept
// element the loaded state's context covers and no longer holds (removed,
// perhaps collected) stays removed.
func (r *Engine) crdtUpdateLoaded(tx *store.Tx, key string, fn func(start merge.Record, d clock.Dot) ([]byte, bool, error)) error {
	_, _, err := tx.WriteFunc(key, func(start merge.Record, d clock.Dot) ([]byte, bool, bool, error) {
		if start.Clock.Covers(d) {
			return nil, false, false, fmt.Errorf("%w: key %q has already seen dot %v of this replica", ErrCloned, key, d)
		}
		state, write, err := fn(start, d)
		if err == nil && write {
			err = r.checkValue(key, state)
		}
		return state, false, write, err
	})
	return err
}
