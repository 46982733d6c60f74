package protocol

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestAck(t *testing.T) {
	for _, c := range []struct {
		name string
		in   AckInput
		want uint64
	}{
		{"cursor alone", AckInput{Cursor: 7}, 7},
		{"own push is not part of it (S3)", AckInput{Cursor: 4, LastOwnPush: 9}, 4},
		{"a staged base holds it down (S6)", AckInput{Cursor: 9, StagedBases: []uint64{5, 8}}, 5},
		{"a base above the cursor changes nothing", AckInput{Cursor: 3, StagedBases: []uint64{6}}, 3},
		{"zero", AckInput{}, 0},
	} {
		if got := Ack(c.in); got != c.want {
			t.Errorf("%s: Ack = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestAckOracle: the ack is the minimum of the cursor and every base,
// computed by sorting.
func TestAckOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := AckInput{
			Cursor:      rapid.Uint64Range(0, 50).Draw(t, "cursor"),
			StagedBases: rapid.SliceOfN(rapid.Uint64Range(0, 50), 0, 4).Draw(t, "bases"),
			LastOwnPush: rapid.Uint64Range(0, 60).Draw(t, "own"),
		}
		all := append([]uint64{in.Cursor}, in.StagedBases...)
		slices.Sort(all)
		if got := Ack(in); got != all[0] {
			t.Fatalf("Ack(%+v) = %d, want %d", in, got, all[0])
		}
	})
}

func regsGen() *rapid.Generator[[]Registry] {
	return rapid.Custom(func(t *rapid.T) []Registry {
		n := rapid.IntRange(0, 5).Draw(t, "n")
		out := make([]Registry, n)
		for i := range out {
			out[i] = Registry{
				ID:       string(rune('a' + i)),
				Seq:      rapid.Uint64Range(1, 5).Draw(t, "seq"),
				Nonce:    rapid.SampledFrom([]string{"n1", "n2", "n3"}).Draw(t, "nonce"),
				Ack:      rapid.Uint64Range(0, 20).Draw(t, "ack"),
				Retired:  rapid.Bool().Draw(t, "retired"),
				Modified: t0.Add(time.Duration(rapid.IntRange(-1, 60).Draw(t, "age")) * 24 * time.Hour),
			}
			if out[i].Modified.Before(t0) {
				out[i].Modified = time.Time{}
			}
		}
		return out
	})
}

func TestMinAckAndFloors(t *testing.T) {
	regs := []Registry{{ID: "a", Ack: 5}, {ID: "b", Ack: 2, Retired: true}, {ID: "c", Ack: 9}}
	if m, ok := MinAck(regs); !ok || m != 5 {
		t.Fatalf("MinAck = %d, %v", m, ok)
	}
	if p := PlanCollect(regs); p.Floor != 5 || !p.PullFirst {
		t.Fatalf("PlanCollect = %+v (S4: min ack, pull to a tip listed after the read)", p)
	}
	if p := PlanCollect(nil); p.Floor != 0 {
		t.Fatalf("PlanCollect(nil) = %+v", p)
	}
	for _, c := range []struct {
		name string
		in   PruneInput
		want uint64
		ok   bool
	}{
		{"acks bound it (S10)", PruneInput{Newest: 9, Written: 9, Regs: regs}, 5, true},
		{"the snapshot bounds it", PruneInput{Newest: 3, Written: 3, Regs: regs}, 3, true},
		{"the snapshot written before the acks were read", PruneInput{Newest: 9, Written: 4, Regs: regs}, 4, true},
		{"no registry: nothing", PruneInput{Newest: 9, Written: 9}, 0, false},
		{"all retired: nothing", PruneInput{Newest: 9, Written: 9, Regs: regs[1:2]}, 0, false},
	} {
		got, ok := PruneFloor(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: PruneFloor = %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// TestPruneFloorOracle: the floor is the largest position at or below the
// newest and the written snapshot and every non-retired ack.
func TestPruneFloorOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := PruneInput{
			Newest:  rapid.Uint64Range(0, 20).Draw(t, "newest"),
			Written: rapid.Uint64Range(0, 20).Draw(t, "written"),
			Regs:    regsGen().Draw(t, "regs"),
		}
		got, ok := PruneFloor(in)
		live := 0
		for _, g := range in.Regs {
			if !g.Retired {
				live++
			}
		}
		if ok != (live > 0) {
			t.Fatalf("ok %v with %d live registries", ok, live)
		}
		if !ok {
			return
		}
		var best uint64
		for f := uint64(0); f <= 20; f++ {
			fits := f <= in.Newest && f <= in.Written
			for _, g := range in.Regs {
				fits = fits && (g.Retired || f <= g.Ack)
			}
			if fits {
				best = f
			}
		}
		if got != best {
			t.Fatalf("PruneFloor = %d, oracle %d (%+v)", got, best, in)
		}
	})
}

func TestCollectible(t *testing.T) {
	for _, c := range []struct {
		name  string
		c     Candidate
		floor uint64
		want  bool
	}{
		{"deleted, clean, acked", Candidate{Pos: 3, ReadsDeleted: true}, 3, true},
		{"never published", Candidate{Pos: 0, ReadsDeleted: true}, 3, false},
		{"above the floor", Candidate{Pos: 4, ReadsDeleted: true}, 3, false},
		{"live", Candidate{Pos: 2}, 3, false},
		{"dirty: a local delete not yet pushed", Candidate{Pos: 2, ReadsDeleted: true, Dirty: true}, 3, false},
	} {
		if got := Collectible(c.c, c.floor); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
	if _, whole := CollectRecord(mergeRecord()); !whole {
		t.Error("CollectRecord keeps part of a record (S8)")
	}
}

func TestCollectibleOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := Candidate{Pos: rapid.Uint64Range(0, 9).Draw(t, "pos"), ReadsDeleted: rapid.Bool().Draw(t, "del"), Dirty: rapid.Bool().Draw(t, "dirty")}
		floor := rapid.Uint64Range(0, 9).Draw(t, "floor")
		want := true
		if c.Dirty || !c.ReadsDeleted || c.Pos == 0 || c.Pos > floor {
			want = false
		}
		if got := Collectible(c, floor); got != want {
			t.Fatalf("Collectible(%+v, %d) = %v", c, floor, got)
		}
	})
}

