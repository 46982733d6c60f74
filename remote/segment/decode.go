package segment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// MaxBody is the hard ceiling of a segment's raw body, whatever a
// Decoder's MaxRaw says.
const MaxBody = 1 << 30

// DefaultMaxRaw is the raw body a Decoder accepts when its MaxRaw is 0 (and
// what Decode, DecodePart and DecodeHeader accept): the default segment cap
// (8 MiB) plus the default largest value (16 MiB), with room for framing
// and a sibling. A store with a larger cap or values passes its own bound.
const DefaultMaxRaw = 32 << 20

// The fewest bytes one entry of a body takes: an array header, a key of
// one byte (fixstr header and the byte) and the empty record [[], []].
const (
	minEntry     = 1 + 2 + 3
	minPartEntry = minEntry + 1 // and a one-byte pos
)

// zdec decodes into the capacity it is given and no further
// (WithDecodeAllCapLimit): a body cannot expand past the size its header
// declares.
var zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBody), zstd.WithDecodeAllCapLimit(true))

// maxZstdRatio bounds how much zstd can expand: every block takes at least
// 4 bytes of input and yields at most 128 KiB.
const maxZstdRatio = (128 << 10) / 4

// Decoder decodes segments and snapshot parts under limits. The zero
// Decoder uses the defaults and no budget. A Decoder is a plain value, safe
// for concurrent use; one per store is typical:
//
//	dec := segment.Decoder{MaxRaw: int64(segmentCap + maxValueSize), Budget: budget}
type Decoder struct {
	// MaxRaw bounds the raw (uncompressed) body a segment may declare: what
	// an honest writer can produce, the store's segment cap plus the
	// largest record a segment may end with (a push stops adding records
	// once it reaches the cap, so its last record may cross it). A larger
	// declaration fails with ErrCorrupt before anything is decompressed.
	// 0 (or less) means DefaultMaxRaw; above MaxBody means MaxBody.
	MaxRaw int64

	// Budget, when set, is held by Open and OpenPart for the decode's cost
	// (Reader.Cost) from before the body is decompressed until
	// Reader.Close. Decode, DecodePart and DecodeHeader take no ctx and
	// ignore it.
	Budget *Budget

	// Keep bounds the decoded records that Open and OpenPart keep for
	// Next, in bytes of memory (an estimate: Reader.Kept): the check pass
	// decodes every record anyway, and a record it keeps is not decoded a
	// second time. Records are kept in order from the first; the rest (all
	// of them when Keep is 0) are decoded again by Next. With a Budget,
	// what is kept is taken from it too, a step at a time and only when it
	// is free now (Budget.TryAcquire, never waiting), and held until
	// Close: keeping more never delays anyone, and when the budget runs
	// short Open stops keeping. Keep no records in Readers that are held
	// open together while others wait for the budget (a later Open could
	// wait for memory an earlier one kept).
	Keep int64
}

func (d Decoder) maxRaw() uint64 {
	switch {
	case d.MaxRaw <= 0:
		return DefaultMaxRaw
	case d.MaxRaw > MaxBody:
		return MaxBody
	}
	return uint64(d.MaxRaw)
}

// Decode parses and verifies a segment under DefaultMaxRaw. name identifies
// the object in errors (e.g. "log/00000000000000000042").
func Decode(name string, b []byte) (*Segment, error) { return Decoder{}.Decode(name, b) }

// DecodePart parses and verifies a snapshot part under DefaultMaxRaw.
func DecodePart(name string, b []byte) (*Segment, error) { return Decoder{}.DecodePart(name, b) }

// DecodeHeader verifies a segment under DefaultMaxRaw and returns its
// header only.
func DecodeHeader(name string, b []byte) (Header, error) { return Decoder{}.DecodeHeader(name, b) }

// Decode parses and verifies a segment and returns every record. The
// records take several times the body's size in memory; to apply an
// untrusted segment, prefer Open.
func (d Decoder) Decode(name string, b []byte) (*Segment, error) { return d.decodeAll(name, b, false) }

// DecodePart is Decode for a snapshot part (whose entries carry Pos).
func (d Decoder) DecodePart(name string, b []byte) (*Segment, error) {
	return d.decodeAll(name, b, true)
}

// DecodeHeader verifies a segment's checksum, header and body length (the
// body is decompressed, its records are not decoded) and returns the
// header.
func (d Decoder) DecodeHeader(name string, b []byte) (Header, error) {
	r, err := d.open(name, b, false)
	if err != nil {
		return Header{}, err
	}
	return r.hdr, nil
}

