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
		// A retired pusher's create in a freed position (kill sweep seed
		// 16989; S37): created after the snapshot's index, at or below it.
		{"not ready, contiguous, a create after the snapshot below it: pruned", PullInput{Cursor: 4, Listed: late, Snap: snap(6)}, PullPlan{Action: PullRebase, From: 5}},
		{"not ready, contiguous, the snapshot's own position created after it", PullInput{Cursor: 4, Listed: []Listed{{Pos: 5, Modified: t0}, {Pos: 6, Modified: t0.Add(time.Second)}}, Snap: snap(6)}, PullPlan{Action: PullRebase, From: 5}},
		{"not ready, contiguous, created after the snapshot but above it", PullInput{Cursor: 4, Listed: []Listed{{Pos: 5, Modified: t0}, {Pos: 6, Modified: t0.Add(time.Second)}}, Snap: snap(5)}, PullPlan{Action: PullApply}},
		{"not ready, contiguous, written before the snapshot", PullInput{Cursor: 4, Listed: listed(5, 6), Snap: snap(6)}, PullPlan{Action: PullApply}},
		{"not ready, contiguous, snapshot at the cursor", PullInput{Cursor: 4, Listed: late, Snap: snap(4)}, PullPlan{Action: PullApply}},
		{"rebasing, contiguous, below the snapshot: the rebase's own pull applies", PullInput{Cursor: 4, Rebasing: true, Listed: late, Snap: snap(6)}, PullPlan{Action: PullApply}},
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
//   - a replica not ready (not rebasing) never applies a position at or
//     below the newest snapshot created after it (S37);
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
			if !in.Ready && !in.Rebasing && snap.Pos > cursor {
				for _, l := range ls {
					if l.Pos <= snap.Pos && l.Modified.After(snap.Written) {
						t.Fatalf("a replica not ready applies a create made after the snapshot below it: %+v", in)
					}
				}
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

// TestAdoptedAt: an adopted registration is dated by the Wall of its body,
// never by the adoption (S36); no Wall is no known time.
func TestAdoptedAt(t *testing.T) {
	now := t0.Add(150 * time.Second)
	for _, c := range []struct {
		name string
		wall time.Time
		want int64
	}{
		{"landed 150 s before the adoption", t0, t0.UnixMilli()},
		{"landed just now", now, now.UnixMilli()},
		{"a wall ahead of now (the clock stepped back): kept, RegistryDue counts it unknown", now.Add(time.Hour), now.Add(time.Hour).UnixMilli()},
		{"no wall: unknown", time.Time{}, 0},
	} {
		if got := AdoptedAt(c.wall, now); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// Through RegistryDue: an adoption of a body older than Refresh makes
	// the next pull refresh the registry, whatever the ack.
	at := AdoptedAt(t0, now)
	age := time.Duration(now.UnixMilli()-at) * time.Millisecond
	if !RegistryDue(DueInput{Age: age, Known: at != 0 && age >= 0, AckInterval: -1, Refresh: 8 * time.Second}) {
		t.Error("a registration adopted 150 s after it landed: no refresh due")
	}
}

func TestPlanPoll(t *testing.T) {
	for _, c := range []struct {
		name string
		in   PollInput
		want PollAction
	}{
		{"ready: one GET", PollInput{Ready: true, ListKnown: true, SinceList: time.Minute, ListEvery: time.Hour}, PollProbe},
		{"not ready: list (rule 4)", PollInput{ListKnown: true, ListEvery: time.Hour}, PollList},
		{"rebasing: list (rule 4)", PollInput{Ready: true, Rebasing: true, ListKnown: true, ListEvery: time.Hour}, PollList},
		{"next is own: list", PollInput{Ready: true, NextOwn: true, ListKnown: true, ListEvery: time.Hour}, PollList},
		{"never listed: list", PollInput{Ready: true, ListEvery: time.Hour}, PollList},
		{"last listing ListEvery old: list", PollInput{Ready: true, ListKnown: true, SinceList: time.Hour, ListEvery: time.Hour}, PollList},
		{"last listing in the future: list", PollInput{Ready: true, ListKnown: true, SinceList: -time.Second, ListEvery: time.Hour}, PollList},
		{"ListEvery negative: always list", PollInput{Ready: true, ListKnown: true, ListEvery: -1}, PollList},
	} {
		if got := PlanPoll(c.in); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if !PollIdle(false) || PollIdle(true) {
		t.Error("PollIdle: not found is idle, found is not")
	}
}

// TestPlanPollOracle checks the probe against a listing on logs the
// protocol can produce for a non-retired replica: positions created in
// order up to tip, pruned only at or below a floor at most its cursor.
// Whenever the probe says idle, the listing holds nothing after the
// cursor and PlanPull applies nothing; whenever it would list, the probe
// was not allowed.
func TestPlanPollOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cursor := rapid.Uint64Range(0, 8).Draw(t, "cursor")
		floor := rapid.Uint64Range(0, cursor).Draw(t, "floor")
		tip := rapid.Uint64Range(floor, 12).Draw(t, "tip")
		in := PollInput{Ready: rapid.Bool().Draw(t, "ready"), Rebasing: rapid.Bool().Draw(t, "rebasing"),
			NextOwn: rapid.Bool().Draw(t, "nextOwn"), ListKnown: rapid.Bool().Draw(t, "listKnown"),
			SinceList: time.Duration(rapid.Int64Range(-2, 4).Draw(t, "sinceList")),
			ListEvery: time.Duration(rapid.Int64Range(-1, 4).Draw(t, "listEvery"))}
		var l []Listed
		for p := max(cursor, floor) + 1; p <= tip; p++ {
			l = append(l, Listed{Pos: p, Modified: t0})
		}
		found := tip >= cursor+1
		fresh := in.ListKnown && in.ListEvery >= 0 && in.SinceList >= 0 && in.SinceList < in.ListEvery
		if PlanPoll(in) != PollProbe {
			if in.Ready && !in.Rebasing && !in.NextOwn && fresh {
				t.Fatalf("%+v: a ready replica lists within ListEvery", in)
			}
			return
		}
		if !in.Ready || in.Rebasing || !fresh {
			t.Fatalf("%+v: probed though rule 4 or ListEvery needs a listing", in)
		}
		if PollIdle(found) {
			if len(l) != 0 {
				t.Fatalf("idle at cursor %d with %v listed", cursor, l)
			}
			plan := PlanPull(PullInput{Cursor: cursor, Ready: true, Listed: l})
			if plan.Action != PullApply {
				t.Fatalf("idle, yet the listing plans %+v", plan)
			}
		}
	})
}
