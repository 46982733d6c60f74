package segment_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// manyEntries is sampleEntries repeated under distinct keys: n records,
// more than one chunk of kept records (1024).
func manyEntries(n int) []segment.Entry {
	base := sampleEntries()
	es := make([]segment.Entry, n)
	for i := range es {
		e := base[i%len(base)]
		e.Key = fmt.Sprintf("%s/%05d", e.Key, i)
		es[i] = e
	}
	return es
}

// TestOpenKeeps: with Decoder.Keep, Open keeps the records its check
// decoded, from the first, as many as Keep (and the budget) allows; Next
// hands them out and decodes the rest, yielding exactly what Decode does
// across the boundary, in chunks of any size; MaxCounter and Rewind work
// whether all, some or none are kept; the budget holds Cost (the kept
// records' estimate included) until Close, and nothing after.
func TestOpenKeeps(t *testing.T) {
	ctx := context.Background()
	es := manyEntries(2500)
	for _, codec := range codecs {
		for _, part := range []bool{false, true} {
			b := encodeSeg(t, sampleHeader(), codec, es)
			decode := segment.Decode
			if part {
				b = encodePart(t, sampleHeader(), codec, es)
				decode = segment.DecodePart
			}
			whole, err := decode("log/1", b)
			if err != nil {
				t.Fatal(err)
			}
			open := func(d segment.Decoder) (*segment.Reader, error) {
				if part {
					return d.OpenPart(ctx, "log/1", b)
				}
				return d.Open(ctx, "log/1", b)
			}
			// What keeping all of them takes.
			all, err := open(segment.Decoder{Keep: 1 << 40})
			if err != nil {
				t.Fatal(err)
			}
			n, allCost := all.Kept()
			all.Close()
			if n != len(es) || allCost <= 0 {
				t.Fatalf("Keep 1 TiB kept %d of %d records (%d bytes)", n, len(es), allCost)
			}
			base, err := open(segment.Decoder{})
			if err != nil {
				t.Fatal(err)
			}
			cost := base.Cost()
			base.Close()
			for _, k := range []struct {
				name   string
				keep   int64
				budget int64
				want   func(kept int) bool
			}{
				{"none", 0, 1 << 30, func(n int) bool { return n == 0 }},
				{"all", 1 << 40, 1 << 30, func(n int) bool { return n == len(es) }},
				{"by Keep", allCost / 2, 1 << 30, func(n int) bool { return n > 0 && n < len(es) }},
				{"by the budget", 1 << 40, cost + allCost/3, func(n int) bool { return n > 0 && n < len(es) }},
				{"no room in the budget", 1 << 40, cost, func(n int) bool { return n == 0 }},
			} {
				for _, chunk := range []int{1, 7, 1024, len(es)} {
					budget := segment.NewBudget(k.budget)
					r, err := open(segment.Decoder{Keep: k.keep, Budget: budget})
					if err != nil {
						t.Fatal(err)
					}
					kept, keptCost := r.Kept()
					if !k.want(kept) || (kept == 0) != (keptCost == 0) {
						t.Fatalf("%v part=%v %s: kept %d of %d records (%d bytes)", codec, part, k.name, kept, len(es), keptCost)
					}
					if keptCost > k.keep || budget.Held() != r.Cost() || r.Cost() != cost+keptCost || budget.Held() > budget.Size() {
						t.Fatalf("%s: kept %d bytes (Keep %d), cost %d, budget holds %d of %d", k.name, keptCost, k.keep, r.Cost(), budget.Held(), budget.Size())
					}
					for i := range byte(3) {
						want := uint64(0)
						for _, e := range es {
							want = max(want, e.Record.Clock.Get(rid(i)))
						}
						if got, err := r.MaxCounter(rid(i)); err != nil || got != want {
							t.Fatalf("%s: MaxCounter(%d) = %d, %v; want %d", k.name, i, got, err, want)
						}
					}
					sameEntries(t, streamAll(t, r, chunk), whole.Entries, part)
					if _, err := r.Next(1); err != io.EOF {
						t.Fatalf("%s: Next after the end: %v", k.name, err)
					}
					r.Rewind()
					sameEntries(t, streamAll(t, r, chunk), whole.Entries, part)
					if budget.Held() != r.Cost() {
						t.Fatalf("%s: holds %d, cost %d", k.name, budget.Held(), r.Cost())
					}
					r.Close()
					if budget.Held() != 0 {
						t.Fatalf("%s: %d bytes held after Close", k.name, budget.Held())
					}
				}
			}
			// Half handed out, then MaxCounter reads the body.
			r, err := open(segment.Decoder{Keep: allCost / 2})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Next(len(es) / 2); err != nil {
				t.Fatal(err)
			}
			if got, err := r.MaxCounter(rid(1)); err != nil || got != 4 {
				t.Fatalf("MaxCounter after Next: %d, %v", got, err)
			}
			sameEntries(t, streamAll(t, r, 100), whole.Entries[len(es)/2:], part)
			r.Close()
		}
	}
}

