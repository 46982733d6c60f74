package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ErrLocked: another process has the directory open.
var ErrLocked = errors.New("store: directory is in use by another process")

// BadgerOptions selects how the Badger engine is opened.
type BadgerOptions struct {
	// InMemory keeps everything in memory (tests, simulator); Dir is ignored.
	InMemory bool
	// LowMemory chooses the small profile (ProfileSmall: small memtables,
	// no block cache, bounded index cache, fewer compactors, values of
	// 64 KiB or more in the value log). A 32-bit build always uses it
	// (ProfileFor). See BENCHMARKS.md for its measured RSS.
	LowMemory bool
	// ValueLogFileSize, when positive, replaces the profile's value-log
	// file size (tests of value-log GC use small files).
	ValueLogFileSize int64
	// Logger receives Badger's log lines at their levels (Badger's debug,
	// info, warning and error become slog's), with the attribute
	// component=badger, and the notes of the crash repair at open (see
	// OpenBadger). Nil discards them: nothing of Badger's is written to
	// stderr, whose last line is the CLI's error message. Badger's errors
	// that matter reach the caller as returned errors.
	Logger *slog.Logger
}

// Badger is the Engine on github.com/dgraph-io/badger/v4.
type Badger struct {
	db  *badger.DB
	dir string // "" in memory
	// applied counts the commits since the last Sync (see Sync).
	applied atomic.Int64

	profile Profile
	// threshold is the value size from which Badger keeps a value in the
	// value log (a fixed option: dynamic thresholds are off); 0 in memory,
	// where every value stays in the tree.
	threshold int64
	log       *slog.Logger
	// opts and magic are what Badger was opened with (on disk): fenceFormat
	// opens it again with another external magic.
	opts  badger.Options
	magic uint16

	// writeMu is held by Apply's commit and by the memtable flush of the
	// value-log GC (see CollectGarbage), which blocks Badger's writes
	// while it runs: a commit waits instead of failing.
	writeMu sync.Mutex
	closed  bool // under writeMu
	gcMu    sync.Mutex
}

var (
	_ Engine    = (*Badger)(nil)
	_ txLimited = (*Badger)(nil)
)

// slogBadger is a badger.Logger writing to a *slog.Logger.
type slogBadger struct{ l *slog.Logger }

func (b slogBadger) log(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(f, a...)), slog.String("component", "badger"))
}

func (b slogBadger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b slogBadger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b slogBadger) Infof(f string, a ...any)    { b.log(slog.LevelInfo, f, a) }
func (b slogBadger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

// OpenBadger opens (creating if needed) a Badger database in dir.
//
// After Badger has opened, OpenBadger fsyncs the directory and those above
// it (syncNames): a replica just created keeps its names through a power
// loss, under POSIX's rules as well as Linux's.
//
// Before Badger opens an existing directory, OpenBadger removes the empty
// files a crash (kill -9, power loss) can leave and that Badger v4 cannot
// open (see repairCrashLeftovers): a replica directory opens after any
// kill, the first time.
//
// A directory found locked is tried again for up to lockWait before
// ErrLocked: a lock released an instant ago can still be held by a child
// process forked meanwhile (a descriptor is copied across fork until the
// child's exec closes it, which on a loaded machine can take a good part of
// a second), so a process that closes a replica and opens it again right
// away would otherwise see it in use now and then.
func OpenBadger(dir string, o BadgerOptions) (*Badger, error) {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		b, err := openBadger(dir, o)
		if !errors.Is(err, ErrLocked) || o.InMemory || time.Since(start) >= lockWait {
			return b, err
		}
		time.Sleep(min(time.Duration(10*(attempt+1))*time.Millisecond, 100*time.Millisecond))
	}
}

// lockWait is how long OpenBadger tries a locked directory again.
const lockWait = 2 * time.Second

