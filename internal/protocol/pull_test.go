package protocol

import (
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"pgregory.net/rapid"
)

func mergeRecord() merge.Record { return merge.Record{} }

func listed(ps ...uint64) []Listed {
	out := make([]Listed, len(ps))
	for i, p := range ps {
		out[i] = Listed{Pos: p, Modified: t0}
	}
	return out
}

func TestPlanPull(t *testing.T) {
	snap := func(p uint64) *Snapshot { return &Snapshot{Pos: p, Written: t0} }
	late := []Listed{{Pos: 5, Modified: t0.Add(time.Hour)}, {Pos: 6, Modified: t0}}
	for _, c := range []struct {
		name string
		in   PullInput
		want PullPlan
	}{
		{"ready, nothing listed: one LIST, up to date", PullInput{Cursor: 4, Ready: true}, PullPlan{Action: PullApply}},
		{"ready, contiguous", PullInput{Cursor: 4, Ready: true, Listed: listed(5, 6)}, PullPlan{Action: PullApply}},
		{"not ready, nothing listed: read the snapshots (S19)", PullInput{Cursor: 4}, PullPlan{Action: PullNeedSnapshot}},
		{"not ready, nothing listed, snapshot above: rebase (S19)", PullInput{Cursor: 4, Snap: snap(9)}, PullPlan{Action: PullRebase, From: 5}},
		{"not ready, nothing listed, snapshot at the cursor: up to date", PullInput{Cursor: 4, Snap: snap(4)}, PullPlan{Action: PullApply}},
		{"not ready, no snapshot at all", PullInput{Cursor: 0, Snap: &Snapshot{}}, PullPlan{Action: PullApply}},
		{"rebasing, nothing listed, a newer snapshot", PullInput{Cursor: 4, Rebasing: true, Ready: true, Snap: snap(7)}, PullPlan{Action: PullRebase, From: 5}},
		{"ready, hole: read the snapshots", PullInput{Cursor: 4, Ready: true, Listed: listed(7)}, PullPlan{Action: PullNeedSnapshot}},
		{"ready, hole below the snapshot: pruned", PullInput{Cursor: 4, Ready: true, Listed: listed(7), Snap: snap(6)}, PullPlan{Action: PullRebase, From: 5}},
		{"ready, hole above the snapshot: gap", PullInput{Cursor: 4, Ready: true, Listed: listed(7), Snap: snap(3)}, PullPlan{Action: PullGap, From: 5, Next: 7}},
		{"ready, later hole", PullInput{Cursor: 4, Ready: true, Listed: listed(5, 8), Snap: snap(2)}, PullPlan{Action: PullGap, From: 6, Next: 8}},
		{"not ready, contiguous, a create after the snapshot below it: pruned", PullInput{Cursor: 4, Listed: late, Snap: snap(6)}, PullPlan{Action: PullRebase, From: 5}},
		{"not ready, contiguous, the snapshot's own position created after it", PullInput{Cursor: 4, Listed: []Listed{{Pos: 5, Modified: t0}, {Pos: 6, Modified: t0.Add(time.Second)}}, Snap: snap(6)}, PullPlan{Action: PullRebase, From: 5}},
		{"not ready, contiguous, created after the snapshot but above it", PullInput{Cursor: 4, Listed: []Listed{{Pos: 5, Modified: t0}, {Pos: 6, Modified: t0.Add(time.Second)}}, Snap: snap(5)}, PullPlan{Action: PullApply}},
		{"not ready, contiguous, written before the snapshot", PullInput{Cursor: 4, Listed: listed(5, 6), Snap: snap(6)}, PullPlan{Action: PullApply}},
		{"not ready, contiguous: read the snapshots", PullInput{Cursor: 4, Listed: listed(5)}, PullPlan{Action: PullNeedSnapshot}},
	} {
		if got := PlanPull(c.in); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestPlanPullSafety checks the plan against what it must guarantee,
// whatever was listed:
//   - it applies only a log contiguous from cursor+1 (never across a hole);
//   - a replica not ready, or rebasing, takes "nothing listed at cursor+1"
//     for "up to date" only when no snapshot is above the cursor (rule 4);
//   - it rebases only on a snapshot at or above the missing position, and
//     calls a gap only where no snapshot covers it;
//   - it asks for the snapshot only when none was given, and a plan made
//     without it holds with any snapshot (the idle pull stays one LIST).
func TestPlanPullSafety(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cursor := rapid.Uint64Range(0, 6).Draw(t, "cursor")
		var ls []Listed
		p := cursor
		for range rapid.IntRange(0, 4).Draw(t, "n") {
			p += rapid.Uint64Range(1, 3).Draw(t, "step")
			ls = append(ls, Listed{Pos: p, Modified: t0.Add(time.Duration(rapid.IntRange(-2, 2).Draw(t, "mod")) * time.Hour)})
		}
		in := PullInput{Cursor: cursor, Listed: ls, Ready: rapid.Bool().Draw(t, "ready"), Rebasing: rapid.Bool().Draw(t, "rebasing")}
		var snap *Snapshot
		if rapid.Bool().Draw(t, "known") {
			snap = &Snapshot{Pos: rapid.Uint64Range(0, 14).Draw(t, "snap"), Written: t0}
		}
		in.Snap = snap
		plan := PlanPull(in)
		contiguous := true
		for i, l := range ls {
			contiguous = contiguous && l.Pos == cursor+1+uint64(i)
		}
		switch plan.Action {
		case PullNeedSnapshot:
			if snap != nil {
				t.Fatal("asked for a snapshot it was given")
			}
			return
		case PullApply:
			if !contiguous {
				t.Fatalf("applies across a hole: %+v", in)
			}
			if (!in.Ready || in.Rebasing) && len(ls) == 0 && snap.Pos > cursor {
				t.Fatalf("nothing listed below a snapshot taken for up to date: %+v", in)
			}
		case PullRebase:
			if snap == nil || snap.Pos < plan.From || plan.From < cursor+1 {
				t.Fatalf("rebase from %d on %+v", plan.From, snap)
			}
		case PullGap:
			if snap == nil || snap.Pos >= plan.From {
				t.Fatalf("gap at %d covered by snapshot %+v", plan.From, snap)
			}
		}
		if snap == nil {
			for _, s := range []uint64{0, cursor, cursor + 1, cursor + 9} {
				in.Snap = &Snapshot{Pos: s, Written: t0}
				if again := PlanPull(in); again != plan {
					t.Fatalf("plan without the snapshot %+v, with snapshot %d %+v", plan, s, again)
				}
			}
		}
	})
}
