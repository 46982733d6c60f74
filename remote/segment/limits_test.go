package segment_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

var regenHostile = flag.Bool("regen-hostile", false, "rewrite testdata/hostile/*.seg (takes a few seconds)")

// minimalRecord is the smallest body entry there is: ["k", [[], []]].
var minimalRecord = []byte{0x92, 0xa1, 'k', 0x92, 0x90, 0x90}

// hostileFiles are valid, checksummed segments whose body is one minimal
// record repeated, zstd-compressed at the best level: a few KiB that
// declare, and really decompress to, a huge body of tiny records. Before
// the decoder bounded declared sizes, decoding them allocated about 8 GiB
// and 514 MiB.
var hostileFiles = []struct {
	file   string
	rawLen uint64 // declared and real raw body size
	size   int    // about this many bytes
}{
	{"amp-1gib.seg", 6 * ((1 << 30) / 6), 96 << 10},
	{"amp-64mib.seg", 6 * ((64 << 20) / 6), 6 << 10},
}

// hostileSegment builds such a segment.
func hostileSegment(t testing.TB, rawLen uint64) []byte {
	t.Helper()
	var zb bytes.Buffer
	zw, err := zstd.NewWriter(&zb, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat(minimalRecord, (1<<20)/len(minimalRecord))
	for left := rawLen; left > 0; {
		n := min(left, uint64(len(chunk)))
		if _, err := zw.Write(chunk[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return raw("EBRS", segment.Version, byte(segment.Zstd), okHeader(t, rawLen/uint64(len(minimalRecord)), rawLen), zb.Bytes())
}

func loadHostile(t *testing.T, file string, rawLen uint64) []byte {
	t.Helper()
	path := filepath.Join("testdata", "hostile", file)
	if *regenHostile {
		b := hostileSegment(t, rawLen)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestHostileAmplification -regen-hostile ./remote/segment/)", err)
	}
	return b
}

// declared reads what a segment's header declares, without the decoder.
func declared(t *testing.T, b []byte) (count, rawLen uint64) {
	t.Helper()
	hl := binary.BigEndian.Uint32(b[6:10])
	dec := msgpack.NewDecoder(bytes.NewReader(b[10 : 10+hl]))
	var fields []any
	if err := dec.Decode(&fields); err != nil || len(fields) != 6 {
		t.Fatalf("header: %v %v", fields, err)
	}
	asU := func(v any) uint64 {
		switch x := v.(type) {
		case uint64:
			return x
		case uint32:
			return uint64(x)
		case uint16:
			return uint64(x)
		case uint8:
			return uint64(x)
		case int8:
			return uint64(x)
		}
		t.Fatalf("header field %T", v)
		return 0
	}
	return asU(fields[3]), asU(fields[4])
}

// allocBytes returns the bytes f allocates (the TotalAlloc delta).
func allocBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// honestLimit is what a store with the default segment cap (8 MiB) and
// value limit (16 MiB) passes as MaxRaw.
const honestLimit = 8<<20 + 16<<20

// TestHostileAmplification: a small valid segment declaring a huge body of
// tiny records fails with ErrCorrupt naming the object before anything is
// decompressed, through every entry point, allocating next to nothing.
func TestHostileAmplification(t *testing.T) {
	const name = "log/00000000000000000666"
	for _, h := range hostileFiles {
		t.Run(h.file, func(t *testing.T) {
			b := loadHostile(t, h.file, h.rawLen)
			// The file is what it claims: a valid checksum, about the
			// advertised size, declaring the huge body.
			if sum := sha256.Sum256(b[:len(b)-sha256.Size]); !bytes.Equal(sum[:], b[len(b)-sha256.Size:]) {
				t.Fatal("bad checksum")
			}
			if len(b) > h.size*5/4 {
				t.Fatalf("%d bytes, expected about %d", len(b), h.size)
			}
			if count, rawLen := declared(t, b); rawLen != h.rawLen || count != h.rawLen/uint64(len(minimalRecord)) {
				t.Fatalf("declares %d records in %d bytes", count, rawLen)
			}
			budget := segment.NewBudget(64 << 20)
			honest := segment.Decoder{MaxRaw: honestLimit, Budget: budget}
			decoders := map[string]func() error{
				"Decode":             func() error { _, err := segment.Decode(name, b); return err },
				"DecodeHeader":       func() error { _, err := segment.DecodeHeader(name, b); return err },
				"Decoder.Decode":     func() error { _, err := honest.Decode(name, b); return err },
				"Decoder.DecodePart": func() error { _, err := honest.DecodePart(name, append([]byte("EBRN"), b[4:]...)); return err },
				"Decoder.Open": func() error {
					r, err := honest.Open(context.Background(), name, b)
					if err == nil {
						r.Close()
					}
					return err
				},
			}
			for what, decode := range decoders {
				var err error
				n := allocBytes(func() { err = decode() })
				if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), name) {
					t.Fatalf("%s: %v, want ErrCorrupt naming %s", what, err, name)
				}
				if what != "Decoder.DecodePart" && !strings.Contains(err.Error(), "body length") {
					t.Fatalf("%s: %v does not say the body length is the problem", what, err)
				}
				if n > 1<<20 {
					t.Fatalf("%s: decoding %d bytes allocated %d bytes", what, len(b), n)
				}
			}
			if budget.Held() != 0 {
				t.Fatalf("a failed Open holds %d bytes of the budget", budget.Held())
			}
		})
	}
}

// TestHostileWithinLimit: the 64 MiB segment under a limit that admits it
// (a store configured with a 64 MiB cap) decodes by streaming with live
// memory about the size of its body, not the ~500 MiB its decoded records
// take together.
func TestHostileWithinLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 11 million records")
	}
	h := hostileFiles[1]
	b := loadHostile(t, h.file, h.rawLen)
	d := segment.Decoder{MaxRaw: 64 << 20}
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := live()
	r, err := d.Open(context.Background(), "log/1", b)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bound := h.rawLen + 8<<20 // the body, plus a chunk and slack
	if got := live() - base; got > bound {
		t.Fatalf("after Open, %d bytes live (bound %d)", got, bound)
	}
	total := 0
	for chunks := 0; ; chunks++ {
		es, err := r.Next(1 << 16)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		total += len(es)
		if chunks%32 == 0 {
			if got := live() - base; got > bound {
				t.Fatalf("after %d records, %d bytes live (bound %d)", total, got, bound)
			}
		}
	}
	if want := int(h.rawLen) / len(minimalRecord); total != want {
		t.Fatalf("%d records, want %d", total, want)
	}
}

