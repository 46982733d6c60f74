package store

import (
	"maps"
	"slices"
)

// Clone returns a copy of the engine as a copy of its directory would be:
// the state as it reads now (a copy reads what the operating system holds,
// synced or not), which is also the copy's durable state. The simulator and
// tests use it to copy a replica directory, or keep a backup to restore.
// Clone it only while no Store has it open, or between two transactions.
func (m *Mem) Clone() *Mem {
	m.mu.RLock()
	defer m.mu.RUnlock()
	data := maps.Clone(m.data)
	return &Mem{keys: slices.Clone(m.keys), data: data, durable: maps.Clone(data)}
}
