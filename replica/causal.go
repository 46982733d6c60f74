package replica

import (
	"context"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// CausalContext is the opaque causal context of a read: the version vector
// of the state it saw, bound to its key ("" = no context). It is base64url
// without padding (letters, digits, '-' and '_'), so it passes unescaped
// in a URL and an HTTP header; its length grows with the number of
// replicas that wrote the key (about 25 characters each).
//
// Causal-context writes follow Riak's context model.
// GetWithContext and VersionsWithContext return, with what they read, the
// key's causal context. PutWithContext and DeleteWithContext given that
// context supersede only the versions it covers: a read-modify-write
// racing another writer (here, or on another replica and pulled since the
// read) keeps the other write as a sibling instead of silently
// overwriting it, and the key's policy reads the siblings as usual (lww
// picks by HLC, mv surfaces a *ConflictError). Push and Pull carry the
// siblings, so every replica converges on them.
//
//	v, cc, err := r.GetWithContext("cart")
//	// ... compute v2 from v ...
//	err = r.PutWithContext(ctx, "cart", v2, cc)
//
// The empty context "" is no context: the write supersedes every version
// the replica holds, as Put and Delete do. An absent key reads with a
// context that covers nothing, so a create after a "not found" keeps a
// concurrent create as a sibling. A context is bound to its key: a malformed one, or one read from
// another key, gives ErrBadContext and writes nothing. Dots a context
// holds that the writing replica has not seen (it was read on a replica
// that had pulled further) count as not covered, so a context never makes
// a write lose a version it does not cover; at worst the write keeps a
// sibling the reader had seen. Counter, set and json keys merge
// concurrent writes by their own rules and refuse a non-empty context
// (ErrWrongPolicy); their reads still return it. ContextVector shows the
// version vector a context carries.
type CausalContext = engine.CausalContext

// ErrBadContext: a causal context that is malformed or was read from
// another key; the write that carried it wrote nothing.
var ErrBadContext = engine.ErrBadContext

// GetWithContext is Get that also returns the key's causal context: with
// the value, with ErrNotFound (a deleted key: its tombstone's context; a
// key with no record: a context that covers nothing) and with a
// *ConflictError.
func (r *Replica) GetWithContext(key string) ([]byte, CausalContext, error) {
	return r.e.GetWithContext(key)
}

// VersionsWithContext is Versions that also returns the key's causal
// context (one that covers nothing, with ErrNotFound, when the key has no
// record).
func (r *Replica) VersionsWithContext(key string) ([]Version, CausalContext, error) {
	return r.e.VersionsWithContext(key)
}

// PutWithContext writes value under key as a writer that read the state cc
// names: the new version supersedes only the versions cc covers; the others
// stay as siblings. With cc "" it is Put. ErrBadContext (malformed, or of
// another key) and ErrWrongPolicy (a counter, set or json key given a
// context) write nothing.
func (r *Replica) PutWithContext(ctx context.Context, key string, value []byte, cc CausalContext) error {
	return r.e.PutWithContext(ctx, key, value, cc)
}

// DeleteWithContext deletes key as a writer that read the state cc names:
// the tombstone supersedes only the versions cc covers. A key not live here
// gives ErrNotFound, as Delete does; with cc "" it is Delete. Errors as
// PutWithContext.
func (r *Replica) DeleteWithContext(ctx context.Context, key string, cc CausalContext) error {
	return r.e.DeleteWithContext(ctx, key, cc)
}

// ContextVector returns the version vector a causal context carries, for
// an inspector: replica id (clock.ReplicaID.String) to the highest counter
// of that replica the read had seen; empty for "". ErrBadContext when cc
// is malformed.
func ContextVector(cc CausalContext) (map[string]uint64, error) { return engine.ContextVector(cc) }
