// Package segment is the codec of delta segments: the objects under log/
// that carry merged records from one replica to all others.
//
// Layout (all integers big-endian):
//
//	[0:4]    magic "EBRS"
//	[4]      format version (Version)
//	[5]      codec: 0 raw, 1 zstd
//	[6:10]   header length H
//	[10:10+H] header, msgpack array: [origin bin16, base uint, hlc uint, count uint, rawBodyLen uint, note str]
//	[..]     body: count × [key str, record] (merge's canonical record form), zstd-compressed when codec is 1
//	[-32:]   SHA-256 of every byte before it
//
// Decode checks, in this order: length, magic (a foreign object), checksum
// (the trailer is the same in every format version), format version (a
// newer writer), codec, header and every record. Any
// failure returns an error wrapping ErrCorrupt (or ErrVersion) that names
// the object; decoding never panics and never allocates more than the
// header's declared sizes allow (bounded by MaxBody).
package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// Version is the segment format version this code writes and reads.
const Version = 1

// MaxBody bounds the decoded body of one segment (a guard against corrupt
// or hostile headers).
const MaxBody = 1 << 30

var (
	magic     = []byte("EBRS") // delta segment
	partMagic = []byte("EBRN") // snapshot part: entries also carry pos
)

// Codec of the body.
type Codec byte

const (
	Raw  Codec = 0
	Zstd Codec = 1
)

func (c Codec) String() string {
	switch c {
	case Raw:
		return "raw"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", byte(c))
}

// ParseCodec parses "raw"/"none" or "zstd".
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "raw", "none", "":
		return Raw, nil
	case "zstd":
		return Zstd, nil
	}
	return 0, fmt.Errorf("segment: unknown codec %q", s)
}

// Errors.
var (
	ErrCorrupt = errors.New("segment: corrupt")
	ErrVersion = errors.New("segment: made by a newer format version")
)

// Header describes a segment.
type Header struct {
	Origin clock.ReplicaID
	// Base is the origin's applied log position when it staged the segment.
	Base uint64
	// HLC is the origin's clock when it staged the segment.
	HLC   clock.HLC
	Count int
	// Note is free text (repair placeholders name the quarantined copy).
	Note string
}

// Entry is one key's merged record. Pos (snapshot parts only) is the
// highest log position whose application changed the record at the
// snapshot's writer.
type Entry struct {
	Key    string
	Pos    uint64
	Record merge.Record
}

// Segment is a decoded segment.
type Segment struct {
	Header
	Codec   Codec
	Entries []Entry
}

// Encoder builds a segment incrementally, so the caller can stop at a size cap.
type Encoder struct {
	body  bytes.Buffer
	enc   *msgpack.Encoder
	count int
	part  bool
}

// NewEncoder returns an empty segment encoder.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.enc = msgpack.NewEncoder(&e.body)
	return e
}

// NewPartEncoder returns an empty snapshot-part encoder.
func NewPartEncoder() *Encoder {
	e := NewEncoder()
	e.part = true
	return e
}

// Add appends one record.
func (e *Encoder) Add(key string, r merge.Record) error { return e.AddPos(key, 0, r) }

// AddPos appends one record with its pos (kept only in snapshot parts).
func (e *Encoder) AddPos(key string, pos uint64, r merge.Record) error {
	n := 2
	if e.part {
		n = 3
	}
	if err := e.enc.EncodeArrayLen(n); err != nil {
		return err
	}
	if err := e.enc.EncodeString(key); err != nil {
		return err
	}
	if e.part {
		if err := e.enc.EncodeUint(pos); err != nil {
			return err
		}
	}
	if err := merge.EncodeRecordTo(e.enc, r); err != nil {
		return err
	}
	e.count++
	return nil
}

// Len returns the raw (uncompressed) body size so far.
func (e *Encoder) Len() int { return e.body.Len() }

// Count returns the number of records added.
func (e *Encoder) Count() int { return e.count }

var zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))

// zdec decodes into the capacity it is given and no further
// (WithDecodeAllCapLimit): a body cannot expand past the size its header
// declares.
var zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBody), zstd.WithDecodeAllCapLimit(true))

// maxZstdRatio bounds how much zstd can expand: every block takes at least
// 4 bytes of input and yields at most 128 KiB.
const maxZstdRatio = (128 << 10) / 4