func TestToRetire(t *testing.T) {
	now := t0.Add(60 * 24 * time.Hour)
	in := RetireInput{Self: "me", ServerNow: now, RetireAfter: 30 * 24 * time.Hour, Snapshot: 10}
	old := now.Add(-31 * 24 * time.Hour)
	regs := []Registry{
		{ID: "me", Ack: 1, Modified: old},
		{ID: "silent", Ack: 4, Modified: old},
		{ID: "at-tip", Ack: 10, Modified: old},
		{ID: "young", Ack: 4, Modified: now.Add(-time.Hour)},
		{ID: "gone", Ack: 4, Modified: old, Retired: true},
		{ID: "unknown", Ack: 4},
	}
	if got := ToRetire(regs, in); !slices.Equal(got, []string{"silent"}) {
		t.Fatalf("ToRetire = %v, want [silent]", got)
	}
	in.ServerNow = time.Time{}
	if got := ToRetire(regs, in); got != nil {
		t.Fatalf("without a server time: %v", got)
	}
	r := Retirement(Registry{ID: "x", Seq: 4, Nonce: "old", Ack: 2}, "fresh")
	if !r.Retired || r.Seq != 5 || r.Nonce != "fresh" || r.RetiredNonce != "old" || r.Ack != 2 {
		t.Fatalf("Retirement = %+v (rule 1: its own write naming the body)", r)
	}
}

