package sim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// Epoch is the logical time at which every simulation starts.
var Epoch = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// errCrash is what Hooks.Step returns at the armed step: the process dies
// there.
var errCrash = errors.New("sim: crash")

// node is one replica of the world.
type node struct {
	w    *World
	i    int
	id   clock.ReplicaID
	eng  *diskModel
	r    *engine.Engine
	view *view

	offset   time.Duration
	driftPPM float64
	jump     time.Duration // backward jumps so far

	armed    string // step at which the running operation dies
	cutUntil int    // operation position at which the partition ends (0: none)
	offUntil int    // operation position at which an offline stretch ends (0: none)

	// The absence fault model (absence.go).
	pauseAt  string // step at which the running operation pauses
	pauseOp  *Op
	paused   bool   // waiting inside an operation while nested ones run
	atStep   string // step at which the running operation is backed up or copied
	atStepOp *Op
	atHit    bool // the armed backup or copy step was reached
	// pausedPre is the preSync of the operation this replica waits in:
	// writes made to it meanwhile count as dirty for that operation.
	pausedPre *preSync
	// mayClone: this directory shares its id with another history (it was
	// copied, or restored from a copy): ErrCloned is a correct verdict.
	mayClone, restored bool
	// lastPull is when (logical time) its last pull, sync or compaction
	// succeeded; pulled says there was one.
	lastPull time.Duration
	pulled   bool
	// pulls are the successful pulls (syncs, compactions) so far: when
	// each started and ended (logical time).
	pulls []pullSpan
	// retiredAt is when (logical time) the running compaction wrote its
	// retirements: at its compact:retired step, before any pause there.
	retiredAt    time.Duration
	retiredAtSet bool
	// restampedAt is, by record key, the apply number of the last write of
	// the record when the running operation's rebase reached
	// rebase:restamped (its re-stamps are the last writes of their records
	// then): the apply number of a re-stamp the oracle records later.
	restampedAt map[string]uint64
	// restampedClock is, by record key, the record's clock when the rebase
	// reached rebase:restamped: the causal past of its re-stamps.
	restampedClock map[string]clock.Vector
	// killing: the armed transaction crash of the running operation is a
	// kill, not a power failure (Op.Kill).
	killing bool
	// kept is, by key, the record a rebase kept the value of (see step,
	// rebase:kept), while the rebase is pending.
	kept map[string]merge.Record
}

func (n *node) name() string { return replicaName(n.i) }

// wall is the replica's wall clock: logical time, plus its offset, its
// drift and its jumps. It never reads the real clock.
func (n *node) wall() time.Time {
	t := n.w.now
	return Epoch.Add(t + n.offset + time.Duration(float64(t)*n.driftPPM/1e6) + n.jump)
}

func (n *node) step(name string) error {
	if n.eng.dead.Load() {
		return errDead
	}
	switch name {
	case "compact:retired":
		n.retiredAt, n.retiredAtSet = n.w.now, true
	case "rebase:kept": // a new rebase: the last one's re-stamps are gone
		n.restampedAt, n.restampedClock = nil, nil
		// The records whose values the rebase keeps (m/rebase/), before it
		// discards them: until it re-stamps them, reads and CRDT updates of
		// those keys start from the kept values (World.write).
		prev := n.kept
		n.kept = map[string]merge.Record{}
		_ = n.r.Store().View(func(v *store.View) error {
			return v.MetaScan("rebase/", func(name string, _ []byte) (bool, error) {
				key := strings.TrimPrefix(name, "rebase/")
				if st, ok, err := v.Record(key); err == nil && ok {
					n.kept[key] = st.Record.Clone()
				} else if old, ok := prev[key]; ok {
					n.kept[key] = old // resumed: the record went already
				}
				return true, nil
			})
		})
	case "rebase:loaded":
		// The versions under its own id of another directory's history
		// that the rebase loaded (after discarding every record): its clock
		// entries of those dots stand for them from now on (oracle.adopt).
		_ = n.r.Store().View(func(v *store.View) error {
			return v.Records("", "", func(key string, st store.Stored) (bool, error) {
				for _, ver := range st.Versions {
					if ver.Dot.Replica != n.id {
						continue
					}
					if e := n.w.or.match(key, ver); e != nil && !e.lost {
						n.w.or.adopt(n.i, e)
					}
				}
				return true, nil
			})
		})
	case "rebase:restamped":
		n.eng.wroteMu.Lock()
		n.restampedAt = maps.Clone(n.eng.wrote)
		n.eng.wroteMu.Unlock()
		// The clocks the re-stamps were written with: the rest of the
		// operation may merge more into their records (a pull after a
		// restarted rebase), which the re-stamps did not see.
		n.restampedClock = map[string]clock.Vector{}
		_ = n.r.Store().View(func(v *store.View) error {
			return v.Records("", "", func(key string, st store.Stored) (bool, error) {
				n.restampedClock[key] = st.Clock.Clone()
				return true, nil
			})
		})
	}
	if n.armed != "" && name == n.armed {
		n.armed = ""
		return errCrash
	}
	if n.pauseAt != "" && name == n.pauseAt {
		op := n.pauseOp
		n.pauseAt, n.pauseOp = "", nil
		n.w.pause(n, op)
	}
	if n.atStep != "" && name == n.atStep {
		n.atHit = true
		n.atStepNow()
	}
	if n.w.nestedV != nil {
		return errAbort
	}
	return nil
}