func openBadger(dir string, o BadgerOptions) (*Badger, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := badger.DefaultOptions(dir)
	if o.InMemory {
		opts = badger.DefaultOptions("").WithInMemory(true)
	}
	opts = opts.WithSyncWrites(false). // Store decides when to fsync (group commit)
						WithDetectConflicts(false). // one writer: no conflicts to detect
						WithMetricsEnabled(false).
						WithLogger(slogBadger{log})
	profile := ProfileFor(o.LowMemory)
	if profile == ProfileSmall {
		// Every map fits a 32-bit address space: a memtable's log is
		// mapped at twice MemTableSize (8 MiB), a value-log file at twice
		// ValueLogFileSize (128 MiB), tables at their size (1 MiB base).
		// Badger's transaction limit is 15% of MemTableSize (614 KiB);
		// values of ValueThreshold or more count only their 12-byte
		// pointer toward it (mutationCost), so a staged segment of any
		// size (up to ValueLogFileSize) is one transaction.
		opts = opts.
			WithMemTableSize(4 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(2).
			WithNumLevelZeroTablesStall(8).
			WithBlockCacheSize(0).
			WithIndexCacheSize(8 << 20).
			WithBaseTableSize(1 << 20).
			WithValueThreshold(64 << 10).
			WithValueLogFileSize(64 << 20).
			WithNumCompactors(2).
			WithNumGoroutines(2).
			WithCompression(options.None)
	} else {
		opts = opts.WithValueThreshold(256 << 10).WithNumCompactors(2)
	}
	if o.ValueLogFileSize > 0 {
		opts = opts.WithValueLogFileSize(o.ValueLogFileSize)
	}
	if !o.InMemory {
		if err := repairCrashLeftovers(dir, log); err != nil {
			return nil, err
		}
	}
	var magic uint16
	if !o.InMemory {
		m, err := magicFor(dir)
		if err != nil {
			return nil, err
		}
		magic = m
		opts = opts.WithExternalMagic(magic)
	}
	db, err := badger.Open(opts)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") ||
			strings.Contains(err.Error(), "resource temporarily unavailable") {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if !o.InMemory {
		// The files Badger made at open, the directory itself and the
		// directories above it get durable names (see syncNames).
		if err := syncNames(dir); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
	}
	b := &Badger{db: db, profile: profile, log: log}
	if !o.InMemory {
		b.dir, b.opts, b.magic = dir, opts, magic
		b.threshold = opts.ValueThreshold
	}
	return b, nil
}

// Profile reports the profile Badger was opened with.
func (b *Badger) Profile() Profile { return b.profile }

// mutationCost is what m counts toward Badger's transaction size limit, or
// more. Badger (Txn.checkSize, Entry.estimateSizeAndSetThreshold) counts
// len(key) + len(value) + 2 (meta bytes) + 10 (version) for a value kept in
// the tree, and len(key) + 12 (value pointer) + 2 + 10 for one in the value
// log. On disk the value threshold is fixed (no dynamic threshold), so a
// value of threshold bytes or more counts its pointer: that is what lets a
// staged segment of megabytes commit in one transaction under the small
// profile, whose limit is 614 KiB. In memory nothing goes to a value log
// and every value counts whole. The count is exact for values of 12 bytes
// or more; shorter ones count as 12 (never less than Badger).
// TestBadgerMutationCost and TestBadgerMutationCostValueLog pin it to the
// Badger in go.mod.
func (b *Badger) mutationCost(m Mutation) int64 {
	v := len(m.Value)
	if b.threshold > 0 && int64(v) >= b.threshold {
		v = 12 // a value pointer
	}
	return int64(len(m.Key)) + int64(max(v, 12)) + 12
}

// Limits reports the largest transaction Badger commits at once, in bytes
// (its own estimate, which counts per-entry overhead: see mutationCost)
// and entries: Apply fails with ErrTooBig when its mutations cost this
// many bytes or more, or are this many or more. Badger's own limits less
// what every transaction starts with (Txn.checkSize, newTransaction): one
// entry and len("!badger!txn")+10 bytes for the entry that ends it.
func (b *Badger) Limits() (bytes, entries int64) {
	const txnEnd = int64(len("!badger!txn") + 10)
	return b.db.MaxBatchSize() - txnEnd, b.db.MaxBatchCount() - 1
}

// DB exposes the underlying database (benchmarks compare against it).
func (b *Badger) DB() *badger.DB { return b.db }

type badgerReader struct{ txn *badger.Txn }

func (r badgerReader) Get(key []byte) ([]byte, bool, error) {
	it, err := r.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: get: %w", err)
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("store: get value: %w", err)
	}
	return v, true, nil
}

func (r badgerReader) Scan(prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	io := badger.DefaultIteratorOptions
	io.Prefix = prefix
	io.PrefetchValues = false
	it := r.txn.NewIterator(io)
	defer it.Close()
	seek := prefix
	if bytes.Compare(start, prefix) > 0 { // a start before the prefix starts at the prefix
		seek = start
	}
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var cont bool
		err := item.Value(func(v []byte) error {
			var err error
			cont, err = fn(item.Key(), v)
			return err
		})
		if err != nil {
			return err
		}
		if !cont {
			return nil
		}
	}
	return nil
}

