package engine

// Compaction: collect, write a snapshot, retire silent replicas, prune.
// The rules and why they are safe are in the package doc.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ebreplica/ebreplica/remote"
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
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize > maxPartSize {
		return cs, fmt.Errorf("replica: compact: PartSize %d is above the %d bytes readers accept", o.PartSize, maxPartSize)
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.RetireAfter <= 0 {
		o.RetireAfter = DefaultRetireAfter
	}
	if _, err := r.connectLocked(ctx); err != nil {
		return cs, err
	}
	if err := r.resumeRebase(ctx); err != nil {
		return cs, err
	}
	if r.knob(func(k *Knobs) bool { return k.SnapshotDirty }) {
		// Old rule: snapshot the local state as it is, unpushed data and all.
		_, err := r.writeSnapshot(ctx, o.PartSize, &cs)
		return cs, err
	}
	// Push and pull first, so the outbox empties and our own ack is fresh;
	// our registry swap also gives the server's notion of now.
	if _, err := r.pushLocked(ctx); err != nil {
		return cs, err
	}
	if _, err := r.pullLocked(ctx); err != nil {
		return cs, err
	}
	if err := r.step("compact:pushed"); err != nil {
		return cs, err
	}
	ack, err := r.ackNow()
	if err != nil {
		return cs, err
	}
	if err := r.swapRegistry(ctx, ack); err != nil {
		if !errors.Is(err, ErrRetired) {
			return cs, err
		}
		// Retired while silent: rebase first, as push and pull do.
		if err := r.rebase(ctx); err != nil {
			return cs, err
		}
		if ack, err = r.ackNow(); err != nil {
			return cs, err
		}
		if err := r.swapRegistry(ctx, ack); err != nil {
			return cs, err
		}
	}
	regs, err := r.readRegistries(ctx)
	if err != nil {
		return cs, err
	}
	var serverNow time.Time
	for _, g := range regs {
		if g.body.ReplicaID == r.ID().String() {
			serverNow = g.info.LastModified
		}
	}
	if err := r.step("compact:acks"); err != nil {
		return cs, err
	}
	floorAck, _ := minAck(regs)
	if r.knob(func(k *Knobs) bool { return k.CollectAgainstMaxAck }) {
		for _, g := range regs {
			floorAck = max(floorAck, g.body.Ack)
		}
	} else if _, err := r.pullLocked(ctx); err != nil {
		// Pull to a tip listed after reading the acks, then collect.
		return cs, err
	}
	if cs.Collected, err = r.collect(ctx, floorAck); err != nil {
		return cs, err
	}
	if err := r.step("compact:collected"); err != nil {
		return cs, err
	}
	// Snapshot, retrying if writes keep arriving.
	for attempt := 0; ; attempt++ {
		if _, err := r.pushLocked(ctx); err != nil {
			return cs, err
		}
		if _, err := r.pullLocked(ctx); err != nil {
			return cs, err
		}
		done, err := r.writeSnapshot(ctx, o.PartSize, &cs)
		if err != nil {
			return cs, err
		}
		if done {
			break
		}
		if attempt >= 5 {
			return cs, errors.New("replica: compact: local writes keep arriving; try again when quieter")
		}
	}
	if err := r.step("compact:snapshot"); err != nil {
		return cs, err
	}
	// Retire silent replicas only now that a snapshot exists to rebase on.
	if o.Prune && !serverNow.IsZero() {
		for _, g := range regs {
			if g.body.Retired || g.body.ReplicaID == r.ID().String() || g.info.LastModified.IsZero() {
				continue
			}
			if serverNow.Sub(g.info.LastModified) < o.RetireAfter {
				continue
			}
			// Absence rule 7: retire only a replica that holds the prune
			// floor down; one at the snapshot gains nothing by it.
			if g.body.Ack >= cs.Position && !r.knob(func(k *Knobs) bool { return k.RetireAtTip }) {
				continue
			}
			// Absence rule 1: a retirement is a write of its own (seq+1, a
			// fresh nonce, naming the body it retired), never the old body
			// with the flag flipped: the retired replica then cannot take
			// it for its own pending write.
			body := g.body
			body.Retired = true
			if !r.knob(func(k *Knobs) bool { return k.RetiredNotSticky }) {
				body.Seq, body.Nonce, body.RetiredNonce = body.Seq+1, newNonce(), g.body.Nonce
			}
			data, _ := json.MarshalIndent(body, "", "  ")
			key := remote.ReplicasPrefix + g.body.ReplicaID + ".json"
			if _, err := b.PutIfMatch(ctx, key, data, g.etag); err == nil {
				cs.Retired = append(cs.Retired, g.body.ReplicaID)
			} else if !errors.Is(err, remote.ErrPrecondition) {
				return cs, fmt.Errorf("replica: retire %s: %w", key, err)
			}
		}
	}
	if err := r.step("compact:retired"); err != nil {
		return cs, err
	}
	if o.Prune {
		// The acks that bound the floor are read after the snapshot is
		// written, and the floor is at most that snapshot: a replica that
		// was read retired here and un-retires later pulls to a tip at or
		// above it before it pushes (rebase), so no position it could
		// still create is freed.
		if regs, err = r.readRegistries(ctx); err != nil {
			return cs, err
		}
		n, err := r.prune(ctx, regs, serverNow, o.Grace, cs.Position)
		cs.Pruned = n
		if err != nil {
			return cs, err
		}
	}
	return cs, nil
}