func (n *node) open() error {
	reg := merge.NewRegistry()
	reg.Set("", n.w.cfg.policy())
	rules := protocol.Default()
	if n.w.cfg.Merge != nil {
		rules.Merge = n.w.cfg.Merge
	}
	if n.w.cfg.UnsyncedStaging {
		rules.Sync = func() bool { return false }
	}
	if n.w.cfg.Rules != nil {
		n.w.cfg.Rules(n.i, &rules)
	}
	hooks := &engine.Hooks{Step: n.step, ApplyChunk: n.w.cfg.ApplyChunk, Rules: &rules}
	r, err := engine.Open("", &engine.Options{
		Engine: n.eng, Create: true, ID: n.id, Backend: n.view, Wall: n.wall,
		Durability: n.w.cfg.Durability, MaxDrift: n.w.cfg.MaxDrift, Policies: reg,
		SegmentCap: n.w.cfg.SegmentCap, Codec: n.w.cfg.Codec, AckInterval: n.w.cfg.AckInterval,
		RegistryRefresh: n.w.cfg.RegistryRefresh,
		ListEvery:       n.w.listEvery(),
		Hooks:           hooks,
		Keys:            n.w.keys, Encrypt: n.w.cfg.Sealed,
	})
	if err != nil {
		return fmt.Errorf("sim: open replica %s: %w", n.name(), err)
	}
	n.r = r
	return nil
}

// World is a running simulation: the replicas, the shared store, the
// logical clock and the oracle. It is driven from one goroutine: Do runs
// one operation to completion, Finish stops the faults, syncs until the
// replicas agree and checks every invariant. Run and Replay drive it from
// a schedule; tests (proptest's state machine) drive it one operation at a
// time.
type World struct {
	cfg Config
	mem *memremote.Backend
	// keys is the device key of a Sealed run; seal the simulator's own
	// sealed look at mem (opened once the store's keys exist).
	keys  *sealremote.Keys
	seal  *sealremote.Backend
	meter *meter
	nodes []*node
	or    *oracle
	now   time.Duration // logical time since Epoch
	pos   int           // operations run
	// logChecked is the last log position checkLog has read.
	logChecked uint64
	trace      []string
	rep        Report
	done       bool
	// ids and clocks draw the replicas' ids and clocks, in index order
	// (replicas that join mid-run draw after the first ones).
	ids, clocks *rand.Rand
	// collecting: the run compacts, bootstraps or goes offline, so a
	// replica may have collected a record another still holds as a
	// tombstone (see finish).
	collecting bool
	// dead holds the keys every replica read as deleted at some point
	// between operations, with the events of the key then (see checkDead).
	dead map[string]deadMark

	// The absence fault model (absence.go): how deep in nested operations
	// the world runs, the violation a nested operation found, the saved
	// directory copies by replica, reidentifications by replica, and the
	// operation running (for the oracle's records).
	depth   int
	nestedV *Violation
	backups map[int]*dirCopy
	reids   map[int]int
	opID    int
}

// deadMark is the oracle's count of a key's events (all, and lost ones)
// when every replica read it as deleted, and how many replicas there were
// then (nodes). A replica that joined later is held to the mark once it
// has seen every write of the key (held, by node index).
type deadMark struct {
	events, lost, nodes int
	held                map[int]bool
}

// NewWorld opens cfg.Replicas replicas on one shared memory store.
func NewWorld(cfg Config) (*World, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	w := &World{cfg: cfg}
	w.mem, err = memremote.NewWithOptions("sim", memremote.Options{Now: func() time.Time { return Epoch.Add(w.now) }})
	if err != nil {
		return nil, err
	}
	w.meter = &meter{inner: w.mem}
	if cfg.Sealed {
		if w.keys, err = sealremote.NewKeys(); err != nil {
			return nil, err
		}
	}
	w.ids = rand.New(rand.NewPCG(cfg.Seed, 0x1d5))
	w.clocks = rand.New(rand.NewPCG(cfg.Seed, 0xc10c))
	w.or = newOracle(map[clock.ReplicaID]string{})
	w.collecting = cfg.Compactions > 0 || cfg.Joins > 0 || cfg.Offline > 0
	w.dead = map[string]deadMark{}
	w.backups, w.reids = map[int]*dirCopy{}, map[int]int{}
	w.collecting = w.collecting || cfg.Pauses > 0 || cfg.Backups > 0
	for i := range cfg.Replicas {
		var off *time.Duration
		if cfg.Offsets != nil {
			off = &cfg.Offsets[i]
		}
		if err := w.addNode(off); err != nil {
			w.Close()
			return nil, err
		}
	}
	w.rep = Report{Seed: cfg.Seed, Runs: 1, Policy: cfg.policyName(), Engine: cfg.Engine,
		Durability: cfg.Durability.String(), Replicas: cfg.Replicas, Keys: cfg.Keys,
		FaultsByKind: map[string]int64{}}
	for _, n := range w.nodes {
		w.tracef("%s id %s offset %s drift %+.0fppm", n.name(), n.id.Short(), n.offset, n.driftPPM)
	}
	return w, nil
}

