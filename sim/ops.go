package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of a scheduled operation.
type Kind uint8

// The operations.
const (
	OpPut       Kind = iota + 1 // Put(Key, Value)
	OpDelete                    // Delete(Key)
	OpBatch                     // Batch(Items): puts and deletes of distinct keys, atomically
	OpAdd                       // counter: Add(Key, Delta)
	OpSetAdd                    // set: SetAdd(Key, Elem)
	OpSetRemove                 // set: SetRemove(Key, Elem)
	OpPush                      // Push
	OpPull                      // Pull
	OpSync                      // Sync (pull, then push)
	OpCrash                     // crash at Step during Via, or at rest when Step is ""
	OpPartition                 // cut the replica off the remote for the next For operations
	OpHeal                      // end the replica's partition
	OpClockJump                 // move the replica's wall clock by Jump
	OpCompact                   // Compact(Prune, Grace, RetireAfter)
	OpBootstrap                 // a new replica R joins (offset Jump); it bootstraps on its first pull
	OpOffline                   // the replica stops syncing for the next For operations (it keeps writing)
	OpPause                     // run Via; at Step the clock moves on by Pause and Nested runs; then Via goes on
	OpBackup                    // save a copy of the replica's directory (at rest, or at Step during Via)
	OpRestore                   // close the replica, put its saved copy back, reopen it with the same id
	OpCopy                      // copy the replica's directory (at rest, or at Step during Via) into a new replica To with the same id
	OpPatch                     // json: Patch(Key) of the field Elem ("addr.city": nested) to Value, or removing it when Value is ""; Elem "visits+", "tags+", "tags-": $inc of Value, $add or $remove of the member Value
)

