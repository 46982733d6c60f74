package engine

// The record applier: merging a stream of remote records into the local
// store, a chunk of records per transaction. Pull applies a log segment
// with it (every record at the segment's position, the cursor advancing
// in the last transaction), bootstrap and rebase a snapshot part (each
// record with its own pos, no cursor).

import (
	"context"
	"errors"
	"fmt"
	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"io"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// applyRun describes one stream of records to apply.
type applyRun struct {
	name  string // the object the records come from, for errors
	chunk int    // records per transaction
	// pos is the log position of every record (a segment). With recordPos
	// each record carries its own (a snapshot part), and a higher one is
	// taken even when the merge changes nothing.
	pos       uint64
	recordPos bool
	// cursor advances the cursor to pos in the last transaction.
	cursor bool
	// maxOwn, when above the counter, stops the run before anything of it
	// is applied: dots under this replica's id it never issued.
	maxOwn uint64
	// checkEach checks each record's own dot against the counter (a
	// snapshot index may not say, or lie). ownSeen reports the highest
	// own dot the run held.
	checkEach bool
	ownSeen   uint64
	// mergeFn merges a record into a known key's; adopt is what a record
	// for an unknown key becomes (protocol.Adopt: the record whole).
	// Rules.Merge and Rules.Adopt for a pull.
	mergeFn func(local, remote merge.Record) merge.Record
	adopt   func(remote merge.Record, g func() clock.Vector) merge.Record
	// step is the Hooks step between two transactions ("" for none);
	// progress, when set, is told each transaction's record count.
	step     string
	progress func(n int)
}

// applyStats counts what one transaction of a run changed.
type applyStats struct {
	records, changed, conflicts int
	keys                        []string // the changed keys
}

// applyRecords applies seg as run describes, a transaction per chunk of
// records. Re-applying is harmless (merge is a join), so the transactions
// need no fsync: the caller syncs its final state before it is relied on.
//
// The records are decoded a chunk ahead, in a goroutine of their own
// (prefetch), while the store's writer merges the chunk before: on two
// cores the decoding and the merging overlap.
func (r *Engine) applyRecords(ctx context.Context, seg *segment.Reader, run *applyRun, ps *PullStats) error {
	nextChunk, stop := prefetch(seg, run.chunk)
	defer stop()
	chunk, err := nextChunk()
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	first := true
	var ahead []segment.Entry // read ahead when a chunk was cut short
	carried := false
	for {
		next := ahead
		if !carried {
			next, err = nextChunk()
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
		}
		last := len(next) == 0
		as := applyStats{records: len(chunk)}
		if len(chunk) > 0 || run.cursor {
			err = r.st.UpdateRelaxed(ctx, func(tx *store.Tx) error {
				as = applyStats{records: len(chunk)}
				return r.applyChunk(tx, run, chunk, first, last, &as)
			})
			if err != nil {
				return wrapClosed(err)
			}
			ps.Records += as.records
			ps.Changed += as.changed
			ps.Conflicts += as.conflicts
			ps.addKeys(as.keys)
			if run.progress != nil {
				run.progress(as.records)
			}
		}
		// A chunk cut short by the engine's transaction limit (tx.Full,
		// the small profile's 614 KiB): its rest goes first in the next
		// transaction, and the cursor waits for it.
		carried = as.records < len(chunk)
		if carried {
			chunk, ahead = chunk[as.records:], next
		} else if last {
			return nil
		} else {
			chunk = next
		}
		first = false
		if run.step != "" {
			if err := r.step(run.step); err != nil {
				return err
			}
		}
	}
}

// prefetch decodes seg's chunks of n records in a goroutine, one chunk
// ahead of the caller's next call. next returns them in order, then
// (nil, io.EOF), or the decoding error. stop ends the goroutine and waits
// for it: after stop, nothing reads seg any more (the caller may close it).
func prefetch(seg *segment.Reader, n int) (next func() ([]segment.Entry, error), stop func()) {
	type result struct {
		es  []segment.Entry
		err error
	}
	out := make(chan result, 1)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			es, err := seg.Next(n)
			select {
			case out <- result{es, err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	next = func() ([]segment.Entry, error) {
		res, ok := <-out
		if !ok {
			return nil, io.EOF
		}
		return res.es, res.err
	}
	stop = func() {
		close(quit)
		<-done
	}
	return next, stop
}

// applyChunk merges one chunk of a run's records in tx.
func (r *Engine) applyChunk(tx *store.Tx, run *applyRun, chunk []segment.Entry, first, last bool, as *applyStats) error {
	id := r.ID()
	// A clock entry for this replica above its own counter: someone else
	// published dots under our id. Checked before anything of the run is
	// applied.
	if first && protocol.ForeignDots(run.maxOwn, tx.Counter()) {
		return fmt.Errorf("%w: %s carries %s:%d, this replica has only issued up to %d",
			ErrCloned, run.name, id.Short(), run.maxOwn, tx.Counter())
	}
	// One seek over the chunk's key range: when nothing is there (a new
	// replica's pull, a bootstrap), no record of the chunk is looked up.
	keys := make([]string, len(chunk))
	for i, e := range chunk {
		keys[i] = e.Key
	}
	if _, err := tx.ProbeAbsent(keys); err != nil {
		return err
	}
	for i, e := range chunk {
		if i > 0 && tx.Full() {
			as.records = i // the rest in the next transaction
			break
		}
		own := e.Record.Clock.Get(id)
		run.ownSeen = max(run.ownSeen, own)
		if run.checkEach && r.rules.SnapshotDots(own, tx.Counter()) {
			return fmt.Errorf("%w: %s carries %s:%d, this replica has only issued up to %d",
				ErrCloned, run.name, id.Short(), own, tx.Counter())
		}
		for _, v := range e.Record.Versions {
			tx.Observe(v.Time)
		}
		changed, siblings, err := r.applyEntry(tx, run, e)
		if err != nil {
			return err
		}
		if changed {
			as.changed++
			as.keys = append(as.keys, e.Key)
			if siblings > 1 {
				as.conflicts++
			}
		}
	}
	if run.cursor && (last && as.records == len(chunk) || first && !r.rules.CursorLast()) {
		setCursor(tx, run.pos)
	}
	return nil
}

// applyEntry merges one record into tx. It reports whether the key
// changed, and how many siblings it holds then.
func (r *Engine) applyEntry(tx *store.Tx, run *applyRun, e segment.Entry) (changed bool, siblings int, err error) {
	cur, had, err := tx.Record(e.Key)
	if err != nil {
		return false, 0, err
	}
	pos := run.pos
	if run.recordPos {
		pos = e.Pos
	}
	var merged merge.Record
	if had {
		if d, twin := protocol.TwinDot(r.ID(), cur.Record, e.Record); twin {
			return false, 0, fmt.Errorf("%w: %s carries another version of %s:%d of %q than this directory's",
				ErrCloned, run.name, d.Replica.Short(), d.Counter, e.Key)
		}
		merged = run.mergeFn(cur.Record, e.Record)
		if merged.Equal(cur.Record) && (!run.recordPos || pos <= cur.Pos) {
			return false, 0, nil
		}
	} else {
		var gerr error
		merged = run.adopt(e.Record, func() clock.Vector {
			g, err := tx.G()
			gerr = err
			return g
		})
		if gerr != nil {
			return false, 0, gerr
		}
	}
	// pos never goes down: an own push committed at a higher position
	// than this one (pulled later, in order) already carries the record
	// there, and collection must wait for that position's acks (found by
	// the simulator's absence sweep: a record holding an own write
	// published at 3 was collected against acks of 2).
	if err := tx.PutRecord(e.Key, store.Stored{Record: merged, Pos: max(pos, cur.Pos)}); err != nil {
		return false, 0, err
	}
	return true, len(merged.Versions), nil
}