// addNode opens the next replica: its id and clock are the next draws of
// the world's seeded sources; off, when set, fixes its offset.
func (w *World) addNode(off *time.Duration) error {
	cfg := w.cfg
	i := len(w.nodes)
	if i >= 26 {
		return fmt.Errorf("sim: at most 26 replicas")
	}
	n := &node{w: w, i: i}
	binary.BigEndian.PutUint64(n.id[:8], w.ids.Uint64())
	binary.BigEndian.PutUint64(n.id[8:], w.ids.Uint64())
	n.id[6] = n.id[6]&0x0f | 0x40 // a version 4 UUID
	n.id[8] = n.id[8]&0x3f | 0x80
	w.or.names[n.id] = n.name()
	o := time.Duration((w.clocks.Float64()*2 - 1) * float64(max(cfg.Skew, 0)))
	if off != nil {
		o = *off
	}
	n.offset = o.Truncate(time.Millisecond)
	if n.driftPPM = (w.clocks.Float64()*2 - 1) * on(cfg.DriftPPM); n.driftPPM == 0 {
		n.driftPPM = 0 // not -0
	}
	n.eng = &diskModel{oldUnsyncedPush: cfg.UnsyncedStaging, oldUnsyncedPending: cfg.UnsyncedPending}
	n.view = &view{w: w, node: i, eng: n.eng}
	if cfg.Engine == EngineBadger {
		b, err := store.OpenBadger("", store.BadgerOptions{InMemory: true, LowMemory: true})
		if err != nil {
			return err
		}
		n.eng.Engine = b
	} else {
		n.eng.mem = store.NewMem()
		n.eng.Engine = n.eng.mem
	}
	if err := n.open(); err != nil {
		n.eng.Close()
		return err
	}
	w.nodes = append(w.nodes, n)
	return nil
}

// Close closes every replica.
func (w *World) Close() error {
	var errs []error
	for _, n := range w.nodes {
		if n.r != nil {
			if err := n.r.Close(); err != nil && !errors.Is(err, engine.ErrClosed) {
				errs = append(errs, err)
			}
			n.r = nil
		}
	}
	return errors.Join(errs...)
}

// Trace returns the lines traced so far: one per operation, with its
// outcome and the faults injected, then the final rounds. The same
// schedule gives the same trace, byte for byte.
func (w *World) Trace() []string { return slices.Clone(w.trace) }

func (w *World) tracef(format string, a ...any) {
	w.trace = append(w.trace, fmt.Sprintf(format, a...))
}

