package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/vmihailenco/msgpack/v5"
)

// TestAppendRecordMatchesEncoder: the store's encoder-free record encoding
// (merge.AppendRecord) writes exactly the bytes of the msgpack encoder form
// (merge.EncodeRecordTo), across the size classes of every length and
// integer, and decodes back to the same record.
func TestAppendRecordMatchesEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	ids := make([]clock.ReplicaID, 20)
	for i := range ids {
		ids[i] = clock.NewReplicaID()
	}
	nums := []uint64{1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, 1<<64 - 1}
	num := func() uint64 {
		if rng.IntN(2) == 0 {
			return nums[rng.IntN(len(nums))]
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	sizes := []int{0, 1, 255, 256, 65535, 65536, 70000}
	for it := range 3000 {
		c := clock.Vector{}
		for range rng.IntN(20) {
			c[ids[rng.IntN(len(ids))]] = max(1, num())
		}
		var vs []merge.Version
		for i := range rng.IntN(18) {
			v := merge.Version{Dot: clock.Dot{Replica: ids[i], Counter: max(1, num())}, Time: clock.HLC(num())}
			switch rng.IntN(4) {
			case 0:
				v.Deleted = true
			case 1:
				v.Value = nil
			default:
				n := rng.IntN(300)
				if it%50 == 0 {
					n = sizes[rng.IntN(len(sizes))]
				}
				v.Value = bytes.Repeat([]byte{byte(i)}, n)
			}
			if c[v.Dot.Replica] < v.Dot.Counter {
				c[v.Dot.Replica] = v.Dot.Counter
			}
			vs = append(vs, v)
		}
		slices.SortFunc(vs, func(a, b merge.Version) int { return a.Dot.Compare(b.Dot) })
		rec := merge.Record{Clock: c, Versions: vs}
		var buf bytes.Buffer
		if err := merge.EncodeRecordTo(msgpack.NewEncoder(&buf), rec); err != nil {
			t.Fatal(err)
		}
		got, _ := merge.EncodeRecord(rec)
		if !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("record %d: AppendRecord\n%x\nencoder\n%x", it, got, buf.Bytes())
		}
		if hint := merge.RecordSizeHint(rec); len(got) > hint {
			t.Errorf("record %d: %d bytes, hint %d", it, len(got), hint)
		}
		var vbuf bytes.Buffer
		if err := merge.EncodeVector(msgpack.NewEncoder(&vbuf), c); err != nil {
			t.Fatal(err)
		}
		if v := encodeVector(c); !bytes.Equal(v, vbuf.Bytes()) {
			t.Fatalf("vector %d: %x, encoder %x", it, v, vbuf.Bytes())
		}
		st := Stored{Record: rec, Pos: num()}
		mark := []uint64{noMark, 0, num()}[it%3]
		b := encodeStored(st, mark)
		back, bm, err := decodeStored("k", b)
		if err != nil {
			t.Fatalf("record %d: %v", it, err)
		}
		if back.Pos != st.Pos || !back.Record.Equal(rec) || bm != mark {
			t.Fatalf("record %d: round trip %+v mark %d, want %+v mark %d", it, back, bm, st, mark)
		}
	}
}

// TestCompactBody: a record of one version whose clock is its own dot is
// stored in the compact form (no clock, no msgpack framing), smaller than
// the canonical one, and decodes to a record whose canonical bytes are the
// original's: a live value, an empty one, a nil one, a tombstone. Others
// stay canonical; a damaged compact body is ErrCorrupt.
func TestCompactBody(t *testing.T) {
	id := clock.ReplicaID{7, 1}
	other := clock.ReplicaID{8, 2}
	one := func(v merge.Version) merge.Record {
		return merge.Record{Clock: clock.Vector{v.Dot.Replica: v.Dot.Counter}, Versions: []merge.Version{v}}
	}
	dot := clock.Dot{Replica: id, Counter: 300}
	compact := []merge.Record{
		one(merge.Version{Value: []byte("hello"), Dot: dot, Time: 1 << 50}),
		one(merge.Version{Value: []byte{}, Dot: dot, Time: 5}),
		one(merge.Version{Value: nil, Dot: dot, Time: 5}),
		one(merge.Version{Deleted: true, Dot: dot, Time: 7}),
		one(merge.Version{Value: bytes.Repeat([]byte{0x92}, 300), Dot: clock.Dot{Replica: id, Counter: 1 << 40}, Time: 1}),
	}
	canonical := []merge.Record{
		{Clock: clock.Vector{id: 300, other: 2}, Versions: []merge.Version{{Value: []byte("x"), Dot: dot, Time: 5}}},
		{Clock: clock.Vector{id: 301}, Versions: []merge.Version{{Value: []byte("x"), Dot: dot, Time: 5}}},
		{Clock: clock.Vector{id: 300, other: 2}, Versions: []merge.Version{
			{Value: []byte("y"), Dot: dot, Time: 6},
			{Value: []byte("x"), Dot: clock.Dot{Replica: other, Counter: 2}, Time: 5}}},
		{Clock: clock.Vector{id: 300}},
	}
	for i, r := range append(slices.Clone(compact), canonical...) {
		want, _ := merge.EncodeRecord(r)
		b := appendBody(nil, r)
		if isCompact := b[0] == compactBody; isCompact != (i < len(compact)) {
			t.Errorf("record %d: compact %v", i, isCompact)
		}
		if i < len(compact) && len(b) >= len(want) {
			t.Errorf("record %d: compact form of %d bytes, canonical %d", i, len(b), len(want))
		}
		back, err := decodeBody("k", b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got, _ := merge.EncodeRecord(back)
		if !bytes.Equal(got, want) {
			t.Errorf("record %d: decodes to %x, want %x", i, got, want)
		}
		if i < len(compact) && back.Versions[0].Deleted == (back.Versions[0].Value != nil) {
			t.Errorf("record %d: value %v for deleted=%v (a tombstone's is nil, a value never is)", i, back.Versions[0].Value, back.Versions[0].Deleted)
		}
	}
	good := appendBody(nil, compact[0])
	for i, b := range [][]byte{
		good[:10], // cut in the replica id
		append(append([]byte{}, good[:18]...), 0x80),          // counter cut short
		append([]byte{compactBody, 2}, good[2:]...),           // unknown flags
		append([]byte{compactBody, 0}, make([]byte, 16+2)...), // zero replica, zero counter
		append([]byte{compactBody, 1}, good[2:]...),           // a tombstone with a value
	} {
		if _, err := decodeBody("k", b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("damaged %d: %v", i, err)
		}
	}
}
