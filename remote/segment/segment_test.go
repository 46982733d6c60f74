package segment_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

const at = clock.HLC(1_700_000_000_000 << 16)

func rid(i byte) clock.ReplicaID {
	var id clock.ReplicaID
	id[0], id[15] = 0x10+i, i+1
	return id
}

// sampleEntries covers the record shapes: one value, an empty value, a
// tombstone, siblings, binary keys and values.
func sampleEntries() []segment.Entry {
	a, b := rid(0), rid(1)
	return []segment.Entry{
		{Key: "a", Pos: 3, Record: merge.Record{Clock: clock.Vector{a: 1},
			Versions: []merge.Version{{Value: []byte("hello"), Dot: clock.Dot{Replica: a, Counter: 1}, Time: at}}}},
		{Key: "empty", Pos: 4, Record: merge.Record{Clock: clock.Vector{b: 2},
			Versions: []merge.Version{{Value: []byte{}, Dot: clock.Dot{Replica: b, Counter: 2}, Time: at + 1}}}},
		{Key: "gone", Pos: 5, Record: merge.Record{Clock: clock.Vector{a: 2, b: 1},
			Versions: []merge.Version{{Deleted: true, Dot: clock.Dot{Replica: a, Counter: 2}, Time: at + 2}}}},
		{Key: "siblings", Pos: 1 << 40, Record: merge.Record{Clock: clock.Vector{a: 3, b: 3},
			Versions: []merge.Version{
				{Value: []byte("x"), Dot: clock.Dot{Replica: a, Counter: 3}, Time: at + 3},
				{Deleted: true, Dot: clock.Dot{Replica: b, Counter: 3}, Time: at + 4},
			}}},
		{Key: "bin\x00\xff", Pos: 0, Record: merge.Record{Clock: clock.Vector{b: 4},
			Versions: []merge.Version{{Value: []byte{0, 1, 2, 0xff}, Dot: clock.Dot{Replica: b, Counter: 4}, Time: at + 5}}}},
	}
}

func sampleHeader() segment.Header {
	return segment.Header{Origin: rid(7), Base: 41, HLC: at + 99, Note: "a note"}
}

func encodeSeg(t testing.TB, h segment.Header, codec segment.Codec, es []segment.Entry) []byte {
	t.Helper()
	b, err := segment.Encode(h, codec, es)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodePart(t testing.TB, h segment.Header, codec segment.Codec, es []segment.Entry) []byte {
	t.Helper()
	e := segment.NewPartEncoder()
	for _, en := range es {
		if err := e.AddPos(en.Key, en.Pos, en.Record); err != nil {
			t.Fatal(err)
		}
	}
	b, err := e.Finish(h, codec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameEntries compares decoded entries; withPos also compares Pos.
func sameEntries(t testing.TB, got, want []segment.Entry, withPos bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Key != w.Key || !g.Record.Equal(w.Record) || (withPos && g.Pos != w.Pos) || (!withPos && g.Pos != 0) {
			t.Fatalf("entry %d: got %q pos %d %+v, want %q pos %d %+v", i, g.Key, g.Pos, g.Record, w.Key, w.Pos, w.Record)
		}
	}
}

func sameHeader(t testing.TB, got, want segment.Header) {
	t.Helper()
	if got != want {
		t.Fatalf("header %+v, want %+v", got, want)
	}
}

var codecs = []segment.Codec{segment.Raw, segment.Zstd}

func TestRoundTrip(t *testing.T) {
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			es := sampleEntries()
			h := sampleHeader()
			b := encodeSeg(t, h, codec, es)
			s, err := segment.Decode("log/1", b)
			if err != nil {
				t.Fatal(err)
			}
			h.Count = len(es)
			sameHeader(t, s.Header, h)
			if s.Codec != codec {
				t.Fatalf("codec %v, want %v", s.Codec, codec)
			}
			sameEntries(t, s.Entries, es, false)
			hd, err := segment.DecodeHeader("log/1", b)
			if err != nil {
				t.Fatal(err)
			}
			sameHeader(t, hd, h)
			// Encoding is deterministic.
			if b2 := encodeSeg(t, sampleHeader(), codec, es); !bytes.Equal(b, b2) {
				t.Fatal("two encodings of the same segment differ")
			}
		})
	}
}

