package store

import "errors"

// Engine is the ordered key-value engine under a Store: Badger on disk (or
// in memory), or a plain map for the simulator. It is deliberately small;
// everything ebreplica-specific lives in Store and Tx.
//
// Contract:
//   - View runs fn against a consistent read view; slices handed to callbacks
//     are valid only during the callback.
//   - Apply commits the mutations atomically (all or none); with sync true it
//     returns only after they are durable. Apply is called by one goroutine
//     at a time (the Store's writer).
//   - Get returns (nil, false, nil) for a missing key; the value is a copy.
type Engine interface {
	View(fn func(Reader) error) error
	// Reader returns a reader for the writer goroutine: it sees every Apply
	// that returned before the call. Call release when done.
	Reader() (r Reader, release func())
	Apply(muts []Mutation, sync bool) error
	// Sync makes every applied mutation durable.
	Sync() error
	Close() error
}

// Reader reads an Engine.
type Reader interface {
	// Get returns key's value: a copy the caller owns (a View's record
	// reads keep the value they decode inside it).
	Get(key []byte) ([]byte, bool, error)
	// Scan calls fn for each key with the prefix, at or after start (nil =
	// from the prefix), in ascending order, until fn returns false or an
	// error. k and v are only valid during the call.
	Scan(prefix, start []byte, fn func(k, v []byte) (bool, error)) error
	// Any reports whether some key exists in [lo, hi] (both bounds
	// inclusive, in byte order; lo > hi is an empty range), at a cost
	// that does not grow with what the range holds: one seek. It may
	// also answer true for a key that was deleted (Badger sees its
	// tombstone, or an older version, and stops there rather than step
	// over deleted keys one by one), so true means "maybe a key", and
	// false means that no key of the range exists in this view.
	Any(lo, hi []byte) (bool, error)
}

// Mutation sets Key to Value, or deletes Key when Delete is set.
type Mutation struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// ErrTooBig: one atomic write is larger than the engine can commit at once.
var ErrTooBig = errors.New("store: write too large for one transaction")
