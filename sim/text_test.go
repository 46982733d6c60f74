package sim

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"pgregory.net/rapid"
)

// genOp draws an operation of any kind, with the fields its kind uses
// (the ones Op.String prints).
func genOp(t *rapid.T) Op {
	name := rapid.StringMatching(`[a-z][a-z0-9]{0,5}`)
	value := rapid.StringMatching(`[A-Za-z0-9.]{0,4}( [a-z]{1,5}){0,2}`)
	dur := rapid.Custom(func(t *rapid.T) time.Duration {
		return time.Duration(rapid.Int64Range(-int64(48*time.Hour), int64(48*time.Hour)).Draw(t, "ns")).Truncate(time.Millisecond)
	})
	via := rapid.SampledFrom([]Kind{OpPush, OpPull, OpSync, OpCompact})
	step := rapid.SampledFrom(AllSteps)
	o := Op{R: rapid.IntRange(0, 25).Draw(t, "r"), Kind: Kind(rapid.IntRange(int(OpPut), int(OpCopy)).Draw(t, "kind"))}
	switch o.Kind {
	case OpPut:
		o.Key, o.Value = name.Draw(t, "key"), value.Draw(t, "value")
	case OpDelete:
		o.Key = name.Draw(t, "key")
	case OpBatch:
		for i := range rapid.IntRange(0, 3).Draw(t, "items") {
			it := Item{Key: name.Draw(t, "key") + string(rune('a'+i))}
			if it.Delete = rapid.Bool().Draw(t, "delete"); !it.Delete {
				it.Value = rapid.StringMatching(`[A-Za-z0-9.]{0,4}`).Draw(t, "value")
			}
			o.Items = append(o.Items, it)
		}
	case OpAdd:
		o.Key, o.Delta = name.Draw(t, "key"), rapid.Int64().Draw(t, "delta")
	case OpSetAdd, OpSetRemove:
		o.Key, o.Elem = name.Draw(t, "key"), name.Draw(t, "elem")
	case OpCrash:
		switch rapid.IntRange(0, 3).Draw(t, "crash") {
		case 0: // at rest
		case 1:
			o.Step, o.Via = step.Draw(t, "step"), via.Draw(t, "via")
		default:
			o.Tx, o.Via = rapid.IntRange(1, 20).Draw(t, "tx"), via.Draw(t, "via")
			o.Kill = rapid.Bool().Draw(t, "kill")
		}
	case OpPause:
		o.Step, o.Via, o.Pause = step.Draw(t, "step"), via.Draw(t, "via"), dur.Draw(t, "pause")
	case OpBackup, OpCopy:
		if o.Kind == OpCopy {
			o.To = rapid.IntRange(0, 25).Draw(t, "to")
		}
		if rapid.Bool().Draw(t, "atStep") {
			o.Step, o.Via = step.Draw(t, "step"), via.Draw(t, "via")
		}
	case OpPartition, OpOffline:
		o.For = rapid.IntRange(0, 30).Draw(t, "for")
	case OpClockJump, OpBootstrap:
		o.Jump = dur.Draw(t, "jump")
	case OpCompact:
		if o.Prune = rapid.Bool().Draw(t, "prune"); o.Prune {
			o.Grace, o.RetireAfter = dur.Draw(t, "grace"), dur.Draw(t, "retire")
		}
	}
	if rapid.IntRange(0, 5).Draw(t, "faults") == 0 {
		o.Faults = &Faults{Errors: rapid.Float64Range(0, 1).Draw(t, "errors"), Ambiguous: rapid.Float64Range(0, 1).Draw(t, "ambiguous"),
			TornReads: rapid.Float64Range(0, 1).Draw(t, "torn"), CorruptReads: rapid.Float64Range(0, 1).Draw(t, "corrupt"),
			LateDuplicates: rapid.Float64Range(0, 1).Draw(t, "late")}
	}
	return o
}

// TestParseOpRoundTrip: every operation Op.String prints parses back to
// itself (its ID, advance and nested operations are not in that form).
func TestParseOpRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := genOp(t)
		got, err := ParseOp(o.String())
		if err != nil {
			t.Fatalf("%q: %v", o.String(), err)
		}
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("%q reads back as %#v, want %#v", o.String(), got, o)
		}
	})
}