// Do runs one operation. It returns a *Violation when an invariant breaks
// or the operation fails with no fault to explain it; the world should
// not be used further then (but Close).
func (w *World) Do(op Op) error {
	if w.done {
		return errors.New("sim: Do after Finish")
	}
	if op.R < 0 || op.R >= 26 || op.R >= len(w.nodes) && op.Kind != OpBootstrap {
		if op.R >= 0 && op.R < 26 {
			// Its join was dropped (by the shrinker): nothing to run.
			w.tracef("%s#%-3d %9s %s -> skipped: no replica %s", w.indent(), op.ID, fmtDur(w.now), op, replicaName(op.R))
			return nil
		}
		return fmt.Errorf("sim: operation %s: no replica %d", op, op.R)
	}
	if op.Kind != OpBootstrap && w.nodes[op.R].paused && !allowedWhilePaused(op) {
		w.tracef("%s#%-3d %9s %s -> skipped: %s waits inside an operation", w.indent(), op.ID, fmtDur(w.now), op, replicaName(op.R))
		return nil
	}
	if op.Kind == OpPause && w.depth > 0 {
		op.Kind, op.Nested = op.Via, nil // no pause inside a pause: run the operation whole
	}
	savedOp := w.opID
	w.opID = op.ID
	defer func() { w.opID = savedOp }()
	w.now += max(op.Advance, 0)
	w.pos++
	w.rep.Ops++
	for _, n := range w.nodes {
		if n.cutUntil != 0 && w.pos >= n.cutUntil {
			n.cutUntil = 0
			n.view.setCut(false)
		}
		if n.offUntil != 0 && w.pos >= n.offUntil {
			n.offUntil = 0
		}
	}
	if op.Kind == OpCompact || op.Kind == OpBootstrap || op.Kind == OpOffline {
		w.collecting = true // see collect.go
	}
	if op.Kind == OpBootstrap {
		out := "already there"
		for len(w.nodes) <= op.R {
			off := op.Jump
			if err := w.addNode(&off); err != nil {
				return violate(RuleError, "join of %s: %v", replicaName(len(w.nodes)), err)
			}
			n := w.nodes[len(w.nodes)-1]
			out = fmt.Sprintf("joined: id %s offset %s drift %+.0fppm", n.id.Short(), n.offset, n.driftPPM)
		}
		w.rep.Joins++
		w.trace = append(w.trace, fmt.Sprintf("%s#%-3d %9s %s -> %s", w.indent(), op.ID, fmtDur(w.now), op, out))
		return nil
	}
	n := w.nodes[op.R]
	rates := faultsAt(w.cfg.Faults)
	if op.Faults != nil {
		rates = *op.Faults
	}
	var plan *faultPlan
	if !rates.none() {
		plan = &faultPlan{rates: rates, seed: w.cfg.Seed ^ (uint64(op.ID)+1)*0x9e3779b97f4a7c15}
	}
	n.view.begin(plan)
	var pre preSync
	syncish := op.Kind == OpPush || op.Kind == OpPull || op.Kind == OpSync || op.Kind == OpCompact ||
		op.Kind == OpCrash && (op.Step != "" || op.Tx > 0) || op.Kind == OpPause ||
		(op.Kind == OpBackup || op.Kind == OpCopy) && op.Step != ""
	if syncish && n.offUntil == 0 {
		pre = w.beforeSync(n)
		n.pausedPre = &pre
	}
	crashes, start := w.rep.Crashes, w.now
	out, v := w.exec(n, op)
	if syncish {
		n.pausedPre = nil
	}
	if w.nestedV != nil {
		v, w.nestedV = w.nestedV, nil
		out += "; a nested operation broke an invariant: "
	}
	if v == nil && syncish && n.offUntil == 0 {
		v = w.afterSync(n, op.ID, pre)
	}
	pullish := op.Kind == OpPull || op.Kind == OpSync || op.Kind == OpCompact || op.Kind == OpPause && op.Via != OpPush
	if v == nil && pullish && n.r != nil && w.rep.Crashes == crashes && !strings.Contains(out, "failed") &&
		!strings.Contains(out, "skipped") && !strings.Contains(out, "cloned") && !strings.Contains(out, "crash") {
		n.lastPull, n.pulled = start, true
		n.pulls = append(n.pulls, pullSpan{start, w.now})
	}
	faults := n.view.end()
	for _, f := range faults {
		w.rep.FaultsInjected++
		w.rep.FaultsByKind[f.Kind.String()]++
	}
	if v != nil {
		out += "VIOLATION " + v.Rule
	}
	line := fmt.Sprintf("%s#%-3d %9s %s -> %s", w.indent(), op.ID, fmtDur(w.now), op, out)
	if d := describeFaults(faults); d != "" {
		line += " " + d
	}
	w.trace = append(w.trace, line)
	if v == nil && op.Kind != OpPut && op.Kind != OpDelete && op.Kind != OpBatch && op.Kind != OpAdd &&
		op.Kind != OpSetAdd && op.Kind != OpSetRemove && op.Kind != OpPatch {
		// A write checked the records it touched already.
		v = w.checkNode(n)
	}
	if v == nil {
		v = w.checkLog()
	}
	if v == nil && w.collecting && syncish && !w.anyPaused() {
		v = w.checkDead()
	}
	if v != nil {
		return v
	}
	return nil
}

// checkLog checks the versions of every log segment created since the
// last check against the oracle (invariant 5 on the shared log).
func (w *World) checkLog() *Violation {
	ctx := context.Background()
	// What the store holds, and what was written since the last look but
	// is gone already (pruned within one operation).
	w.meter.logMu.Lock()
	written := w.meter.logs
	w.meter.logs = nil
	w.meter.logMu.Unlock()
	keys := w.mem.Keys()
	for key := range written {
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		pos, ok := remote.ParseLogKey(key)
		if !ok || pos <= w.logChecked {
			continue
		}
		obj, err := w.mem.Get(ctx, key) // not metered: the simulator's own look
		if errors.Is(err, remote.ErrNotExist) && written[key] != nil {
			obj, err = remote.Object{Data: written[key]}, nil
		}
		if err != nil {
			return violate(RuleError, "reading %s: %v", key, err)
		}
		data, err := w.plain(ctx, key, obj.Data)
		if err != nil {
			return violate(RuleError, "the log holds a damaged segment: %v", err)
		}
		seg, err := segment.Decode(key, data)
		if err != nil {
			return violate(RuleError, "the log holds a damaged segment: %v", err)
		}
		for _, e := range seg.Entries {
			for _, ver := range e.Record.Versions {
				if v := w.or.checkVersion(-1, key, e.Key, ver); v != nil {
					return v
				}
			}
		}
		w.logChecked = pos
	}
	return nil
}

