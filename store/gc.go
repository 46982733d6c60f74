package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Value-log garbage collection.
//
// Badger keeps values of its value threshold or more (64 KiB in the small
// profile, 256 KiB in the default one; and every staged segment, whose
// record holds the segment's bytes) in append-only value-log files. A value
// overwritten or deleted stays there until the file is rewritten, so a
// process that keeps rewriting large values grows its disk without bound
// unless something runs Badger's value-log GC. Badger only learns which
// files hold garbage when compaction drops the stale pointers of flushed
// memtables (its discard statistics), and a memtable of small pointers may
// take a very long time to fill and flush: so a collection first flushes
// the memtables, then rewrites up to gcMaxFiles files that are at least
// half garbage.
//
// The engine runs it after a push or pull when the store's GCInterval has
// passed since the last collection (MaybeCollectGarbage; the time of the
// last one is kept in the database, so short-lived processes such as a
// cron-driven `ebreplica sync` collect too). Disk use then stays
// proportional to the live data: at most about twice what the value log
// holds live (files under half garbage are kept), plus the garbage of one
// interval and the file being written.

// DefaultGCInterval is how often, at most, MaybeCollectGarbage collects.
const DefaultGCInterval = 10 * time.Minute

// gcMaxFiles bounds the value-log files one collection rewrites.
const gcMaxFiles = 16

// gcDiscardRatio: a value-log file is rewritten when at least this much of
// it is garbage (Badger's recommendation: a lifetime write amplification
// of 2 for the value log).
const gcDiscardRatio = 0.5

var (
	// keyGCLast holds the Unix milliseconds of the last collection. It is
	// outside every prefix the store scans.
	keyGCLast = []byte("!gc/last")
	// keyFlush is written and dropped to make Badger flush its memtables
	// (DB.DropPrefix writes every memtable out as a table, less the
	// dropped prefix).
	keyFlush = []byte("!gc/flush")
)

// GCStats reports one value-log collection.
type GCStats struct {
	// Ran: a collection ran (MaybeCollectGarbage found it due).
	Ran bool
	// Flushed: the memtables were written out as tables first.
	Flushed bool
	// Rewritten is the number of value-log files rewritten and removed.
	Rewritten int
	// Before and After are the bytes of the database's files.
	Before, After int64
}

// valueLogGC is an engine with a value log to collect (Badger on disk).
type valueLogGC interface {
	lastGC() (time.Time, error)
	collectGarbage(now time.Time) (GCStats, error)
	startGC(now time.Time) error
}

// CollectGarbage collects the engine's value log now, whatever the
// interval. An engine without a value log (in memory, the simulator's map)
// does nothing.
func (s *Store) CollectGarbage() (GCStats, error) {
	gc, ok := s.eng.(valueLogGC)
	if !ok {
		return GCStats{}, nil
	}
	return gc.collectGarbage(s.wall())
}

// MaybeCollectGarbage collects the value log when GCInterval has passed
// since the last collection of this database (or the wall clock reads
// earlier than it: a clock set back does not stop collection). A database
// never collected starts its first interval at the first call instead: a
// new replica's first pull or push (a bootstrap) is not followed by a
// flush of its memtables, which would only write out tables early — it
// has no garbage to find yet. A negative GCInterval never collects.
func (s *Store) MaybeCollectGarbage() (GCStats, error) {
	gc, ok := s.eng.(valueLogGC)
	if !ok || s.opts.GCInterval < 0 {
		return GCStats{}, nil
	}
	every := s.opts.GCInterval
	if every == 0 {
		every = DefaultGCInterval
	}
	now := s.wall()
	last, err := gc.lastGC()
	if err != nil {
		return GCStats{}, err
	}
	if last.IsZero() {
		return GCStats{}, gc.startGC(now)
	}
	if d := now.Sub(last); d >= 0 && d < every {
		return GCStats{}, nil
	}
	return gc.collectGarbage(now)
}

func (s *Store) wall() time.Time {
	if s.opts.Wall != nil {
		return s.opts.Wall()
	}
	return time.Now()
}

func (b *Badger) lastGC() (time.Time, error) {
	b.gcMu.Lock() // Close waits for it: the database stays open meanwhile
	defer b.gcMu.Unlock()
	if b.isClosed() {
		return time.Time{}, ErrClosed
	}
	var last time.Time
	err := b.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keyGCLast)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) == 8 {
				last = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
			}
			return nil
		})
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: gc: %w", err)
	}
	return last, nil
}

// startGC records now as the time of the last collection, without one.
func (b *Badger) startGC(now time.Time) error {
	b.gcMu.Lock()
	defer b.gcMu.Unlock()
	return b.recordGC(now)
}

// recordGC records now as the time of the last collection (gcMu held).
func (b *Badger) recordGC(now time.Time) error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	if b.closed {
		return ErrClosed
	}
	err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Set(keyGCLast, binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli())))
	})
	if err != nil {
		return fmt.Errorf("store: gc: %w", err)
	}
	return nil
}