// TestOpenKeepingChecksEveryRecord: keeping records does not end the
// check. A segment whose bad record lies before, at or after the point
// where Open stops keeping (by Keep or by the budget) fails at Open,
// naming the object, and holds none of the budget.
func TestOpenKeepingChecksEveryRecord(t *testing.T) {
	es := manyEntries(3000)
	good := body(t, es)
	badRec := []byte{0x92, 0xa1, 'z', 0xc0} // not a record
	for _, at := range []int{0, 1, 1023, 1024, 1500, 2999} {
		// The body with entry at replaced by a bad one.
		var bd bytes.Buffer
		bd.Write(body(t, es[:at]))
		bd.Write(badRec)
		bd.Write(body(t, es[at+1:]))
		for _, codec := range codecs {
			var b []byte
			if codec == segment.Raw {
				b = raw("EBRS", 1, 0, okHeader(t, uint64(len(es)), uint64(bd.Len())), bd.Bytes())
			} else {
				b = raw("EBRS", 1, 1, okHeader(t, uint64(len(es)), uint64(bd.Len())), zstdAll(bd.Bytes()))
			}
			for _, keep := range []int64{1 << 40, 200 << 10, 0} {
				for _, size := range []int64{1 << 30, int64(len(b)) + int64(len(good)) + 300<<10} {
					budget := segment.NewBudget(size)
					r, err := segment.Decoder{Keep: keep, Budget: budget}.Open(context.Background(), "log/9", b)
					if !errors.Is(err, segment.ErrCorrupt) || r != nil {
						t.Fatalf("bad record %d, %v, Keep %d, budget %d: Open = %v", at, codec, keep, size, err)
					}
					if budget.Held() != 0 {
						t.Fatalf("bad record %d: a failed Open holds %d bytes", at, budget.Held())
					}
				}
			}
		}
	}
}

// TestKeptSizeCoversHeap: the memory Open says its kept records take
// (Reader.Kept) is at least what they hold on the heap, and not wildly
// more, for small records, records with values, and records whose clocks
// are large (a map of more than 8 entries).
func TestKeptSizeCoversHeap(t *testing.T) {
	wide := clock.Vector{}
	for i := range byte(20) {
		wide[rid(i)] = uint64(i) + 10
	}
	shapes := map[string]func(i int) segment.Entry{
		"minimal": func(i int) segment.Entry {
			return segment.Entry{Key: fmt.Sprint(i)}
		},
		"100 B value": func(i int) segment.Entry {
			return segment.Entry{Key: fmt.Sprintf("key/%08d", i), Record: merge.Record{Clock: clock.Vector{rid(1): uint64(i + 1)},
				Versions: []merge.Version{{Value: bytes.Repeat([]byte{1}, 100), Dot: clock.Dot{Replica: rid(1), Counter: uint64(i + 1)}, Time: at}}}}
		},
		"wide clock, siblings": func(i int) segment.Entry {
			return segment.Entry{Key: fmt.Sprintf("key/%08d", i), Record: merge.Record{Clock: wide, Versions: []merge.Version{
				{Value: []byte("x"), Dot: clock.Dot{Replica: rid(1), Counter: 2}, Time: at},
				{Deleted: true, Dot: clock.Dot{Replica: rid(2), Counter: 3}, Time: at},
				{Value: bytes.Repeat([]byte{2}, 40), Dot: clock.Dot{Replica: rid(3), Counter: 4}, Time: at},
			}}}
		},
	}
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			const n = 20_000
			es := make([]segment.Entry, n)
			for i := range es {
				es[i] = shape(i)
			}
			b := encodeSeg(t, sampleHeader(), segment.Raw, es)
			es = nil
			ctx := context.Background()
			before := live()
			none, err := segment.Decoder{}.Open(ctx, "log/1", b)
			if err != nil {
				t.Fatal(err)
			}
			withNone := live()
			kept, err := segment.Decoder{Keep: 1 << 40}.Open(ctx, "log/1", b)
			if err != nil {
				t.Fatal(err)
			}
			held := live() - withNone - (withNone - before) // less a second Reader's own
			runtime.KeepAlive(none)
			k, est := kept.Kept()
			runtime.KeepAlive(kept)
			if k != n {
				t.Fatalf("kept %d of %d", k, n)
			}
			if uint64(est) < held || uint64(est) > 3*held {
				t.Fatalf("kept records hold %d bytes on the heap (%d a record); the estimate is %d (%d a record)", held, held/n, est, est/n)
			}
			t.Logf("%d bytes a record on the heap, estimated %d", held/n, est/n)
			none.Close()
			kept.Close()
		})
	}
}
