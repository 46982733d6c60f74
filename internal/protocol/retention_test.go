package protocol

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestRetained(t *testing.T) {
	now := t0.Add(100 * time.Hour)
	snaps := []SnapshotAge{
		{Position: 10, Created: t0},
		{Position: 40, Created: t0.Add(40 * time.Hour)},
		{Position: 70, Created: t0.Add(70 * time.Hour)},
		{Position: 90, Created: t0.Add(90 * time.Hour)},
	}
	for _, c := range []struct {
		name  string
		ret   Retention
		snaps []SnapshotAge
		want  []uint64
	}{
		{"none: nothing kept", Retention{}, nil, nil},
		{"zero retention: the newest only (today's behaviour)", Retention{}, snaps, []uint64{90}},
		{"one snapshot", Retention{KeepSnapshots: 1}, snaps, []uint64{90}},
		{"three snapshots", Retention{KeepSnapshots: 3}, snaps, []uint64{90, 70, 40}},
		{"more than there are", Retention{KeepSnapshots: 9}, snaps, []uint64{90, 70, 40, 10}},
		{"age younger than the newest: the newest covers it",
			Retention{KeepAge: 5 * time.Hour}, snaps, []uint64{90}},
		{"age past the newest: the one before it too",
			Retention{KeepAge: 15 * time.Hour}, snaps, []uint64{90, 70}},
		{"age exactly at a snapshot: that one covers it",
			Retention{KeepAge: 30 * time.Hour}, snaps, []uint64{90, 70}},
		{"age past two: the boundary one too",
			Retention{KeepAge: 50 * time.Hour}, snaps, []uint64{90, 70, 40}},
		{"age and count: the union",
			Retention{KeepSnapshots: 4, KeepAge: 5 * time.Hour}, snaps, []uint64{90, 70, 40, 10}},
		{"unknown time is never old",
			Retention{KeepAge: time.Hour}, []SnapshotAge{{Position: 5}, {Position: 3}, {Position: 1, Created: t0}},
			[]uint64{5, 3, 1}},
		{"unsorted and repeated input",
			Retention{KeepSnapshots: 2}, []SnapshotAge{snaps[1], snaps[3], snaps[0], snaps[3]}, []uint64{90, 40}},
	} {
		got := Retained(c.ret, c.snaps, now)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: Retained = %v, want %v", c.name, got, c.want)
		}
		floor, ok := RetentionFloor(c.ret, c.snaps, now)
		if ok != (len(c.want) > 0) || ok && floor != c.want[len(c.want)-1] {
			t.Errorf("%s: RetentionFloor = %d, %v; want the oldest of %v", c.name, floor, ok, c.want)
		}
	}
}

func TestCombinedFloor(t *testing.T) {
	for _, c := range []struct {
		name                string
		absence, retention  uint64
		absenceOK, retainOK bool
		want                uint64
		ok                  bool
	}{
		{"retention below the absence floor", 50, 20, true, true, 20, true},
		{"absence floor below retention", 10, 20, true, true, 10, true},
		{"equal", 7, 7, true, true, 7, true},
		{"no registry: nothing", 50, 20, false, true, 0, false},
		{"no snapshot: nothing", 50, 20, true, false, 0, false},
	} {
		got, ok := CombinedFloor(c.absence, c.absenceOK, c.retention, c.retainOK)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: CombinedFloor = %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// TestRetentionOracle: on any snapshots whose times rise with their
// positions, what Retained keeps (1) holds the newest KeepSnapshots, (2)
// lets any time in the last KeepAge be restored whenever some snapshot is
// at or before it, (3) keeps nothing else; and the combined floor is never
// above either floor.
func TestRetentionOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 8).Draw(t, "n")
		var snaps []SnapshotAge
		pos, at := uint64(0), t0
		for range n {
			pos += rapid.Uint64Range(1, 10).Draw(t, "gap")
			at = at.Add(time.Duration(rapid.IntRange(0, 10).Draw(t, "hours")) * time.Hour)
			created := at
			if rapid.IntRange(0, 9).Draw(t, "unknown") == 0 {
				created = time.Time{}
			}
			snaps = append(snaps, SnapshotAge{Position: pos, Created: created})
		}
		ret := Retention{
			KeepSnapshots: rapid.IntRange(0, 5).Draw(t, "keep"),
			KeepAge:       time.Duration(rapid.IntRange(0, 40).Draw(t, "age")) * time.Hour,
		}
		now := at.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "later")) * time.Hour)
		got := Retained(ret, snaps, now)
		kept := map[uint64]bool{}
		for _, p := range got {
			kept[p] = true
		}
		if !slices.IsSortedFunc(got, func(a, b uint64) int { return int(b) - int(a) }) {
			t.Fatalf("not newest first: %v", got)
		}
		// (1) the newest max(KeepSnapshots, 1).
		for i := range min(max(ret.KeepSnapshots, 1), n) {
			if s := snaps[n-1-i]; !kept[s.Position] {
				t.Fatalf("dropped snapshot %d, among the newest %d: %v", s.Position, ret.KeepSnapshots, got)
			}
		}
		// (2) every time t in [now-KeepAge, now] that some snapshot with a
		// known time covers is covered by a kept one.
		if ret.KeepAge > 0 {
			for h := time.Duration(0); h <= ret.KeepAge; h += time.Hour {
				tt := now.Add(-h)
				covered, keptCovers := false, false
				for _, s := range snaps {
					if !s.Created.IsZero() && !s.Created.After(tt) {
						covered = true
						keptCovers = keptCovers || kept[s.Position]
					}
				}
				if covered && !keptCovers {
					t.Fatalf("time %s (now-%s) was restorable and no kept snapshot covers it: %v", tt, h, got)
				}
			}
		}
		// (3) nothing is kept without a reason.
		boundarySeen := false
		for i := n - 1; i >= 0; i-- {
			s := snaps[i]
			reason := n-1-i < max(ret.KeepSnapshots, 1)
			if ret.KeepAge > 0 && !boundarySeen {
				reason = true
				if !s.Created.IsZero() && now.Sub(s.Created) >= ret.KeepAge {
					boundarySeen = true
				}
			}
			if kept[s.Position] != reason {
				t.Fatalf("snapshot %d kept %v, oracle %v (%v)", s.Position, kept[s.Position], reason, got)
			}
		}
		floor, ok := RetentionFloor(ret, snaps, now)
		absence := rapid.Uint64Range(0, 100).Draw(t, "absence")
		c, cok := CombinedFloor(absence, true, floor, ok)
		if cok != ok || ok && (c > absence || c > floor || c != absence && c != floor) {
			t.Fatalf("CombinedFloor(%d, %d) = %d, %v", absence, floor, c, cok)
		}
	})
}
