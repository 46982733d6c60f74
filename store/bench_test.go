package store

// Where the time of a stamped batch goes. Each op writes 1000 puts (16-byte
// keys, 100-byte values) four ways, each into its own Badger on disk with
// the options OpenBadger uses, without fsync, interleaved so load on the
// machine hits all alike. It reports puts/s for each way and "<way>-ratio":
// raw Badger WriteBatch time over that way's (1 = as fast as raw Badger).
//
//	raw-writebatch   badger WriteBatch, 1000 entries (the baseline)
//	engine-apply     Badger.Apply of the same 1000 entries: our engine's txn path
//	engine-layout    Badger.Apply of the entries a stamped put of a new key
//	                 produced in format 1 (before migrate.go), pre-encoded:
//	                 r/<key> record, o/<key> mark and q/<mark><key> outbox
//	                 queue entry (3000 entries)
//	store-write      Store.Update with 1000 Tx.Write: the full stamped path
//	                 (reads, stamping, encoding, overlay, group commit) in
//	                 today's layout, format 2: one r/<key> entry per put
//	                 (pos, mark, compact record) and one l/<seq> outbox log
//	                 entry per group
//	layout-proposed  Badger.Apply of the layout BENCHMARKS.md proposes
//	                 ("Performance (issue 14)"): the mark inside the record,
//	                 so no o/<key>, and a compact record (the value plus 24
//	                 bytes: pos, mark, a per-store replica number, counter,
//	                 HLC; no clock when it is the version's own dot), with
//	                 q/<mark><key> (2000 entries)
//	layout-grouped   the same compact records, and one outbox-log entry per
//	                 group listing the keys it dirtied, instead of one queue
//	                 entry per key (1001 entries)

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

func benchStoreKey(i int) string { return fmt.Sprintf("%016d", i) }

// Format 1's keys (migrate.go): o/<key> and q/<mark><key>.
func outboxKey1(k string) []byte { return append(bytes.Clone(prefixOutbox1), k...) }
func queueKey1(c uint64, k string) []byte {
	return append(binary.BigEndian.AppendUint64(bytes.Clone(prefixQueue1), c), k...)
}

func BenchmarkWritePath(b *testing.B) {
	const batch = 1000
	val := bytes.Repeat([]byte{0x5a}, 100)
	id := clock.NewReplicaID()
	openEngine := func() *Badger {
		e, err := OpenBadger(b.TempDir(), BadgerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		return e
	}
	raw, apply, layout, proposed, grouped := openEngine(), openEngine(), openEngine(), openEngine(), openEngine()
	s := openStore(b, openEngine(), &Options{Durability: Relaxed})
	if err := s.Init(ctx, id); err != nil {
		b.Fatal(err)
	}
	// One stamped record, encoded once: the layout cost without the
	// stamping and encoding work.
	rec := merge.LocalWrite(merge.Record{}, nil, merge.Version{Value: val, Dot: clock.Dot{Replica: id, Counter: 123456}, Time: clock.MakeHLC(time.Now().UnixMilli(), 0)})
	enc := encodeStored(Stored{Record: rec}, noMark)
	// The format-1 layout (engine-layout): an 8-byte pos before the
	// canonical record.
	enc1 := merge.AppendRecord(make([]byte, 8), rec)
	compact := append(bytes.Repeat([]byte{0x01}, 24), val...)
	names := []string{"raw-writebatch", "engine-apply", "engine-layout", "store-write", "layout-proposed", "layout-grouped"}
	steps := []func(i int) error{
		func(i int) error {
			wb := raw.DB().NewWriteBatch()
			for j := range batch {
				if err := wb.Set([]byte(benchStoreKey(i*batch+j)), val); err != nil {
					return err
				}
			}
			return wb.Flush()
		},
		func(i int) error {
			muts := make([]Mutation, batch)
			for j := range muts {
				muts[j] = Mutation{Key: []byte(benchStoreKey(i*batch + j)), Value: val}
			}
			return apply.Apply(muts, false)
		},
		func(i int) error {
			muts := make([]Mutation, 0, 3*batch)
			for j := range batch {
				k := benchStoreKey(i*batch + j)
				c := uint64(i*batch + j)
				muts = append(muts, Mutation{Key: recordKey(k), Value: enc1},
					Mutation{Key: outboxKey1(k), Value: putUint(c)}, Mutation{Key: queueKey1(c, k)})
			}
			return layout.Apply(muts, false)
		},
		func(i int) error {
			return s.Update(ctx, func(tx *Tx) error {
				for j := range batch {
					if _, err := tx.Write(benchStoreKey(i*batch+j), val, false); err != nil {
						return err
					}
				}
				return nil
			})
		},
		func(i int) error {
			muts := make([]Mutation, 0, 2*batch)
			for j := range batch {
				k := benchStoreKey(i*batch + j)
				c := uint64(i*batch + j)
				muts = append(muts, Mutation{Key: recordKey(k), Value: compact}, Mutation{Key: queueKey1(c, k)})
			}
			return proposed.Apply(muts, false)
		},
		func(i int) error {
			muts := make([]Mutation, 0, batch+1)
			var keys []byte
			for j := range batch {
				k := benchStoreKey(i*batch + j)
				muts = append(muts, Mutation{Key: recordKey(k), Value: compact})
				keys = append(append(keys, byte(len(k))), k...)
			}
			muts = append(muts, Mutation{Key: logKey(uint64(i)), Value: keys})
			return grouped.Apply(muts, false)
		},
	}
	took := make([]time.Duration, len(steps))
	i := 0
	for b.Loop() {
		// Rotate the order so no step always runs right after another.
		for k := range steps {
			n := (i + k) % len(steps)
			t0 := time.Now()
			if err := steps[n](i); err != nil {
				b.Fatal(err)
			}
			took[n] += time.Since(t0)
		}
		i++
	}
	for n, name := range names {
		b.ReportMetric(float64(b.N*batch)/took[n].Seconds(), name+"-puts/s")
		if n > 0 {
			b.ReportMetric(took[0].Seconds()/took[n].Seconds(), name+"-ratio")
		}
	}
	b.ReportMetric(float64(len(enc)), "record-bytes") // format 2's entry
	b.ReportMetric(float64(len(enc1)), "record1-bytes")
	b.ReportMetric(0, "ns/op")
}