func TestEmptySegments(t *testing.T) {
	for _, codec := range codecs {
		for _, h := range []segment.Header{{}, {Note: "quarantined to quarantine/log-1"}} {
			b := encodeSeg(t, h, codec, nil)
			s, err := segment.Decode("log/2", b)
			if err != nil {
				t.Fatalf("%v %+v: %v", codec, h, err)
			}
			if len(s.Entries) != 0 || s.Count != 0 || s.Note != h.Note || !s.Origin.IsZero() {
				t.Fatalf("%v: decoded %+v", codec, s)
			}
			p := encodePart(t, h, codec, nil)
			if s, err := segment.DecodePart("snap/p", p); err != nil || len(s.Entries) != 0 {
				t.Fatalf("%v: empty part: %+v, %v", codec, s, err)
			}
		}
	}
}

func TestPartsKeepPos(t *testing.T) {
	for _, codec := range codecs {
		es := sampleEntries()
		h := segment.Header{Origin: rid(3), Base: 12}
		b := encodePart(t, h, codec, es)
		s, err := segment.DecodePart("snap/x/part-1", b)
		if err != nil {
			t.Fatal(err)
		}
		h.Count = len(es)
		sameHeader(t, s.Header, h)
		sameEntries(t, s.Entries, es, true)
		// A segment encoder drops Pos.
		e := segment.NewEncoder()
		for _, en := range es {
			if err := e.AddPos(en.Key, en.Pos, en.Record); err != nil {
				t.Fatal(err)
			}
		}
		if e.Count() != len(es) || e.Len() == 0 {
			t.Fatalf("encoder count %d len %d", e.Count(), e.Len())
		}
		sb, err := e.Finish(segment.Header{}, codec)
		if err != nil {
			t.Fatal(err)
		}
		s, err = segment.Decode("log/3", sb)
		if err != nil {
			t.Fatal(err)
		}
		sameEntries(t, s.Entries, es, false)
	}
}

// TestMagicMismatch: a part is not a segment and a segment not a part;
// neither is anything else.
func TestMagicMismatch(t *testing.T) {
	seg := encodeSeg(t, sampleHeader(), segment.Raw, sampleEntries())
	part := encodePart(t, sampleHeader(), segment.Raw, sampleEntries())
	cases := []struct {
		name string
		dec  func(string, []byte) (*segment.Segment, error)
		data []byte
		want string
	}{
		{"part as segment", segment.Decode, part, "not an ebreplica segment"},
		{"segment as part", segment.DecodePart, seg, "not an ebreplica snapshot part"},
		{"json", segment.Decode, []byte(`{"format":1,"store_id":"abc","policies":{},"codec":"zstd"}`), "not an ebreplica segment"},
		{"zip", segment.DecodePart, append([]byte("PK\x03\x04"), make([]byte, 60)...), "not an ebreplica snapshot part"},
	}
	for _, c := range cases {
		_, err := c.dec("obj/"+c.name, c.data)
		if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "obj/"+c.name) {
			t.Errorf("%s: %v, want ErrCorrupt %q naming the object", c.name, err, c.want)
		}
	}
	if _, err := segment.DecodeHeader("log/9", part); !errors.Is(err, segment.ErrCorrupt) {
		t.Errorf("DecodeHeader of a part: %v", err)
	}
}

func checkCorrupt(t *testing.T, what string, b []byte, part bool) {
	t.Helper()
	name := "log/00000000000000000042"
	dec := segment.Decode
	if part {
		name, dec = "snap/00000000000000000042/part-abc-0000", segment.DecodePart
	}
	s, err := dec(name, b)
	if err == nil {
		t.Fatalf("%s: decoded %+v", what, s)
	}
	if !errors.Is(err, segment.ErrCorrupt) || errors.Is(err, segment.ErrVersion) {
		t.Fatalf("%s: %v, want only ErrCorrupt", what, err)
	}
	if !strings.Contains(err.Error(), name) {
		t.Fatalf("%s: %q does not name the object", what, err)
	}
}

