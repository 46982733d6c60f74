package sim

import (
	"errors"
	"fmt"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"slices"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

// Policy names accepted by Config.Policy (the built-in policies; a user's
// own goes in Config.UserPolicy).
const (
	PolicyLWW     = merge.NameLWW
	PolicyMV      = merge.NameMV
	PolicyCounter = merge.NameCounter
	PolicySet     = merge.NameSet
	PolicyJSON    = merge.NameJSON
	PolicyJSONMV  = merge.NameJSONMV
)

// Engines accepted by Config.Engine.
const (
	EngineMem    = "mem"    // store.Mem: map-backed, crashable (power loss of unsynced writes)
	EngineBadger = "badger" // in-memory Badger: a crash cannot be modelled (see Config.Crashes)
)

// Defaults of the zero Config fields.
const (
	DefaultReplicas   = 3
	DefaultOps        = 40
	DefaultKeys       = 6
	DefaultHot        = 1.3
	DefaultSkew       = 24 * time.Hour
	DefaultDriftPPM   = 500
	DefaultJumps      = 0.03
	DefaultFaults     = 0.10
	DefaultPartitions = 0.04
	DefaultCrashes    = 0.05
	DefaultSegmentCap = 256
	DefaultMaxRounds  = 4
	DefaultShrinkRuns = 300
	// MaxFaults is the highest remote fault rate accepted.
	MaxFaults = 0.5
)

// Config describes one simulation. The zero value of each field means its
// default (see the field); for the rates and the skew, a negative value
// turns the feature off. Run validates it in one place.
type Config struct {
	// Seed seeds everything: replica ids, wall clocks, the schedule and the
	// faults. The same Config gives the same trace, byte for byte.
	Seed uint64
	// Replicas is the number of replicas, 1 to 26, named A, B, C...
	// (default 3).
	Replicas int
	// Ops is the number of scheduled operations before the faults stop and
	// the replicas converge (default 40).
	Ops int
	// Keys is the size of the key space, k0..k<n-1> (default 6).
	Keys int
	// Hot is the Zipf exponent of key popularity: above 1, k0 is the
	// hottest key (default 1.3); a value in (0, 1] or below 0 means
	// uniform.
	Hot float64
	// Skew bounds each replica's wall-clock offset: drawn uniformly from
	// [-Skew, +Skew] (default 24h; negative: no offset).
	Skew time.Duration
	// Offsets, when set, fixes each replica's offset (scripted scenarios);
	// its length must be Replicas. Drift and Jumps still apply.
	Offsets []time.Duration
	// DriftPPM bounds each replica's clock drift, in parts per million
	// (default 500; negative: none).
	DriftPPM float64
	// Jumps is the share of operations that jump one replica's wall clock
	// back by up to 30 minutes (default 0.03; negative: none).
	Jumps float64
	// Faults is the probability that a remote request fails (500, 503 or
	// a timeout, wrapping remote.ErrTransient); writes are also reported
	// failed after being applied (ambiguous) at Faults/2, reads come back
	// torn or corrupt at Faults/8 each, and create-only writes are applied
	// again a few requests later (late duplicates, same bytes) at
	// Faults/4. At most MaxFaults (default 0.10; negative: none).
	Faults float64
	// Partitions is the share of operations that cut one replica off the
	// remote for the next 1 to 8 operations (default 0.04; negative: none).
	Partitions float64
	// Crashes is the share of operations that crash one replica: at a
	// named step of push or pull (engine.Hooks.Step), or at rest. On the
	// mem engine a crash is a power loss (store.Mem.Crash: writes not
	// fsynced are lost) and the replica is reopened on the same engine and
	// id. Badger in memory cannot lose power: there a step crash aborts
	// the operation at the step and the replica carries on, and crashes at
	// rest are skipped (default 0.05; negative: none).
	Crashes float64
	// CrashSteps, when set, are the steps a crash at a step is drawn from
	// (Steps when nil): a sweep can dwell on one, e.g. "push:staged",
	// whose staged segment outlives the crash and is uploaded later,
	// after pulls past deletes and compactions (S6).
	CrashSteps []string
	// Deletes, when set, is the share of updates that delete (remove a
	// member, decrement) instead of one in five: deleted keys that stay
	// deleted are what collection collects.
	Deletes float64
	// Policy is the merge policy of every key: "lww" (default), "mv",
	// "counter" (updates are increments) or "set" (updates add and remove
	// members).
	Policy string
	// UserPolicy, when set, replaces Policy: a user's own policy (for
	// example a merge.NewFunc) for every key. Updates are puts, deletes and
	// batches; the invariants checked are the policy-independent ones, and
	// that every replica reads the same.
	UserPolicy merge.Policy
	// Engine is "mem" (default) or "badger" (in memory).
	Engine string
	// Durability of local writes: store.Sync (default) or store.Relaxed.
	// With Relaxed, a crash may lose the writes no fsync has covered yet;
	// the oracle models which (see package doc).
	Durability store.Durability
	// Codec of segments: "raw" (default) or "zstd".
	Codec string
	// Sealed runs the store encrypted (remote/sealremote): every replica
	// shares one device key and passes Encrypt, so whichever connects
	// first creates the store's keys; every object body but store.json and
	// keys/ is sealed above the faults, so a torn or corrupt read of one
	// fails authentication.
	Sealed bool
	// SegmentCap is the replicas' segment cap in bytes; small, so pushes
	// split into several segments (default 256).
	SegmentCap int
	// MaxDrift is the replicas' HLC MaxDrift (clock.DefaultMaxDrift when
	// 0): remote timestamps further ahead are capped.
	MaxDrift time.Duration
	// MaxRounds bounds the sync rounds (every replica syncs once per
	// round) after the faults stop; at least 2 are run (default 4).
	MaxRounds int
	// NoShrink reports a failure with the whole schedule, unshrunk.
	NoShrink bool
	// Timeline records, after every operation and at the end, each
	// replica's keys with concurrent versions and keys pending a push
	// (Report.Timeline; the plots of WriteHTML). Off by default: it scans
	// every replica after every operation.
	Timeline bool
	// ShrinkRuns bounds the re-runs spent shrinking a failing schedule
	// (default 300).
	ShrinkRuns int

	// Collection, snapshots, bootstrap and retirement (issue 7). Unlike the
	// rates above, zero means none: these are off unless asked for.

	// Compactions is the share of operations that run Compact on one
	// replica (OpCompact): half of them prune, with a grace period that is
	// either none or 1 to 20 s of logical time, retiring replicas whose
	// registry is older than RetireAfter.
	Compactions float64
	// Joins is the number of new replicas that join mid-run (OpBootstrap):
	// each bootstraps from the newest snapshot on its first pull.
	// Replicas+Joins is at most 26.
	Joins int
	// Offline is the share of operations that take one replica offline
	// (OpOffline) for the next 8 to 24 operations: it keeps writing but
	// neither pushes nor pulls, so a compactor may retire it; back online,
	// its push or pull rebases.
	Offline float64
	// RetireAfter is the CompactOptions.RetireAfter of generated
	// compactions (engine.DefaultRetireAfter, 30 days, when 0: nobody is
	// retired in a run of minutes).
	RetireAfter time.Duration
	// AckInterval is the replicas' Options.AckInterval (the replica's
	// default when 0; negative: an ack after every pull).
	AckInterval time.Duration

	// The absence fault model (DESIGN.md: "a pause of any length at every
	// step; restoring a directory from an earlier copy; copying a directory
	// at any step; long absences across other replicas' pruning"). Zero
	// means none, as above, so older configs keep their schedules.

	// Pauses is the share of operations that pause one replica (OpPause):
	// it runs a push, pull, sync or compaction and, at a step of
	// AllSteps, stops while the logical clock moves on (up to MaxPause)
	// and other replicas write, sync and compact with pruning and
	// retirement; then it goes on.
	Pauses float64
	// MaxPause bounds the clock's move during a pause (5 × RetireAfter
	// when 0, or 5 × engine.DefaultRetireAfter).
	MaxPause time.Duration
	// CrashTx is the share of operations that crash one replica after the
	// Nth engine transaction of a push, pull, sync or compaction, N drawn
	// from 1 to 12 (mem engine only: every transaction boundary of a
	// multi-transaction step).
	CrashTx float64
	// Kills is the share of those crashes that kill the process (kill -9)
	// instead of cutting the power: the transactions written so far stay,
	// synced or not. (0: none, so that existing seeds keep their meaning.)
	Kills float64
	// ApplyChunk, when positive, is the replicas' Hooks.ApplyChunk: every
	// multi-transaction step (a segment's application, a commit, a
	// rebase) takes transactions of that many records, so that crashes and
	// kills after the Nth transaction land inside them.
	ApplyChunk int
	// Backups is the share of operations that save a copy of one replica's
	// directory (OpBackup, at rest or at a step) or put its last saved copy
	// back (OpRestore), half each (mem engine only).
	Backups float64
	// Copies is the number of directory copies made mid-run (OpCopy, at
	// rest or at a step): each starts a new replica with the same id that
	// runs alongside. Replicas+Joins+Copies is at most 26 (mem engine
	// only).
	Copies int

	// RegistryRefresh is the replicas' Options.RegistryRefresh (the
	// replica's default, 24 h, when 0): an idle pull rewrites a registry
	// this old, so an online replica is never retired.
	RegistryRefresh time.Duration

	// ListEvery is the replicas' Options.ListEvery: how long an idle
	// pull's one GET is trusted without a listing. 0 here means every
	// pull lists (the simulator's runs retire online replicas with a
	// RetireAfter far below the RegistryRefresh, and finish without
	// logical time passing); set it to exercise the one-GET idle poll.
	ListEvery time.Duration

	// Rules, when set, adjusts the protocol rules of replica i (old rules;
	// see OldRule). Leave it unset.
	Rules func(i int, r *protocol.Rules)

	// Old rules, for tests that show the simulator catches them. Leave
	// them unset.

	// Merge replaces merge.Merge where replicas apply pulled records
	// (Rules.Merge).
	Merge func(local, remote merge.Record) merge.Record
	// UnsyncedStaging stages pushes without fsync (Rules.Sync).
	UnsyncedStaging bool
	// UnsyncedPending saves the registry's pending write without fsync
	// (emulated in the engine wrapper: no replica knob restores it). S14.
	UnsyncedPending bool

	// restored names the old rules OldRule.Apply restored, so that a
	// failure's text form (Failure.Text) can name them.
	restored []restored
}

func orDefault[T int | float64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// rate gives a rate its default; a negative rate (off) stays negative so
// that validate is idempotent. Use on() to read it.
func rate(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// on is a validated rate as a probability: 0 when turned off.
func on(p float64) float64 { return max(p, 0) }

// Validate returns the config with its defaults filled in, or the
// reasons it is invalid. Run and the other entry points call it.
func (c Config) Validate() (Config, error) { return c.validate() }

// validate fills in the defaults and checks the config: the one place
// that does so.
func (c Config) validate() (Config, error) {
	c.Replicas = orDefault(c.Replicas, DefaultReplicas)
	c.Ops = orDefault(c.Ops, DefaultOps)
	c.Keys = orDefault(c.Keys, DefaultKeys)
	c.Hot = orDefault(c.Hot, DefaultHot)
	if c.Hot <= 1 {
		c.Hot = -1 // uniform
	}
	if c.Skew == 0 {
		c.Skew = DefaultSkew
	}
	c.DriftPPM = rate(c.DriftPPM, DefaultDriftPPM)
	c.Jumps = rate(c.Jumps, DefaultJumps)
	c.Faults = rate(c.Faults, DefaultFaults)
	c.Partitions = rate(c.Partitions, DefaultPartitions)
	c.Crashes = rate(c.Crashes, DefaultCrashes)
	if c.Policy == "" {
		c.Policy = PolicyLWW
	}
	if c.Engine == "" {
		c.Engine = EngineMem
	}
	if c.Codec == "" {
		c.Codec = "raw"
	}
	c.SegmentCap = orDefault(c.SegmentCap, DefaultSegmentCap)
	c.MaxRounds = max(orDefault(c.MaxRounds, DefaultMaxRounds), 2)
	c.ShrinkRuns = orDefault(c.ShrinkRuns, DefaultShrinkRuns)

	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sim: "+format, a...)) }
	if c.Replicas < 1 || c.Replicas > 26 {
		bad("Replicas %d: want 1 to 26", c.Replicas)
	}
	if c.Joins < 0 || c.Replicas+c.Joins > 26 {
		bad("Joins %d: want 0 to %d", c.Joins, 26-c.Replicas)
	}
	if c.Copies < 0 || c.Replicas+c.Joins+c.Copies > 26 {
		bad("Copies %d: want 0 to %d", c.Copies, 26-c.Replicas-c.Joins)
	}
	if c.Pauses < 0 || c.CrashTx < 0 || c.Backups < 0 || c.MaxPause < 0 || c.RegistryRefresh < 0 {
		bad("Pauses, CrashTx, Backups, MaxPause and RegistryRefresh must not be negative")
	}
	if c.Deletes < 0 || c.Deletes > 1 {
		bad("Deletes %v: want 0 to 1", c.Deletes)
	}
	for _, st := range c.CrashSteps {
		if !slices.Contains(Steps, st) {
			bad("CrashSteps: %q is no step of Steps", st)
		}
	}
	if c.Compactions < 0 || c.Offline < 0 || c.Compactions+c.Offline > 0.5 {
		bad("Compactions %v and Offline %v: want at least 0, at most 0.5 together", c.Compactions, c.Offline)
	}
	if c.RetireAfter < 0 {
		bad("RetireAfter must not be negative")
	}
	if c.Ops < 0 {
		bad("Ops %d: must not be negative", c.Ops)
	}
	if c.Keys < 1 {
		bad("Keys %d: want at least 1", c.Keys)
	}
	if c.Offsets != nil && len(c.Offsets) != c.Replicas {
		bad("Offsets has %d entries for %d replicas", len(c.Offsets), c.Replicas)
	}
	if c.Faults > MaxFaults {
		bad("Faults %v: at most %v", c.Faults, MaxFaults)
	}
	for name, p := range map[string]float64{"Jumps": c.Jumps, "Partitions": c.Partitions, "Crashes": c.Crashes} {
		if p > 1 {
			bad("%s %v: at most 1", name, p)
		}
	}
	if sum := on(c.Jumps) + on(c.Partitions) + on(c.Crashes) + c.Compactions + c.Offline + c.Pauses + c.CrashTx + c.Backups; sum > 0.9 {
		bad("Jumps+Partitions+Crashes+Compactions+Offline+Pauses+CrashTx+Backups %v: at most 0.9, leave room for writes and syncs", sum)
	}
	if c.UserPolicy == nil {
		if _, ok := merge.Builtin(c.Policy); !ok {
			bad("unknown Policy %q (want lww, mv, counter, set, json or json-mv, or set UserPolicy)", c.Policy)
		}
	}
	if c.Engine != EngineMem && c.Engine != EngineBadger {
		bad("unknown Engine %q (want mem or badger)", c.Engine)
	}
	if c.Durability != store.Sync && c.Durability != store.Relaxed {
		bad("unknown Durability %d", c.Durability)
	}
	if c.Codec != "raw" && c.Codec != "zstd" {
		bad("unknown Codec %q (want raw or zstd)", c.Codec)
	}
	if c.SegmentCap < 0 || c.MaxDrift < 0 || c.MaxRounds < 0 || c.ShrinkRuns < 0 {
		bad("SegmentCap, MaxDrift, MaxRounds and ShrinkRuns must not be negative")
	}
	return c, errors.Join(errs...)
}

// policyName is the policy in force, for reports.
func (c Config) policyName() string {
	if c.UserPolicy != nil {
		return c.UserPolicy.Name()
	}
	return c.Policy
}

// kind says which writes and checks the policy calls for.
type policyKind int

const (
	kindRegister policyKind = iota // lww, mv or a user policy: put, delete, batch
	kindCounter
	kindSet
	kindJSON // json documents: patches of single fields
)

func (c Config) kind() policyKind {
	switch {
	case c.UserPolicy != nil:
		return kindRegister
	case c.Policy == PolicyCounter:
		return kindCounter
	case c.Policy == PolicySet:
		return kindSet
	case c.Policy == PolicyJSON || c.Policy == PolicyJSONMV:
		return kindJSON
	}
	return kindRegister
}

func (c Config) policy() merge.Policy {
	if c.UserPolicy != nil {
		return c.UserPolicy
	}
	p, _ := merge.Builtin(c.Policy)
	return p
}