func (d Decoder) decodeAll(name string, b []byte, part bool) (*Segment, error) {
	r, err := d.open(name, b, part)
	if err != nil {
		return nil, err
	}
	// One pass that checks and keeps. The slice grows as records decode:
	// a declared count is not allocated before its records are there (an
	// Entry takes 56 bytes, a record as few as 6).
	es := make([]Entry, 0, min(r.hdr.Count, 1024))
	if err := r.scan(func(e Entry) { es = append(es, e) }); err != nil {
		return nil, err
	}
	return &Segment{Header: r.hdr, Codec: r.codec, Entries: es}, nil
}

// Open verifies a segment — checksum, header, and every record, decoded
// one at a time and dropped, or kept for Next up to d.Keep — and returns a
// Reader that yields its records in chunks. A caller that applies the
// chunks as they come never applies part of a corrupt segment: every check
// has passed before Open returns, kept records or not.
//
// With d.Budget set, Open first waits for the segment's cost of it (ctx
// bounds the wait), takes what it keeps only if free at once, and holds
// both (Reader.Cost) until Reader.Close; on error it holds nothing. The
// Reader reads b until Close: do not modify b meanwhile.
func (d Decoder) Open(ctx context.Context, name string, b []byte) (*Reader, error) {
	return d.openChecked(ctx, name, b, false)
}

// OpenPart is Open for a snapshot part.
func (d Decoder) OpenPart(ctx context.Context, name string, b []byte) (*Reader, error) {
	return d.openChecked(ctx, name, b, true)
}