// streamAll reads a Reader to the end in chunks of n.
func streamAll(t *testing.T, r *segment.Reader, n int) []segment.Entry {
	t.Helper()
	var out []segment.Entry
	for {
		es, err := r.Next(n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 || len(es) > max(n, 1) {
			t.Fatalf("Next(%d) returned %d entries", n, len(es))
		}
		out = append(out, es...)
	}
}

// TestReader: Open yields what Decode returns, in chunks of any size, for
// segments and parts in both codecs; Rewind starts over; MaxCounter reads
// the clocks; Close releases the budget and ends the Reader.
func TestReader(t *testing.T) {
	ctx := context.Background()
	es := sampleEntries()
	for _, codec := range codecs {
		for _, part := range []bool{false, true} {
			b := encodeSeg(t, sampleHeader(), codec, es)
			open, decode := segment.Decoder{}.Open, segment.Decode
			if part {
				b = encodePart(t, sampleHeader(), codec, es)
				open, decode = segment.Decoder{}.OpenPart, segment.DecodePart
			}
			whole, err := decode("log/1", b)
			if err != nil {
				t.Fatal(err)
			}
			budget := segment.NewBudget(1 << 20)
			d := segment.Decoder{Budget: budget}
			if part {
				open = d.OpenPart
			} else {
				open = d.Open
			}
			for _, n := range []int{0, 1, 2, len(es), 100} {
				r, err := open(ctx, "log/1", b)
				if err != nil {
					t.Fatal(err)
				}
				h := r.Header()
				h.Count = 0
				sameHeader(t, h, sampleHeader())
				if r.Header().Count != len(es) || r.Codec() != codec {
					t.Fatalf("count %d codec %v", r.Header().Count, r.Codec())
				}
				if budget.Held() != r.Cost() || r.Cost() < int64(len(b)) {
					t.Fatalf("holds %d of the budget, cost %d", budget.Held(), r.Cost())
				}
				sameEntries(t, streamAll(t, r, n), whole.Entries, part)
				r.Rewind()
				sameEntries(t, streamAll(t, r, n), whole.Entries, part)
				if _, err := r.Next(1); err != io.EOF {
					t.Fatalf("Next after the end: %v", err)
				}
				for i := range byte(3) {
					want := uint64(0)
					for _, e := range es {
						want = max(want, e.Record.Clock.Get(rid(i)))
					}
					if got, err := r.MaxCounter(rid(i)); err != nil || got != want {
						t.Fatalf("MaxCounter(%d) = %d, %v; want %d", i, got, err, want)
					}
				}
				r.Close()
				r.Close()
				if budget.Held() != 0 {
					t.Fatalf("after Close %d bytes held", budget.Held())
				}
				if _, err := r.Next(1); err == nil || err == io.EOF {
					t.Fatalf("Next after Close: %v", err)
				}
			}
		}
	}
}

// TestOpenChecksEveryRecord: a segment whose last record is bad fails at
// Open, before a caller could apply the records before it, and holds no
// budget.
func TestOpenChecksEveryRecord(t *testing.T) {
	es := sampleEntries()
	good := body(t, es)
	bad := append(bytes.Clone(good), 0x92, 0xa1, 'z', 0xc0, 0xc0, 0xc0) // a last record that is not one
	trailing := append(bytes.Clone(good), 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0)
	cases := map[string][]byte{
		"bad last record": raw("EBRS", 1, 0, okHeader(t, uint64(len(es)+1), uint64(len(bad))), bad),
		"trailing bytes":  raw("EBRS", 1, 0, okHeader(t, uint64(len(es)), uint64(len(trailing))), trailing),
		"zstd bad last":   raw("EBRS", 1, 1, okHeader(t, uint64(len(es)+1), uint64(len(bad))), zstdAll(bad)),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			budget := segment.NewBudget(1 << 20)
			r, err := segment.Decoder{Budget: budget}.Open(context.Background(), "log/9", b)
			if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), "log/9") {
				if r != nil {
					t.Logf("first chunk: %v", func() error { _, err := r.Next(len(es)); return err }())
				}
				t.Fatalf("Open: %v, want ErrCorrupt naming log/9", err)
			}
			if budget.Held() != 0 {
				t.Fatalf("a failed Open holds %d bytes", budget.Held())
			}
		})
	}
}