var kindNames = [...]string{"", "put", "del", "batch", "add", "sadd", "srem", "push", "pull", "sync",
	"crash", "partition", "heal", "jump", "compact", "join", "offline", "pause", "backup", "restore", "copy", "patch"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Steps are the points of push and pull at which a crash can be scheduled
// (engine.Hooks.Step names).
var Steps = []string{"push:staged", "registry:swapped", "push:fenced", "push:uploaded", "push:committed",
	"pull:listed", "pull:chunk", "pull:applied"}

// AllSteps are every step of engine.Hooks.Step list: where a replica can be
// paused, copied or backed up mid-operation (and crashed, with Config.Pauses
// on). A step a build does not have is never reached (the operation then
// runs to its end, unpaused).
var AllSteps = append(slices.Clone(Steps), "push:checked",
	"compact:pushed", "compact:acks", "compact:collected", "compact:snapshot", "compact:retired",
	"rebase:kept", "rebase:loaded", "rebase:restamped")

// Item is one write of a batch.
type Item struct {
	Key    string
	Value  string
	Delete bool
}

// Faults overrides the fault rates of one operation (scripted scenarios).
// Rates are probabilities per remote request.
type Faults struct {
	Errors         float64 // fail before reaching the store
	Ambiguous      float64 // a write applied, reported failed
	TornReads      float64
	CorruptReads   float64
	LateDuplicates float64 // a create-only write applied again later, same bytes
}

// faultsAt is the mix a Config.Faults rate stands for.
func faultsAt(p float64) Faults {
	p = on(p)
	return Faults{Errors: p, Ambiguous: p / 2, TornReads: p / 8, CorruptReads: p / 8, LateDuplicates: p / 4}
}

func (f Faults) none() bool { return f == Faults{} }

// Op is one scheduled operation of replica R. A schedule is a []Op; the
// simulator runs it in order on one goroutine.
type Op struct {
	// ID is the operation's number in the schedule it was generated in.
	// It seeds the operation's faults and names its values, so an
	// operation behaves the same when a shrinker removes others around it.
	ID   int
	Kind Kind
	R    int // replica index (0 = A)
	// Advance is the logical time that passes before the operation.
	Advance time.Duration

	Key   string
	Value string
	Delta int64  // OpAdd
	Elem  string // OpSetAdd, OpSetRemove
	Items []Item // OpBatch
	Step  string // OpCrash, OpPause, OpBackup, OpCopy: the step ("" = at rest)
	Via   Kind   // OpCrash, OpPause, ...: OpPush, OpPull, OpSync or OpCompact
	// Tx, for OpCrash with no Step: the power fails after the Tx-th
	// engine transaction of Via (Config.CrashTx).
	Tx int
	// Kill, with Tx: the process is killed there instead (kill -9): its
	// transactions so far stay, synced or not, as the operating system
	// holds them (Config.Kills).
	Kill bool
	// Pause (OpPause): how far the logical clock moves on at Step, before
	// Nested runs.
	Pause time.Duration
	// Nested (OpPause): the operations other replicas run while R is
	// paused. They must not sync R (it holds its sync lock); writes to R
	// are allowed.
	Nested []Op
	// To (OpCopy): the index of the new replica; the copy is made only
	// when it is the next index (a shrunk schedule may have dropped one
	// before).
	To   int
	For  int // OpPartition: operations it lasts
	Jump time.Duration
	// OpCompact: CompactOptions.Prune, Grace (negative: none) and
	// RetireAfter (0: the replica's default).
	Prune       bool
	Grace       time.Duration
	RetireAfter time.Duration
	// Faults, when set, replaces the configured fault rates for this
	// operation.
	Faults *Faults
}

func replicaName(i int) string { return string(rune('A' + i)) }

// String describes the operation on one line, e.g. "B put k1=B7".
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", replicaName(o.R), o.Kind)
	switch o.Kind {
	case OpPut:
		fmt.Fprintf(&b, " %s=%s", o.Key, o.Value)
	case OpDelete:
		fmt.Fprintf(&b, " %s", o.Key)
	case OpBatch:
		for _, it := range o.Items {
			if it.Delete {
				fmt.Fprintf(&b, " -%s", it.Key)
			} else {
				fmt.Fprintf(&b, " %s=%s", it.Key, it.Value)
			}
		}
	case OpAdd:
		fmt.Fprintf(&b, " %s%+d", o.Key, o.Delta)
	case OpSetAdd, OpSetRemove:
		fmt.Fprintf(&b, " %s %s", o.Key, o.Elem)
	case OpPatch:
		if o.Value == "" {
			fmt.Fprintf(&b, " %s -%s", o.Key, o.Elem)
		} else {
			fmt.Fprintf(&b, " %s %s=%s", o.Key, o.Elem, o.Value)
		}
	case OpCrash:
		switch {
		case o.Tx > 0 && o.Kill:
			fmt.Fprintf(&b, " (kill) after tx %d during %s", o.Tx, o.Via)
		case o.Tx > 0:
			fmt.Fprintf(&b, " after tx %d during %s", o.Tx, o.Via)
		case o.Step == "":
			b.WriteString(" at rest")
		default:
			fmt.Fprintf(&b, " at %s during %s", o.Step, o.Via)
		}
	case OpPause:
		fmt.Fprintf(&b, " at %s during %s for %s, meanwhile %d ops", o.Step, o.Via, o.Pause, len(o.Nested))
	case OpBackup, OpCopy:
		if o.Kind == OpCopy {
			fmt.Fprintf(&b, " to %s", replicaName(o.To))
		}
		if o.Step == "" {
			b.WriteString(" at rest")
		} else {
			fmt.Fprintf(&b, " at %s during %s", o.Step, o.Via)
		}
	case OpPartition:
		fmt.Fprintf(&b, " for %d ops", o.For)
	case OpClockJump:
		fmt.Fprintf(&b, " %s", o.Jump)
	case OpCompact:
		if o.Prune {
			fmt.Fprintf(&b, " prune grace %s retire after %s", o.Grace, o.RetireAfter)
		}
	case OpBootstrap:
		fmt.Fprintf(&b, " offset %s", o.Jump)
	case OpOffline:
		fmt.Fprintf(&b, " for %d ops", o.For)
	}
	if o.Faults != nil {
		fmt.Fprintf(&b, " faults%+v", *o.Faults)
	}
	return b.String()
}

