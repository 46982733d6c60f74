package sim

import (
	"errors"
	"flag"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/store"
)

var (
	absenceSeeds = flag.Int("sim.absence", 600, "number of seeded simulations TestAbsenceSweep runs")
	restoreSeeds = flag.Int("sim.restore", 600, "number of seeded simulations TestRestoreSweep runs")
	stagedSeeds  = flag.Int("sim.staged", 600, "number of seeded simulations TestStagedSweep runs")
)

// absenceConfig is the configuration of seed s in the absence sweep:
// the collection sweep's worlds with the absence fault model on: pauses
// at every step (past the retirement age, while others write, sync,
// compact, prune and retire), crashes after any transaction, backups put
// back, directory copies running alongside, offline stretches. Every
// policy; register and CRDT keys alike are retired and rebased.
func absenceConfig(s uint64) Config {
	retire := time.Duration(20+s%40) * time.Second
	c := Config{
		Seed:            s,
		Policy:          []string{PolicyLWW, PolicyMV, PolicyCounter, PolicySet}[s%4],
		Replicas:        3,
		Ops:             30 + int(s%11),
		Keys:            3 + int(s%4),
		Faults:          0.01 + float64(s*37%20)/100,
		Skew:            24 * time.Hour,
		Compactions:     0.08,
		Offline:         0.04,
		Pauses:          0.10,
		CrashTx:         0.04,
		Backups:         0.04,
		RetireAfter:     retire,
		RegistryRefresh: retire / 4,
		AckInterval:     -1,
	}
	switch s % 6 {
	case 1:
		c.Replicas = 2
	case 4:
		c.Replicas = 4
	}
	if c.kind() != kindRegister {
		// A counter or set copied (or restored) with unpublished updates
		// counts them twice once both histories publish: the open case
		// "a counter reidentified while its twin keeps publishing under
		// the old id" of DESIGN.md (TestOpenCounterCopiedCountsTwice).
		c.Backups = 0
	} else if s%3 == 0 {
		c.Copies = 1
	}
	if s%5 == 2 {
		c.Joins = 1
	}
	if s%7 == 3 {
		c.SegmentCap = 1
	}
	if (s/4)%2 == 1 {
		c.Durability = store.Relaxed
	}
	return c
}

// restoreSweepConfig is the configuration of seed s in the restore sweep:
// the absence sweep's worlds (register policies only: a restored counter
// or set counts its unpublished updates twice, see absenceConfig) with
// directories saved and put back five times as often, and compactions
// (half of them pruning, retiring) twice as often, so that a directory
// saved before a compaction is put back below the prune floor, the log
// up to it pruned (S19), or beside a copy of itself (S19b); fewer pauses,
// crashes and offline stretches, which would hide those.
func restoreSweepConfig(s uint64) Config {
	c := absenceConfig(s)
	c.Policy = []string{PolicyLWW, PolicyMV}[s%2]
	c.Backups = 0.20
	c.Compactions = 0.15
	c.Pauses = 0.04
	c.CrashTx = 0.02
	c.Offline = 0.02
	return c
}

// killSweepConfig is the configuration of seed s in the kill sweep: the
// absence worlds where crashes after the Nth transaction are mostly kills
// (kill -9: what was written stays, synced or not), every
// multi-transaction step takes transactions of two records, segments are
// larger and keys many (so a record skipped by a step cut short is not
// healed by a later write of the same key), and no directory is put back.
func killSweepConfig(s uint64) Config {
	c := absenceConfig(s)
	c.CrashTx = 0.15
	c.Kills = 0.7
	c.ApplyChunk = 2
	c.Pauses = 0.05
	c.Backups = 0
	c.Keys = 24
	c.Hot = -1
	c.SegmentCap = 2048
	return c
}

// stagedSweepConfig is the configuration of seed s in the staged sweep:
// small worlds (two replicas, two to four keys) where crashes fall at
// push:staged, so a staged segment outlives its crash and is uploaded by
// a later push, after pulls past deletes (half the updates delete) and
// compactions that collect them, with an ack published after every pull
// (S6).
func stagedSweepConfig(s uint64) Config {
	return Config{
		Seed:        s,
		Policy:      []string{PolicyLWW, PolicyMV}[s%2],
		Replicas:    2,
		Ops:         50,
		Keys:        2 + int(s%3),
		Deletes:     0.5,
		Faults:      0.02,
		Skew:        24 * time.Hour,
		Crashes:     0.15,
		CrashSteps:  []string{"push:staged"},
		Compactions: 0.15,
		AckInterval: -1,
	}
}