// Finish returns the segment bytes.
func (e *Encoder) Finish(h Header, codec Codec) ([]byte, error) {
	h.Count = e.count
	raw := e.body.Bytes()
	var body []byte
	switch codec {
	case Raw:
		body = raw
	case Zstd:
		body = zenc.EncodeAll(raw, nil)
	default:
		return nil, fmt.Errorf("segment: unknown codec %d", codec)
	}
	var hb bytes.Buffer
	he := msgpack.NewEncoder(&hb)
	_ = he.EncodeArrayLen(6)
	_ = he.EncodeBytes(h.Origin[:])
	_ = he.EncodeUint(h.Base)
	_ = he.EncodeUint(uint64(h.HLC))
	_ = he.EncodeUint(uint64(h.Count))
	_ = he.EncodeUint(uint64(len(raw)))
	_ = he.EncodeString(h.Note)
	out := make([]byte, 0, 10+hb.Len()+len(body)+sha256.Size)
	if e.part {
		out = append(out, partMagic...)
	} else {
		out = append(out, magic...)
	}
	out = append(out, Version, byte(codec))
	out = binary.BigEndian.AppendUint32(out, uint32(hb.Len()))
	out = append(out, hb.Bytes()...)
	out = append(out, body...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// Encode builds a segment from entries in one call.
func Encode(h Header, codec Codec, entries []Entry) ([]byte, error) {
	e := NewEncoder()
	for _, en := range entries {
		if err := e.Add(en.Key, en.Record); err != nil {
			return nil, err
		}
	}
	return e.Finish(h, codec)
}

// Decode parses and verifies a segment. name identifies the object in
// errors (e.g. "log/00000000000000000042").
func Decode(name string, b []byte) (*Segment, error) { return decode(name, b, magic) }

// DecodePart parses and verifies a snapshot part.
func DecodePart(name string, b []byte) (*Segment, error) { return decode(name, b, partMagic) }

func decode(name string, b []byte, want []byte) (*Segment, error) {
	s, body, err := decodeHeader(name, b, want)
	if err != nil {
		return nil, err
	}
	fields := 2
	if bytes.Equal(want, partMagic) {
		fields = 3
	}
	dec := msgpack.NewDecoder(bytes.NewReader(body))
	s.Entries = make([]Entry, 0, min(s.Count, len(body)/8+1))
	for i := range s.Count {
		n, err := dec.DecodeArrayLen()
		if err != nil || n != fields {
			return nil, corrupt(name, "record %d: bad framing", i)
		}
		key, err := dec.DecodeString()
		if err != nil || key == "" {
			return nil, corrupt(name, "record %d: bad key", i)
		}
		var pos uint64
		if fields == 3 {
			if pos, err = dec.DecodeUint64(); err != nil {
				return nil, corrupt(name, "record %d: bad pos", i)
			}
		}
		rec, err := merge.DecodeRecordFrom(dec)
		if err != nil {
			return nil, corrupt(name, "record %d (%q): %v", i, key, err)
		}
		s.Entries = append(s.Entries, Entry{Key: key, Pos: pos, Record: rec})
	}
	if _, err := dec.PeekCode(); !errors.Is(err, io.EOF) {
		return nil, corrupt(name, "trailing bytes after %d records", s.Count)
	}
	return s, nil
}

// DecodeHeader verifies a segment and returns its header only.
func DecodeHeader(name string, b []byte) (Header, error) {
	s, _, err := decodeHeader(name, b, magic)
	if err != nil {
		return Header{}, err
	}
	return s.Header, nil
}

func corrupt(name, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, name, fmt.Sprintf(format, a...))
}

func decodeHeader(name string, b []byte, want []byte) (*Segment, []byte, error) {
	if len(b) < 10+sha256.Size {
		return nil, nil, corrupt(name, "truncated (%d bytes)", len(b))
	}
	if !bytes.Equal(b[:4], want) {
		if bytes.Equal(want, partMagic) {
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
	hd := msgpack.NewDecoder(bytes.NewReader(hdr))
	if n, err := hd.DecodeArrayLen(); err != nil || n != 6 {
		return nil, nil, corrupt(name, "bad header")
	}
	s := &Segment{Codec: codec}
	// The length is checked before reading: DecodeBytes would allocate
	// whatever length the header claims (up to 4 GiB).
	if n, err := hd.DecodeBytesLen(); err != nil || n != len(s.Origin) {
		return nil, nil, corrupt(name, "bad origin")
	}
	if err := hd.ReadFull(s.Origin[:]); err != nil {
		return nil, nil, corrupt(name, "bad origin")
	}
	var hlc, count, rawLen uint64
	var err error
	if s.Base, err = hd.DecodeUint64(); err != nil {
		return nil, nil, corrupt(name, "bad base")
	}
	if hlc, err = hd.DecodeUint64(); err != nil {
		return nil, nil, corrupt(name, "bad hlc")
	}
	if count, err = hd.DecodeUint64(); err != nil {
		return nil, nil, corrupt(name, "bad count")
	}
	if rawLen, err = hd.DecodeUint64(); err != nil || rawLen > MaxBody {
		return nil, nil, corrupt(name, "bad body length")
	}
	if s.Note, err = hd.DecodeString(); err != nil {
		return nil, nil, corrupt(name, "bad note")
	}
	s.HLC = clock.HLC(hlc)
	if count > rawLen { // every record takes at least one byte
		return nil, nil, corrupt(name, "count %d exceeds body", count)
	}
	s.Count = int(count)
	switch codec {
	case Raw:
	case Zstd:
		// Checked before allocating rawLen bytes; the body then decodes
		// into exactly that room, never more.
		if rawLen > uint64(len(body))*maxZstdRatio {
			return nil, nil, corrupt(name, "header says %d bytes, more than %d compressed bytes can hold", rawLen, len(body))
		}
		out, err := zdec.DecodeAll(body, make([]byte, 0, rawLen))
		if err != nil {
			return nil, nil, corrupt(name, "zstd: %v", err)
		}
		body = out
	default:
		return nil, nil, corrupt(name, "unknown codec %d", codec)
	}
	if uint64(len(body)) != rawLen {
		return nil, nil, corrupt(name, "body is %d bytes, header says %d", len(body), rawLen)
	}
	return s, body, nil
}
