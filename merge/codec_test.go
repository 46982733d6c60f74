package merge_test

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

func encode(t tb, r merge.Record) []byte {
	t.Helper()
	b, err := merge.EncodeRecord(r)
	if err != nil {
		t.Fatalf("EncodeRecord: %v", err)
	}
	return b
}

// checkDecode is the property every input must satisfy: DecodeRecord either
// fails with ErrBadRecord, or returns a valid record that encodes to bytes
// decoding to an equal record, and that encoding is a fixpoint.
func checkDecode(t tb, data []byte) {
	t.Helper()
	r, err := merge.DecodeRecord(data)
	if err != nil {
		if !errors.Is(err, merge.ErrBadRecord) {
			t.Fatalf("error %v does not wrap ErrBadRecord", err)
		}
		if !r.IsZero() {
			t.Fatalf("a failed decode returned a record: %+v", r)
		}
		return
	}
	if err := proptest.ValidateRecord(r); err != nil {
		t.Fatalf("decoded an invalid record: %v", err)
	}
	b := encode(t, r)
	r2, err := merge.DecodeRecord(b)
	if err != nil {
		t.Fatalf("re-encoded record does not decode: %v", err)
	}
	if !r2.Equal(r) {
		t.Fatalf("re-encoded record decodes differently:\n%+v\n%+v", r, r2)
	}
	if b2 := encode(t, r2); !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not a fixpoint:\n%x\n%x", b, b2)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := proptest.Record().Draw(t, "record")
		b := encode(t, r)
		got, err := merge.DecodeRecord(b)
		if err != nil {
			t.Fatalf("DecodeRecord: %v", err)
		}
		if !got.Equal(r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		checkDecode(t, b)
	})
}

// twin returns a record equal to r (Record.Equal) built differently: clock
// entries inserted in another order, explicit zero entries, fresh slices,
// and empty live values switched between nil and []byte{}.
func twin(t *rapid.T, r merge.Record) merge.Record {
	keys := make([]clock.ReplicaID, 0, len(r.Clock))
	for id := range r.Clock {
		keys = append(keys, id)
	}
	slices.SortFunc(keys, clock.ReplicaID.Compare)
	c := clock.Vector{}
	for _, id := range rapid.Permutation(keys).Draw(t, "insertion order") {
		c[id] = r.Clock[id]
	}
	for _, id := range proptest.Pool(proptest.PoolSize) {
		if _, ok := c[id]; !ok && rapid.IntRange(0, 3).Draw(t, "zero entry") == 0 {
			c[id] = 0
		}
	}
	out := merge.Record{Clock: c}
	for _, v := range r.Versions {
		switch {
		case v.Deleted:
		case len(v.Value) > 0:
			v.Value = bytes.Clone(v.Value)
		case v.Value == nil:
			v.Value = []byte{}
		default:
			v.Value = nil
		}
		out.Versions = append(out.Versions, v)
	}
	return out
}

func TestCodecCanonical(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := proptest.Record().Draw(t, "record")
		r2 := twin(t, r)
		if !r.Equal(r2) {
			t.Fatalf("twin is not equal")
		}
		if b, b2 := encode(t, r), encode(t, r2); !bytes.Equal(b, b2) {
			t.Fatalf("equal records encode differently:\n%x\n%x\n%+v\n%+v", b, b2, r, r2)
		}
	})
}

func TestDecodeRejectsTruncated(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := encode(t, proptest.Record().Draw(t, "record"))
		for n := range len(b) {
			if _, err := merge.DecodeRecord(b[:n]); !errors.Is(err, merge.ErrBadRecord) {
				t.Fatalf("prefix of %d/%d bytes: err = %v", n, len(b), err)
			}
		}
	})
}

// Mutated encodings never panic, and whatever decodes is valid.
func TestDecodeMutations(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := encode(t, proptest.Record().Draw(t, "record"))
		for range rapid.IntRange(1, 4).Draw(t, "mutations") {
			pos := rapid.IntRange(0, len(b)).Draw(t, "pos")
			by := rapid.Byte().Draw(t, "byte")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				if pos < len(b) {
					b[pos] = by
				}
			case 1:
				b = slices.Insert(b, pos, by)
			case 2:
				if pos < len(b) {
					b = slices.Delete(b, pos, pos+1)
				}
			}
		}
		checkDecode(t, b)
	})
}