// collectGarbage flushes the memtables, rewrites up to gcMaxFiles value-log
// files that are at least half garbage, and records now as the time of
// the last collection.
//
// A rewritten file is removed only once the values moved out of it are
// durable: an iterator held open through the rewrites makes Badger defer
// the removal until it is closed (Badger writes without fsync here), and
// it is closed after the memtable logs and the value log are synced. A
// power loss in between keeps the old file, which still holds the values.
func (b *Badger) collectGarbage(now time.Time) (st GCStats, err error) {
	if b.dir == "" {
		return st, nil
	}
	b.gcMu.Lock()
	defer b.gcMu.Unlock()
	if b.isClosed() {
		return st, ErrClosed
	}
	st.Ran = true
	st.Before = dirSize(b.dir)
	defer func() {
		st.After = dirSize(b.dir)
		if err != nil {
			b.log.Warn("value-log GC: "+err.Error(), "component", "store")
		}
	}()
	if !b.valueLogHolds() {
		// Nothing a collection could rewrite: record the time and skip
		// the flush, whose compaction rewrites tables for nothing (under
		// the small profile it doubled the resident table pages of a
		// live sync of 100k keys for a moment: its peak RSS).
		return st, b.recordGC(now)
	}
	if err := b.flush(now); err != nil {
		return st, err
	}
	st.Flushed = true

	txn := b.db.NewTransaction(false)
	hold := txn.NewIterator(badger.IteratorOptions{Prefix: keyGCLast})
	for st.Rewritten < gcMaxFiles {
		err := b.rewriteOne()
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			hold.Close()
			txn.Discard()
			return st, fmt.Errorf("store: value-log gc: %w", err)
		}
		st.Rewritten++
	}
	var serr error
	if st.Rewritten > 0 {
		if serr = syncMemtableLogs(b.dir); serr == nil {
			if e := b.db.Sync(); e != nil {
				serr = fmt.Errorf("store: fsync: %w", e)
			}
		}
	}
	if serr != nil {
		// Keep the old files: leak the iterator's hold rather than remove
		// files whose values may not be durable elsewhere (the next open
		// starts clean).
		return st, serr
	}
	hold.Close() // removes the rewritten files
	txn.Discard()
	return st, nil
}

// rewriteOne runs one step of Badger's value-log GC (one file at most)
// with the store's commits held off: Badger v4.9.6 reads the memtable's
// highest version without synchronisation at the start of a rewrite
// (DB.MaxVersion), a data race with a concurrent commit (seen under the
// race detector). Commits wait for one file's rewrite, never for a whole
// collection.
func (b *Badger) rewriteOne() error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	return b.db.RunValueLogGC(gcDiscardRatio)
}

func (b *Badger) isClosed() bool {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	return b.closed
}

// flush writes keyGCLast (now) and keyFlush, then drops keyFlush's prefix:
// Badger writes every memtable out as a table without it. Writes wait on
// writeMu meanwhile (DropPrefix blocks Badger's writes while it runs).
// valueLogHolds reports whether a value-log file other than the newest
// holds an entry: Badger's GC never rewrites the newest (the head it
// writes to), and a file of its bare header (vlogHeaderSize, 20 bytes in
// Badger v4) holds nothing, so without such a file a collection can
// rewrite nothing. Values under the value threshold (64 KiB under the
// small profile, 256 KiB under the default) never reach the value log. On
// an error reading the directory it answers true (collect as before).
func (b *Badger) valueLogHolds() bool {
	const vlogHeaderSize = 20
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return true
	}
	newest, held := -1, map[int]bool{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".vlog")
		if !ok {
			continue
		}
		fid, err := strconv.Atoi(name)
		if err != nil {
			return true
		}
		info, err := e.Info()
		if err != nil {
			return true
		}
		newest = max(newest, fid)
		held[fid] = info.Size() > vlogHeaderSize
	}
	for fid, h := range held {
		if h && fid != newest {
			return true
		}
	}
	return false
}

func (b *Badger) flush(now time.Time) error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	if b.closed {
		return ErrClosed
	}
	err := b.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(keyGCLast, binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli()))); err != nil {
			return err
		}
		return txn.Set(keyFlush, []byte{1})
	})
	if err == nil {
		err = b.db.DropPrefix(keyFlush)
	}
	if err != nil {
		return fmt.Errorf("store: gc flush: %w", err)
	}
	return nil
}

// DiskSize reports the bytes the database's files take on disk (their
// allocated blocks where the system reports them: Badger sizes its mapped
// files ahead, sparsely): the tables and
// memtable logs (lsm), and the value-log files (vlog); zeros in memory.
func (b *Badger) DiskSize() (lsm, vlog int64) {
	if b.dir == "" {
		return 0, 0
	}
	ents, _ := os.ReadDir(b.dir)
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if strings.HasSuffix(e.Name(), ".vlog") {
			vlog += allocated(info)
		} else {
			lsm += allocated(info)
		}
	}
	return lsm, vlog
}

func dirSize(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += allocated(info)
		}
	}
	return n
}
