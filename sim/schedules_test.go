package sim

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

// TestSchedules runs the regression schedules of DESIGN.md (S1-S21), one
// datadriven file each under testdata/schedules. Rewrite the expected
// outputs with
//
//	go test ./sim -run TestSchedules -rewrite
//
// The directives:
//
//	schedule [calm] [config...]   the config (see ConfigText) and, as
//	                              input, the operations (see ScheduleText)
//	run [old-rule=NAME [on=(A, B)]] [shrink]
//	                              runs the schedule (with the old rule
//	                              restored, on the replicas named, all when
//	                              none) and prints the outcome: "converged"
//	                              and every replica's final reads, or
//	                              "fails:" with the rule broken, and with
//	                              shrink the shortest failing schedule.
//
// A run with an old rule must fail, whatever its expected output says.
func TestSchedules(t *testing.T) {
	files, err := filepath.Glob("testdata/schedules/*.txt")
	if err != nil || len(files) < 22 {
		t.Fatalf("%d schedule files (%v), want S1-S21 and S19b", len(files), err)
	}
	datadriven.Walk(t, "testdata/schedules", func(t *testing.T, path string) {
		var s scheduleFile
		datadriven.RunTest(t, path, s.do)
		if !s.ran {
			t.Errorf("%s runs no schedule", path)
		}
	})
}

// scheduleFile is the state of one file: the schedule last defined.
type scheduleFile struct {
	cfg Config
	ops []Op
	set bool
	ran bool
}

func (s *scheduleFile) do(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "schedule":
		cfg := Config{}
		for _, a := range d.CmdArgs {
			if a.Key == "calm" {
				if err := SetConfigArg(&cfg, a.Key, a.Vals); err != nil {
					d.Fatalf(t, "%v", err)
				}
			}
		}
		for _, a := range d.CmdArgs {
			if a.Key == "calm" {
				continue
			}
			if err := SetConfigArg(&cfg, a.Key, a.Vals); err != nil {
				d.Fatalf(t, "%v", err)
			}
		}
		vcfg, err := cfg.validate()
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		ops, err := ParseSchedule(d.Input)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		// The text is canonical, or reads back the same.
		if again, err := ParseSchedule(ScheduleText(ops)); err != nil || !opsEqual(again, ops) {
			d.Fatalf(t, "the schedule does not read back the same from its text form: %v\n%s", err, ScheduleText(ops))
		}
		s.cfg, s.ops, s.set = cfg, ops, true
		return scheduleSummary(vcfg, ops)
	case "run":
		if !s.set {
			d.Fatalf(t, "run before any schedule")
		}
		s.ran = true
		cfg := s.cfg
		var old *OldRule
		var on []int
		shrink := false
		for _, a := range d.CmdArgs {
			switch a.Key {
			case "old-rule":
				r, ok := OldRuleNamed(a.SingleVal(t))
				if !ok {
					d.Fatalf(t, "no old rule %q (see OldRules)", a.SingleVal(t))
				}
				old = &r
			case "on":
				for _, v := range a.Vals {
					i, ok := replicaIndex(v)
					if !ok {
						d.Fatalf(t, "on: %q is no replica", v)
					}
					on = append(on, i)
				}
			case "shrink":
				shrink = true
			default:
				d.Fatalf(t, "run: unknown argument %q", a.Key)
			}
		}
		if len(on) > 0 && old == nil {
			d.Fatalf(t, "on= without old-rule=")
		}
		if old != nil {
			old.Apply(&cfg, on...)
		}
		out, failed, err := runText(cfg, s.ops, shrink)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		if old != nil && !failed {
			t.Errorf("%s: the schedule passes with the old rule %s (%s) restored: it does not test it", d.Pos, old.Name, old.Desc)
		}
		return out
	}
	d.Fatalf(t, "unknown directive %q", d.Cmd)
	return ""
}

// runText runs ops under cfg and describes the outcome (see
// TestSchedules); failed says it broke a rule. err is a set-up error.
func runText(cfg Config, ops []Op, shrink bool) (out string, failed bool, err error) {
	cfg, err = cfg.validate()
	if err != nil {
		return "", false, err
	}
	if shrink {
		_, err := runShrunk(cfg, ops)
		var f *Failure
		if errors.As(err, &f) {
			if len(f.Schedule) > len(ops) {
				return "", true, fmt.Errorf("shrinking grew the schedule: %d of %d operations", len(f.Schedule), len(ops))
			}
			return fmt.Sprintf("%s\nshrunk to %d of %d operations:\n%s", failureText(f.Rule, f.Detail),
				len(f.Schedule), len(ops), strings.TrimSuffix(ScheduleText(f.Schedule), "\n")), true, nil
		}
		if err != nil {
			return "", false, err
		}
	}
	w, err := NewWorld(cfg)
	if err != nil {
		return "", false, err
	}
	defer w.Close()
	fail := func(err error) (string, bool, error) {
		var v *Violation
		if errors.As(err, &v) {
			return failureText(v.Rule, v.Detail), true, nil
		}
		return "", false, err
	}
	for _, op := range ops {
		if err := w.Do(op); err != nil {
			return fail(err)
		}
	}
	rep, err := w.Finish()
	if err != nil {
		return fail(err)
	}
	rounds := "rounds"
	if rep.Rounds == 1 {
		rounds = "round"
	}
	return fmt.Sprintf("converged in %d sync %s\n%s\n%s", rep.Rounds, rounds, reportCounts(rep), finalReads(w)), false, nil
}

