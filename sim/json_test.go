package sim

import (
	"flag"
	"testing"
	"time"
)

var (
	jsonSeeds  = flag.Int("sim.json", 300, "number of seeds of each json sweep (TestJSONSweeps)")
	jsonCopies = flag.Bool("sim.json-copies", false, "TestJSONSweeps with backups put back and directory copies (fails on the open case of a counter re-stamped by reidentify while its twin publishes it)")
)

// TestJSONSweeps runs the bulk sweep's and the absence sweep's worlds with
// the json policy and its field-editing workload (-sim.json seeds each):
// the oracle computes every document (oracle.document) and every replica
// must read it.
func TestJSONSweeps(t *testing.T) {
	n := *jsonSeeds
	if testing.Short() {
		n /= 5
	}
	for name, cfg := range map[string]func(uint64) Config{"sweep": sweepConfig, "absence": absenceConfig} {
		t.Run(name, func(t *testing.T) {
			json := func(s uint64) Config {
				c := cfg(s)
				c.Policy = []string{PolicyJSON, PolicyJSONMV}[s%2]
				// Without backups put back and directory copies unless
				// -sim.json-copies: with them, the only failures are the
				// open case of DESIGN.md "a counter reidentified while its
				// twin keeps publishing under the old id": a copy's (or a
				// restored backup's) unpublished increments of the counter
				// field visits, which reidentify re-stamps while its twin
				// publishes them too, count twice (75 of the absence
				// sweep's first 10,000 seeds, the first 24, 36, 72, and
				// nothing else; none of the bulk sweep's first 5,000).
				// Seeds 488, 684, 480, 1140 and 1809, written off once as
				// reidentify's or the oracle's limits, were gaps of the
				// oracle, fixed (S24, S25), as were 8137, 9505 and 9643
				// (S27); 3940 and 4853, a rebase failing on a snapshot
				// pruned while it paused, an engine bug, fixed (S26).
				if !*jsonCopies {
					c.Backups, c.Copies = 0, 0
				}
				return c
			}
			start := time.Now()
			failed, f, total := runSweep(t, *sweepFirst, n, json, 3)
			t.Logf("%d simulations in %v: %d failed %v; %d ops, %d writes, %d compactions, %d collected, %d retirements, %d re-stamped, %d reidentified",
				n, time.Since(start).Round(time.Millisecond), len(failed), failed, total.Ops, total.Writes, total.Compactions,
				total.Collected, total.Retired, total.Restamped, total.Reidentified)
			if f != nil {
				t.Fatalf("%d seeds failed %v; the first:\n%v", len(failed), failed, f)
			}
		})
	}
}
