package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// formatVersion is the layout this code writes (see the package comment):
// 2 keeps each key's outbox mark in its record entry and lists the marks of
// a group commit in one outbox log entry. Format 1 (no m/format) kept the
// mark in o/<key> and queued it in q/<mark><key>: three entries per write.
const formatVersion = 2

// Format 1's keys, read only by the migration.
var (
	prefixOutbox1 = []byte("o/")
	prefixQueue1  = []byte("q/")
	keyMigrating  = []byte("m/migrating") // the last record key migrated
)

// ErrNewerFormat: the directory was written by a newer ebreplica, whose
// layout this one cannot read. Nothing is changed.
var ErrNewerFormat = fmt.Errorf("store: this replica's data has a newer format than this ebreplica reads (it reads formats up to %d): use the ebreplica that wrote it, or a newer one", formatVersion)

// migrateChunk is how many keys one migration transaction handles at most
// (fewer when the engine's transaction limit says so).
var migrateChunk = 1024

// migrate brings eng to formatVersion: it refuses a newer format, and
// migrates format 1 in transactions of at most migrateChunk keys, each
// consistent on its own, so a crash at any point resumes at the next Open:
//
//  1. the queue: the q/<mark><key> entries, in their order, become outbox
//     log entries (l/<seq>, one per chunk), deleted as they are;
//  2. the records: each r/<key> from the last one done (m/migrating, written
//     with each chunk) gets the header of format 2 (pos and the mark of
//     o/<key>, deleted);
//  3. any o/<key> left (a mark without a record: none in a consistent
//     directory) is dropped from the pending count;
//  4. m/format is written last, with m/migrating and format 1's m/qlow (a
//     mark, not a log position) deleted.
//
// A fresh engine goes through the same steps, with nothing to move.
func migrate(eng Engine) error {
	var format uint64
	var migrating []byte
	if err := eng.View(func(r Reader) error {
		var err error
		if format, err = getUint(r, keyFormat); err != nil {
			return err
		}
		migrating, _, err = r.Get(keyMigrating)
		return err
	}); err != nil {
		return err
	}
	switch {
	case format == formatVersion:
		return nil
	case format > formatVersion:
		return fmt.Errorf("%w (this one is format %d)", ErrNewerFormat, format)
	case format != 0:
		return fmt.Errorf("%w: unknown format %d", ErrCorrupt, format)
	}
	full := func(muts []Mutation) bool { return len(muts) >= 3*migrateChunk }
	if l, ok := eng.(txLimited); ok {
		b, n := l.Limits()
		full = func(muts []Mutation) bool {
			var c int64
			for _, m := range muts {
				c += l.mutationCost(m)
			}
			return len(muts) >= 3*migrateChunk || 4*c >= b || 4*int64(len(muts)) >= n
		}
	}
	// 1. The queue.
	if err := inChunks(eng, func(r Reader) ([]Mutation, error) {
		lseq, err := getUint(r, keyLogSeq)
		if err != nil {
			return nil, err
		}
		var muts []Mutation
		var listing []byte
		err = r.Scan(prefixQueue1, nil, func(k, _ []byte) (bool, error) {
			if len(k) < len(prefixQueue1)+8 {
				return false, fmt.Errorf("%w: outbox queue entry %q", ErrCorrupt, k)
			}
			mark := binary.BigEndian.Uint64(k[len(prefixQueue1):])
			listing = appendListing(listing, string(k[len(prefixQueue1)+8:]), mark)
			muts = append(muts, Mutation{Key: bytes.Clone(k), Delete: true})
			return len(muts) < migrateChunk && !full(muts), nil
		})
		if err != nil || len(muts) == 0 {
			return nil, err
		}
		lseq++
		return append(muts, Mutation{Key: logKey(lseq), Value: listing}, Mutation{Key: keyLogSeq, Value: putUint(lseq)}), nil
	}); err != nil {
		return err
	}
	// 2. The records.
	if err := inChunks(eng, func(r Reader) ([]Mutation, error) {
		var start []byte
		if migrating != nil {
			start = append(bytes.Clone(migrating), 0) // the key after it
		}
		var muts []Mutation
		var last []byte
		n := 0
		err := r.Scan(prefixRecord, start, func(k, v []byte) (bool, error) {
			if len(v) < 8 {
				return false, fmt.Errorf("%w: record %q truncated", ErrCorrupt, k)
			}
			key := k[len(prefixRecord):]
			ok := append(bytes.Clone(prefixOutbox1), key...)
			mv, marked, err := r.Get(ok)
			if err != nil {
				return false, err
			}
			mark := noMark
			if marked {
				if len(mv) != 8 {
					return false, fmt.Errorf("%w: outbox mark %q", ErrCorrupt, key)
				}
				mark = binary.BigEndian.Uint64(mv)
				muts = append(muts, Mutation{Key: ok, Delete: true})
			}
			nv := appendHeader(make([]byte, 0, len(v)+12), binary.BigEndian.Uint64(v), mark)
			last = bytes.Clone(k)
			muts = append(muts, Mutation{Key: last, Value: append(nv, v[8:]...)})
			n++
			return n < migrateChunk && !full(muts), nil
		})
		if err != nil || len(muts) == 0 {
			return nil, err
		}
		if migrating != nil && bytes.Compare(last, migrating) <= 0 {
			return nil, fmt.Errorf("%w: the migration of the records did not advance past %q", ErrCorrupt, migrating)
		}
		migrating = last // the next chunk's start; an Apply that fails ends the migration
		return append(muts, Mutation{Key: keyMigrating, Value: last}), nil
	}); err != nil {
		return err
	}
	// 3. Marks without a record.
	if err := inChunks(eng, func(r Reader) ([]Mutation, error) {
		pending, err := getUint(r, keyPending)
		if err != nil {
			return nil, err
		}
		var muts []Mutation
		err = r.Scan(prefixOutbox1, nil, func(k, _ []byte) (bool, error) {
			muts = append(muts, Mutation{Key: bytes.Clone(k), Delete: true})
			return len(muts) < migrateChunk && !full(muts), nil
		})
		if err != nil || len(muts) == 0 {
			return nil, err
		}
		pending -= min(pending, uint64(len(muts)))
		return append(muts, Mutation{Key: keyPending, Value: putUint(pending)}), nil
	}); err != nil {
		return err
	}
	// 4. Done.
	return eng.Apply([]Mutation{
		{Key: keyMigrating, Delete: true},
		{Key: keyQueueLow, Delete: true},
		{Key: keyFormat, Value: putUint(formatVersion)},
	}, true)
}

// inChunks applies, one durable transaction each, the chunks read returns
// from a fresh view, until it returns none.
func inChunks(eng Engine, read func(r Reader) ([]Mutation, error)) error {
	for {
		var muts []Mutation
		if err := eng.View(func(r Reader) error {
			var err error
			muts, err = read(r)
			return err
		}); err != nil {
			return err
		}
		if len(muts) == 0 {
			return nil
		}
		if err := eng.Apply(muts, true); err != nil {
			return err
		}
	}
}
