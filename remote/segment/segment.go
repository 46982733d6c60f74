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
// Decoding checks, in this order: length, magic (a foreign object), checksum
// (the trailer is the same in every format version), format version (a
// newer writer), codec, header and every record. Any failure returns an
// error wrapping ErrCorrupt (or ErrVersion) that names the object; decoding
// never panics.
//
// Untrusted input. Anyone who can write one object under log/ can hand
// every puller a segment with a valid checksum, so the checksum proves
// nothing about the sizes inside. A [Decoder] bounds them by what an honest
// writer can produce and by the bytes actually present:
//
//   - the raw body a header declares by Decoder.MaxRaw (the store's segment
//     cap plus the largest record a segment may end with), checked before
//     anything is decompressed: zstd expands a 96 KiB body of one repeated
//     record to 1 GiB;
//   - the record count by the fewest bytes a record takes, and every key,
//     value, clock and version count by the bytes left (merge's record
//     codec does the same inside a record).
//
// A decoded record takes several times its encoded size in memory (a
// minimal 6-byte record becomes a map, a slice header and a string), so a
// caller that decodes untrusted segments streams them: [Decoder.Open]
// checks every record and returns a [Reader] whose Next yields the records
// in chunks; a shared [Budget] bounds what concurrent decodes hold
// together. Open keeps none of the records it decoded, or, with
// Decoder.Keep, as many from the first as Keep and the budget's free
// bytes allow, so that Next hands those out without decoding them twice
// (the rest it decodes again). [Decode] materialises every record and
// suits trusted input (tests, the simulator) and small segments.
//
// Ownership. The seam between the record and the framing is already where
// it belongs: package merge owns the record codec (the canonical msgpack
// form of a Record, merge.EncodeRecordTo, the bounded
// merge.DecodeRecordFrom and merge.DecodeVector), and this package owns the
// framing around it (magic, version, header, codec, checksum, the size
// limits, the key and pos of each entry, the streaming Reader and its
// budget). It calls the record codec and never looks inside a record. It
// still imports merge, on purpose, for three reasons that make removing the
// import no cleaner:
//
//   - the payload is merge.Record by type: Entry.Record, Encoder.Add and
//     Reader.Next hand Records to and from the engine, the simulator and
//     the command line. Without the import, Entry would carry raw bytes
//     that every caller decodes itself (or the package becomes generic over
//     a record codec, and every caller writes segment.Entry[merge.Record]):
//     more code at each caller for the same dependency, one step removed;
//   - Open's contract is that every record has been decoded and checked
//     before it returns, so that a puller never applies part of a corrupt
//     segment. Checking records is decoding them with merge's bounded
//     decoder; an opaque framing would move that guarantee to each caller,
//     or take an injected validator that is merge.DecodeRecordFrom anyway;
//   - Reader.MaxCounter (the clone check before a pull applies anything)
//     reads each record's clock with merge.DecodeVector and skips its
//     versions without decoding them: it needs the record's layout.
//
// The direction stays one way (segment imports merge and clock, never the
// store, the engine or the facade), which is what the layering needs.
package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// Version is the segment format version this code writes and reads.
const Version = 1

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