// raw builds msgpack [clock, versions] with arbitrary elements, to make
// encodings that EncodeRecord cannot produce.
func raw(clockEntries [][]any, versions [][]any) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(e.EncodeArrayLen(2))
	for _, list := range [][][]any{clockEntries, versions} {
		must(e.EncodeArrayLen(len(list)))
		for _, item := range list {
			must(e.EncodeArrayLen(len(item)))
			for _, x := range item {
				must(e.Encode(x))
			}
		}
	}
	return buf.Bytes()
}

func TestDecodeRejects(t *testing.T) {
	a, b := ids[3][:], ids[0][:] // a < b in byte order
	one := [][]any{{a, uint64(1)}}
	two := [][]any{{a, uint64(2)}, {b, uint64(1)}}
	ver := func(replica []byte, counter uint64) []any {
		return []any{[]byte("v"), false, replica, counter, uint64(7)}
	}
	// Positive controls: the builder makes valid records.
	for _, ok := range [][]byte{
		raw(one, [][]any{ver(a, 1)}),
		raw(two, [][]any{ver(a, 1), ver(a, 2), ver(b, 1)}),
		raw(one, [][]any{{nil, true, a, uint64(1), uint64(0)}}),
		raw(nil, nil),
	} {
		if _, err := merge.DecodeRecord(ok); err != nil {
			t.Fatalf("control %x: %v", ok, err)
		}
	}
	zero := make([]byte, 16)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty input", nil},
		{"not an array", []byte{0xa1, 'x'}},
		{"top level of 3", []byte{0x93, 0x90, 0x90, 0x90}},
		{"top level of 1", []byte{0x91, 0x90}},
		{"huge array length", []byte{0x92, 0x90, 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge bytes length", []byte{0x92, 0x90, 0x91, 0x95, 0xc6, 0x7f, 0xff, 0xff, 0xff}},
		{"clock entry of 3", raw([][]any{{a, uint64(1), uint64(1)}}, nil)},
		{"clock replica of 15 bytes", raw([][]any{{a[:15], uint64(1)}}, nil)},
		{"clock replica of 17 bytes", raw([][]any{{append(slices.Clone(a), 0), uint64(1)}}, nil)},
		{"clock replica of 0 bytes", raw([][]any{{[]byte{}, uint64(1)}}, nil)},
		{"clock replica nil", raw([][]any{{nil, uint64(1)}}, nil)},
		{"clock replica zero", raw([][]any{{zero, uint64(1)}}, nil)},
		{"clock counter a string", raw([][]any{{a, "1"}}, nil)},
		{"duplicate clock entry", raw([][]any{{a, uint64(1)}, {a, uint64(2)}}, nil)},
		{"version of 4", raw(one, [][]any{ver(a, 1)[:4]})},
		{"version of 6", raw(one, [][]any{append(ver(a, 1), uint64(0))})},
		{"value a bool", raw(one, [][]any{{true, false, a, uint64(1), uint64(7)}})},
		{"deleted an int", raw(one, [][]any{{[]byte("v"), 1, a, uint64(1), uint64(7)}})},
		{"version replica of 15 bytes", raw(one, [][]any{ver(a[:15], 1)})},
		{"version replica of 17 bytes", raw(one, [][]any{ver(append(slices.Clone(a), 0), 1)})},
		{"version replica zero", raw(one, [][]any{ver(zero, 1)})},
		{"version counter 0", raw(one, [][]any{ver(a, 0)})},
		{"hlc a string", raw(one, [][]any{{[]byte("v"), false, a, uint64(1), "7"}})},
		{"version not covered: counter above clock", raw(one, [][]any{ver(a, 2)})},
		{"version not covered: replica not in clock", raw(one, [][]any{ver(b, 1)})},
		{"version not covered: empty clock", raw(nil, [][]any{ver(a, 1)})},
		{"tombstone with a value", raw(one, [][]any{{[]byte("v"), true, a, uint64(1), uint64(7)}})},
		{"tombstone with an empty value", raw(one, [][]any{{[]byte{}, true, a, uint64(1), uint64(7)}})},
		{"versions out of order: replica", raw(two, [][]any{ver(b, 1), ver(a, 1)})},
		{"versions out of order: counter", raw(two, [][]any{ver(a, 2), ver(a, 1)})},
		{"duplicate versions", raw(two, [][]any{ver(a, 1), ver(a, 1)})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := merge.DecodeRecord(tt.b)
			if !errors.Is(err, merge.ErrBadRecord) {
				t.Fatalf("DecodeRecord(%x) = %+v, %v; want ErrBadRecord", tt.b, r, err)
			}
			if !r.IsZero() {
				t.Fatalf("a failed decode returned a record: %+v", r)
			}
		})
	}
}

