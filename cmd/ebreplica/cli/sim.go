package cli

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/sim"
	"github.com/ebreplica/ebreplica/store"
)

var simCmd = &command{
	name:    "sim",
	summary: "simulate replicas with skewed clocks, faults, partitions and crashes, and check they converge",
	help: `Runs real replicas in memory against one in-memory object store, from
one thread, on logical time: every replica has its own wall clock (offset
up to ±--skew, drift, backward jumps); the seeded schedule interleaves
writes on hot keys (Zipf), pushes, pulls, syncs, partitions, remote faults
(errors, ambiguous writes, torn and corrupt reads, late duplicates) and
crashes at every step of push and pull. Then the faults stop, every replica
syncs until all agree, and the result is checked against a ground-truth
oracle: identical state, no write lost to one it happened before, every
concurrent write kept as a sibling, no acknowledged write lost in a crash,
one version per dot, exact counters, add-wins sets.

The report: converged or not, sync rounds, conflicts, lost updates (lww),
max siblings, requests by verb, bytes, and an estimated S3 request cost.
The same flags print the same report. A failure prints the seed and the
shortest failing schedule. Exit 0 when converged, 1 otherwise.

--policy lww,mv,counter runs every policy on identical schedules (same
seeds, same operations; counter, set and json take each put and delete as
their own write of the same key) and prints one table, a row per policy.

--trace FILE replays a recorded workload instead of a generated one: JSON
lines {"replica","time","op","key","value"} (op put or delete; time RFC
3339 or seconds), or the output of watch --json captured on real replicas,
one --trace FILE per replica. Pushes, pulls, crashes, partitions and faults
are scheduled around its writes as the flags say. A malformed line is an
error naming the file and line; nothing runs.

--html FILE also writes the report as one self-contained HTML page (inline
SVG plots, no script, no network).

--latency D runs the fleet model instead (sim.RunFleet): up to 1,000
replicas (--replicas, default 1000) each sync once a minute, three times,
on one global log, every remote request taking about D (jittered ±50%)
of logical time, so the writers contend for log positions as they would
at that round trip. It prints the PUTs and LISTs per push, the share of
pushes landing on the first try, retries, the log's commits per second,
the pull fan-in and the time to converge; --json adds
"contention":{"put_per_push","list_per_push","first_try","commits_per_s"}
to the report. It takes --replicas and --seed only.

--json prints the report as one object; with several policies,
{"policies":[{"policy",...},...]}.`,
	flags: []flagDef{
		{name: "replicas", value: true, arg: "N", usage: "replicas, 1 to 26 (default 3)"},
		{name: "ops", value: true, arg: "N", usage: "scheduled operations per run (default 200)"},
		{name: "keys", value: true, arg: "N", usage: "size of the key space (default 8)"},
		{name: "hot", value: true, arg: "S", usage: "Zipf exponent of key popularity, above 1; 0 for uniform (default 1.3)"},
		{name: "skew", value: true, arg: "D", usage: "clock offsets drawn from ±D, a Go duration (default 24h; 0 for none)"},
		{name: "faults", value: true, arg: "P", usage: "remote fault rate, 0 to 0.5 (default 0.1)"},
		{name: "partitions", value: true, arg: "P", usage: "share of operations that cut a replica off (default 0.04)"},
		{name: "crashes", value: true, arg: "P", usage: "share of operations that crash a replica (default 0.05)"},
		{name: "policy", value: true, arg: "NAME[,NAME...]", usage: "lww, mv, counter, set, json or json-mv (default lww); several, comma-separated: every one on identical schedules, one table"},
		{name: "trace", value: true, multi: true, arg: "FILE", usage: "replay the writes of FILE (JSON lines, or watch --json output: one file per replica) under the chosen faults"},
		{name: "html", value: true, arg: "FILE", usage: "also write a self-contained HTML report with plots to FILE"},
		{name: "engine", value: true, arg: "NAME", usage: "mem (crashable) or badger (in memory) (default mem)"},
		{name: "durability", value: true, arg: "MODE", usage: "sync or relaxed (default sync)"},
		{name: "sealed", usage: "run the store encrypted (init --encrypt): every object body sealed, above the faults"},
		{name: "seed", value: true, arg: "N", usage: "seed of the first run (default 1)"},
		{name: "runs", value: true, arg: "N", usage: "runs over consecutive seeds, summed in one report (default 1)"},
		{name: "latency", value: true, arg: "D", usage: "fleet run: model each remote request as taking about D (±50%), on logical time; up to 1,000 --replicas (default 1000), each syncing once a minute 3 times on one global log; reports the push contention"},
	},
	maxArgs: 0,
	run:     runSim,
}