func TestTruncatedAtEveryLength(t *testing.T) {
	for _, codec := range codecs {
		for _, part := range []bool{false, true} {
			b := encodeSeg(t, sampleHeader(), codec, sampleEntries())
			if part {
				b = encodePart(t, sampleHeader(), codec, sampleEntries())
			}
			for n := range len(b) {
				checkCorrupt(t, fmt.Sprintf("%v part=%v truncated to %d of %d", codec, part, n, len(b)), b[:n], part)
			}
			// Extended by a byte is damage too.
			checkCorrupt(t, "extended", append(bytes.Clone(b), 0), part)
		}
	}
}

func TestFlippedBytes(t *testing.T) {
	for _, codec := range codecs {
		for _, part := range []bool{false, true} {
			b := encodeSeg(t, sampleHeader(), codec, sampleEntries())
			if part {
				b = encodePart(t, sampleHeader(), codec, sampleEntries())
			}
			for off := range len(b) {
				for _, mask := range []byte{0x01, 0x80, 0xff} {
					c := bytes.Clone(b)
					c[off] ^= mask
					// A flipped version byte reads as damage, never as a
					// newer writer: the checksum comes first.
					checkCorrupt(t, fmt.Sprintf("%v part=%v byte %d ^ %#x", codec, part, off, mask), c, part)
				}
			}
		}
	}
}

// raw builds segment bytes from their parts with a valid checksum, so the
// checks behind the checksum can be reached.
func raw(magic string, version, codec byte, header, body []byte) []byte {
	out := append([]byte(magic), version, codec)
	out = binary.BigEndian.AppendUint32(out, uint32(len(header)))
	out = append(out, header...)
	out = append(out, body...)
	return resum(out)
}

// resum appends a valid SHA-256 trailer to payload.
func resum(payload []byte) []byte {
	sum := sha256.Sum256(payload)
	return append(payload, sum[:]...)
}

