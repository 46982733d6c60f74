package engine

// Compaction: collect, write a snapshot, retire silent replicas, prune.
// The rules and why they are safe are in the package doc.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
)

// Defaults for compaction.
const (
	DefaultPartSize    = 4 << 20
	DefaultGrace       = time.Hour
	DefaultRetireAfter = 30 * 24 * time.Hour
)

// CompactOptions configures Compact.
type CompactOptions struct {
	// Prune deletes log segments the snapshot covers (see package doc),
	// older snapshots and orphaned parts, and retires replicas silent for
	// longer than RetireAfter.
	Prune bool
	// PartSize caps a snapshot part's raw size (DefaultPartSize when 0).
	PartSize int
	// Grace is how old (by server time) an object must be before pruning
	// deletes it (DefaultGrace when 0; negative means none, for tests).
	Grace time.Duration
	// RetireAfter is how long a replica's registry may stay unwritten
	// before Prune retires it (DefaultRetireAfter when 0).
	RetireAfter time.Duration
}

// CompactStats reports a Compact.
type CompactStats struct {
	Position  uint64        `json:"position"`
	Records   int64         `json:"records"`
	Parts     int           `json:"parts"`
	Pruned    int           `json:"pruned"`
	Collected int           `json:"collected"`
	Retired   []string      `json:"retired,omitempty"`
	Reused    bool          `json:"reused,omitempty"` // another compactor's snapshot at P was kept
	Requests  remote.Counts `json:"requests"`
}

// Compact collects what may be collected, writes a snapshot of this
// replica's state and, with Prune, retires silent replicas and prunes the
// log. See the package documentation for the rules.
func (r *Engine) Compact(ctx context.Context, o CompactOptions) (cs CompactStats, err error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	b := r.opts.Backend
	if b == nil {
		return cs, ErrNoRemote
	}
	before := b.Stats().Snapshot()
	defer func() { cs.Requests = b.Stats().Snapshot().Sub(before) }()
	if o, err = o.withDefaults(); err != nil {
		return cs, err
	}
	if _, err := r.connectLocked(ctx); err != nil {
		return cs, err
	}
	if err := r.refreshSeal(ctx); err != nil { // seal.go
		return cs, err
	}
	if err := r.resumeRebase(ctx); err != nil {
		return cs, err
	}
	if !r.rules.SnapshotFirst() {
		// An old rule (the simulator's): snapshot the local state as it
		// is, unpushed data and all.
		_, err := r.writeSnapshot(ctx, o.PartSize, &cs)
		return cs, err
	}
	if err := r.compactFence(ctx); err != nil {
		return cs, err
	}
	regs, serverNow, err := r.compactAcks(ctx)
	if err != nil {
		return cs, err
	}
	if cs.Collected, err = r.compactCollect(ctx, regs); err != nil {
		return cs, err
	}
	if err := r.step("compact:collected"); err != nil {
		return cs, err
	}
	if err := r.snapshotClean(ctx, o.PartSize, &cs); err != nil {
		return cs, err
	}
	if err := r.step("compact:snapshot"); err != nil {
		return cs, err
	}
	// Retire silent replicas only now that a snapshot exists to rebase on.
	if o.Prune && !serverNow.IsZero() {
		if err := r.retireSilent(ctx, regs, serverNow, o.RetireAfter, &cs); err != nil {
			return cs, err
		}
	}
	if err := r.step("compact:retired"); err != nil {
		return cs, err
	}
	if o.Prune {
		cs.Pruned, err = r.compactPrune(ctx, serverNow, o.Grace, cs.Position)
	}
	return cs, err
}

// compactPrune prunes against acks read after the snapshot at snap was
// written, the floor at most that snapshot: a replica that was read
// retired here and un-retires later pulls to a tip at or above it before
// it pushes (rebase), so no position it could still create is freed.
func (r *Engine) compactPrune(ctx context.Context, serverNow time.Time, grace time.Duration, snap uint64) (int, error) {
	regs, err := r.readRegistries(ctx)
	if err != nil {
		return 0, err
	}
	return r.prune(ctx, regs, serverNow, grace, snap)
}

