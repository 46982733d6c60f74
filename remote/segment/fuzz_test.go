package segment_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/remote/segment"
)

// FuzzDecode: Decode, DecodePart and DecodeHeader never panic; they fail
// with ErrCorrupt or ErrVersion naming the object, or return a segment
// whose re-encoding decodes to the same segment. Each input is also tried
// with its SHA-256 trailer recomputed, so the fuzzer reaches the checks
// behind the checksum (as a buggy or hostile writer would).
//
// The checked-in corpus in testdata/fuzz/FuzzDecode holds valid segments
// and parts (raw and zstd), a newer format version, junk, and hostile
// sizes behind a valid checksum: a 6 KiB zstd body of one repeated record
// declaring 64 MiB (testdata/hostile/amp-64mib.seg), counts beyond what the
// body can hold, a key longer than the bytes left.
//
//	go test -run='^$' -fuzz=FuzzDecode -fuzztime=60s ./remote/segment/
func FuzzDecode(f *testing.F) {
	for _, codec := range codecs {
		f.Add(encodeSeg(f, sampleHeader(), codec, sampleEntries()))
		f.Add(encodePart(f, sampleHeader(), codec, sampleEntries()))
		f.Add(encodeSeg(f, segment.Header{Note: "quarantined to quarantine/log-1"}, codec, nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeAll(t, data)
		if len(data) >= sha256.Size {
			checkDecodeAll(t, resum(data[:len(data)-sha256.Size:len(data)-sha256.Size]))
		}
	})
}

const fuzzName = "log/00000000000000000001"

func checkDecodeAll(t *testing.T, data []byte) {
	t.Helper()
	seg, err := segment.Decode(fuzzName, data)
	checkErr(t, "Decode", err)
	hd, herr := segment.DecodeHeader(fuzzName, data)
	checkErr(t, "DecodeHeader", herr)
	if err == nil {
		if herr != nil || hd != seg.Header {
			t.Fatalf("DecodeHeader = %+v, %v; Decode's header %+v", hd, herr, seg.Header)
		}
		checkReencode(t, seg, false)
	}
	part, err := segment.DecodePart(fuzzName, data)
	checkErr(t, "DecodePart", err)
	if err == nil {
		checkReencode(t, part, true)
	}
	checkStream(t, data, seg, false)
	checkStream(t, data, part, true)
}

// checkStream: Open (OpenPart) accepts exactly what Decode (DecodePart)
// accepts, streams the same records, and holds its budget until Close and
// never after; keeping none, some or all of the records it decoded.
func checkStream(t *testing.T, data []byte, whole *segment.Segment, part bool) {
	t.Helper()
	for _, keep := range []int64{0, 300, 1 << 40} {
		checkStreamKeep(t, data, whole, part, keep)
	}
}

func checkStreamKeep(t *testing.T, data []byte, whole *segment.Segment, part bool, keep int64) {
	t.Helper()
	budget := segment.NewBudget(1 << 40) // never clamps a cost
	d := segment.Decoder{Budget: budget, Keep: keep}
	open := d.Open
	if part {
		open = d.OpenPart
	}
	r, err := open(context.Background(), fuzzName, data)
	checkErr(t, "Open", err)
	if (err == nil) != (whole != nil) {
		t.Fatalf("Open: %v, but Decode returned %v", err, whole != nil)
	}
	if err != nil {
		if budget.Held() != 0 {
			t.Fatalf("a failed Open holds %d bytes", budget.Held())
		}
		return
	}
	if r.Header() != whole.Header || r.Codec() != whole.Codec {
		t.Fatalf("Open's header %+v %v, Decode's %+v %v", r.Header(), r.Codec(), whole.Header, whole.Codec)
	}
	var got []segment.Entry
	for {
		es, err := r.Next(3)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next after a successful Open: %v", err)
		}
		got = append(got, es...)
	}
	sameEntries(t, got, whole.Entries, part)
	if budget.Held() != r.Cost() {
		t.Fatalf("holds %d, cost %d", budget.Held(), r.Cost())
	}
	r.Close()
	if budget.Held() != 0 {
		t.Fatalf("%d bytes held after Close", budget.Held())
	}
}

func checkErr(t *testing.T, op string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if !errors.Is(err, segment.ErrCorrupt) && !errors.Is(err, segment.ErrVersion) {
		t.Fatalf("%s: %v is neither ErrCorrupt nor ErrVersion", op, err)
	}
	if !strings.Contains(err.Error(), fuzzName) {
		t.Fatalf("%s: %q does not name the object", op, err)
	}
}

// checkReencode encodes a decoded segment again and decodes that: the
// result is the same segment.
func checkReencode(t *testing.T, s *segment.Segment, part bool) {
	t.Helper()
	e, dec := segment.NewEncoder(), segment.Decode
	if part {
		e, dec = segment.NewPartEncoder(), segment.DecodePart
	}
	for _, en := range s.Entries {
		if err := e.AddPos(en.Key, en.Pos, en.Record); err != nil {
			t.Fatalf("re-encode %q: %v", en.Key, err)
		}
	}
	b, err := e.Finish(s.Header, s.Codec)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	s2, err := dec(fuzzName, b)
	if err != nil {
		t.Fatalf("re-encoded segment does not decode: %v", err)
	}
	if s2.Header != s.Header || s2.Codec != s.Codec {
		t.Fatalf("re-encoded header %+v %v, was %+v %v", s2.Header, s2.Codec, s.Header, s.Codec)
	}
	sameEntries(t, s2.Entries, s.Entries, part)
}