func (d Decoder) openChecked(ctx context.Context, name string, b []byte, part bool) (*Reader, error) {
	r, compressed, err := d.header(name, b, part)
	if err != nil {
		return nil, err
	}
	if err := d.Budget.Acquire(ctx, r.cost); err != nil {
		return nil, err
	}
	r.budget = d.Budget
	if err := r.inflate(compressed); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.check(d.Keep); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// open checks the header and decompresses the body (no budget).
func (d Decoder) open(name string, b []byte, part bool) (*Reader, error) {
	r, compressed, err := d.header(name, b, part)
	if err != nil {
		return nil, err
	}
	if err := r.inflate(compressed); err != nil {
		return nil, err
	}
	return r, nil
}

// Reader yields the records of a segment checked by Open, in order: those
// Open kept (Kept), then the rest, decoded as Next reaches them. It is not
// safe for concurrent use.
type Reader struct {
	name   string
	hdr    Header
	codec  Codec
	part   bool
	rawLen uint64
	cost   int64

	body    []byte // the raw body (aliases the input when not compressed)
	rd      bytes.Reader
	dec     *msgpack.Decoder
	next    int    // index of the next record
	scratch []byte // key bytes

	// Records [0, keptN) were decoded by Open and are handed out by Next
	// from kept (in chunks of keepChunk, each slot cleared as it goes);
	// the records from keptN on are decoded by Next from the body's offset
	// resume. keptCost is their estimated memory, held of the budget (when
	// there is one) until Close.
	kept     [][]Entry
	keptN    int
	keptCost int64
	resume   int

	budget *Budget // held for cost (and keptCost) until Close, when not nil
	closed bool
}

// keepChunk is the number of entries in one slice of Reader.kept: the
// kept records grow a chunk at a time, never by copying them all.
const keepChunk = 1024

// keepStep is what Open takes of the budget at a time for kept records.
const keepStep = 1 << 20

// Header returns the segment's header.
func (r *Reader) Header() Header { return r.hdr }

// Codec returns the codec of the segment's body.
func (r *Reader) Codec() Codec { return r.codec }

// RawLen returns the size of the raw (uncompressed) body.
func (r *Reader) RawLen() int64 { return int64(r.rawLen) }

// Cost returns the bytes the Reader holds of its Decoder's budget: the
// segment's bytes, plus the declared raw body when it is compressed, plus
// what Open took for the records it kept (see Decoder.Keep).
func (r *Reader) Cost() int64 { return r.cost + r.keptCost }

// Kept returns how many records Open kept decoded (see Decoder.Keep), and
// their estimated memory in bytes. Next hands them out without decoding
// them again.
func (r *Reader) Kept() (records int, bytes int64) { return r.keptN, r.keptCost }

// Next returns up to n (at least 1) of the next records, in order, or
// (nil, io.EOF) after the last. The entries are the caller's. Once Open has
// returned, Next fails only after Close.
func (r *Reader) Next(n int) ([]Entry, error) {
	if r.closed {
		return nil, fmt.Errorf("segment: %s: Next after Close", r.name)
	}
	n = max(1, min(n, r.hdr.Count-r.next))
	if r.next >= r.hdr.Count {
		return nil, io.EOF
	}
	es := make([]Entry, 0, n)
	for ; len(es) < n && r.next < r.keptN; r.next++ {
		c := r.kept[r.next/keepChunk]
		es = append(es, c[r.next%keepChunk])
		c[r.next%keepChunk] = Entry{} // the caller's now
		if r.next%keepChunk == keepChunk-1 || r.next == r.keptN-1 {
			r.kept[r.next/keepChunk] = nil
		}
	}
	if len(es) > 0 && r.next == r.keptN && r.next < r.hdr.Count {
		r.seek(r.resume) // the records Open did not keep
	}
	for len(es) < n {
		e, err := r.entry(r.next)
		if err != nil {
			return nil, err
		}
		r.next++
		es = append(es, e)
	}
	return es, nil
}

// Rewind makes Next start again from the first record. Records that Open
// kept and Next has not handed out yet are dropped (Next decodes every
// record again); what Open took of the budget for them is held until
// Close.
func (r *Reader) Rewind() {
	r.kept, r.keptN = nil, 0
	r.seek(0)
	r.next = 0
}

// seek moves the decoder to the body's offset off.
func (r *Reader) seek(off int) {
	r.rd.Reset(r.body[off:])
	r.dec.Reset(&r.rd)
}

// MaxCounter returns the highest counter that any record's clock holds for
// id (0 if none): a puller checks it against its own counter before
// applying anything. It reads the records' clocks only, and does not move
// Next.
func (r *Reader) MaxCounter(id clock.ReplicaID) (uint64, error) {
	if r.closed {
		return 0, fmt.Errorf("segment: %s: MaxCounter after Close", r.name)
	}
	var most uint64
	if r.next == 0 && r.keptN == r.hdr.Count {
		// Every record is kept: read the decoded clocks.
		for _, c := range r.kept {
			for _, e := range c {
				most = max(most, e.Record.Clock.Get(id))
			}
		}
		return most, nil
	}
	var rd bytes.Reader
	rd.Reset(r.body)
	dec := msgpack.NewDecoder(&rd)
	for i := range r.hdr.Count {
		fail := func() (uint64, error) { return 0, corrupt(r.name, "record %d: bad framing", i) }
		if _, err := dec.DecodeArrayLen(); err != nil {
			return fail()
		}
		if err := dec.Skip(); err != nil { // key
			return fail()
		}
		if r.part {
			if err := dec.Skip(); err != nil { // pos
				return fail()
			}
		}
		if _, err := dec.DecodeArrayLen(); err != nil {
			return fail()
		}
		v, err := merge.DecodeVector(dec)
		if err != nil {
			return fail()
		}
		most = max(most, v.Get(id))
		if err := dec.Skip(); err != nil { // versions
			return fail()
		}
	}
	return most, nil
}

// Close releases the Reader's budget and its body. It is idempotent.
func (r *Reader) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.body = nil
	r.kept = nil
	r.rd.Reset(nil)
	if r.budget != nil {
		r.budget.Release(r.cost)
		if r.keptCost > 0 {
			r.budget.Release(r.keptCost)
		}
		r.budget = nil
	}
}

