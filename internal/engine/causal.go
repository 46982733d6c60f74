package engine

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// Causal-context writes (Riak's context model).
//
// A read with context (GetWithContext, VersionsWithContext) returns, with
// the value, the version vector of the state it read as an opaque
// CausalContext. A write that carries it (PutWithContext,
// DeleteWithContext) supersedes only the versions that context covers: a
// version written since the read, here or on another replica and merged
// by a pull, stays as a sibling of the new one instead of being silently
// overwritten, and the key's policy reads the siblings as usual (lww picks
// by HLC, mv surfaces a conflict). The record the write stores, new
// version and surviving siblings under the key's clock plus the new dot,
// is what a push sends, so every replica converges on the same siblings.
//
// An empty context ("") is no context: the write supersedes every version
// this replica holds, exactly as Put and Delete do. An absent key reads
// with a context that covers nothing (its key's tag and an empty vector),
// so a create after reading "not found" keeps a concurrent create, made
// here since the read or merged by a pull, as a sibling.
//
// A context is bound to its key: one read from another key, or bytes that
// are not a context this package wrote, give ErrBadContext and write
// nothing. A context's dots that the writing replica has not seen (read on
// another replica that had pulled further, or from before a rebase) count
// as not covered: such a version, once it arrives, is kept as a sibling.
// A context therefore never makes a write lose a version it does not
// cover, at the price of a sibling the reader may in fact have seen.
//
// The context's encoding (base64url, no padding, so it is safe in a URL
// and an HTTP header): a version byte (1), the first 8 bytes of the key's
// FNV-1a 64 hash, then per clock entry, in replica id order, the 16-byte
// replica id and the counter as a uvarint. ContextVector decodes it for an
// inspector.
//
// Counter, set and json keys merge concurrent writes by their own rules:
// they refuse a write with a context (ErrWrongPolicy); with "" they behave
// as Put and Delete do (a json Put writes a merge patch, a Delete clears).
// Their reads still return the key's context, for inspection.

// CausalContext is the opaque causal context of a read: the version vector
// of the state it saw, bound to its key ("" = no context).
type CausalContext string

// ErrBadContext: a causal context that is malformed or belongs to another
// key. The write that carried it wrote nothing.
var ErrBadContext = errors.New("replica: bad causal context")

const (
	contextVersion = 1
	// maxContextLen bounds the encoded context a write accepts (a vector
	// of ~40000 replicas).
	maxContextLen = 1 << 20
)

func keyTag(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// encodeContext returns the context of key's state with clock c (an empty
// clock, a key with no record: a context that covers nothing).
func encodeContext(key string, c clock.Vector) CausalContext {
	es := c.Entries()
	b := make([]byte, 0, 9+len(es)*(16+binary.MaxVarintLen64))
	b = append(b, contextVersion)
	b = binary.BigEndian.AppendUint64(b, keyTag(key))
	for _, d := range es {
		b = append(b, d.Replica[:]...)
		b = binary.AppendUvarint(b, d.Counter)
	}
	return CausalContext(base64.RawURLEncoding.EncodeToString(b))
}

// parseContext decodes cc strictly (its canonical form only) and returns
// the key tag it carries and its vector.
func parseContext(cc CausalContext) (uint64, clock.Vector, error) {
	if len(cc) > maxContextLen {
		return 0, nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadContext, len(cc), maxContextLen)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(string(cc))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: not base64url: %v", ErrBadContext, err)
	}
	if len(b) < 9 || b[0] != contextVersion {
		return 0, nil, fmt.Errorf("%w: not a context this version wrote", ErrBadContext)
	}
	tag := binary.BigEndian.Uint64(b[1:9])
	b = b[9:] // no entries: the context of a key read absent
	v := clock.Vector{}
	var prev clock.ReplicaID
	for i := 0; len(b) > 0; i++ {
		if len(b) < 17 {
			return 0, nil, fmt.Errorf("%w: truncated", ErrBadContext)
		}
		var id clock.ReplicaID
		copy(id[:], b[:16])
		b = b[16:]
		c, n := binary.Uvarint(b)
		if n <= 0 || binary.PutUvarint(make([]byte, binary.MaxVarintLen64), c) != n {
			return 0, nil, fmt.Errorf("%w: bad counter", ErrBadContext)
		}
		b = b[n:]
		switch {
		case id.IsZero() || c == 0:
			return 0, nil, fmt.Errorf("%w: zero entry", ErrBadContext)
		case i > 0 && id.Compare(prev) <= 0:
			return 0, nil, fmt.Errorf("%w: entries out of order", ErrBadContext)
		}
		v[id], prev = c, id
	}
	return tag, v, nil
}