// Records that break an invariant encode (EncodeRecord does not validate)
// but never decode.
func TestDecodeRejectsInvalidRecords(t *testing.T) {
	tests := []struct {
		name string
		r    merge.Record
	}{
		{"not covered", merge.Record{Clock: vec(1), Versions: []merge.Version{put(0, 2, "x", 0)}}},
		{"zero counter", merge.Record{Clock: vec(1), Versions: []merge.Version{put(0, 0, "x", 0)}}},
		{"unsorted", merge.Record{Clock: vec(1, 1), Versions: []merge.Version{put(0, 1, "x", 0), put(1, 1, "y", 0)}}},
		{"duplicate", merge.Record{Clock: vec(1), Versions: []merge.Version{put(0, 1, "x", 0), put(0, 1, "x", 0)}}},
		{"tombstone with a value", merge.Record{Clock: vec(1), Versions: []merge.Version{{Value: []byte("x"), Deleted: true, Dot: dot(0, 1)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := merge.DecodeRecord(encode(t, tt.r)); !errors.Is(err, merge.ErrBadRecord) {
				t.Fatalf("err = %v, want ErrBadRecord", err)
			}
		})
	}
}

func TestVectorCodec(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := proptest.Vector().Draw(t, "v")
		var buf bytes.Buffer
		if err := merge.EncodeVector(msgpack.NewEncoder(&buf), v); err != nil {
			t.Fatal(err)
		}
		got, err := merge.DecodeVector(msgpack.NewDecoder(bytes.NewReader(buf.Bytes())))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(v) || len(got) != len(v.Entries()) {
			t.Fatalf("round trip %v -> %v", v, got)
		}
	})
}

// Records written back to back to one stream read back in order.
func TestRecordStream(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rs := rapid.SliceOfN(proptest.Record(), 0, 4).Draw(t, "records")
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		for _, r := range rs {
			if err := merge.EncodeRecordTo(enc, r); err != nil {
				t.Fatal(err)
			}
		}
		dec := msgpack.NewDecoder(bytes.NewReader(buf.Bytes()))
		for i, r := range rs {
			got, err := merge.DecodeRecordFrom(dec)
			if err != nil || !got.Equal(r) {
				t.Fatalf("record %d: %+v, %v; want %+v", i, got, err, r)
			}
		}
		if _, err := merge.DecodeRecordFrom(dec); !errors.Is(err, merge.ErrBadRecord) {
			t.Fatalf("read past the end: %v", err)
		}
	})
}

// A length header is not trusted: a few bytes claiming a 4 GiB value or
// replica id must fail without allocating anywhere near that much.
func TestDecodeDoesNotTrustLengths(t *testing.T) {
	huge := []byte{0xc6, 0xff, 0xff, 0xff, 0xff} // bin32 of 4 GiB - 1
	str := []byte{0xdb, 0x54, 0x85, 0xbc, 0x1c}  // str32 of 1.4 GiB (found by FuzzDecodeRecord)
	inputs := map[string][]byte{
		"value":                slices.Concat([]byte{0x92, 0x90, 0x91, 0x95}, huge, []byte("abc")),
		"clock replica":        slices.Concat([]byte{0x92, 0x91, 0x92}, huge, []byte("abc")),
		"clock replica string": slices.Concat([]byte{0x92, 0x91, 0x92}, str, []byte("abc")),
		"version replica":      slices.Concat([]byte{0x92, 0x90, 0x91, 0x95, 0xc0, 0xc2}, huge),
	}
	for name, b := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := merge.DecodeRecord(b)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, merge.ErrBadRecord) {
			t.Errorf("%s: err = %v", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: decoding %d bytes allocated %d bytes", name, len(b), n)
		}
	}
}

// TestDecodeRecordAllocations: a pull decodes every record it applies, so
// DecodeRecord's allocations are on its hot path. A one-version record
// takes 6 (its clock map, its versions slice, its value...) and none per
// replica id: a guard against a decode that allocates per field.
func TestDecodeRecordAllocations(t *testing.T) {
	b := encode(t, merge.Record{Clock: vec(1), Versions: []merge.Version{put(0, 1, "value", 7)}})
	n := testing.AllocsPerRun(200, func() {
		if _, err := merge.DecodeRecord(b); err != nil {
			t.Fatal(err)
		}
	})
	if n > 6 {
		t.Fatalf("DecodeRecord of a one-version record: %v allocations, want at most 6", n)
	}
}