// check is Open's pass over the records: it decodes every record from the
// start, checks the count and that nothing follows, and keeps the decoded
// records from the first while their estimated memory stays within keep
// bytes and (with a budget) the budget has it free. It leaves Next at the
// first record.
func (r *Reader) check(keep int64) error {
	r.Rewind()
	keeping := keep > 0
	var room int64 // taken for kept records and not used yet
	defer func() {
		// What was taken and not used goes back; keptCost is held (until
		// Close, which a failed Open calls at once).
		if room > 0 && r.budget != nil {
			r.budget.Release(room)
		}
	}()
	for i := range r.hdr.Count {
		off := len(r.body) - r.rd.Len()
		e, err := r.entry(i)
		if err != nil {
			return err
		}
		if !keeping {
			continue
		}
		size := keptSize(e)
		if size > room {
			// A step of at least keepStep, within keep.
			step := min(max(keepStep, size-room), keep-r.keptCost-room)
			if r.budget != nil {
				step = r.budget.clamp(step)
			}
			switch {
			case step < size-room:
				keeping = false
			case r.budget.TryAcquire(step):
				room += step
			case r.budget.TryAcquire(size - room): // the budget's last free bytes
				room = size
			default:
				keeping = false
			}
		}
		if !keeping {
			r.resume = off
			continue
		}
		room -= size
		if i%keepChunk == 0 {
			r.kept = append(r.kept, make([]Entry, 0, min(keepChunk, r.hdr.Count-i)))
		}
		r.kept[i/keepChunk] = append(r.kept[i/keepChunk], e)
		r.keptN = i + 1
		r.keptCost += size
	}
	if r.rd.Len() != 0 {
		return corrupt(r.name, "trailing bytes after %d records", r.hdr.Count)
	}
	if r.keptN == r.hdr.Count {
		r.resume = len(r.body)
	}
	r.next = 0
	if r.keptN == 0 {
		r.seek(0)
	}
	return nil
}

// keptSize estimates the memory a decoded entry takes on the heap, on the
// high side: the Entry in its slice, the key's bytes, the clock's map, the
// versions' slice and each value's bytes (merge.DecodeRecordFrom
// allocates these; TestKeptSizeCoversHeap measures it).
func keptSize(e Entry) int64 {
	round := func(n int) int64 { return int64(n+15) &^ 15 }
	n := 64 + round(len(e.Key))
	switch c := len(e.Record.Clock); {
	case c == 0:
		n += 48 // the map's header
	case c <= 8:
		n += 256 // and one group of 8 slots
	default:
		n += 128 + 64*int64(c) // groups of 8 slots per 7 entries, in powers of two
	}
	n += 64 * int64(cap(e.Record.Versions))
	for _, v := range e.Record.Versions {
		n += 16 + round(cap(v.Value))
	}
	return n
}

// scan decodes every record from the start, checks the count and that
// nothing follows, and passes each record to keep (when not nil).
func (r *Reader) scan(keep func(Entry)) error {
	r.Rewind()
	for i := range r.hdr.Count {
		e, err := r.entry(i)
		if err != nil {
			return err
		}
		if keep != nil {
			keep(e)
		}
	}
	if r.rd.Len() != 0 {
		return corrupt(r.name, "trailing bytes after %d records", r.hdr.Count)
	}
	return nil
}

// entry decodes record i at the reader's position.
func (r *Reader) entry(i int) (Entry, error) {
	fields := 2
	if r.part {
		fields = 3
	}
	n, err := r.dec.DecodeArrayLen()
	if err != nil || n != fields {
		return Entry{}, corrupt(r.name, "record %d: bad framing", i)
	}
	// The key's length is checked against the bytes left before reading.
	kl, err := r.dec.DecodeBytesLen()
	if err != nil || kl <= 0 || kl > r.rd.Len() {
		return Entry{}, corrupt(r.name, "record %d: bad key", i)
	}
	r.scratch = slices.Grow(r.scratch[:0], kl)[:kl]
	if err := r.dec.ReadFull(r.scratch); err != nil {
		return Entry{}, corrupt(r.name, "record %d: bad key", i)
	}
	key := string(r.scratch)
	var pos uint64
	if r.part {
		if pos, err = r.dec.DecodeUint64(); err != nil {
			return Entry{}, corrupt(r.name, "record %d: bad pos", i)
		}
	}
	rec, err := merge.DecodeRecordFrom(r.dec)
	if err != nil {
		return Entry{}, corrupt(r.name, "record %d (%q): %v", i, key, err)
	}
	return Entry{Key: key, Pos: pos, Record: rec}, nil
}

func corrupt(name, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, name, fmt.Sprintf(format, a...))
}

