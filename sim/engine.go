package sim

import (
	"bytes"
	"sync/atomic"

	"github.com/ebreplica/ebreplica/store"
)

// engine wraps a replica's store.Engine and keeps the durability model the
// oracle needs: it numbers every non-empty Apply, and remembers the last
// number an fsync covered (an Apply with sync, or Sync: either makes every
// earlier Apply durable, as on store.Mem and on a real disk). A local write
// acknowledged at apply number n survives a power loss exactly when an
// fsync covered n.
type engine struct {
	store.Engine
	mem *store.Mem // nil on Badger: no power loss

	// oldUnsyncedPush emulates, with replica.Knobs.UnsyncedStaging, the
	// old rule of S13: nothing a push writes before its upload is
	// fsynced. The knob alone leaves the staged segment unsynced, but the
	// registry's pending record, saved with fsync before every upload,
	// covers it on any engine that syncs everything at once (as Mem and
	// Badger do): so the fsync of a transaction that saves m/registry and
	// no record while a segment is staged (the push's fencing) is dropped
	// too.
	oldUnsyncedPush bool
	skipSync        bool // the last Apply was such a save (writer goroutine only)

	applied atomic.Uint64
	durable atomic.Uint64
}

var _ store.Engine = (*engine)(nil)

func (e *engine) Apply(muts []store.Mutation, sync bool) error {
	// The store may fsync through Apply or through the Sync call that
	// follows it: drop either for a push's registry save.
	e.skipSync = e.oldUnsyncedPush && len(muts) > 0 && onlyRegistry(muts) && e.staging()
	if e.skipSync {
		sync = false
	}
	if err := e.Engine.Apply(muts, sync); err != nil {
		return err
	}
	if len(muts) > 0 {
		e.applied.Add(1)
	}
	if sync {
		e.durable.Store(e.applied.Load())
	}
	return nil
}

func (e *engine) Sync() error {
	if e.skipSync {
		e.skipSync = false
		return nil
	}
	if err := e.Engine.Sync(); err != nil {
		return err
	}
	e.durable.Store(e.applied.Load())
	return nil
}

// Close leaves a Mem engine usable (a replica reopens on it); it closes
// Badger for good.
func (e *engine) Close() error { return e.Engine.Close() }

// powerLoss throws away what no fsync covered and returns the apply number
// up to which state survived.
func (e *engine) powerLoss() uint64 {
	e.mem.Crash()
	d := e.durable.Load()
	e.durable.Store(e.applied.Load()) // what is left is on disk
	return d
}

// onlyRegistry reports whether a transaction saves the registry state
// and no record or outbox mark (the store rewrites its counters in every
// transaction).
func onlyRegistry(muts []store.Mutation) bool {
	registry := false
	for _, m := range muts {
		switch {
		case string(m.Key) == "m/registry":
			registry = true
		case bytes.HasPrefix(m.Key, []byte("r/")), bytes.HasPrefix(m.Key, []byte("o/")):
			return false
		}
	}
	return registry
}

// staging reports whether a push segment is staged (m/stage/...).
func (e *engine) staging() bool {
	found := false
	_ = e.Engine.View(func(r store.Reader) error {
		return r.Scan([]byte("m/stage/"), nil, func(k, v []byte) (bool, error) {
			found = true
			return false, nil
		})
	})
	return found
}