// hdr encodes a header array; fields are encoded as given (msgpack
// values), so tests can put the wrong types in.
func hdr(t testing.TB, fields ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeArrayLen(len(fields)); err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		var err error
		switch v := f.(type) {
		case uint64: // compact, as the encoder writes them
			err = enc.EncodeUint(v)
		case int:
			err = enc.EncodeInt(int64(v))
		default:
			err = enc.Encode(f)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func okHeader(t testing.TB, count, rawLen uint64) []byte {
	id := rid(1)
	return hdr(t, id[:], uint64(1), uint64(at), count, rawLen, "")
}

// body encodes records in the segment's body framing.
func body(t testing.TB, es []segment.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, e := range es {
		_ = enc.EncodeArrayLen(2)
		_ = enc.EncodeString(e.Key)
		if err := merge.EncodeRecordTo(enc, e.Record); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestRawBuilderMatchesEncoder(t *testing.T) {
	es := sampleEntries()
	h := sampleHeader()
	want := encodeSeg(t, h, segment.Raw, es)
	bd := body(t, es)
	got := raw("EBRS", segment.Version, 0, hdr(t, h.Origin[:], h.Base, uint64(h.HLC), uint64(len(es)), uint64(len(bd)), h.Note), bd)
	if !bytes.Equal(got, want) {
		t.Fatal("the test's raw builder does not match Encode: the layout changed")
	}
}

// TestNewerVersion: a valid segment of a newer format is ErrVersion, not
// damage, and says to upgrade.
func TestNewerVersion(t *testing.T) {
	for _, v := range []byte{segment.Version + 1, 0xff} {
		b := raw("EBRS", v, 0, []byte("whatever a newer format holds"), nil)
		_, err := segment.Decode("log/7", b)
		if !errors.Is(err, segment.ErrVersion) || errors.Is(err, segment.ErrCorrupt) ||
			!strings.Contains(err.Error(), "log/7") || !strings.Contains(err.Error(), "upgrade") {
			t.Fatalf("version %d: %v", v, err)
		}
		if _, err := segment.DecodePart("snap/p", raw("EBRN", v, 0, nil, nil)); !errors.Is(err, segment.ErrVersion) {
			t.Fatalf("part version %d: %v", v, err)
		}
	}
}

// TestCraftedCorruption: damage behind a valid checksum (a buggy or
// hostile writer) is ErrCorrupt with a message saying what is wrong.
func TestCraftedCorruption(t *testing.T) {
	id := rid(1)
	es := sampleEntries()
	bd := body(t, es[:1])
	n := uint64(len(bd))
	huge := []byte{0xc6, 0xff, 0xff, 0xff, 0xf0} // bin32 claiming ~4 GiB
	hugeStr := []byte{0xdb, 0xff, 0xff, 0xff, 0xf0}
	withHeaderLen := func(b []byte, hl uint32) []byte {
		c := bytes.Clone(b[:len(b)-sha256.Size])
		binary.BigEndian.PutUint32(c[6:10], hl)
		return resum(c)
	}
	good := raw("EBRS", 1, 0, okHeader(t, 1, n), bd)
	if _, err := segment.Decode("x", good); err != nil {
		t.Fatalf("the crafted base segment does not decode: %v", err)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"version 0", raw("EBRS", 0, 0, okHeader(t, 1, n), bd), "format version 0"},
		{"unknown codec", raw("EBRS", 1, 9, okHeader(t, 1, n), bd), "unknown codec 9"},
		{"header length beyond end", withHeaderLen(good, 1<<31), "header length"},
		{"header length max", withHeaderLen(good, 0xffffffff), "header length"},
		{"header not an array", raw("EBRS", 1, 0, []byte{0xa3, 'a', 'b', 'c'}, nil), "bad header"},
		{"header of 5 fields", raw("EBRS", 1, 0, hdr(t, id[:], 1, 2, 0, 0), nil), "bad header"},
		{"empty header", raw("EBRS", 1, 0, nil, nil), "bad header"},
		{"short origin", raw("EBRS", 1, 0, hdr(t, id[:15], 1, 2, 0, 0, ""), nil), "bad origin"},
		{"origin claiming 4 GiB", raw("EBRS", 1, 0, append([]byte{0x96}, huge...), nil), "bad origin"},
		{"base a string", raw("EBRS", 1, 0, hdr(t, id[:], "x", 2, 0, 0, ""), nil), "bad base"},
		{"hlc string", raw("EBRS", 1, 0, hdr(t, id[:], 1, "x", 0, 0, ""), nil), "bad hlc"},
		{"count a string", raw("EBRS", 1, 0, hdr(t, id[:], 1, 2, "x", 0, ""), nil), "bad count"},
		{"body length over MaxBody", raw("EBRS", 1, 0, okHeader(t, 1, segment.MaxBody+1), bd), "bad body length"},
		{"note claiming 4 GiB", raw("EBRS", 1, 0, append(append(append([]byte{0x96, 0xc4, 16}, id[:]...), 1, 2, 0, 0), hugeStr...), nil), "bad note"},
		{"count exceeds body", raw("EBRS", 1, 0, okHeader(t, n+1, n), bd), "exceeds body"},
		{"body shorter than header says", raw("EBRS", 1, 0, okHeader(t, 1, n+1), bd), "header says"},
		{"body longer than header says", raw("EBRS", 1, 0, okHeader(t, 1, n-1), bd), "header says"},
		{"fewer records than count", raw("EBRS", 1, 0, okHeader(t, 2, n), bd), "record 1"},
		{"trailing bytes", raw("EBRS", 1, 0, okHeader(t, 1, n+1), append(bytes.Clone(bd), 0xc0)), "trailing bytes"},
		{"record framing", raw("EBRS", 1, 0, okHeader(t, 1, 6), []byte{0x93, 0xa1, 'k', 0x92, 0x90, 0x90}), "bad framing"},
		{"empty key", raw("EBRS", 1, 0, okHeader(t, 1, 6), []byte{0x92, 0xa0, 0x92, 0x90, 0x90, 0xc0}), "bad key"},
		{"key claiming 4 GiB", raw("EBRS", 1, 0, okHeader(t, 1, 6), append([]byte{0x92}, hugeStr...)), "bad key"},
		{"bad record", raw("EBRS", 1, 0, okHeader(t, 1, 6), []byte{0x92, 0xa1, 'k', 0xc0, 0xc0, 0xc0}), `record 0 ("k")`},
		{"count beyond the fewest bytes a record takes", raw("EBRS", 1, 0, okHeader(t, 2, 11), make([]byte, 11)), "exceeds body"},
		{"key longer than the bytes left", raw("EBRS", 1, 0, okHeader(t, 1, 9), []byte{0x92, 0xd9, 200, 'k', 0x92, 0x90, 0x90, 0xc0, 0xc0}), "bad key"},
		{"garbage zstd", raw("EBRS", 1, 1, okHeader(t, 1, n), []byte("this is not zstd at all")), "zstd"},
		{"zstd of the wrong length", raw("EBRS", 1, 1, okHeader(t, 1, n+5), zstdAll(bd)), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := segment.Decode("log/00000000000000000042", c.data)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), "log/00000000000000000042") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want ErrCorrupt containing %q", err, c.want)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Fatalf("decoding %d bytes allocated %d MiB", len(c.data), d>>20)
			}
		})
	}
}