// FormatSchedule renders a schedule one operation a line, with its number
// and the logical time that passes before it.
func FormatSchedule(ops []Op) string {
	var b strings.Builder
	formatOps(&b, ops, "  ")
	return b.String()
}

func formatOps(b *strings.Builder, ops []Op, indent string) {
	for _, o := range ops {
		fmt.Fprintf(b, "%s#%-4d +%-7s %s\n", indent, o.ID, o.Advance, o)
		if len(o.Nested) > 0 {
			formatOps(b, o.Nested, indent+"    ")
		}
	}
}

// Generate returns the seeded schedule of cfg (after defaults): cfg.Ops
// operations over cfg.Replicas replicas and cfg.Keys keys, hot keys drawn
// from a Zipf distribution. The same cfg gives the same schedule.
func Generate(cfg Config) ([]Op, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return generate(cfg), nil
}

func generate(cfg Config) []Op {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5c4ed01e))
	var zipf *rand.Zipf
	if cfg.Hot > 1 && cfg.Keys > 1 {
		zipf = rand.NewZipf(rng, cfg.Hot, 1, uint64(cfg.Keys-1))
	}
	key := func() string {
		if zipf != nil {
			return fmt.Sprintf("k%d", zipf.Uint64())
		}
		return fmt.Sprintf("k%d", rng.IntN(cfg.Keys))
	}
	kind := cfg.kind()
	ops := make([]Op, 0, cfg.Ops)
	// Joins: the operations at which new replicas join (drawn only when
	// asked for, so that the schedules of other configs stay the same).
	joinAt := map[int]int{}
	for range cfg.Joins {
		joinAt[rng.IntN(max(cfg.Ops, 1))]++
	}
	copyAt := map[int]int{}
	for range cfg.Copies {
		copyAt[rng.IntN(max(cfg.Ops, 1))]++
	}
	replicas := cfg.Replicas
	for id := range cfg.Ops {
		for range copyAt[id] {
			// A copy is an extra operation too, numbered after the joins.
			src := rng.IntN(replicas)
			o := Op{ID: cfg.Ops + 26 + replicas, Kind: OpCopy, R: src, To: replicas, Advance: time.Millisecond}
			if rng.IntN(2) == 0 {
				o.Step, o.Via = AllSteps[rng.IntN(len(AllSteps))], []Kind{OpPush, OpPull, OpSync, OpCompact}[rng.IntN(4)]
			}
			ops = append(ops, o)
			replicas++
		}
		if n := joinAt[id]; n > 0 {
			// A join is an extra operation, numbered after the schedule.
			for range n {
				off := time.Duration((rng.Float64()*2 - 1) * float64(max(cfg.Skew, 0))).Truncate(time.Millisecond)
				ops = append(ops, Op{ID: cfg.Ops + replicas, Kind: OpBootstrap, R: replicas, Advance: time.Millisecond, Jump: off})
				replicas++
			}
		}
		o := Op{ID: id, R: rng.IntN(replicas), Advance: time.Duration(1+rng.IntN(3000)) * time.Millisecond}
		val := fmt.Sprintf("%s%d", replicaName(o.R), id)
		x := rng.Float64()
		crashes, partitions, jumps := on(cfg.Crashes), on(cfg.Partitions), on(cfg.Jumps)
		switch {
		case x < crashes:
			o.Kind = OpCrash
			if rng.IntN(5) > 0 {
				steps := Steps
				if len(cfg.CrashSteps) > 0 {
					steps = cfg.CrashSteps
				}
				o.Step = steps[rng.IntN(len(steps))]
				o.Via = OpSync
				if strings.HasPrefix(o.Step, "pull:") && rng.IntN(2) == 0 {
					o.Via = OpPull
				} else if !strings.HasPrefix(o.Step, "pull:") && rng.IntN(2) == 0 {
					o.Via = OpPush
				}
			}
		case x < crashes+partitions:
			o.Kind, o.For = OpPartition, 1+rng.IntN(8)
		case x < crashes+partitions+jumps:
			o.Kind, o.Jump = OpClockJump, -time.Duration(1+rng.IntN(30*60))*time.Second
		case x < crashes+partitions+jumps+cfg.Compactions:
			// Grace and RetireAfter only matter when pruning (Op.String
			// prints them only then).
			o.Kind = OpCompact
			if o.Prune = rng.IntN(2) == 0; o.Prune {
				o.RetireAfter = cfg.RetireAfter
				o.Grace = -1
				if rng.IntN(2) == 0 {
					o.Grace = time.Duration(1+rng.IntN(20)) * time.Second
				}
			}
		case x < crashes+partitions+jumps+cfg.Compactions+cfg.Offline:
			o.Kind, o.For = OpOffline, 8+rng.IntN(17)
		case x < crashes+partitions+jumps+cfg.Compactions+cfg.Offline+cfg.Pauses:
			// The pause and its nested operations draw from their own
			// source, seeded by the operation: the main schedule is the same
			// whatever they hold.
			o = genPause(cfg, o, replicas)
		case x < crashes+partitions+jumps+cfg.Compactions+cfg.Offline+cfg.Pauses+cfg.CrashTx:
			o.Kind, o.Tx, o.Via = OpCrash, 1+rng.IntN(12), []Kind{OpPush, OpPull, OpSync, OpCompact}[rng.IntN(4)]
			if cfg.Kills > 0 { // drawn only then: other configs' schedules stay the same
				o.Kill = rng.Float64() < cfg.Kills
			}
		case x < crashes+partitions+jumps+cfg.Compactions+cfg.Offline+cfg.Pauses+cfg.CrashTx+cfg.Backups:
			o.Kind = OpBackup
			if rng.IntN(2) == 0 {
				o.Kind = OpRestore
			} else if rng.IntN(2) == 0 {
				o.Step, o.Via = AllSteps[rng.IntN(len(AllSteps))], []Kind{OpPush, OpPull, OpSync, OpCompact}[rng.IntN(4)]
			}
		default:
			y := rng.IntN(100)
			if cfg.Deletes > 0 && y < 50 {
				// Of the updates (half the rest), this share are deletes
				// (removes, decrements) rather than the default fifth.
				y = 49
				if rng.Float64() >= cfg.Deletes {
					y = 0
				}
			}
			switch {
			case y < 40:
				switch kind {
				case kindCounter:
					o.Kind, o.Key, o.Delta = OpAdd, key(), int64(rng.IntN(9)-2)
				case kindSet:
					o.Kind, o.Key, o.Elem = OpSetAdd, key(), fmt.Sprintf("e%d", rng.IntN(4))
				case kindJSON:
					o.Kind, o.Key, o.Elem, o.Value = OpPatch, key(), docLeaves[rng.IntN(len(docLeaves))], val
					if v := docOpValue(o.Elem, o.ID); v != "" {
						o.Value = v
					}
				default:
					o.Kind, o.Key, o.Value = OpPut, key(), val
				}
			case y < 50:
				switch kind {
				case kindCounter:
					o.Kind, o.Key, o.Delta = OpAdd, key(), -int64(1+rng.IntN(3))
				case kindSet:
					o.Kind, o.Key, o.Elem = OpSetRemove, key(), fmt.Sprintf("e%d", rng.IntN(4))
				case kindJSON:
					o.Kind, o.Key, o.Elem = OpPatch, key(), docRemovable[rng.IntN(len(docRemovable))]
					o.Value = docOpValue(o.Elem, o.ID)
				default:
					o.Kind, o.Key = OpDelete, key()
				}
			case y < 56 && kind == kindRegister:
				o.Kind = OpBatch
				seen := map[string]bool{}
				for i := range 1 + rng.IntN(3) {
					k := key()
					if seen[k] {
						continue
					}
					seen[k] = true
					it := Item{Key: k}
					if rng.IntN(4) == 0 {
						it.Delete = true
					} else {
						it.Value = fmt.Sprintf("%s.%d", val, i)
					}
					o.Items = append(o.Items, it)
				}
			case y < 70:
				o.Kind = OpPush
			case y < 84:
				o.Kind = OpPull
			default:
				o.Kind = OpSync
			}
		}
		ops = append(ops, o)
	}
	return ops
}