// reportCounts prints what happened in a run, as the report counts it
// (the counts that are not zero): that a crash, a collection, a
// retirement the schedule is about did happen.
func reportCounts(rep Report) string {
	var parts []string
	for _, c := range []struct {
		name string
		n    int64
	}{
		{"writes", rep.Writes}, {"lost writes", rep.LostWrites}, {"crashes", rep.Crashes},
		{"faults", rep.FaultsInjected}, {"false verdicts", rep.FalseVerdicts},
		{"compactions", rep.Compactions}, {"collected", rep.Collected}, {"pruned", rep.Pruned},
		{"retired", rep.Retired}, {"joins", rep.Joins}, {"pauses", rep.Pauses}, {"backups", rep.Backups},
		{"restores", rep.Restores}, {"copies", rep.Copies}, {"reidentified", rep.Reidentified},
		{"restamped", rep.Restamped}, {"withdrawn", rep.Withdrawn}, {"retired compacts", rep.RetiredCompacts},
		{"stuck rebases", rep.StuckRebases}, {"rebase lost", rep.RebaseLost},
	} {
		if c.n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	return strings.Join(parts, ", ")
}

// finalReads prints what every replica reads at the end, replicas that
// read the same on one line: every key with a record, as the policy reads
// it (register policies: its versions, then its read).
func finalReads(w *World) string {
	var states, names []string
	for _, n := range w.nodes {
		st := nodeReads(w, n)
		if i := slices.Index(states, st); i >= 0 {
			names[i] += " " + n.name()
			continue
		}
		states, names = append(states, st), append(names, n.name())
	}
	var b strings.Builder
	for i := range states {
		fmt.Fprintf(&b, "%s: %s\n", names[i], states[i])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func nodeReads(w *World, n *node) string {
	if n.r == nil {
		return "closed"
	}
	var keys []string
	err := n.r.Store().View(func(v *store.View) error {
		return v.Records("", "", func(key string, _ store.Stored) (bool, error) {
			keys = append(keys, key)
			return true, nil
		})
	})
	if err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, k := range keys {
		switch w.cfg.kind() {
		case kindCounter:
			v, err := n.r.CounterValue(k)
			if err != nil {
				parts = append(parts, fmt.Sprintf("%s error %v", k, err))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		case kindSet:
			m, err := n.r.SetMembers(k)
			if err != nil {
				parts = append(parts, fmt.Sprintf("%s error %v", k, err))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s={%s}", k, strings.Join(m, " ")))
		case kindJSON:
			v, err := n.r.Get(k)
			switch {
			case errors.Is(err, engine.ErrNotFound):
				parts = append(parts, fmt.Sprintf("%s reads nothing", k))
			case err != nil:
				parts = append(parts, fmt.Sprintf("%s error %v", k, err))
			default:
				parts = append(parts, fmt.Sprintf("%s=%s", k, v))
			}
		default:
			vs, err := n.r.Versions(k)
			if err != nil {
				parts = append(parts, fmt.Sprintf("%s error %v", k, err))
				continue
			}
			var vals []string
			for _, v := range vs {
				if v.Deleted {
					vals = append(vals, "(deleted)")
				} else {
					vals = append(vals, string(v.Value))
				}
			}
			read := ""
			v, err := n.r.Get(k)
			var ce *engine.ConflictError
			switch {
			case errors.Is(err, engine.ErrNotFound):
				read = "nothing"
			case errors.As(err, &ce):
				read = fmt.Sprintf("a conflict of %d", len(ce.Versions))
			case err != nil:
				read = "error " + err.Error()
			default:
				read = string(v)
			}
			parts = append(parts, fmt.Sprintf("%s=[%s] reads %s", k, strings.Join(vals, ", "), read))
		}
	}
	out := strings.Join(parts, "; ")
	if out == "" {
		out = "no records"
	}
	if p := n.r.Store().OutboxLen(); p != 0 {
		out += fmt.Sprintf(" (%d pending)", p)
	}
	return out
}

// opsEqual compares two schedules field by field.
func opsEqual(a, b []Op) bool {
	return reflect.DeepEqual(a, b)
}