func zstdAll(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// zstdStream compresses n zero bytes as a streamed frame, which carries no
// content size.
func zstdStream(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for n > 0 {
		m := min(n, len(zero))
		if _, err := enc.Write(zero[:m]); err != nil {
			t.Fatal(err)
		}
		n -= m
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestZstdBombs: a zstd body that expands far beyond what the header
// declares, or a header that declares far more than the body can hold,
// fails without allocating the claimed or expanded size.
func TestZstdBombs(t *testing.T) {
	const big = 64 << 20
	bombFCS := zstdAll(make([]byte, big)) // frame with its content size
	bombStream := zstdStream(t, big)      // frame without one
	if len(bombFCS) > 1<<20 || len(bombStream) > 1<<20 {
		t.Fatalf("bombs of %d and %d bytes are not small", len(bombFCS), len(bombStream))
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"content size above the header's", raw("EBRS", 1, 1, okHeader(t, 0, 100), bombFCS)},
		{"streamed frame above the header's", raw("EBRS", 1, 1, okHeader(t, 0, 100), bombStream)},
		{"header claims MaxBody for a tiny body", raw("EBRS", 1, 1, okHeader(t, 0, segment.MaxBody), zstdAll([]byte("tiny")))},
		{"part header claims MaxBody", raw("EBRN", 1, 1, okHeader(t, 0, segment.MaxBody), zstdAll(nil))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dec := segment.Decode
			if bytes.HasPrefix(c.data, []byte("EBRN")) {
				dec = segment.DecodePart
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := dec("log/5", c.data)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), "log/5") {
				t.Fatalf("%v, want ErrCorrupt naming log/5", err)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Fatalf("decoding %d bytes allocated %d MiB", len(c.data), d>>20)
			}
		})
	}
}

// TestLargeZstdSegment: a legitimately large, highly compressible body
// still decodes.
func TestLargeZstdSegment(t *testing.T) {
	big := bytes.Repeat([]byte{'v'}, 4<<20)
	a := rid(0)
	es := []segment.Entry{{Key: "big", Record: merge.Record{Clock: clock.Vector{a: 1},
		Versions: []merge.Version{{Value: big, Dot: clock.Dot{Replica: a, Counter: 1}, Time: at}}}}}
	b := encodeSeg(t, segment.Header{Origin: a}, segment.Zstd, es)
	if len(b) > 64<<10 {
		t.Fatalf("4 MiB of one byte compressed to %d bytes", len(b))
	}
	s, err := segment.Decode("log/1", b)
	if err != nil {
		t.Fatal(err)
	}
	sameEntries(t, s.Entries, es, false)
}

func TestCodecNames(t *testing.T) {
	for s, want := range map[string]segment.Codec{"": segment.Raw, "raw": segment.Raw, "none": segment.Raw, "zstd": segment.Zstd} {
		if c, err := segment.ParseCodec(s); err != nil || c != want {
			t.Errorf("ParseCodec(%q) = %v, %v", s, c, err)
		}
	}
	if _, err := segment.ParseCodec("gzip"); err == nil {
		t.Error("ParseCodec(gzip) succeeded")
	}
	if segment.Zstd.String() != "zstd" || segment.Raw.String() != "raw" || segment.Codec(7).String() != "codec(7)" {
		t.Error("Codec.String")
	}
	if _, err := segment.NewEncoder().Finish(segment.Header{}, 7); err == nil {
		t.Error("Finish with codec 7 succeeded")
	}
}
