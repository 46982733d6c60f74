package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Failure is a simulation that broke an invariant. Its message carries the
// seed, the rule and the shortest failing schedule found, with that
// schedule's trace: Replay(f.Config, f.Schedule) runs it again, byte for
// byte.
type Failure struct {
	Seed   uint64
	Rule   string // one of the Rule constants
	Detail string
	// Config is the validated configuration of the failing run.
	Config Config
	// Generated is the length of the schedule that first failed.
	Generated int
	// Schedule is the shortest failing schedule found (the whole one with
	// Config.NoShrink).
	Schedule []Op
	// Trace is the trace of Schedule.
	Trace []string
	// Reruns is how many runs shrinking took.
	Reruns int
}

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sim: seed %d (policy %s, engine %s, durability %s, %d replicas): %s: %s\n",
		f.Seed, f.Config.policyName(), f.Config.Engine, f.Config.Durability, f.Config.Replicas, f.Rule, f.Detail)
	fmt.Fprintf(&b, "shortest failing schedule: %d of %d operations (%d re-runs):\n", len(f.Schedule), f.Generated, f.Reruns)
	b.WriteString(FormatSchedule(f.Schedule))
	b.WriteString("its trace:\n")
	for _, l := range f.Trace {
		b.WriteString("  " + l + "\n")
	}
	fmt.Fprintf(&b, "rerun: sim.Run(sim.Config{Seed: %d, ...}) or ebreplica sim --seed %d with the same flags\n", f.Seed, f.Seed)
	b.WriteString("as a regression schedule (paste into sim/testdata/schedules/<name>.txt; go test ./sim -run TestSchedules):\n")
	b.WriteString(f.Text())
	return b.String()
}

// Run generates cfg's schedule and runs it (see World): the replicas run
// the schedule with faults, partitions and crashes, then sync until they
// agree, and every invariant is checked. A failure is a *Failure whose
// schedule is shrunk; the report is returned either way.
func Run(cfg Config) (Report, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return Report{}, err
	}
	return runShrunk(cfg, generate(cfg))
}

// Replay runs the given schedule under cfg, without shrinking a failure.
func Replay(cfg Config, ops []Op) (Report, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return Report{}, err
	}
	cfg.NoShrink = true
	return runShrunk(cfg, ops)
}

func runShrunk(cfg Config, ops []Op) (Report, error) {
	rep, v, err := runSchedule(cfg, ops)
	if err != nil {
		return rep, err
	}
	if v == nil {
		return rep, nil
	}
	rep.Converged = false
	rep.Failed = 1
	f := &Failure{Seed: cfg.Seed, Rule: v.Rule, Detail: v.Detail, Config: cfg, Generated: len(ops),
		Schedule: ops, Trace: rep.Trace}
	if !cfg.NoShrink {
		f.Schedule, f.Reruns = shrink(cfg, ops, v.Rule)
		if r, v2, err := runSchedule(cfg, f.Schedule); err == nil && v2 != nil {
			f.Trace, f.Detail = r.Trace, v2.Detail
		}
	}
	rep.Failure = f.Error()
	return rep, f
}

// runSchedule runs ops in a new world. err is a set-up error; v the
// violation.
func runSchedule(cfg Config, ops []Op) (rep Report, v *Violation, err error) {
	w, err := NewWorld(cfg)
	if err != nil {
		return Report{}, nil, err
	}
	defer w.Close()
	for _, op := range ops {
		err := w.Do(op)
		if cfg.Timeline {
			w.sample()
		}
		if err != nil {
			if !errors.As(err, &v) {
				return w.rep, nil, err
			}
			w.collectStats()
			rep = w.rep
			rep.Trace = w.Trace()
			rep.Failure = v.Error()
			return rep, v, nil
		}
	}
	rep, err = w.Finish()
	if cfg.Timeline {
		w.sample()
		rep.Timeline = w.rep.Timeline
	}
	rep.Trace = w.Trace()
	if err != nil && !errors.As(err, &v) {
		return rep, nil, err
	}
	return rep, v, nil
}

// shrink looks for a shorter schedule that still breaks rule, by delta
// debugging (Zeller's ddmin, removing complements): try dropping each of n
// chunks; keep any drop that still fails; refine the chunks when none
// does; end when single operations cannot be dropped or the budget of
// re-runs is spent. Runs are deterministic, and an operation's faults and
// values depend on its ID only, so a dropped neighbour does not change
// what an operation does.
func shrink(cfg Config, ops []Op, rule string) ([]Op, int) {
	runs := 0
	fails := func(cand []Op) bool {
		runs++
		_, v, err := runSchedule(cfg, cand)
		return err == nil && v != nil && v.Rule == rule
	}
	n := 2
	for len(ops) >= 2 && runs < cfg.ShrinkRuns {
		chunk := (len(ops) + n - 1) / n
		reduced := false
		for start := 0; start < len(ops) && runs < cfg.ShrinkRuns; start += chunk {
			cand := slices.Concat(ops[:start], ops[min(start+chunk, len(ops)):])
			if fails(cand) {
				ops = cand
				n = max(n-1, 2)
				reduced = true
				break
			}
		}
		if reduced {
			continue
		}
		if n >= len(ops) {
			break
		}
		n = min(2*n, len(ops))
	}
	if len(ops) == 1 && runs < cfg.ShrinkRuns && fails(nil) {
		ops = nil
	}
	return ops, runs
}

// RunMany runs runs simulations with consecutive seeds from cfg.Seed and
// returns the summed report; the error is the first failure (the other
// runs still run).
func RunMany(cfg Config, runs int) (Report, error) {
	if runs < 1 {
		return Report{}, fmt.Errorf("sim: runs %d: want at least 1", runs)
	}
	var total Report
	var first error
	for i := range runs {
		c := cfg
		c.Seed = cfg.Seed + uint64(i)
		rep, err := Run(c)
		var f *Failure
		if err != nil && !errors.As(err, &f) {
			return total, err
		}
		if err != nil && first == nil {
			first = err
		}
		total.add(rep)
	}
	return total, first
}