// withDefaults fills in the options' defaults and checks PartSize.
func (o CompactOptions) withDefaults() (CompactOptions, error) {
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize > maxPartSize {
		return o, fmt.Errorf("replica: compact: PartSize %d is above the %d bytes readers accept", o.PartSize, maxPartSize)
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.RetireAfter <= 0 {
		o.RetireAfter = DefaultRetireAfter
	}
	return o, nil
}

// compactFence pushes and pulls, so the outbox empties and this replica's
// own ack is fresh, then writes that ack to its registry (whose swap also
// gives the server's notion of now). Retired while silent, it rebases
// first, as push and pull do.
func (r *Engine) compactFence(ctx context.Context) error {
	if _, err := r.pushLocked(ctx); err != nil {
		return err
	}
	if _, err := r.pullLocked(ctx); err != nil {
		return err
	}
	if err := r.step("compact:pushed"); err != nil {
		return err
	}
	ack, err := r.ackNow()
	if err != nil {
		return err
	}
	if err := r.swapRegistry(ctx, ack); err != nil {
		if !errors.Is(err, ErrRetired) {
			return err
		}
		if err := r.rebase(ctx); err != nil {
			return err
		}
		if ack, err = r.ackNow(); err != nil {
			return err
		}
		if err := r.swapRegistry(ctx, ack); err != nil {
			return err
		}
	}
	return nil
}

// compactAcks reads every registry (the acks), and takes the server's
// time from the LastModified of this replica's own.
func (r *Engine) compactAcks(ctx context.Context) (regs []regInfo, serverNow time.Time, err error) {
	if regs, err = r.readRegistries(ctx); err != nil {
		return nil, serverNow, err
	}
	for _, g := range regs {
		if g.body.ReplicaID == r.ID().String() {
			serverNow = g.info.LastModified
		}
	}
	if err := r.step("compact:acks"); err != nil {
		return nil, serverNow, err
	}
	return regs, serverNow, nil
}

// compactCollect pulls to a tip listed after reading the acks regs, then
// collects against their minimum.
func (r *Engine) compactCollect(ctx context.Context, regs []regInfo) (int, error) {
	plan := r.rules.PlanCollect(protoRegs(regs))
	if plan.PullFirst {
		if _, err := r.pullLocked(ctx); err != nil {
			return 0, err
		}
	}
	return r.collect(ctx, plan.Floor)
}

// snapshotClean writes a snapshot from a view with an empty outbox and
// nothing staged, pushing and pulling first, and retrying if writes keep
// arriving.
func (r *Engine) snapshotClean(ctx context.Context, partSize int, cs *CompactStats) error {
	for attempt := 0; ; attempt++ {
		if _, err := r.pushLocked(ctx); err != nil {
			return err
		}
		if _, err := r.pullLocked(ctx); err != nil {
			return err
		}
		done, err := r.writeSnapshot(ctx, partSize, cs)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if attempt >= 5 {
			return errors.New("replica: compact: local writes keep arriving; try again when quieter")
		}
	}
}

// retireSilent retires every other replica whose registry is older than
// retireAfter by server time and whose ack holds the prune floor below
// the snapshot just written.
func (r *Engine) retireSilent(ctx context.Context, regs []regInfo, serverNow time.Time, retireAfter time.Duration, cs *CompactStats) error {
	b := r.opts.Backend
	retire := r.rules.ToRetire(protoRegs(regs), protocol.RetireInput{
		Self: r.ID().String(), ServerNow: serverNow, RetireAfter: retireAfter, Snapshot: cs.Position})
	for _, g := range regs {
		if !slices.Contains(retire, g.body.ReplicaID) {
			continue
		}
		// Absence rule 1: a retirement is a write of its own (seq+1, a
		// fresh nonce, naming the body it retired), never the old body
		// with the flag flipped: the retired replica then cannot take
		// it for its own pending write.
		ret := r.rules.Retirement(g.proto(), newNonce())
		body := g.body
		body.Retired, body.Seq, body.Nonce, body.RetiredNonce = ret.Retired, ret.Seq, ret.Nonce, ret.RetiredNonce
		data := format.EncodeRegistry(body) // a sum of its own
		key := remote.ReplicasPrefix + g.body.ReplicaID + ".json"
		if _, err := b.PutIfMatch(ctx, key, data, g.etag); err == nil {
			cs.Retired = append(cs.Retired, g.body.ReplicaID)
		} else if !errors.Is(err, remote.ErrPrecondition) {
			return fmt.Errorf("replica: retire %s: %w", key, err)
		}
	}
	return nil
}