// plain returns the plaintext of an object body read from mem: data
// itself, or unsealed in a Sealed run (not metered: the simulator's own
// look).
func (w *World) plain(ctx context.Context, key string, data []byte) ([]byte, error) {
	if !w.cfg.Sealed {
		return data, nil
	}
	if w.seal == nil {
		m, ok, err := format.ReadManifest(ctx, w.mem)
		if err != nil || !ok {
			return nil, fmt.Errorf("sealed run: manifest: %v (found %v)", err, ok)
		}
		if w.seal, err = sealremote.Open(ctx, w.mem, m.RemoteID, w.keys); err != nil {
			return nil, err
		}
	}
	return w.seal.Unseal(ctx, key, data)
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%d.%03ds", d/time.Second, d%time.Second/time.Millisecond)
}

func (w *World) exec(n *node, op Op) (string, *Violation) {
	if n.offUntil != 0 {
		switch op.Kind {
		case OpPush, OpPull, OpSync, OpCompact:
			return "skipped: offline", nil
		case OpCrash:
			if op.Step != "" || op.Tx > 0 {
				return "skipped: offline", nil
			}
		case OpPause:
			return "skipped: offline", nil
		case OpBackup, OpCopy:
			if op.Step != "" {
				return "skipped: offline", nil
			}
		}
	}
	switch op.Kind {
	case OpPause:
		n.pauseAt, n.pauseOp = op.Step, &op
		out, v := w.runVia(n, op.Via)
		if n.pauseAt != "" {
			out += " (step not reached: no pause)"
		}
		n.pauseAt, n.pauseOp = "", nil
		return out, v
	case OpBackup:
		return w.backup(n, op)
	case OpRestore:
		return w.restore(n)
	case OpCopy:
		return w.copyDir(n, op)
	case OpCompact:
		return w.compact(n, op)
	case OpOffline:
		w.rep.Offline++
		n.offUntil = w.pos + max(op.For, 1)
		return "offline", nil
	case OpPut, OpDelete, OpBatch, OpAdd, OpSetAdd, OpSetRemove, OpPatch:
		return w.write(n, op)
	case OpPush, OpPull, OpSync:
		return w.syncOp(n, op.Kind)
	case OpCrash:
		if op.Tx > 0 && op.Step == "" {
			return w.crashVia(n, op)
		}
		if op.Step == "" {
			if n.eng.mem == nil {
				return "skipped (badger cannot lose power)", nil
			}
			return w.powerLoss(n, "at rest")
		}
		n.armed = op.Step
		via := op.Via
		if via != OpPush && via != OpPull {
			via = OpSync
		}
		out, v := w.syncOp(n, via)
		n.armed = ""
		return out, v
	case OpPartition:
		w.rep.Partitions++
		n.view.setCut(true)
		n.cutUntil = w.pos + max(op.For, 1)
		return "cut off", nil
	case OpHeal:
		n.cutUntil = 0
		n.view.setCut(false)
		return "healed", nil
	case OpClockJump:
		w.rep.ClockJumps++
		n.jump += op.Jump
		return "wall now " + n.wall().Format("2006-01-02T15:04:05.000Z07:00"), nil
	}
	return "", violate(RuleError, "unknown operation kind %d", op.Kind)
}

// powerLoss crashes node n: its unsynced writes are lost, and it reopens
// on the same engine and id.
func (w *World) powerLoss(n *node, where string) (string, *Violation) {
	if err := n.r.Close(); err != nil && !errors.Is(err, engine.ErrClosed) {
		return "", violate(RuleError, "closing %s: %v", n.name(), err)
	}
	n.r = nil
	clear(w.dead) // a power loss may take back pulled state not yet fsynced
	durable := n.eng.powerLoss()
	lost := w.or.loseAfter(n.i, durable)
	// A copy of the directory made before the power loss holds what the
	// disk held then, fsynced or not: a write it still holds is not lost.
	lost = slices.DeleteFunc(lost, func(e *event) bool {
		if n.mayClone && w.heldElsewhere(n, n.id, e.key, e.version()) {
			w.or.unlose(e)
			return true
		}
		return false
	})
	w.rep.Crashes++
	w.rep.LostWrites += int64(len(lost))
	// A lost write that was already published: its dot will be issued
	// again. Judged after the copies' writes are back (seed 16980 of the
	// kill sweep: the copy had published the write; if the crashed
	// directory issues its dot again, the dots rule sees two published
	// versions of it).
	for _, e := range lost {
		if e.published != "" {
			return "", violate(RuleDots, "a power loss of %s forgot %s, which was already published (%s): its dot will be issued again",
				n.name(), e, e.published)
		}
	}
	if len(lost) > 0 && w.cfg.Durability == store.Sync {
		return "", violate(RuleDurability, "power loss of %s %s lost %s, acknowledged under Sync durability", n.name(), where, lost[0])
	}
	if err := n.open(); err != nil {
		return "", violate(RuleError, "%v", err)
	}
	out := "power loss " + where
	if len(lost) > 0 {
		out += fmt.Sprintf(", %d unsynced writes lost", len(lost))
	}
	return out, nil
}

