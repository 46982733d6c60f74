package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ErrLocked: another process has the directory open.
var ErrLocked = errors.New("store: directory is in use by another process")

// BadgerOptions selects how the Badger engine is opened.
type BadgerOptions struct {
	// InMemory keeps everything in memory (tests, simulator); Dir is ignored.
	InMemory bool
	// LowMemory is the edge-device profile: small memtables, no block
	// cache, bounded index cache, fewer compactors, values over 64 KiB in
	// the value log. See BENCHMARKS.md for its measured RSS.
	LowMemory bool
	// Logger receives Badger's log lines; nil discards all but errors.
	Logger badger.Logger
}

// Badger is the Engine on github.com/dgraph-io/badger/v4.
type Badger struct {
	db *badger.DB
}

var _ Engine = (*Badger)(nil)

type quietLogger struct{}

func (quietLogger) Errorf(f string, a ...any)   { fmt.Fprintf(os.Stderr, "badger: "+f, a...) }
func (quietLogger) Warningf(f string, a ...any) {}
func (quietLogger) Infof(f string, a ...any)    {}
func (quietLogger) Debugf(f string, a ...any)   {}

// OpenBadger opens (creating if needed) a Badger database in dir.
func OpenBadger(dir string, o BadgerOptions) (*Badger, error) {
	opts := badger.DefaultOptions(dir)
	if o.InMemory {
		opts = badger.DefaultOptions("").WithInMemory(true)
	}
	opts = opts.WithSyncWrites(false). // Store decides when to fsync (group commit)
						WithDetectConflicts(false). // one writer: no conflicts to detect
						WithMetricsEnabled(false).
						WithLogger(quietLogger{})
	if o.Logger != nil {
		opts = opts.WithLogger(o.Logger)
	}
	if o.LowMemory {
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
	db, err := badger.Open(opts)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") ||
			strings.Contains(err.Error(), "resource temporarily unavailable") {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return &Badger{db: db}, nil
}

// Limits reports the largest transaction Badger commits at once, in bytes
// (its own estimate, which counts per-entry overhead) and entries.
func (b *Badger) Limits() (bytes, entries int64) { return b.db.MaxBatchSize(), b.db.MaxBatchCount() }

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
	}
	if sync {
		return b.Sync()
	}
	return nil
}

// Sync implements Engine.
func (b *Badger) Sync() error {
	if err := b.db.Sync(); err != nil {
		return fmt.Errorf("store: fsync: %w", err)
	}
	return nil
}

// Close implements Engine.
func (b *Badger) Close() error { return b.db.Close() }

// concurrentSync is false: Badger's DB.Sync syncs only the current
// memtable's log and the value log. If a later commit rotates the memtable
// between an earlier group's commit and its fsync, the earlier group's
// entries sit in an immutable memtable whose log is not synced until it is
// flushed, so an acknowledged Sync write could be lost to a power loss. So
// the writer fsyncs right after each commit, before the next one (no
// rotation can intervene). The pipelined path stays for engines whose Sync
// covers every earlier commit.
func (b *Badger) concurrentSync() bool { return false }