// runSweep runs n seeds of cfg from first on two workers and returns the
// failing seeds (sorted by the order they finished), the first failure,
// and the summed report.
func runSweep(t *testing.T, first uint64, n int, cfg func(uint64) Config, stopAfter int) ([]uint64, *Failure, Report) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	seeds := make(chan uint64)
	var (
		mu     sync.Mutex
		failed []uint64
		f1     *Failure
		total  Report
		stop   bool
	)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range seeds {
				rep, err := Run(cfg(s))
				mu.Lock()
				total.add(rep)
				if err != nil {
					var f *Failure
					if !errors.As(err, &f) {
						t.Errorf("seed %d: %v", s, err)
					} else if f1 == nil || s < f1.Seed {
						f1 = f
					}
					failed = append(failed, s)
					if stopAfter > 0 && len(failed) >= stopAfter {
						stop = true
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		mu.Lock()
		st := stop
		mu.Unlock()
		if st {
			break
		}
		seeds <- first + uint64(i)
	}
	close(seeds)
	wg.Wait()
	return failed, f1, total
}

// absenceFindings are the seeds of the first 600 that fail with the
// absence rules in force: none now. Fixed, from this list: 57, 292, 333,
// 339, 512 (a pull paused after listing found a pruned position: it now
// rebases), 171 (a registration retired before its ETag was recorded), 64
// (a record's pos went down when an own push preceded the pull: a real
// collection bug, engine.TestPosNeverGoesDown), 93, 170, 460 (the oracle
// learnt a paused operation's re-stamps after checking the log), 204 (the
// oracle took a twin's dot of another key for the one a clock covered),
// 345 (reidentify's limit, not a lost write: C writes k, is copied to D,
// D publishes that write under C's id, C deletes k and then learns it is
// a copy; reidentify forgets C's own clock entries above what C itself
// published, so C's delete no longer covers the write, which comes back
// as its sibling. The oracle withdrew that claim from the re-stamp but
// not from the versions it carries; it does now, and counts such writes
// in Report.Withdrawn). A seed listed here is logged; any other failing
// seed fails the test.
//
// Beyond the seeds CI runs (600..3000), triaged: 726, 820, 918, 1772, 2639
// (the oracle dated a rebase's synced re-stamp by the operation's last,
// unsynced transaction), 1113 and 2001 (the oracle read a reidentified
// directory's clock entries of its old id as its own dropped twin; 2001 is
// reidentify's limit, as 345), 57 and 1773 (found on the way: re-stamps
// made before a clone verdict, and kept values of a pending rebase, were
// not followed through reidentify), 839 (a write made while a rebase is
// pending starts from the kept value), 880 (a retirement judged at the end
// of a compaction paused after writing it): oracle fixes. 1606 is a replica
// bug: a rebase paused between its pull and its un-retire, while the log is
// pruned past a newer snapshot, un-retires at its old cursor and pushes in
// a freed position below every other cursor (its write is never applied
// elsewhere).
//
// Beyond the seeds CI runs (10,000, found with the listed-tip claim rule
// and failing under today's rules too; TestBeyondCISeeds replays them):
// 4013 was a replica bug, fixed (S29): a registry swap paused after it
// landed recorded the write's time after the pause; retired meanwhile and
// pruned past, the replica took its registry for fresh, never refreshed
// it, and read its empty listing as up to date (k0 read deleted until a
// refresh fell due; nothing lost). A registry write's age now counts from
// before the swap's first request. 9693 (the "object does not exist" on a
// snapshot part) was a replica bug fixed by 9118c15 (S26): a rebase paused
// between choosing the newest snapshot and loading it while a compactor
// wrote a newer one and pruned the old one's parts, which nobody needed
// any more; the rebase now starts again on the newer snapshot. 8229 was
// the oracle (S30): a copy and its original deleted one key under one dot
// at one HLC, one version, which the oracle counted twice in the mv
// conflict it wanted. 5724 and 9000 (missing siblings) were the oracle,
// fixed by e355ddb before this triage (they fail at cf0a56c, pass from
// e355ddb on): a clock entry of a reidentified directory's old id read as
// its own dropped twin rather than the twin it pulled.
var absenceFindings = map[uint64]bool{}

// restoreFindings are the seeds of the first 600 of the restore sweep that
// fail with the absence rules in force: none now. Fixed in the replica,
// from the triage: 473 (a damaged read of the newest snapshot's index that
// still decoded, as listing no parts, made a pruner delete the live part:
// the index is now read until two reads agree, decoded strictly and
// checked), 666 and 708 (a restored directory bootstrapped from a snapshot
// holding its own dots without raising m/published, so reidentify dropped
// versions every other replica holds), 2369 (a compactor whose index
// create was ambiguous read it back damaged, took it for another's, and
// deleted its own parts). Fixed in the oracle, from the first runs:
// 189, 309 (reidentify's carried versions kept claims the re-stamp
// withdrew), 319 (a backup holds writes a later power loss took), 330 (a
// segment pruned within the operation that wrote it was published all the
// same), 408 (a restore took writes a copy still held), 645 (a twin's dot
// on the same key taken for the unpublished twin), 844 (a power failure
// armed for an operation struck the user's reidentify), 1821 (a crashed
// directory whose copy holds its lost writes reissues their dots).
// Beyond the seeds CI runs: 2145 and 2412 were the oracle reading a
// reidentified copy's clock entry of its old id as its own dropped twin
// (the rebase re-stamp had seen, and superseded, the twin's published
// write); 1000 passes since the re-stamp's causal past is its clock at
// rebase:restamped (516780f). No other seed of 600..3000 fails.
//
// Beyond them (10,000 seeds with the listed-tip claim rule; both fail
// under today's rules in their shrunk forms): 2048 was a replica bug,
// fixed (S35): a restored backup wrote again under a dot its earlier self
// had published (at, not above, its counter, so no clone check caught
// it), loaded a snapshot holding the published version of that dot, and
// merged the two as one, dropping the published delete; reidentify then
// re-stamped its write with a clock covering the dot, and the delete was
// gone everywhere. A version under this id that a local version of the
// same dot contradicts is now ErrCloned before it merges
// (protocol.TwinDot). 307 was the oracle (S34): a replica that joined
// after every replica read a key as deleted replays the log and reads the
// older write on its way; the no-resurrection mark now holds a replica
// that joined after it only once it has seen every write of the key.
var restoreFindings = map[uint64]bool{}

// sweepFindings runs n seeds of cfg and fails on any failing seed that is
// not a known finding.
func sweepFindings(t *testing.T, name string, n int, cfg func(uint64) Config, known map[uint64]bool) {
	start := time.Now()
	failed, f, total := runSweep(t, *sweepFirst, n, cfg, 0)
	var fresh []uint64
	for _, s := range failed {
		if !known[s] {
			fresh = append(fresh, s)
		}
	}
	t.Logf("%s: %d simulations in %v: %d failed %v; %d ops, %d writes, %d crashes, %d pauses, %d compactions, %d retirements, %d pruned, %d backups, %d restores, %d copies, %d reidentified, %d re-stamped, %d withdrawn",
		name, n, time.Since(start).Round(time.Millisecond), len(failed), failed, total.Ops, total.Writes, total.Crashes,
		total.Pauses, total.Compactions, total.Retired, total.Pruned, total.Backups, total.Restores, total.Copies, total.Reidentified, total.Restamped, total.Withdrawn)
	if len(fresh) > 0 {
		t.Errorf("%d seeds failed that are no known finding: %v (rerun one with -sim.seed=N and a count of 1)", len(fresh), fresh)
	} else if f != nil {
		t.Logf("%d known findings failed %v; the first:\n%v", len(failed), failed, f)
	}
}

// TestRestoreSweep runs the restore sweep (-sim.restore seeds): with the
// absence rules in force, every seed converges (but the findings above).
func TestRestoreSweep(t *testing.T) {
	sweepFindings(t, "restore sweep", *restoreSeeds, restoreSweepConfig, restoreFindings)
}

// TestKillSweep runs the kill sweep (as many seeds as the restore sweep;
// 3,000 pass, but the findings below).
func TestKillSweep(t *testing.T) {
	sweepFindings(t, "kill sweep", *restoreSeeds, killSweepConfig, killFindings)
}

// killFindings are the seeds of the first 600 of the kill sweep that fail
// with the absence rules in force: none now. Fixed in the oracle: 480 (C,
// paused at push:checked while A retired it and pruned, rebased after a
// power failure and was copied to D with the rebase pending; C re-stamped
// its write again and published it at dot C:4, D wrote the key at its own
// C:4; D's sync resumed the copied rebase, loaded a snapshot holding C's
// C:4, re-stamped its write over it at C:5, then was fenced and
// reidentified, keeping C:4 (published, as the snapshot said). The
// re-stamp had loaded C's C:4 and superseded it; the oracle read the C:4
// entry as D's own discarded twin. It now notes the own-id versions a
// rebase loads (oracle.adopt): an entry of that dot stands for them).
// No other seed of 0..2999 fails.
//
// Beyond the seeds CI runs: 7473 was a replica bug, fixed
// (TestKillSweepFound replays it: a kill between a pull's apply of an own
// segment, uploaded by a copy, and the transaction raising m/published
// after it; reidentify then dropped versions every other replica holds).
// 16980 was
// the simulator: a power loss judged "published write forgotten" before
// taking back the writes a copy of the directory still holds (the copy
// had published it). 10126, 15286 and 17439 (Relaxed durability) were
// replica bugs, fixed (TestKillSweepFound replays them, S31 and S32 too):
//   - 10126, 15286 (counter): a write made while a rebase is paused at
//     rebase:kept (after keepDirty read the marks, before the records are
//     listed and discarded) went with its record and mark: not kept, not
//     re-stamped (a passive kept entry is not re-stamped either). The
//     discard (discardChunk) now keeps a key dirty again first, as it
//     reads, in the transaction that deletes its record and mark.
//   - 17439 (set): a rebase's re-stamp joined the kept state as a sibling
//     of the loaded record (withKept): each sibling kept its members and
//     only the join's context took in the record's clock (with G, the
//     record collected), so an element the loaded state's context covers
//     and no longer holds (removed, then collected) came back. The
//     re-stamp (restamp, crdtUpdateLoaded) now joins the loaded state and
//     the kept one as two states, and so does withKept itself: a write
//     made while the rebase is pending, after the load, brought the
//     member back the same way (S33, a schedule of its own).
//
// 11932 and 16989 (Relaxed durability) were replica bugs, fixed
// (TestKillSweepFound replays them, S36 and S37 too; the oracle's
// verdicts were right):
//   - 11932 (retired-online): a registration whose create landed but
//     answered an error was adopted by a later pull's register (its create
//     gets 503, the read-back finds its own nonce), which recorded the
//     registry as written now (regState.At); registryDue then skipped the
//     refresh, the pull returned ok, and the body on the store, written
//     150 s earlier, was retired 0.4 s later. An adoption is dated by its
//     body's Wall (67f4288; now the rule protocol.AdoptedAt, old rule
//     AdoptedNow: unknown, so refreshed at once, when there is none), and
//     a create answered ok from before its request.
//   - 16989 (mv, a copy): a retired pusher's create in a freed position
//     (noticed, rebased, pushed again) stays in the log; the original,
//     reidentified (not ready, cursor 0 below the snapshot at 1), listed a
//     log that looks contiguous, never loaded the snapshot and missed the
//     pruned segment's write for good. Fixed by 67f4288 (protocol.PlanPull):
//     a replica not ready below the newest snapshot loads it when a listed
//     position at or below it was created after the snapshot's index (S37
//     guards it; old rule TrustContiguousLog). Open: a create in the same
//     second as the index (S37 with no advance between them fails), or on
//     a backend without LastModified, is not told from the log. Loading the
//     snapshot whenever a replica not ready is below it closes that and
//     passes the kill sweep's 20,000 seeds, but absence seed 9240 then
//     loses a write (A and its copy D both write k0 at dot A:1 before
//     either pulls; A rebases before its first push, D is fenced and
//     reidentified, and A's k0 is gone: "no write saw it"); not committed
//     until that is understood.
//
// Add a seed to TestKillSweepFound once fixed.
var killFindings = map[uint64]bool{}

// TestStagedSweep runs the staged sweep (-sim.staged seeds; 3,000 pass).
func TestStagedSweep(t *testing.T) {
	sweepFindings(t, "staged sweep", *stagedSeeds, stagedSweepConfig, nil)
}

// TestAbsenceSweep runs the absence sweep (-sim.absence seeds): with the
// absence rules in force, every seed converges (but the findings above).
func TestAbsenceSweep(t *testing.T) {
	start := time.Now()
	failed, f, total := runSweep(t, *sweepFirst, *absenceSeeds, absenceConfig, 0)
	var fresh []uint64
	for _, s := range failed {
		if !absenceFindings[s] {
			fresh = append(fresh, s)
		}
	}
	t.Logf("%d simulations in %v: %d failed %v; %d ops, %d writes, %d crashes, %d pauses, %d compactions, %d retirements, %d pruned, %d backups, %d restores, %d copies, %d reidentified, %d re-stamped",
		*absenceSeeds, time.Since(start).Round(time.Millisecond), len(failed), failed, total.Ops, total.Writes, total.Crashes,
		total.Pauses, total.Compactions, total.Retired, total.Pruned, total.Backups, total.Restores, total.Copies, total.Reidentified, total.Restamped)
	if len(fresh) > 0 {
		t.Errorf("%d seeds failed that are no known finding: %v (rerun one with -sim.absence=1 -sim.seed=N)", len(fresh), fresh)
	} else if f != nil {
		t.Logf("%d known findings failed %v; the first:\n%v", len(failed), failed, f)
	}
}

// sweepOldRules are the old rules the absence sweeps must find by
// themselves (DESIGN.md: "a random sweep with any one of these old rules
// restored must find it"), with the sweep that finds it (absenceConfig
// when nil), the rules their failures break and the seeds (from 0) the
// search may take: the measured number, with room.
var sweepOldRules = []struct {
	knob  string // the OldRule's name
	cfg   func(uint64) Config
	rules []string
	seeds int
}{
	// A retired body adopted as one's own: the replica publishes beside
	// its retirer's view, and a later read-back calls it a copy.
	// Measured: seed 10 (11 seeds).
	{"RetiredNotSticky", nil, []string{RuleError, RuleConvergence, RuleCausality, RuleSiblings, RuleDots}, 60},
	// A create in a freed position, committed: a pull finds the position
	// again as a segment under its own id it never recorded. Measured:
	// seed 80 (81 seeds).
	{"CommitUnchecked", nil, []string{RuleError, RuleConvergence, RuleCausality, RuleSiblings, RuleRead, RuleDots}, 200},
	// The absence sweep does not find the next three in 3,000 seeds: it
	// restores a directory in about one run in a hundred, and crashes at
	// push:staged once in 200 operations. The restore and staged sweeps
	// widen exactly that part of the fault model.
	//
	// A directory put back below the prune floor, taking "nothing listed"
	// for "up to date": it pushes at a freed position with dots its later
	// self published (S19). Measured: seed 1693 of the restore sweep
	// (1694 seeds: a restored replica takes its empty listing for up to
	// date and never reads the pruned write). 307 (308 seeds) before was
	// no finding of the rule: a joiner catching up read the write before
	// the delete, which the oracle took for a resurrection (S34); 51
	// before prune bounded its floor by the snapshot written before it
	// read the acks, which closed the schedule of seed 51 by another rule.
	{"NothingListedUpToDate", restoreSweepConfig, []string{RuleError, RuleConvergence, RuleCausality, RuleSiblings, RuleRead, RuleDots, RuleResurrection}, 2000},
	// A restored or copied directory rebasing on a registry body it did
	// not write, loading its own future dots: two histories publish one
	// dot (S19b). Measured: seed 559 of the restore sweep (560 seeds).
	{"RebaseAnyRegistry", restoreSweepConfig, []string{RuleError, RuleConvergence, RuleCausality, RuleSiblings, RuleRead, RuleDots}, 900},
	// The ack not lowered to the staging base: a segment staged before a
	// crash is uploaded after its replica pulled past a delete and a
	// compaction collected it against that ack; the stale record is taken
	// whole (S6). Measured: seed 328 of the staged sweep (329 seeds).
	{"AckIgnoresStaged", stagedSweepConfig, []string{RuleConvergence, RuleCausality, RuleSiblings, RuleRead}, 600},
	// Planted bugs (mutation testing) the suite used to miss.
	//
	// The cursor advanced in a segment's first transaction: a kill after
	// it skips the rest of the segment for good. Only a kill shows it (a
	// power failure takes the unsynced transaction back), and only steps
	// of several transactions. Measured: seed 4 of the kill sweep (5).
	{"CursorFirst", killSweepConfig, []string{RuleConvergence, RuleCausality, RuleSiblings, RuleRead}, 60},
	// A dirty key collected: a delete made while a compaction runs (a
	// pause inside it) is never published. Measured: seed 439 of the
	// absence sweep (440); seed 2160 (2161) since a push that finds
	// segments staged by an interrupted one also sends the rest of the
	// outbox (issue 12: the request sequence, and so the sweep's draws,
	// changed).
	{"CollectIgnoresMark", nil, []string{RuleError, RuleConvergence, RuleCausality, RuleSiblings, RuleRead}, 2400},
	// Collection against the largest ack, with no pull to a tip listed
	// after reading the acks (S4): others write, push and ack during the
	// compaction. Measured: seed 132 of the absence sweep (133).
	{"CollectAgainstMaxAck", nil, []string{RuleError, RuleConvergence, RuleCausality, RuleSiblings, RuleRead, RuleResurrection}, 300},
}

// findOldRule runs a sweep (cfg; the absence sweep when nil) from seed 0 with an old rule
// restored on every replica, two seeds at a time, until a seed fails that
// passes without the old rule (a seed that fails either way is a finding
// of its own, not this rule's). It returns that failure and how many
// seeds it took.
func findOldRule(t *testing.T, cfg func(uint64) Config, rule OldRule, limit int) (*Failure, int) {
	if cfg == nil {
		cfg = absenceConfig
	}
	for s := uint64(0); s < uint64(limit); s += 2 {
		type res struct {
			f  *Failure
			ok bool
		}
		out := make([]res, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := cfg(s + uint64(i))
				rule.Apply(&c)
				c.NoShrink = true
				_, err := Run(c)
				var f *Failure
				if !errors.As(err, &f) {
					return
				}
				c = cfg(s + uint64(i))
				c.NoShrink = true
				if _, err := Run(c); err == nil {
					out[i] = res{f, true}
				}
			}()
		}
		wg.Wait()
		for i, r := range out {
			if r.ok {
				// Shrink it now (the search ran unshrunk).
				c := r.f.Config
				c.NoShrink, c.ShrinkRuns = false, 150
				_, err := runShrunk(c, r.f.Schedule)
				var f *Failure
				if errors.As(err, &f) {
					return f, int(s) + i + 1
				}
				return r.f, int(s) + i + 1
			}
		}
	}
	return nil, limit
}