// syncOp runs a push, pull or sync, with the crash armed if any.
func (w *World) syncOp(n *node, kind Kind) (string, *Violation) {
	ctx := context.Background()
	var (
		push engine.PushStats
		pull engine.PullStats
		err  error
	)
	switch kind {
	case OpPush:
		push, err = n.r.Push(ctx)
	case OpPull:
		pull, err = n.r.Pull(ctx)
	default:
		var s engine.SyncStats
		s, err = n.r.Sync(ctx)
		push, pull = s.Push, s.Pull
	}
	w.rep.Conflicts += int64(pull.Conflicts)
	var parts []string
	if pull.Segments+pull.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("pulled %d seg (skipped %d own, %d changed) to %d", pull.Segments, pull.Skipped, pull.Changed, pull.Cursor))
	}
	if push.Segments > 0 {
		parts = append(parts, fmt.Sprintf("pushed %d seg at %v", push.Segments, push.Positions))
	}
	out := "ok"
	if len(parts) > 0 {
		out = strings.Join(parts, ", ")
	}
	if err == nil {
		return out, nil
	}
	if errors.Is(err, errCrash) {
		if n.eng.mem == nil {
			w.rep.Crashes++
			return out + "; aborted at the step (badger: no power loss)", nil
		}
		if n.killing {
			crashed, v := w.kill(n, "after a transaction")
			return out + "; " + crashed, v
		}
		crashed, v := w.powerLoss(n, "at a step")
		return out + "; " + crashed, v
	}
	return w.failed(n, out, err)
}

// fatal errors are verdicts that stop a replica (or real damage): no
// single fault explains them.
var fatal = []error{engine.ErrCloned, engine.ErrGap, engine.ErrDuplicateID, engine.ErrRetired,
	engine.ErrPolicyMismatch, engine.ErrNewerFormat, engine.ErrForeignRemote, store.ErrCorrupt}

// failed classifies an operation's error: explained by an injected fault
// or a partition (then it is part of the run), or a violation. Explained
// are the errors that wrap the injected ones (remote.ErrTransient), a
// segment that fails to verify (segment.ErrCorrupt), any other error of an
// operation that had a read come back damaged (a torn registry object
// fails to parse, for one), and a remote sentinel (not found, exists,
// precondition) of an operation that had faults injected — unless it is a
// verdict that stops a replica for good (see fatal).
//
// One verdict is explained by damaged reads, as the design allows:
// engine.ErrCloned and engine.ErrDuplicateID after two or more torn or
// corrupt reads of the replica's registry object in the operation:
// fencing confirms a verdict on a second read, so two damaged reads in a
// row can still fool it. (The manifest is read until two reads agree, so
// a manifest verdict is never explained.)
func (w *World) failed(n *node, out string, err error) (string, *Violation) {
	return w.failedOp(n, out, err, false)
}

func (w *World) failedOp(n *node, out string, err error, compacting bool) (string, *Violation) {
	n.view.mu.Lock()
	injected := len(n.view.injected)
	damaged := map[string]int{}
	reads := 0
	for _, f := range n.view.injected {
		if f.Kind == faultremote.KindTornRead || f.Kind == faultremote.KindCorruptRead {
			damaged[f.Key]++
			reads++
		}
	}
	n.view.mu.Unlock()
	if errors.Is(err, errCrash) {
		return out + "; crashed", nil
	}
	if errors.Is(err, errAbort) {
		return out + "; aborted", nil
	}
	for _, f := range fatal {
		if !errors.Is(err, f) {
			continue
		}
		switch {
		case (f == engine.ErrCloned || f == engine.ErrDuplicateID) && n.mayClone:
			// A copied or restored directory: the verdict is right. Give it
			// a new id, as its user would. A power failure armed for the
			// operation's transactions (CrashTx) is not the user's: it is
			// disarmed, or, if it struck already, the reopened directory
			// gets the verdict again on its next sync (seed 844 of the
			// restore sweep).
			if n.eng.dead.Load() {
				return out + "; cloned (a correct verdict), the power failed before reidentify", nil
			}
			n.eng.crashAfter = 0
			if n.pausedPre != nil {
				// What the operation did before its verdict (a resumed
				// rebase's re-stamps, seed 1773 of the absence sweep) is
				// recorded first: reidentify drops and carries those
				// versions, and the oracle must know what they carry.
				if v := w.afterSync(n, w.opID, *n.pausedPre); v != nil {
					return out, v
				}
			}
			s, v := w.reidentify(n, w.opID)
			return out + "; cloned (a correct verdict): " + s, v
		case (f == engine.ErrCloned || f == engine.ErrDuplicateID) && damaged[remote.RegistryKey(n.id)] >= 2:
			w.rep.FalseVerdicts++
			return out + "; failed (false fencing verdict after 2 damaged reads)", nil
		}
		return "", violate(RuleError, "%s failed with %v", n.name(), err)
	}
	var class string
	switch {
	case strings.Contains(err.Error(), "rebase: no snapshot"):
		// Retirement happens only after a snapshot is written
		// (TestFoundRetiredWithoutSnapshot, fixed): a retired replica
		// always has one to rebase on.
		w.rep.StuckRebases++
		return "", violate(RuleError, "%s: retired with no snapshot to rebase on: %v", n.name(), err)
	case errors.Is(err, errPartition):
		class = "partition"
	case errors.Is(err, faultremote.ErrInjected) || errors.Is(err, remote.ErrTransient):
		class = "injected"
	case errors.Is(err, segment.ErrCorrupt):
		class = "damaged segment"
	case reads > 0:
		class = "damaged read"
	case injected > 0 && (errors.Is(err, remote.ErrNotExist) || errors.Is(err, remote.ErrExists) || errors.Is(err, remote.ErrPrecondition)):
		// The verdict of a read-back after injected failures, with the
		// transient cause dropped from the chain (creating store.json four
		// times over failed requests ends in "does not exist").
		class = "remote error after injected faults"
	default:
		return "", violate(RuleError, "%s failed with no fault to explain it: %v", n.name(), err)
	}
	return out + "; failed (" + class + ")", nil
}

