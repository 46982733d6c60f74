package engine

// The formats of the remote objects: store.json (Manifest),
// replicas/<id>.json (RegistryBody), snap/<P>/index (SnapIndex) and their
// object names. They live in remote/format and remote (layout.go); these
// are the engine's names for them. Segments and snapshot parts are coded
// by remote/segment.

import (
	"context"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
)

// Manifest is store.json (see remote/format).
type Manifest = format.Manifest

// ReadManifest reads a store's manifest; ok is false when the store does
// not exist yet (see format.ReadManifest).
func ReadManifest(ctx context.Context, b remote.Backend) (m Manifest, ok bool, err error) {
	return format.ReadManifest(ctx, b)
}

// RegistryBody is replicas/<id>.json (see remote/format).
type RegistryBody = format.RegistryBody

// SnapIndex is snap/<P>/index (see remote/format).
type SnapIndex = format.SnapIndex

// PartInfo describes one snapshot part (see remote/format).
type PartInfo = format.PartInfo

// SnapKey returns the object name of a snapshot's index.
func SnapKey(pos uint64) string { return remote.SnapKey(pos) }

func partKey(pos uint64, nonce string, n int) string { return remote.PartKey(pos, nonce, n) }

// parseSnapKey splits snap/<P>/<rest>.
func parseSnapKey(key string) (pos uint64, rest string, ok bool) { return remote.ParseSnapKey(key) }

// readIndex fetches and checks a snapshot index of this store (see
// format.ReadIndex).
func (r *Engine) readIndex(ctx context.Context, pos uint64) (SnapIndex, error) {
	var storeID string
	if r.manifest != nil {
		storeID = r.manifest.RemoteID
	}
	return format.ReadIndex(ctx, r.opts.Backend, pos, storeID)
}
