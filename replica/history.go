package replica

import (
	"context"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// History, restore and revert (see internal/engine history.go, restore.go,
// revert.go): what the store's retained snapshots and log hold of the
// past. A position's time is the server's (the LastModified of its log
// segment); the store "as of" a time is the store at the highest retained
// position written at or before it.
type (
	// HistoryVersion is one version a key held: value or delete, origin
	// replica, HLC and the log position where it was published.
	HistoryVersion = engine.HistoryVersion
	// HistoryStart is where the retained history starts.
	HistoryStart = engine.HistoryStart
	// RestoreOptions says what to restore (a time or a position) and into
	// which directory.
	RestoreOptions = engine.RestoreOptions
	// RestoreStats reports a Restore.
	RestoreStats = engine.RestoreStats
	// RestoredInfo is what a restored replica records of its origin.
	RestoredInfo = engine.RestoredInfo
	// RevertOptions says which keys to revert to which time.
	RevertOptions = engine.RevertOptions
	// RevertChange is one key a revert writes (or would).
	RevertChange = engine.RevertChange
	// Retention is how much history compact --prune keeps (stored in the
	// store manifest): the newest KeepSnapshots snapshots, and every
	// snapshot younger than KeepAgeSeconds plus the newest older one.
	Retention = engine.Retention
)

// Errors of History, Restore and Revert.
var (
	// ErrBeforeHistory: a time or position older than the retained
	// history (the message names the oldest restorable one).
	ErrBeforeHistory = engine.ErrBeforeHistory
	// ErrFutureTime: a time after now.
	ErrFutureTime = engine.ErrFutureTime
	// ErrNoHistory: the remote holds nothing the past can be rebuilt from.
	ErrNoHistory = engine.ErrNoHistory
	// ErrReadOnly: a write to a restored (read-only) replica.
	ErrReadOnly = engine.ErrReadOnly
)

// History returns every version key held in the store's retained history
// (snapshots and log on the remote; unpushed local writes are not part of
// it), oldest first, and where that history starts. A key with no version
// there gives none and no error.
func (r *Replica) History(ctx context.Context, key string) ([]HistoryVersion, HistoryStart, error) {
	if err := r.bind(ctx); err != nil {
		return nil, HistoryStart{}, err
	}
	return r.e.History(ctx, key)
}

// Restore builds a new read-only replica in o.Into holding the store as it
// was at o.At or o.Position; it never writes this replica's store or the
// remote. Open the directory to read it; writes to it fail with
// ErrReadOnly.
func (r *Replica) Restore(ctx context.Context, o RestoreOptions) (RestoreStats, error) {
	if err := r.bind(ctx); err != nil {
		return RestoreStats{}, err
	}
	return r.e.Restore(ctx, o)
}

// Restored reports whether this replica is a restored copy, and of what.
func (r *Replica) Restored() (RestoredInfo, bool, error) { return r.e.Restored() }

// Revert writes, as new local writes after a pull, the values the keys o
// names had at o.To (deleting those that did not exist then); the next
// push carries them everywhere. With o.DryRun it only lists the changes.
func (r *Replica) Revert(ctx context.Context, o RevertOptions) ([]RevertChange, error) {
	if err := r.bind(ctx); err != nil {
		return nil, err
	}
	return r.e.Revert(ctx, o)
}

// Retention reads the retention in force from the store manifest.
func (r *Replica) Retention(ctx context.Context) (Retention, error) {
	if err := r.bind(ctx); err != nil {
		return Retention{}, err
	}
	return r.e.RetentionInForce(ctx)
}

// SetRetention stores a new retention in the store manifest, for every
// replica's later compactions. A negative count or age is refused.
func (r *Replica) SetRetention(ctx context.Context, ret Retention) error {
	if err := ret.Validate(); err != nil {
		return err
	}
	if err := r.bind(ctx); err != nil {
		return err
	}
	return r.e.SetRetention(ctx, ret)
}

// KnownRetention is the retention this replica last read from the store
// manifest, with no request (ok false before it first connected).
func (r *Replica) KnownRetention() (Retention, bool, error) { return r.e.KnownRetention() }