// TestParseOpEveryKind: a table with one operation of every kind (and
// every form of crash, backup and copy) reads back the same.
func TestParseOpEveryKind(t *testing.T) {
	ops := []Op{
		{Kind: OpPut, R: 1, Key: "k1", Value: "B7"},
		{Kind: OpPut, R: 0, Key: "b", Value: "moved on"},
		{Kind: OpDelete, R: 2, Key: "x"},
		{Kind: OpBatch, Key: "", Items: []Item{{Key: "a", Value: "1"}, {Key: "b", Delete: true}}},
		{Kind: OpAdd, Key: "n", Delta: 5},
		{Kind: OpAdd, Key: "n", Delta: -3},
		{Kind: OpSetAdd, Key: "s", Elem: "e1"},
		{Kind: OpSetRemove, Key: "s", Elem: "e1"},
		{Kind: OpPush}, {Kind: OpPull}, {Kind: OpSync}, {Kind: OpHeal, R: 3}, {Kind: OpRestore},
		{Kind: OpCrash},
		{Kind: OpCrash, Step: "push:staged", Via: OpPush},
		{Kind: OpCrash, Tx: 3, Via: OpCompact},
		{Kind: OpCrash, Tx: 3, Via: OpSync, Kill: true},
		{Kind: OpPartition, For: 4},
		{Kind: OpClockJump, Jump: -90 * time.Second},
		{Kind: OpCompact},
		{Kind: OpCompact, Prune: true, Grace: -1, RetireAfter: time.Minute},
		{Kind: OpBootstrap, R: 3, Jump: -time.Hour},
		{Kind: OpOffline, For: 9},
		{Kind: OpPause, Step: "push:fenced", Via: OpPush, Pause: 2 * time.Minute},
		{Kind: OpBackup},
		{Kind: OpBackup, Step: "pull:listed", Via: OpPull},
		{Kind: OpCopy, To: 3},
		{Kind: OpCopy, To: 2, Step: "registry:swapped", Via: OpPull},
		{Kind: OpPush, Faults: &Faults{Ambiguous: 1}},
	}
	seen := map[Kind]bool{}
	for _, o := range ops {
		seen[o.Kind] = true
		got, err := ParseOp(o.String())
		if err != nil || !reflect.DeepEqual(got, o) {
			t.Errorf("%q reads back as %+v, %v", o.String(), got, err)
		}
	}
	for k := OpPut; k <= OpCopy; k++ {
		if !seen[k] {
			t.Errorf("no %s in the table", k)
		}
	}
	for _, bad := range []string{"", "a put k=v", "A", "A fly", "A put k", "A add n", "A crash at push:staged",
		"A crash after tx x during push", "A pause at push:fenced during push for 1s", "A copy at rest",
		"A compact prune", "A partition for x ops", "A push now", "A push faults{Errors:x}"} {
		if o, err := ParseOp(bad); err == nil {
			t.Errorf("%q parses as %+v", bad, o)
		}
	}
}

// TestScheduleTextRoundTrip: the schedules every sweep generates (and
// their pauses' nested operations) read back from their text form the
// same, IDs and advances included.
func TestScheduleTextRoundTrip(t *testing.T) {
	configs := map[string]func(uint64) Config{"sweep": sweepConfig, "absence": absenceConfig,
		"restore": restoreSweepConfig, "staged": stagedSweepConfig, "kill": killSweepConfig}
	for name, cfg := range configs {
		nested := 0
		for s := range uint64(60) {
			ops, err := Generate(cfg(s))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range ops {
				nested += len(o.Nested)
			}
			text := ScheduleText(ops)
			got, err := ParseSchedule(text)
			if err != nil {
				t.Fatalf("%s seed %d: %v\n%s", name, s, err, text)
			}
			if !opsEqual(got, ops) {
				t.Fatalf("%s seed %d: the schedule does not read back the same:\n%s", name, s, text)
			}
		}
		if name == "absence" && nested == 0 {
			t.Errorf("the absence sweep generated no pauses with nested operations")
		}
	}
	for _, bad := range []string{
		"A pause at push:fenced during push for 1s, meanwhile 2 ops\n    B push",
		"A pause at push:fenced during push for 1s, meanwhile 1 ops\nB push",
		"  A push",
		"#x A push",
		"+1q A push",
	} {
		if ops, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q parses as %v", bad, ops)
		}
	}
}