// TestToRetireOracle checks every id against the conditions one by one.
func TestToRetireOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		regs := regsGen().Draw(t, "regs")
		in := RetireInput{
			Self:        rapid.SampledFrom([]string{"a", "b", "z"}).Draw(t, "self"),
			ServerNow:   t0.Add(60 * 24 * time.Hour),
			RetireAfter: time.Duration(rapid.IntRange(1, 60).Draw(t, "after")) * 24 * time.Hour,
			Snapshot:    rapid.Uint64Range(0, 20).Draw(t, "snap"),
		}
		got := ToRetire(regs, in)
		for _, g := range regs {
			want := !g.Retired && g.ID != in.Self && !g.Modified.IsZero() &&
				!in.ServerNow.Before(g.Modified.Add(in.RetireAfter)) && g.Ack < in.Snapshot
			if slices.Contains(got, g.ID) != want {
				t.Fatalf("%+v: retired %v, want %v (%+v)", g, !want, want, in)
			}
		}
	})
}

func TestPrunable(t *testing.T) {
	if !Prunable(time.Time{}, t0, -1) {
		t.Error("negative grace: any age")
	}
	if Prunable(time.Time{}, t0, time.Hour) {
		t.Error("unknown time pruned")
	}
	if Prunable(t0.Add(-time.Minute), t0, time.Hour) || !Prunable(t0.Add(-time.Hour), t0, time.Hour) {
		t.Error("grace boundary")
	}
}

