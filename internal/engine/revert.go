package engine

// Revert: write back, as new local writes, the values keys had at a past
// time, so that the next sync brings every replica back to them with no
// special protocol.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// RevertOptions says which keys to revert to which time: a prefix, or a
// list of keys (exactly one of them).
type RevertOptions struct {
	To     time.Time
	Prefix string
	// All with an empty Prefix: every key of the store.
	All    bool
	Keys   []string
	DryRun bool
}

// RevertChange is one key a revert writes (or, with DryRun, would): the
// value it had at the time, or a delete when it did not exist then.
type RevertChange struct {
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
	Value   []byte `json:"-"`
}

// validate checks the options before anything is read or written.
func (o RevertOptions) validate(now time.Time, r *Engine) error {
	switch {
	case o.To.IsZero():
		return errors.New("replica: revert: no time to revert to")
	case o.To.After(now):
		return fmt.Errorf("%w: %s is after now (%s)", ErrFutureTime, o.To.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case len(o.Keys) > 0 && (o.Prefix != "" || o.All):
		return errors.New("replica: revert: give a prefix or keys, not both")
	case len(o.Keys) == 0 && o.Prefix == "" && !o.All:
		return errors.New("replica: revert: give a prefix or keys")
	}
	for _, k := range o.Keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
		if err := r.revertable(k); err != nil {
			return err
		}
	}
	return nil
}

// revertable refuses counter and set keys: their value is a join of every
// replica's state, and writing an old state back as a value would not
// take the later increments and members away.
func (r *Engine) revertable(key string) error {
	if k := crdtKind(r.opts.Policies.For(key)); k == merge.NameCounter || k == merge.NameSet {
		return fmt.Errorf("%w: revert: key %q is a %s; revert writes plain values", ErrWrongPolicy, key, k)
	}
	return nil
}

// Revert makes the keys named by o read as they did at o.To: it pulls
// first (so the writes are causally after everything seen), rebuilds
// those keys as of o.To from the retained history (see Restore), and
// writes, in one local batch, each key whose value differs — the old
// value, or a delete for a key that did not exist then (or read as
// deleted). The next push carries them to every replica. It returns the
// changes, sorted by key; with DryRun it only returns them (it neither
// pulls nor writes). A time before the retained history is
// ErrBeforeHistory, one after now ErrFutureTime; counter and set keys are
// refused (ErrWrongPolicy); on any error nothing is written.
func (r *Engine) Revert(ctx context.Context, o RevertOptions) ([]RevertChange, error) {
	if err := o.validate(r.now(), r); err != nil {
		return nil, err
	}
	if !o.DryRun {
		if _, err := r.Pull(ctx); err != nil {
			return nil, err
		}
	}
	then, err := r.stateAt(ctx, o)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for k := range then {
		keys[k] = true
	}
	if len(o.Keys) > 0 {
		for _, k := range o.Keys {
			keys[k] = true
		}
	} else {
		for k, err := range r.Keys(o.Prefix) {
			if err != nil {
				return nil, err
			}
			keys[k] = true
		}
	}
	var changes []RevertChange
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		old, oldLive, err := r.resolveAt(k, then[k])
		if err != nil {
			return nil, err
		}
		cur, err := r.Get(k)
		curLive := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
			return nil, err
		}
		conflict := errors.Is(err, ErrConflict)
		switch {
		case oldLive && (!curLive || conflict || string(cur) != string(old)):
			changes = append(changes, RevertChange{Key: k, Value: old})
		case !oldLive && (curLive || conflict):
			changes = append(changes, RevertChange{Key: k, Deleted: true})
		default:
			continue
		}
		if err := r.revertable(k); err != nil {
			return nil, err
		}
	}
	if o.DryRun || len(changes) == 0 {
		return changes, nil
	}
	err = r.Batch(ctx, func(b *Batch) error {
		for _, c := range changes {
			if c.Deleted {
				b.Delete(c.Key)
			} else {
				b.Put(c.Key, c.Value)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}

// resolveAt is what key read as with record rec (no record: absent). A
// record whose policy surfaces siblings (mv) reads as its lww winner: a
// revert writes one value.
func (r *Engine) resolveAt(key string, rec *merge.Record) ([]byte, bool, error) {
	if rec == nil || len(rec.Versions) == 0 {
		return nil, false, nil
	}
	res, err := merge.Read(r.opts.Policies.For(key), key, *rec)
	if err != nil {
		return nil, false, err
	}
	if res.Conflict {
		w := rec.Versions[merge.LWWWinner(rec.Versions)]
		return w.Value, !w.Deleted, nil
	}
	return res.Value, !res.Deleted, nil
}

// stateAt rebuilds, as of o.To, the records of the keys o names: the
// newest retained snapshot at or below that position, merged with the
// log up to it.
func (r *Engine) stateAt(ctx context.Context, o RevertOptions) (map[string]*merge.Record, error) {
	b, m, err := r.connectForRead(ctx)
	if err != nil {
		return nil, err
	}
	tl, err := readTimeline(ctx, b, m)
	if err != nil {
		return nil, err
	}
	p, err := tl.positionAt(o.To)
	if err != nil {
		return nil, err
	}
	base, err := tl.checkPosition(p)
	if err != nil {
		return nil, err
	}
	in := func(k string) bool { return strings.HasPrefix(k, o.Prefix) }
	if len(o.Keys) > 0 {
		set := map[string]bool{}
		for _, k := range o.Keys {
			set[k] = true
		}
		in = func(k string) bool { return set[k] }
	}
	out := map[string]*merge.Record{}
	add := func(e segment.Entry) {
		if cur, ok := out[e.Key]; ok {
			m := merge.Merge(*cur, e.Record)
			out[e.Key] = &m
			return
		}
		rec := e.Record
		out[e.Key] = &rec
	}
	if base > 0 {
		idx, err := r.readIndex(ctx, base)
		if err != nil {
			return nil, err
		}
		if len(o.Keys) > 0 {
			for _, k := range slices.Sorted(slices.Values(o.Keys)) {
				if err := r.scanSnapshot(ctx, idx, k, func(s string) bool { return s == k }, add); err != nil {
					return nil, err
				}
			}
		} else if err := r.scanSnapshot(ctx, idx, o.Prefix, in, add); err != nil {
			return nil, err
		}
	}
	err = r.scanLog(ctx, tl.logAbove(base, p), in, func(_ uint64, e segment.Entry) { add(e) })
	return out, err
}
