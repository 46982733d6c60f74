package cli

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/sim"
)

// simLatencyFlags are the sim flags a fleet run (--latency) reads; any
// other is refused with it.
var simLatencyFlags = []string{"latency", "replicas", "seed"}

// runSimLatency runs ebreplica sim --latency D: the fleet model
// (sim.RunFleet) of up to 1,000 replicas, each syncing once a minute three
// times, on today's single global log, every request taking about D.
func runSimLatency(_ context.Context, e *env) error {
	p := e.flags
	global := func(name string) bool {
		return slices.ContainsFunc(globalFlags, func(f flagDef) bool { return f.name == name })
	}
	var other []string
	for name := range p.values {
		if !slices.Contains(simLatencyFlags, name) && !global(name) {
			other = append(other, name)
		}
	}
	for name, on := range p.bools {
		if on && !global(name) {
			other = append(other, name)
		}
	}
	if len(other) > 0 {
		slices.Sort(other)
		return usageErrorf("--%s: not with --latency (a fleet run models the requests of pushes and pulls only; it takes --replicas and --seed)", other[0])
	}
	s, _ := p.value("latency")
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return usageErrorf("--latency %q: expected a positive Go duration such as 20ms", s)
	}
	cfg := sim.FleetConfig{Seed: 1, Replicas: sim.DefaultFleetReplicas, Latency: sim.Latency{Mean: d}}
	if s, ok := p.value("replicas"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > sim.MaxFleet {
			return usageErrorf("--replicas %q: expected a whole number from 1 to %d with --latency", s, sim.MaxFleet)
		}
		cfg.Replicas = n
	}
	if s, ok := p.value("seed"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return usageErrorf("--seed %q: expected a whole number, 0 or more", s)
		}
		cfg.Seed = n
	}
	if _, err := cfg.Validate(); err != nil {
		return usageErrorf("%s", strings.ReplaceAll(strings.ReplaceAll(err.Error(), "sim: ", ""), "\n", "; "))
	}
	rep, err := sim.RunFleet(cfg)
	if err != nil {
		return errorf(err, "simulation: %v", err)
	}
	if e.json {
		if err := writeJSON(e.stdout, rep.Report()); err != nil {
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
	if !rep.Converged {
		return errorf(nil, "did not converge: a replica still lacked segments when the run ended")
	}
	return nil
}