// TestConfigTextRoundTrip: a config's text form sets the same config.
func TestConfigTextRoundTrip(t *testing.T) {
	for _, cfg := range []func(uint64) Config{sweepConfig, absenceConfig, restoreSweepConfig, stagedSweepConfig, killSweepConfig} {
		for s := range uint64(40) {
			c, err := cfg(s).validate()
			if err != nil {
				t.Fatal(err)
			}
			c.NoShrink, c.ShrinkRuns = false, 0
			_, args, err := datadriven.ParseLine("schedule " + ConfigText(c))
			if err != nil {
				t.Fatal(err)
			}
			var got Config
			for _, a := range args {
				if err := SetConfigArg(&got, a.Key, a.Vals); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("%s reads back as %+v, want %+v", ConfigText(c), got, c)
			}
		}
	}
}

// TestFailureTextReplays: a failure prints itself as a schedule file
// (in its message too) that parses and, run by TestSchedules' runner,
// fails the same way: the expected output it prints is what the run
// gives. The failures: a sweep seed with an old merge restored (a random
// config: seed, faults, skew), two of the absence sweeps' findings, and a
// regression schedule with an old rule restored on one replica only.
func TestFailureTextReplays(t *testing.T) {
	var failures []*Failure
	for seed := range uint64(200) {
		cfg := Config{Seed: seed, Faults: 0.1}
		OldMergeByHLC.Apply(&cfg)
		_, err := Run(cfg)
		var f *Failure
		if errors.As(err, &f) {
			failures = append(failures, f)
			break
		}
	}
	if len(failures) == 0 {
		t.Fatal("200 seeds did not catch MergeByHLC")
	}
	// Two of the absence sweeps' findings (see sweepOldRules): pauses
	// with nested operations, copies, crashes after a transaction, kills.
	for _, c := range []struct {
		rule string
		cfg  Config
	}{{"RetiredNotSticky", absenceConfig(10)}, {"CursorFirst", killSweepConfig(4)}} {
		r, _ := OldRuleNamed(c.rule)
		r.Apply(&c.cfg)
		_, err := Run(c.cfg)
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("%s is not found at its seed any more (see sweepOldRules): %v", c.rule, err)
		}
		failures = append(failures, f)
	}
	file, err := os.ReadFile("testdata/schedules/s03_ack_own_push.txt")
	if err != nil {
		t.Fatal(err)
	}
	// Read S3's schedule; run it here with its old rule on B only.
	var s3 scheduleFile
	datadriven.RunTestFromString(t, string(file), func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "schedule" {
			return d.Expected
		}
		s3.do(t, d)
		cfg := s3.cfg
		r, _ := OldRuleNamed("AckIncludesOwnPush")
		r.Apply(&cfg, 1)
		cfg, err := cfg.validate()
		if err != nil {
			t.Fatal(err)
		}
		_, err = runShrunk(cfg, s3.ops)
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("S3 passes with AckIncludesOwnPush on B: %v", err)
		}
		failures = append(failures, f)
		return d.Expected
	})
	for _, f := range failures {
		text := f.Text()
		if !strings.Contains(f.Error(), text) {
			t.Fatalf("the failure's message does not hold its text form:\n%s", f.Error())
		}
		t.Logf("%s", text)
		runs := 0
		var s scheduleFile
		datadriven.RunTestFromString(t, text, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "run" {
				runs++
			}
			return s.do(t, d)
		})
		if runs != 1 {
			t.Fatalf("the text form has %d runs, want 1:\n%s", runs, text)
		}
		if len(f.Config.restored) > 0 && !strings.Contains(text, "old-rule="+f.Config.restored[0].name) {
			t.Fatalf("the text form does not name the old rule:\n%s", text)
		}
	}
}