// decodeContext returns the vector of cc, a context of key; nil for "".
func decodeContext(key string, cc CausalContext) (clock.Vector, error) {
	if cc == "" {
		return nil, nil
	}
	tag, v, err := parseContext(cc)
	if err != nil {
		return nil, err
	}
	if tag != keyTag(key) {
		return nil, fmt.Errorf("%w: it was read from another key than %q", ErrBadContext, key)
	}
	return v, nil
}

// ContextVector returns the version vector a context carries: replica id
// (clock.ReplicaID.String) to the highest counter of it seen; empty for
// "". ErrBadContext when cc is malformed.
func ContextVector(cc CausalContext) (map[string]uint64, error) {
	out := map[string]uint64{}
	if cc == "" {
		return out, nil
	}
	_, v, err := parseContext(cc)
	if err != nil {
		return nil, err
	}
	for id, c := range v {
		out[id.String()] = c
	}
	return out, nil
}

// GetWithContext is Get that also returns the context of the state it
// read: with the value, with ErrNotFound for a key that reads as deleted
// (its tombstones' context; for a key with no record, a context that
// covers nothing) and with a *ConflictError.
func (r *Engine) GetWithContext(key string) ([]byte, CausalContext, error) {
	if err := ValidateKey(key); err != nil {
		return nil, "", err
	}
	var out []byte
	var cc CausalContext
	err := r.st.View(func(v *store.View) error {
		st, ok, err := v.Record(key)
		if err != nil {
			return err
		}
		rec, ok, err := r.withKept(v, key, st.Record, ok) // a pending rebase's kept value
		if err != nil {
			return err
		}
		if !ok {
			cc = encodeContext(key, nil)
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		cc = encodeContext(key, rec.Clock)
		res, err := merge.Read(r.opts.Policies.For(key), key, rec)
		if err != nil {
			return err
		}
		switch {
		case res.Conflict:
			return &ConflictError{Key: key, Versions: versions(rec, res)}
		case res.Deleted:
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		out = res.Value
		return nil
	})
	return out, cc, wrapClosed(err)
}

// VersionsWithContext is Versions that also returns the key's context (one
// that covers nothing, with ErrNotFound, when the key has no record).
func (r *Engine) VersionsWithContext(key string) ([]Version, CausalContext, error) {
	if err := ValidateKey(key); err != nil {
		return nil, "", err
	}
	var out []Version
	var cc CausalContext
	err := r.st.View(func(v *store.View) error {
		st, ok, err := v.Record(key)
		if err != nil {
			return err
		}
		if !ok {
			cc = encodeContext(key, nil)
			return fmt.Errorf("%w: %q", ErrNotFound, key)
		}
		res, err := merge.Read(r.opts.Policies.For(key), key, st.Record)
		if err != nil {
			res = merge.Result{Winner: -1}
		}
		out = versions(st.Record, res)
		cc = encodeContext(key, st.Clock)
		return nil
	})
	return out, cc, wrapClosed(err)
}

// contextWrite checks key and cc for a write with a context and returns
// cc's vector (nil for "").
func (r *Engine) contextWrite(key string, cc CausalContext) (clock.Vector, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	seen, err := decodeContext(key, cc)
	if err != nil {
		return nil, err
	}
	if p := r.opts.Policies.For(key); seen != nil && crdtKind(p) != "" {
		return nil, fmt.Errorf("%w: key %q is a %s, which merges concurrent writes itself: write it without a context",
			ErrWrongPolicy, key, p.Name())
	}
	return seen, nil
}

// PutWithContext writes value under key as a writer that read the state
// cc names: the new version supersedes only the versions cc covers, and
// the others stay as siblings (see the package's causal-context notes).
// With cc "" it is Put. A malformed context, or one of another key, gives
// ErrBadContext; a counter, set or json key given a context gives
// ErrWrongPolicy; either way nothing is written.
func (r *Engine) PutWithContext(ctx context.Context, key string, value []byte, cc CausalContext) error {
	seen, err := r.contextWrite(key, cc)
	if err != nil || seen == nil {
		if err != nil {
			return err
		}
		return r.Put(ctx, key, value)
	}
	if err := r.checkPlainKey(key); err != nil {
		return err
	}
	if err := r.checkValue(key, value); err != nil {
		return err
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.WriteWithContext(key, value, false, seen)
		return err
	}))
}

// DeleteWithContext deletes key as a writer that read the state cc names:
// the tombstone supersedes only the versions cc covers. A key that is not
// live here gives ErrNotFound and writes nothing, as Delete does. With cc
// "" it is Delete. Errors as PutWithContext.
func (r *Engine) DeleteWithContext(ctx context.Context, key string, cc CausalContext) error {
	seen, err := r.contextWrite(key, cc)
	if err != nil || seen == nil {
		if err != nil {
			return err
		}
		return r.Delete(ctx, key)
	}
	return r.deleteLive(ctx, key, func(tx *store.Tx) error {
		_, err := tx.WriteWithContext(key, nil, true, seen)
		return err
	})
}