// write runs a local write and records it in the oracle.
func (w *World) write(n *node, op Op) (string, *Violation) {
	ctx := context.Background()
	var keys []string
	switch op.Kind {
	case OpBatch:
		for _, it := range op.Items {
			keys = append(keys, it.Key)
		}
	default:
		keys = []string{op.Key}
	}
	before := make([]merge.Record, len(keys))
	for i, k := range keys {
		rec, v := w.record(n, k)
		if v != nil {
			return "", v
		}
		before[i] = rec
	}
	// A write of a key with no record starts from G (the clocks of the
	// records this replica collected or loaded collected): what it has
	// seen, as the replica claims.
	g, err := readG(n)
	if err != nil {
		return "", violate(RuleError, "reading G at %s: %v", n.name(), err)
	}
	past := make([]merge.Record, len(keys))
	for i, k := range keys {
		past[i] = before[i]
		if before[i].IsZero() && len(g) > 0 {
			past[i].Clock = g.Clone()
		}
		if rec, ok := n.kept[k]; ok && (before[i].IsZero() || w.cfg.kind() != kindRegister) && keptNow(n, k) {
			// A rebase is pending with the key's value kept and its record
			// discarded: the write starts from the kept value (replica:
			// reads see kept values while a rebase is pending), so it saw
			// what the kept record held (seed 839 of the absence sweep: a
			// remove of a member whose add the kept set held). A counter,
			// set or json update starts from the kept state joined with the
			// record the rebase loaded since, if any (seed 488 of the json
			// absence sweep: a field removal that saw the kept assignment).
			past[i] = merge.Record{Clock: rec.Clock.Join(past[i].Clock), Versions: append(slices.Clone(past[i].Versions), rec.Versions...)}
		}
	}
	switch op.Kind {
	case OpPut:
		err = n.r.Put(ctx, op.Key, []byte(op.Value))
	case OpDelete:
		err = n.r.Delete(ctx, op.Key)
	case OpBatch:
		err = n.r.Batch(ctx, func(b *engine.Batch) error {
			for _, it := range op.Items {
				if it.Delete {
					b.Delete(it.Key)
				} else {
					b.Put(it.Key, []byte(it.Value))
				}
			}
			return nil
		})
	case OpAdd, OpSetAdd, OpSetRemove, OpPatch:
		err = crdtWrite(ctx, n.r, op)
	}
	if errors.Is(err, engine.ErrNotFound) {
		return "not found: nothing written", nil
	}
	if err != nil {
		return "", violate(RuleError, "%s %s failed: %v", n.name(), op, err)
	}
	applied := n.eng.applied.Load()
	var dots []string
	for i, k := range keys {
		after, err := readRecord(n, k)
		if err != nil {
			return "", violate(RuleError, "reading %s at %s: %v", k, n.name(), err)
		}
		if after.Equal(before[i]) {
			continue // a delete of a key that was not live, a remove of an absent member
		}
		if len(after.Versions) != 1 || after.Versions[0].Dot.Replica != n.id || before[i].Clock.Covers(after.Versions[0].Dot) {
			return "", violate(RuleCausality, "a local write of %s at %s must replace every sibling with one new version; the record went from %s to %s",
				k, n.name(), fmtRecord(w.or, before[i]), fmtRecord(w.or, after))
		}
		nv := after.Versions[0]
		e, v := w.or.record(n.i, op.ID, k, past[i], nv, applied)
		if v != nil {
			return "", v
		}
		e.kind, e.delta, e.elem = op.Kind, op.Delta, op.Elem
		if op.Kind == OpPatch {
			e.field = op.Value
		}
		if op.Kind == OpBatch {
			e.kind = OpPut
			if nv.Deleted {
				e.kind = OpDelete
			}
		}
		w.rep.Writes++
		if sib := len(before[i].Versions); sib > 1 && w.cfg.UserPolicy == nil && w.cfg.Policy == PolicyLWW {
			// lww showed the writer one of them: the others are overwritten
			// unread.
			w.rep.LostUpdates += int64(sib - 1)
		}
		dots = append(dots, w.or.dot(nv.Dot))
	}
	if n.paused && n.pausedPre != nil {
		// Written while n waits inside an operation: dirty for what that
		// operation does next (a rebase re-stamps it).
		for _, k := range keys {
			n.pausedPre.marked[k] = true
		}
	}
	if len(dots) == 0 {
		return "ok, nothing written", nil
	}
	return "ok " + strings.Join(dots, " "), nil
}