// simConfig builds the simulation config from the flags.
func simConfig(p *parsed) (sim.Config, int, error) {
	cfg := sim.Config{Seed: 1, Replicas: 3, Ops: 200, Keys: 8, Hot: sim.DefaultHot}
	runs := 1
	ints := []struct {
		name string
		dst  *int
		min  int
	}{{"replicas", &cfg.Replicas, 1}, {"ops", &cfg.Ops, 1}, {"keys", &cfg.Keys, 1}, {"runs", &runs, 1}}
	for _, f := range ints {
		if s, ok := p.value(f.name); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < f.min {
				return cfg, 0, usageErrorf("--%s %q: expected a whole number, at least %d", f.name, s, f.min)
			}
			*f.dst = n
		}
	}
	if _, ok := p.value("trace"); ok {
		// The trace's writes are the workload: what shapes a generated one
		// would be silently ignored.
		for _, name := range []string{"ops", "keys", "hot"} {
			if _, ok := p.value(name); ok {
				return cfg, 0, usageErrorf("--%s does not go with --trace: the trace's writes are the workload", name)
			}
		}
	}
	// Rates: 0 turns the feature off (the library reads 0 as its default
	// and a negative rate as off).
	rates := []struct {
		name string
		dst  *float64
		max  float64
	}{{"hot", &cfg.Hot, 100}, {"faults", &cfg.Faults, sim.MaxFaults}, {"partitions", &cfg.Partitions, 0.5}, {"crashes", &cfg.Crashes, 0.5}}
	for _, f := range rates {
		if s, ok := p.value(f.name); ok {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < 0 || v > f.max {
				return cfg, 0, usageErrorf("--%s %q: expected a number from 0 to %v", f.name, s, f.max)
			}
			if v == 0 {
				v = -1
			}
			*f.dst = v
		}
	}
	if s, ok := p.value("skew"); ok {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return cfg, 0, usageErrorf("--skew %q: expected a Go duration such as 90m or 24h", s)
		}
		cfg.Skew = d
		if d == 0 {
			cfg.Skew = -1
		}
	}
	if s, ok := p.value("seed"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cfg, 0, usageErrorf("--seed %q: expected a whole number, 0 or more", s)
		}
		cfg.Seed = n
	}
	if s, ok := p.value("policy"); ok {
		cfg.Policy, _, _ = strings.Cut(s, ",") // a list: simPolicies
	}
	if s, ok := p.value("engine"); ok {
		cfg.Engine = s
	}
	if s, ok := p.value("durability"); ok {
		switch s {
		case "sync":
			cfg.Durability = store.Sync
		case "relaxed":
			cfg.Durability = store.Relaxed
		default:
			return cfg, 0, usageErrorf("--durability %q: expected sync or relaxed", s)
		}
	}
	cfg.Sealed = p.bool("sealed")
	if _, err := cfg.Validate(); err != nil {
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "sim: ", ""), "\n", "; ")
		return cfg, 0, usageErrorf("%s", msg)
	}
	return cfg, runs, nil
}

func runSim(ctx context.Context, e *env) error {
	if _, ok := e.flags.value("latency"); ok {
		return runSimLatency(ctx, e)
	}
	cfg, runs, err := simConfig(e.flags)
	if err != nil {
		return err
	}
	if simCompares(e.flags) {
		return runSimCompare(e, cfg, runs)
	}
	rep, failure := sim.RunMany(cfg, runs)
	var f *sim.Failure
	if failure != nil && !errors.As(failure, &f) {
		return errorf(failure, "simulation: %v", failure)
	}
	if e.json {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		o := newOutput(e.stdout)
		if err := rep.WriteText(o.w); err != nil {
			return outputError(err)
		}
		if err := o.flush(); err != nil {
			return err
		}
	}
	if f != nil {
		return errorf(failure, "did not converge: seed %d broke %s (%d of %d runs failed; the report shows the shortest failing schedule)",
			f.Seed, f.Rule, rep.Failed, rep.Runs)
	}
	return nil
}