// TestSweepFindsOldRules restores each old rule on every replica and runs
// the absence sweep until a seed fails that passes without it: it must,
// within the seeds given, with a shrunk schedule and the rule expected.
func TestSweepFindsOldRules(t *testing.T) {
	for _, o := range sweepOldRules {
		t.Run(o.knob, func(t *testing.T) {
			rule, ok := OldRuleNamed(o.knob)
			if !ok {
				t.Fatalf("no old rule %s", o.knob)
			}
			f, n := findOldRule(t, o.cfg, rule, o.seeds)
			if f == nil {
				t.Fatalf("%d seeds of the absence sweep find nothing with the old rule %s restored", n, o.knob)
			}
			if len(o.rules) > 0 && !slices.Contains(o.rules, f.Rule) {
				t.Errorf("%s: seed %d fails with rule %s, want one of %v:\n%v", o.knob, f.Seed, f.Rule, o.rules, f)
			}
			t.Logf("%s: found at seed %d (%d seeds run): %s; shrunk to %d of %d operations: %.400s", o.knob, f.Seed, n, f.Rule, len(f.Schedule), f.Generated, f.Detail)
		})
	}
}

// TestKillSweepFound replays seeds beyond the ones the kill sweep runs in
// CI that found replica bugs, now fixed. 7473: a copy made while its push
// was fenced pulled the segment the original uploaded (its own, by
// m/sent) and was killed between the transaction that moved its cursor
// past it and the one that raised m/published; reidentify then dropped
// those dots, which every other replica holds (m/published is now raised
// before the segment is applied, and before a push clears any mark).
// 10126, 15286: a local write between a rebase's keepDirty and its discard
// went with its record (the discard now keeps a dirty key first). 11932: a
// registration adopted after an ambiguous create took the adoption time
// for its write time, so the idle refresh was skipped and the replica
// retired while online (AdoptedAt: its body's Wall; S36). 16989: a
// reidentified replica took a contiguous log holding a retired pusher's
// create in a freed position for its own, below the newest snapshot, and
// never loaded it (a position at or below the newest snapshot created
// after it makes a replica not ready load it: PlanPull; S37). 17439: a set re-stamped
// after a pending rebase joined the kept state as a sibling, so a member
// the loaded state had removed came back (the re-stamp now joins loaded ⊔
// kept as two states, as do reads and writes while the rebase is pending:
// S33).
func TestKillSweepFound(t *testing.T) {
	for _, s := range []uint64{7473, 10126, 11932, 15286, 16989, 17439} {
		if _, err := Run(killSweepConfig(s)); err != nil {
			t.Errorf("kill sweep seed %d: %v", s, err)
		}
	}
}
