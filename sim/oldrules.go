package sim

import (
	"github.com/ebreplica/ebreplica/merge"
)

// Old rules: merges that earlier drafts of the design used and that
// diverge. Pass one as Config.Merge (replica.Knobs.Merge) to watch the
// simulator catch it; see the regression scenarios.

// MergeByHLC is the old rule "the newer write wins": it keeps only the
// version with the largest HLC of either side (ties broken by dot) and
// joins the clocks. Causality is decided by the clock instead of the dots,
// so a write made after seeing another, by a replica whose clock is
// behind (or capped at MaxDrift), loses to it.
func MergeByHLC(local, remote merge.Record) merge.Record {
	out := merge.Record{Clock: local.Clock.Join(remote.Clock)}
	var best *merge.Version
	for _, vs := range [][]merge.Version{local.Versions, remote.Versions} {
		for i := range vs {
			v := &vs[i]
			if best == nil || v.Time > best.Time || v.Time == best.Time && v.Dot.Compare(best.Dot) > 0 {
				best = v
			}
		}
	}
	if best != nil {
		out.Versions = []merge.Version{*best}
	}
	return out
}

// MergePruneLosers is the old rule "prune lww losers at merge time": the
// correct merge, then only the lww winner of the siblings is kept. It
// looks harmless, but the result depends on the order of merges as soon
// as an HLC fails to follow causality (a far-future clock capped at
// MaxDrift), and replicas diverge.
func MergePruneLosers(local, remote merge.Record) merge.Record {
	m := merge.Merge(local, remote)
	if len(m.Versions) > 1 {
		m.Versions = []merge.Version{m.Versions[merge.LWWWinner(m.Versions)]}
	}
	return m
}