// TestOpenRetainsNoRecords: Open checks every record but keeps none: the
// memory live after it is the body, not the decoded records.
func TestOpenRetainsNoRecords(t *testing.T) {
	const n = 200_000
	var buf bytes.Buffer
	for range n {
		buf.Write(minimalRecord)
	}
	bd := buf.Bytes()
	b := raw("EBRS", 1, 1, okHeader(t, n, uint64(len(bd))), zstdAll(bd))
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := live()
	r, err := segment.Decoder{}.Open(context.Background(), "log/1", b)
	if err != nil {
		t.Fatal(err)
	}
	got := live() - base
	runtime.KeepAlive(r)
	// The decoded records would take over 100 bytes each.
	if bound := uint64(len(bd)) + 1<<20; got > bound {
		t.Fatalf("%d bytes live after Open of a %d-byte body (bound %d)", got, len(bd), bound)
	}
	r.Close()
}

// TestBudget: the semaphore's contract.
func TestBudget(t *testing.T) {
	ctx := context.Background()
	b := segment.NewBudget(100)
	if err := b.Acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if b.TryAcquire(41) || !b.TryAcquire(40) || b.Held() != 100 {
		t.Fatalf("TryAcquire: held %d", b.Held())
	}
	// A waiter that gives up leaves nothing behind.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error)
	go func() { errc <- b.Acquire(cctx, 50) }()
	for b.Waiting() != 1 {
		runtime.Gosched()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v", err)
	}
	if b.Waiting() != 0 || b.Held() != 100 {
		t.Fatalf("after a cancelled wait: %d waiting, %d held", b.Waiting(), b.Held())
	}
	// Waiters are served in order: a small one that would fit waits
	// behind a large one that does not.
	got := make(chan int64, 2)
	go func() { _ = b.Acquire(ctx, 70); got <- 70 }()
	for b.Waiting() != 1 {
		runtime.Gosched()
	}
	go func() { _ = b.Acquire(ctx, 40); got <- 40 }()
	for b.Waiting() != 2 {
		runtime.Gosched()
	}
	if b.TryAcquire(1) {
		t.Fatal("TryAcquire jumped the queue")
	}
	b.Release(40) // 60 held: 70 does not fit, and 40 waits behind it
	if b.Waiting() != 2 || b.Held() != 60 {
		t.Fatalf("%d waiting, %d held after a partial release", b.Waiting(), b.Held())
	}
	b.Release(60) // 70 fits, 40 then does not
	if n := <-got; n != 70 || b.Waiting() != 1 || b.Held() != 70 {
		t.Fatalf("served %d first; %d waiting, %d held", n, b.Waiting(), b.Held())
	}
	b.Release(70)
	if n := <-got; n != 40 || b.Held() != 40 {
		t.Fatalf("served %d second, %d held", n, b.Held())
	}
	b.Release(40)
	// A request above the size takes the whole budget.
	if err := b.Acquire(ctx, 1<<40); err != nil || b.Held() != 100 {
		t.Fatalf("oversized Acquire: %v, %d held", err, b.Held())
	}
	b.Release(1 << 40)
	if err := b.Acquire(cctx, 1); err == nil {
		t.Fatal("Acquire with a done ctx succeeded")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Release of more than held did not panic")
			}
		}()
		b.Release(1)
	}()
	var nilBudget *segment.Budget
	if nilBudget.Acquire(ctx, 5) != nil || !nilBudget.TryAcquire(5) || nilBudget.Held() != 0 {
		t.Fatal("nil Budget")
	}
	nilBudget.Release(5)
}