// Any implements Reader. The iterator sees every version (AllVersions),
// so the first item at or after lo, live, deleted (a tombstone) or an
// older version, decides: the answer costs one seek however many deleted
// keys the range holds, and a range holding only deleted keys answers
// true. Prefix (what lo and hi share) lets Badger skip the tables outside
// the range.
func (r badgerReader) Any(lo, hi []byte) (bool, error) {
	if bytes.Compare(lo, hi) > 0 {
		return false, nil
	}
	n := 0
	for n < len(lo) && n < len(hi) && lo[n] == hi[n] {
		n++
	}
	it := r.txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: lo[:n:n]})
	defer it.Close()
	it.Seek(lo)
	return it.Valid() && bytes.Compare(it.Item().Key(), hi) <= 0, nil
}

// View implements Engine.
func (b *Badger) View(fn func(Reader) error) error {
	return b.db.View(func(txn *badger.Txn) error { return fn(badgerReader{txn}) })
}

// Reader implements Engine.
func (b *Badger) Reader() (Reader, func()) {
	txn := b.db.NewTransaction(false)
	return badgerReader{txn}, txn.Discard
}

// Apply implements Engine.
func (b *Badger) Apply(muts []Mutation, sync bool) error {
	if len(muts) > 0 {
		if err := b.commit(muts); err != nil {
			return err
		}
	}
	if sync {
		return b.Sync()
	}
	return nil
}

func (b *Badger) commit(muts []Mutation) error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	for _, m := range muts {
		var err error
		if m.Delete {
			err = txn.Delete(m.Key)
		} else {
			err = txn.Set(m.Key, m.Value)
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			return ErrTooBig
		}
		if err != nil {
			return fmt.Errorf("store: write: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	b.applied.Add(1)
	return nil
}

// Sync implements Engine: every commit so far is durable when it returns.
//
// Badger's DB.Sync syncs the current memtable's log (and the value log)
// only. A commit that fills the memtable moves Badger to a new one; the
// full one's log is synced only by the flush that writes it out as a
// table, later. So when more than one commit happened since the last Sync
// (the Relaxed durability, pull merges, or any write before a barrier),
// an earlier one may sit in such a log: Sync then also fsyncs every
// memtable log in the directory. Without it, a power loss kept a later
// synced commit and lost an earlier one (the power-loss test,
// relaxed-rotate: Relaxed was not a prefix, and UpdateSync's "no dot leaves
// the machine before it is durable" did not hold). One commit since the
// last Sync (the Sync durability: the store fsyncs after each commit) is
// in the current memtable, and DB.Sync covers it.
//
// The older logs are synced first, oldest first, and the current one last:
// a crash between two of these fsyncs then keeps a prefix of the commits.
// (The other order kept the new log's commits and lost the old one's when
// the process died between the fsyncs: relaxed-rotate, about one cut in a
// few hundred.)
func (b *Badger) Sync() error {
	n := b.applied.Swap(0)
	if n > 1 && b.dir != "" {
		if err := syncMemtableLogs(b.dir); err != nil {
			b.applied.Add(n)
			return err
		}
	}
	if err := b.db.Sync(); err != nil {
		b.applied.Add(n)
		return fmt.Errorf("store: fsync: %w", err)
	}
	return nil
}

// syncMemtableLogs fsyncs every memtable log (NNNNN.mem) in dir, oldest
// (lowest number) first. A log removed meanwhile was flushed into a synced
// table first.
func syncMemtableLogs(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: fsync: %w", err)
	}
	type memLog struct {
		fid  int64
		name string
	}
	var logs []memLog
	for _, e := range ents {
		if fid, err := strconv.ParseInt(strings.TrimSuffix(e.Name(), ".mem"), 10, 64); err == nil && strings.HasSuffix(e.Name(), ".mem") {
			logs = append(logs, memLog{fid, e.Name()})
		}
	}
	slices.SortFunc(logs, func(a, b memLog) int { return cmp.Compare(a.fid, b.fid) })
	for _, e := range logs {
		f, err := os.Open(filepath.Join(dir, e.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: fsync: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("store: fsync %s: %w", e.name, err)
		}
	}
	return nil
}

// Close implements Engine.
func (b *Badger) Close() error {
	b.gcMu.Lock() // a value-log GC in progress finishes first
	defer b.gcMu.Unlock()
	b.writeMu.Lock()
	b.closed = true
	b.writeMu.Unlock()
	return b.db.Close()
}

// concurrentSync is false: Badger's DB.Sync syncs only the current
// memtable's log and the value log. If a later commit rotates the memtable
// between an earlier group's commit and its fsync, the earlier group's
// entries sit in an immutable memtable whose log is not synced until it is
// flushed, so an acknowledged Sync write could be lost to a power loss. So
// the writer fsyncs right after each commit, before the next one (no
// rotation can intervene). The pipelined path stays for engines whose Sync
// covers every earlier commit.
func (b *Badger) concurrentSync() bool { return false }