func TestJudgeSwap(t *testing.T) {
	w := Writes{Nonce: "last", ETag: "e1", PendingNonce: "made", Prior: []string{"crash"}}
	for _, c := range []struct {
		name string
		rb   SwapRead
		want SwapVerdict
	}{
		{"retired, even our own write (S16)", SwapRead{Retired: true, Nonce: "made", ETag: "e9"}, SwapRetired},
		{"retired by another", SwapRead{Retired: true, Nonce: "x", ETag: "e9"}, SwapRetired},
		{"this call's write landed", SwapRead{Nonce: "made", ETag: "e2"}, SwapLanded},
		{"a crash's leftover landed: adopt, swap again (S18)", SwapRead{Nonce: "crash", ETag: "e2"}, SwapAdoptPrior},
		{"our last body under a new ETag", SwapRead{Nonce: "last", ETag: "e2"}, SwapAdoptETag},
		{"unchanged", SwapRead{Nonce: "last", ETag: "e1"}, SwapUnchanged},
		{"someone else's", SwapRead{Nonce: "other", ETag: "e2"}, SwapForeign},
	} {
		if got := JudgeSwap(c.rb, w, "made"); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if FenceNonce("inherited") != "" {
		t.Error("an inherited pending write fences (S18)")
	}
}

// TestJudgeSwapSafety: whatever the read-back, a retired body is never a
// fence, a fence is only this call's write, and a write this directory
// made is never called foreign.
func TestJudgeSwapSafety(t *testing.T) {
	nonces := []string{"a", "b", "c", "d", "e"}
	rapid.Check(t, func(t *rapid.T) {
		w := Writes{
			Nonce:        rapid.SampledFrom(nonces).Draw(t, "nonce"),
			ETag:         rapid.SampledFrom([]string{"e1", "e2"}).Draw(t, "etag"),
			PendingNonce: rapid.SampledFrom(nonces).Draw(t, "pending"),
			Prior:        rapid.SliceOfN(rapid.SampledFrom(nonces), 0, 2).Draw(t, "prior"),
		}
		made := w.PendingNonce
		rb := SwapRead{Retired: rapid.Bool().Draw(t, "retired"), Nonce: rapid.SampledFrom(nonces).Draw(t, "rb"), ETag: rapid.SampledFrom([]string{"e1", "e2", "e3"}).Draw(t, "rbetag")}
		v := JudgeSwap(rb, w, made)
		if rb.Retired != (v == SwapRetired) {
			t.Fatalf("retired %v, verdict %v", rb.Retired, v)
		}
		if v == SwapLanded && rb.Nonce != made {
			t.Fatalf("fence on a write this call did not make: %+v", rb)
		}
		if v == SwapForeign && (w.Wrote(rb.Nonce) || rb.ETag == w.ETag) {
			t.Fatalf("foreign verdict on our own write or an unchanged object: %+v %+v", rb, w)
		}
	})
}

func TestJudgeCommitAndOwns(t *testing.T) {
	w := Writes{Nonce: "n1", PendingNonce: "n2", Prior: []string{"n0"}}
	if JudgeCommit(Registry{Nonce: "n1", Retired: true}, w) != CommitRetired {
		t.Error("retired: commit (S17)")
	}
	if JudgeCommit(Registry{Nonce: "n2"}, w) != CommitOK || JudgeCommit(Registry{Nonce: "zz"}, w) != CommitForeign {
		t.Error("commit verdicts")
	}
	if !OwnsBody(w, Registry{Nonce: "n0"}) || !OwnsBody(w, Registry{Retired: true, Nonce: "x", RetiredNonce: "n1"}) {
		t.Error("OwnsBody misses our writes")
	}
	if OwnsBody(w, Registry{Nonce: "x"}) || OwnsBody(w, Registry{Nonce: "x", RetiredNonce: "n1"}) {
		t.Error("OwnsBody takes a foreign body (S19)")
	}
	if (Writes{}).Wrote("") {
		t.Error("the empty nonce counts as written")
	}
}

func TestSmallRules(t *testing.T) {
	if MayPush(false) || !MayPush(true) {
		t.Error("MayPush (S7)")
	}
	if !MarkCleared(4, 4, true) || MarkCleared(4, 5, true) || MarkCleared(4, 4, false) {
		t.Error("MarkCleared: only the mark staged")
	}
	for _, c := range []struct {
		f    SegmentFacts
		want Admission
	}{
		{SegmentFacts{}, Admit},
		{SegmentFacts{StagedHere: true}, Admit},
		{SegmentFacts{FromSelf: true, StagedHere: true}, AdmitOwn},
		{SegmentFacts{FromSelf: true}, RefuseCloned},
	} {
		if got := AdmitSegment(c.f); got != c.want {
			t.Errorf("AdmitSegment(%+v) = %v", c.f, got)
		}
	}
	if !ForeignDots(5, 4) || ForeignDots(4, 4) {
		t.Error("ForeignDots")
	}
	if n, create := PartNonce("abc"); n != "abc" || !create {
		t.Error("PartNonce (S15)")
	}
	d := Default()
	if d.Sync == nil || !d.Sync() || !d.SnapshotFirst() || !d.KeepCRDTState() || !d.CursorLast() || !d.CheckAfterCreate() {
		t.Error("Default")
	}
}

func TestRegistryDue(t *testing.T) {
	h := time.Hour
	for _, c := range []struct {
		name string
		in   DueInput
		want bool
	}{
		{"ack moved, interval passed", DueInput{Ack: 2, LastAck: 1, Age: 2 * h, Known: true, AckInterval: h, Refresh: 24 * h}, true},
		{"ack moved, too soon", DueInput{Ack: 2, LastAck: 1, Age: h / 2, Known: true, AckInterval: h, Refresh: 24 * h}, false},
		{"ack moved, negative interval", DueInput{Ack: 2, LastAck: 1, Known: true, AckInterval: -1, Refresh: 24 * h}, true},
		{"idle, fresh", DueInput{Ack: 1, LastAck: 1, Age: h, Known: true, AckInterval: h, Refresh: 24 * h}, false},
		{"idle, refresh due (S21)", DueInput{Ack: 1, LastAck: 1, Age: 25 * h, Known: true, AckInterval: h, Refresh: 24 * h}, true},
		{"unknown age", DueInput{Ack: 1, LastAck: 1, AckInterval: h, Refresh: 24 * h}, true},
	} {
		if got := RegistryDue(c.in); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}