// TestBudgetBoundsConcurrentOpens: eight concurrent Opens under a budget
// that fits three hold at most three bodies at once; the rest wait until a
// Reader closes.
func TestBudgetBoundsConcurrentOpens(t *testing.T) {
	a := rid(0)
	es := []segment.Entry{{Key: "big", Record: merge.Record{Clock: clock.Vector{a: 1},
		Versions: []merge.Version{{Value: bytes.Repeat([]byte{'v'}, 1<<20), Dot: clock.Dot{Replica: a, Counter: 1}, Time: at}}}}}
	b := encodeSeg(t, segment.Header{Origin: a}, segment.Zstd, es)
	probe, err := segment.Decoder{}.Open(context.Background(), "log/1", b)
	if err != nil {
		t.Fatal(err)
	}
	cost := probe.Cost()
	probe.Close()
	if cost < 1<<20 {
		t.Fatalf("cost %d does not count the decompressed body", cost)
	}
	budget := segment.NewBudget(3*cost + cost/2)
	d := segment.Decoder{Budget: budget}
	const workers = 8
	var opened atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			r, err := d.Open(context.Background(), "log/1", b)
			if err != nil {
				errs <- err
				return
			}
			opened.Add(1)
			<-release
			_ = streamAll(t, r, 1)
			r.Close()
		})
	}
	for int(opened.Load())+budget.Waiting() < workers {
		runtime.Gosched()
	}
	if n := opened.Load(); n != 3 || budget.Held() > budget.Size() {
		t.Fatalf("%d Readers open at once holding %d bytes; the budget of %d fits 3", n, budget.Held(), budget.Size())
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if opened.Load() != workers || budget.Held() != 0 {
		t.Fatalf("%d opened, %d held at the end", opened.Load(), budget.Held())
	}
}

// TestCountAllocatesAsRecordsArrive: a body of junk declaring as many
// records as its size allows fails at the first record, having allocated
// nothing for the records it declared.
func TestCountAllocatesAsRecordsArrive(t *testing.T) {
	const n = 8 << 20
	bd := make([]byte, n) // 0x00 is not an array header
	for _, part := range []bool{false, true} {
		magic, per, decode := "EBRS", 6, segment.Decode
		if part {
			magic, per, decode = "EBRN", 7, segment.DecodePart
		}
		b := raw(magic, 1, 0, okHeader(t, uint64(n/per), n), bd)
		var err error
		got := allocBytes(func() { _, err = decode("log/3", b) })
		if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), "record 0") {
			t.Fatalf("%v, want ErrCorrupt at record 0", err)
		}
		if got > 1<<20 {
			t.Fatalf("part %v: a %d-byte body declaring %d records allocated %d bytes", part, n, n/per, got)
		}
	}
}
