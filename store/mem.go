package store

import (
	"bytes"
	"maps"
	"slices"
	"sort"
	"sync"
)

// Mem is a map-backed Engine for the simulator and fast tests. It models
// durability: Apply with sync (or Sync) makes the state durable, and Crash
// throws away everything applied since, as a power loss would.
type Mem struct {
	mu      sync.RWMutex
	keys    []string // sorted
	data    map[string][]byte
	durable map[string][]byte
	dirty   bool
}

var _ Engine = (*Mem)(nil)

// NewMem returns an empty engine.
func NewMem() *Mem { return &Mem{data: map[string][]byte{}, durable: map[string][]byte{}} }

type memReader struct {
	m      *Mem
	locked bool // the caller holds m.mu for the whole view
}

func (r memReader) Get(key []byte) ([]byte, bool, error) {
	if !r.locked {
		r.m.mu.RLock()
		defer r.m.mu.RUnlock()
	}
	v, ok := r.m.data[string(key)]
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

func (r memReader) Scan(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	if !r.locked {
		r.m.mu.RLock()
		defer r.m.mu.RUnlock()
	}
	from := string(prefix)
	if start != nil && string(start) > from {
		from = string(start)
	}
	i := sort.SearchStrings(r.m.keys, from)
	for ; i < len(r.m.keys); i++ {
		k := r.m.keys[i]
		if !bytes.HasPrefix([]byte(k), prefix) {
			return nil
		}
		cont, err := fn([]byte(k), r.m.data[k])
		if err != nil || !cont {
			return err
		}
	}
	return nil
}

// Any implements Reader. Mem keeps no deleted keys: its answer is exact.
func (r memReader) Any(lo, hi []byte) (bool, error) {
	if !r.locked {
		r.m.mu.RLock()
		defer r.m.mu.RUnlock()
	}
	if bytes.Compare(lo, hi) > 0 {
		return false, nil
	}
	i := sort.SearchStrings(r.m.keys, string(lo))
	return i < len(r.m.keys) && r.m.keys[i] <= string(hi), nil
}

// View implements Engine. It reads a copy taken under the lock (values are
// never modified in place), so writes may proceed while fn runs: a write
// inside a scan does not deadlock. Copying is O(keys): Mem is for small
// stores (the simulator, tests).
func (m *Mem) View(fn func(Reader) error) error {
	m.mu.RLock()
	snap := &Mem{keys: slices.Clone(m.keys), data: maps.Clone(m.data)}
	m.mu.RUnlock()
	return fn(memReader{snap, true})
}

// Reader implements Engine.
func (m *Mem) Reader() (Reader, func()) { return memReader{m, false}, func() {} }

// Apply implements Engine.
func (m *Mem) Apply(muts []Mutation, sync bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mu := range muts {
		k := string(mu.Key)
		_, had := m.data[k]
		if mu.Delete {
			if had {
				delete(m.data, k)
				i := sort.SearchStrings(m.keys, k)
				m.keys = slices.Delete(m.keys, i, i+1)
			}
			continue
		}
		m.data[k] = bytes.Clone(mu.Value)
		if !had {
			i := sort.SearchStrings(m.keys, k)
			m.keys = slices.Insert(m.keys, i, k)
		}
	}
	if len(muts) > 0 {
		m.dirty = true
	}
	if sync {
		m.syncLocked()
	}
	return nil
}

func (m *Mem) syncLocked() {
	if m.dirty {
		m.durable = maps.Clone(m.data)
		m.dirty = false
	}
}

// Sync implements Engine.
func (m *Mem) Sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncLocked()
	return nil
}

// Crash models a power loss: state returns to the last durable point. The
// engine stays usable (as if reopened).
func (m *Mem) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = maps.Clone(m.durable)
	m.keys = slices.Sorted(maps.Keys(m.data))
	m.dirty = false
}

// Close implements Engine. A closed Mem can be reopened by a new Store.
func (m *Mem) Close() error { return nil }

// Len returns the number of keys (tests).
func (m *Mem) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.data)
}
