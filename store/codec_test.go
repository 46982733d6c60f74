package store

import (
	"bytes"
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