// keptNow reports whether n holds a kept value of key for a pending
// rebase (m/rebase/<key>).
func keptNow(n *node, key string) bool {
	found := false
	_ = n.r.Store().View(func(v *store.View) error {
		_, ok, err := v.Meta("rebase/" + key)
		found = ok
		return err
	})
	return found
}

func readRecord(n *node, key string) (merge.Record, error) {
	var rec merge.Record
	err := n.r.Store().View(func(v *store.View) error {
		st, _, err := v.Record(key)
		rec = st.Record
		return err
	})
	return rec, err
}

// record reads key's record at n and checks its versions.
func (w *World) record(n *node, key string) (merge.Record, *Violation) {
	rec, err := readRecord(n, key)
	if err != nil {
		return rec, violate(RuleError, "reading %s at %s: %v", key, n.name(), err)
	}
	return rec, w.checkRecord(n, key, rec)
}

func (w *World) checkRecord(n *node, key string, rec merge.Record) *Violation {
	w.rep.MaxSiblings = max(w.rep.MaxSiblings, len(rec.Versions))
	for _, ver := range rec.Versions {
		if v := w.or.checkVersion(n.i, n.name(), key, ver); v != nil {
			return v
		}
	}
	return nil
}

// checkNode checks every version node n holds against the oracle
// (invariant 5, throughout the run).
func (w *World) checkNode(n *node) *Violation {
	var out *Violation
	err := n.r.Store().View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			out = w.checkRecord(n, key, st.Record)
			return out == nil, nil
		})
	})
	if err != nil {
		return violate(RuleError, "scanning %s: %v", n.name(), err)
	}
	return out
}

func fmtRecord(o *oracle, r merge.Record) string {
	var b strings.Builder
	b.WriteString("{clock ")
	var entries []string
	for _, d := range r.Clock.Entries() {
		entries = append(entries, o.dot(d))
	}
	b.WriteString("[" + strings.Join(entries, " ") + "]")
	if len(r.Versions) == 0 {
		b.WriteString(" no versions")
	}
	for _, v := range r.Versions {
		if v.Deleted {
			fmt.Fprintf(&b, " %s:deleted@%s", o.dot(v.Dot), v.Time)
		} else {
			fmt.Fprintf(&b, " %s:%s@%s", o.dot(v.Dot), fmtValue(v.Value), v.Time)
		}
	}
	b.WriteString("}")
	return b.String()
}

// fmtValue shows a value, or a counter or set state decoded.
func fmtValue(b []byte) string {
	if s, err := merge.DecodeCounter(b); err == nil {
		return s.String()
	}
	if s, err := merge.DecodeSet(b); err == nil {
		return s.String()
	}
	if s, err := merge.DecodeDoc(b); err == nil {
		return s.String()
	}
	return strconv.Quote(string(b))
}

// digest is a hash of node n's whole state: every key with its clock and
// versions (merge.EncodeRecord), in key order.
func (w *World) digest(n *node) (string, map[string]merge.Record, error) {
	h := sha256.New()
	recs := map[string]merge.Record{}
	err := n.r.Store().View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			b, err := merge.EncodeRecord(st.Record)
			if err != nil {
				return false, err
			}
			var l [8]byte
			binary.BigEndian.PutUint64(l[:], uint64(len(key)))
			h.Write(l[:])
			h.Write([]byte(key))
			binary.BigEndian.PutUint64(l[:], uint64(len(b)))
			h.Write(l[:])
			h.Write(b)
			recs[key] = st.Record
			return true, nil
		})
	})
	return hex.EncodeToString(h.Sum(nil)[:12]), recs, err
}

// listEvery is the replicas' Options.ListEvery: Config.ListEvery, or
// every pull lists when it is 0.
func (w *World) listEvery() time.Duration {
	if w.cfg.ListEvery == 0 {
		return -1
	}
	return w.cfg.ListEvery
}
