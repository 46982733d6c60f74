package cli

import (
	"context"
	"time"

	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
)

// dryRunRetained is what compact --prune --dry-run keeps by the store's
// retention: the snapshots listed in snaps plus the one a compaction
// writes at pos now, newest first (never empty).
func dryRunRetained(ctx context.Context, b remote.Backend, snaps []remote.Info, pos uint64, now time.Time) ([]uint64, error) {
	m, _, err := format.ReadManifest(ctx, b)
	if err != nil {
		return nil, err
	}
	ret := m.RetentionOf()
	ages := []protocol.SnapshotAge{{Position: pos, Created: now}}
	for _, info := range snaps {
		if p, rest, ok := remote.ParseSnapKey(info.Key); ok && rest == "index" && p != pos {
			ages = append(ages, protocol.SnapshotAge{Position: p, Created: info.LastModified})
		}
	}
	return protocol.Retained(protocol.Retention{KeepSnapshots: ret.KeepSnapshots, KeepAge: ret.KeepAge()}, ages, now), nil
}