// header checks everything but the body's content and returns a Reader
// without a body, and the body as stored (compressed or not). It
// allocates nothing in proportion to what the header declares.
func (d Decoder) header(name string, b []byte, part bool) (*Reader, []byte, error) {
	want := magic
	if part {
		want = partMagic
	}
	if len(b) < 10+sha256.Size {
		return nil, nil, corrupt(name, "truncated (%d bytes)", len(b))
	}
	if !bytes.Equal(b[:4], want) {
		if part {
			return nil, nil, corrupt(name, "not an ebreplica snapshot part (bad magic)")
		}
		return nil, nil, corrupt(name, "not an ebreplica segment (bad magic)")
	}
	// The SHA-256 trailer is part of every format version, so it is
	// checked first: a flipped version byte reads as damage, not as a
	// newer writer.
	payload, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(payload); !bytes.Equal(got[:], sum) {
		return nil, nil, corrupt(name, "checksum mismatch")
	}
	if b[4] > Version {
		return nil, nil, fmt.Errorf("%w: %s: format %d, this build reads up to %d (upgrade ebreplica)", ErrVersion, name, b[4], Version)
	}
	if b[4] == 0 {
		return nil, nil, corrupt(name, "format version 0")
	}
	codec := Codec(b[5])
	hl := binary.BigEndian.Uint32(b[6:10])
	if uint64(hl) > uint64(len(payload)-10) {
		return nil, nil, corrupt(name, "header length %d", hl)
	}
	hdr := payload[10 : 10+hl]
	body := payload[10+hl:]
	var hrd bytes.Reader
	hrd.Reset(hdr)
	hd := msgpack.NewDecoder(&hrd)
	if n, err := hd.DecodeArrayLen(); err != nil || n != 6 {
		return nil, nil, corrupt(name, "bad header")
	}
	r := &Reader{name: name, codec: codec, part: part}
	// Lengths are checked before reading: DecodeBytes and DecodeString
	// would allocate whatever length the header claims (up to 4 GiB).
	if n, err := hd.DecodeBytesLen(); err != nil || n != len(r.hdr.Origin) {
		return nil, nil, corrupt(name, "bad origin")
	}
	if err := hd.ReadFull(r.hdr.Origin[:]); err != nil {
		return nil, nil, corrupt(name, "bad origin")
	}
	var hlc, count, rawLen uint64
	var err error
	if r.hdr.Base, err = hd.DecodeUint64(); err != nil {
		return nil, nil, corrupt(name, "bad base")
	}
	if hlc, err = hd.DecodeUint64(); err != nil {
		return nil, nil, corrupt(name, "bad hlc")
	}
	if count, err = hd.DecodeUint64(); err != nil {
		return nil, nil, corrupt(name, "bad count")
	}
	if rawLen, err = hd.DecodeUint64(); err != nil {
		return nil, nil, corrupt(name, "bad body length")
	}
	if limit := d.maxRaw(); rawLen > limit {
		return nil, nil, corrupt(name, "bad body length: %d bytes declared, more than an honest writer produces (limit %d)", rawLen, limit)
	}
	if n, err := hd.DecodeBytesLen(); err != nil || n > hrd.Len() {
		return nil, nil, corrupt(name, "bad note")
	} else if n > 0 { // -1: nil, read as ""
		note := make([]byte, n)
		if err := hd.ReadFull(note); err != nil {
			return nil, nil, corrupt(name, "bad note")
		}
		r.hdr.Note = string(note)
	}
	r.hdr.HLC = clock.HLC(hlc)
	min := uint64(minEntry)
	if part {
		min = minPartEntry
	}
	if count > rawLen/min {
		return nil, nil, corrupt(name, "count %d exceeds body: %d bytes hold at most %d records", count, rawLen, rawLen/min)
	}
	r.hdr.Count = int(count)
	r.rawLen = rawLen
	r.cost = int64(len(b))
	switch codec {
	case Raw:
		if uint64(len(body)) != rawLen {
			return nil, nil, corrupt(name, "body is %d bytes, header says %d", len(body), rawLen)
		}
	case Zstd:
		if rawLen > uint64(len(body))*maxZstdRatio {
			return nil, nil, corrupt(name, "header says %d bytes, more than %d compressed bytes can hold", rawLen, len(body))
		}
		r.cost += int64(rawLen)
	default:
		return nil, nil, corrupt(name, "unknown codec %d", codec)
	}
	return r, body, nil
}

// inflate decompresses the body into exactly the room the header declares,
// never more, and readies the Reader.
func (r *Reader) inflate(body []byte) error {
	if r.codec == Zstd {
		out, err := zdec.DecodeAll(body, make([]byte, 0, r.rawLen))
		if err != nil {
			return corrupt(r.name, "zstd: %v", err)
		}
		if uint64(len(out)) != r.rawLen {
			return corrupt(r.name, "body is %d bytes, header says %d", len(out), r.rawLen)
		}
		body = out
	}
	r.body = body
	r.dec = msgpack.NewDecoder(nil)
	r.Rewind()
	return nil
}
