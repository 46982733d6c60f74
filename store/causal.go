package store

import (
	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// WriteWithContext is Write for a writer that read the key's state with
// version vector seen (a causal context): the new version supersedes only
// the versions whose dots seen covers, and every other version stays as a
// sibling (merge.ContextWrite). Like Write, it issues a fresh dot and HLC,
// starts from G when the key has no record, and marks the key dirty; the
// record it stores (new version, surviving siblings, the record's clock
// plus the new dot) is what a push sends. seen nil counts as empty: the
// write then supersedes nothing.
func (t *Tx) WriteWithContext(key string, value []byte, deleted bool, seen clock.Vector) (merge.Version, error) {
	if seen == nil {
		seen = clock.Vector{}
	}
	v, _, err := t.write(key, &seen, nil, value, deleted)
	return v, err
}
