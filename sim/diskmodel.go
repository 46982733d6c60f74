package sim

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ebreplica/ebreplica/store"
)

// diskModel wraps a replica's store.Engine and keeps the durability model the
// oracle needs: it numbers every non-empty Apply, and remembers the last
// number an fsync covered (an Apply with sync, or Sync: either makes every
// earlier Apply durable, as on store.Mem and on a real disk). A local write
// acknowledged at apply number n survives a power loss exactly when an
// fsync covered n.
type diskModel struct {
	store.Engine
	mem *store.Mem // nil on Badger: no power loss

	// oldUnsyncedPush emulates, with Rules.Sync, the
	// old rule of S13: nothing a push writes before its upload is
	// fsynced. The knob alone leaves the staged segment unsynced, but the
	// registry's pending record, saved with fsync before every upload,
	// covers it on any engine that syncs everything at once (as Mem and
	// Badger do): so the fsync of a transaction that saves m/registry and
	// no record while a segment is staged (the push's fencing) is dropped
	// too.
	oldUnsyncedPush bool
	// oldUnsyncedPending emulates the old rule of S14: the registry's
	// pending {seq, nonce} saved without fsync before the swap, so a
	// crash right after the swap forgets it (every transaction that saves
	// m/registry and no record loses its fsync).
	oldUnsyncedPending bool
	skipSync           bool // the last Apply was such a save (writer goroutine only)

	applied atomic.Uint64
	durable atomic.Uint64
	// wrote is, by record key, the apply number of the last Apply that
	// wrote the record (capped at the durable number by a power loss: what
	// is left on disk was written at or below it). A rebase's re-stamp is
	// recorded after its operation, which may have applied more since: the
	// re-stamp's own transaction is the one that last wrote its record when
	// the rebase reached rebase:restamped (node.restampedAt), else at most
	// wrote's entry.
	wroteMu sync.Mutex
	wrote   map[string]uint64

	// crashAfter, when positive, arms a power failure after that many
	// transactions (non-empty Applies) of the running operation: the next
	// Apply or Sync fails with errCrash and dead is set; the world then
	// loses the unsynced writes and reopens (Config.CrashTx).
	crashAfter int
	txSeen     int
	dead       atomic.Bool
}

// errDead is what a dead engine (and its replica's remote view) returns.
var errDead = fmt.Errorf("sim: power failed after the armed transaction: %w", errCrash)

var _ store.Engine = (*diskModel)(nil)

func (e *diskModel) Apply(muts []store.Mutation, sync bool) error {
	if e.dead.Load() {
		return errDead
	}
	if e.crashAfter > 0 && len(muts) > 0 {
		if e.txSeen >= e.crashAfter {
			e.dead.Store(true)
			return errDead
		}
		e.txSeen++
	}
	// The store may fsync through Apply or through the Sync call that
	// follows it: drop either for a push's registry save.
	e.skipSync = len(muts) > 0 && onlyRegistry(muts) && (e.oldUnsyncedPending || e.oldUnsyncedPush && e.staging())
	if e.skipSync {
		sync = false
	}
	if err := e.Engine.Apply(muts, sync); err != nil {
		return err
	}
	if len(muts) > 0 {
		n := e.applied.Add(1)
		e.wroteMu.Lock()
		for _, m := range muts {
			if k, ok := bytes.CutPrefix(m.Key, []byte("r/")); ok {
				if e.wrote == nil {
					e.wrote = map[string]uint64{}
				}
				e.wrote[string(k)] = n
			}
		}
		e.wroteMu.Unlock()
	}
	if sync {
		e.durable.Store(e.applied.Load())
	}
	return nil
}

func (e *diskModel) Sync() error {
	if e.dead.Load() {
		return errDead
	}
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
func (e *diskModel) Close() error { return e.Engine.Close() }

// powerLoss throws away what no fsync covered and returns the apply number
// up to which state survived.
func (e *diskModel) powerLoss() uint64 {
	e.mem.Crash()
	e.dead.Store(false)
	e.crashAfter, e.txSeen = 0, 0
	d := e.durable.Load()
	e.durable.Store(e.applied.Load()) // what is left is on disk
	e.capWrote(d)
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
		case bytes.HasPrefix(m.Key, []byte("r/")), bytes.HasPrefix(m.Key, []byte("l/")):
			return false
		}
	}
	return registry
}

// staging reports whether a push segment is staged (m/stage/...).
func (e *diskModel) staging() bool {
	found := false
	_ = e.Engine.View(func(r store.Reader) error {
		return r.Scan([]byte("m/stage/"), nil, func(k, v []byte) (bool, error) {
			found = true
			return false, nil
		})
	})
	return found
}

// dirCopy is a copy of a replica's directory (store.Mem.Clone, taken
// between two transactions: the simulator runs one operation at a time,
// and a step is between transactions) and the apply number it reflects.
type dirCopy struct {
	mem     *store.Mem
	applied uint64
	id      [16]byte
}

// restore swaps in a copy of a directory: the engine now holds a clone of
// it (all durable; the copy stays as it is, to be put back again), and its
// apply numbers go on from where they were.
func (e *diskModel) restore(c *store.Mem) {
	m := c.Clone()
	e.mem, e.Engine = m, m
	e.dead.Store(false)
	e.crashAfter, e.txSeen = 0, 0
	e.durable.Store(e.applied.Load())
	e.capWrote(e.applied.Load())
}

// capWrote caps every entry of wrote at d: the records left on disk were
// written at or below it.
func (e *diskModel) capWrote(d uint64) {
	e.wroteMu.Lock()
	defer e.wroteMu.Unlock()
	for k, n := range e.wrote {
		if n > d {
			e.wrote[k] = d
		}
	}
}

// lastWrote returns the apply number of the last Apply that wrote key's
// record, or the current apply number when none is known.
func (e *diskModel) lastWrote(key string) uint64 {
	e.wroteMu.Lock()
	defer e.wroteMu.Unlock()
	if n, ok := e.wrote[key]; ok {
		return n
	}
	return e.applied.Load()
}
