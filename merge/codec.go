package merge

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrBadRecord: bytes that do not decode to a valid Record.
var ErrBadRecord = errors.New("merge: malformed record")

// The canonical msgpack form of a Record, shared by the local store and the
// segment codec. Equal records always encode to equal bytes:
//
//	[ [ [replica bin16, counter uint]... sorted by replica ],
//	  [ [value bin (nil for a tombstone), deleted bool, replica bin16, counter uint, hlc uint]... in dot order ] ]

// EncodeRecord returns the canonical bytes of r (the error is always nil;
// it stays for callers written against the encoder form).
func EncodeRecord(r Record) ([]byte, error) {
	return AppendRecord(make([]byte, 0, RecordSizeHint(r)), r), nil
}

// RecordSizeHint is an upper bound of the canonical size of r when its
// counters and lengths fit 32 bits (a capacity hint, not a limit).
func RecordSizeHint(r Record) int {
	n := 8 + len(r.Clock)*(3+16+9)
	for _, v := range r.Versions {
		n += 1 + 5 + len(v.Value) + 1 + 2 + 16 + 9 + 9
	}
	return n
}

// AppendRecord appends the canonical form of r to dst: byte for byte what
// EncodeRecordTo writes through a msgpack encoder, without the encoder
// (the local store encodes a record per write).
func AppendRecord(dst []byte, r Record) []byte {
	dst = appendArrayLen(dst, 2)
	dst = AppendVector(dst, r.Clock)
	dst = appendArrayLen(dst, len(r.Versions))
	for _, v := range r.Versions {
		dst = appendArrayLen(dst, 5)
		switch { // as in EncodeRecordTo
		case v.Deleted && len(v.Value) == 0:
			dst = append(dst, 0xc0)
		case v.Value == nil:
			dst = appendBytesLen(dst, 0)
		default:
			dst = append(appendBytesLen(dst, len(v.Value)), v.Value...)
		}
		if v.Deleted {
			dst = append(dst, 0xc3)
		} else {
			dst = append(dst, 0xc2)
		}
		dst = append(appendBytesLen(dst, 16), v.Dot.Replica[:]...)
		dst = appendUint(dst, v.Dot.Counter)
		dst = appendUint(dst, uint64(v.Time))
	}
	return dst
}

// AppendVector appends what EncodeVector writes.
func AppendVector(dst []byte, v clock.Vector) []byte {
	es := v.Entries()
	dst = appendArrayLen(dst, len(es))
	for _, d := range es {
		dst = appendArrayLen(dst, 2)
		dst = append(appendBytesLen(dst, 16), d.Replica[:]...)
		dst = appendUint(dst, d.Counter)
	}
	return dst
}

// The msgpack forms the encoder picks (msgpack v5 EncodeArrayLen,
// EncodeBytesLen, EncodeUint).
func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= 0xffff:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendBytesLen(b []byte, n int) []byte {
	switch {
	case n < 256:
		return append(b, 0xc4, byte(n))
	case n <= 0xffff:
		return append(b, 0xc5, byte(n>>8), byte(n))
	default:
		return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= 0x7f:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0xcc, byte(n))
	case n <= 0xffff:
		return append(b, 0xcd, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, 0xce, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, 0xcf, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// EncodeRecordTo writes the canonical form of r to enc.
func EncodeRecordTo(enc *msgpack.Encoder, r Record) error {
	if err := enc.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := EncodeVector(enc, r.Clock); err != nil {
		return err
	}
	if err := enc.EncodeArrayLen(len(r.Versions)); err != nil {
		return err
	}
	for _, v := range r.Versions {
		if err := enc.EncodeArrayLen(5); err != nil {
			return err
		}
		// Record.Equal does not tell a nil Value from an empty one, so
		// neither may the canonical form: a tombstone is always nil, a
		// live value always bin (empty when nil).
		var err error
		switch {
		case v.Deleted && len(v.Value) == 0:
			err = enc.EncodeNil()
		case v.Value == nil:
			err = enc.EncodeBytesLen(0)
		default:
			err = enc.EncodeBytes(v.Value)
		}
		if err != nil {
			return err
		}
		if err := enc.EncodeBool(v.Deleted); err != nil {
			return err
		}
		if err := enc.EncodeBytes(v.Dot.Replica[:]); err != nil {
			return err
		}
		if err := enc.EncodeUint(v.Dot.Counter); err != nil {
			return err
		}
		if err := enc.EncodeUint(uint64(v.Time)); err != nil {
			return err
		}
	}
	return nil
}

// EncodeVector writes a vector as a sorted array of [replica, counter].
func EncodeVector(enc *msgpack.Encoder, v clock.Vector) error {
	es := v.Entries()
	if err := enc.EncodeArrayLen(len(es)); err != nil {
		return err
	}
	for _, d := range es {
		if err := enc.EncodeArrayLen(2); err != nil {
			return err
		}
		if err := enc.EncodeBytes(d.Replica[:]); err != nil {
			return err
		}
		if err := enc.EncodeUint(d.Counter); err != nil {
			return err
		}
	}
	return nil
}

// DecodeRecord parses the canonical form and validates it: every version's
// dot is non-zero and covered by the clock, dots are unique and in order.
func DecodeRecord(b []byte) (Record, error) {
	d := decoders.Get().(*pooledDecoder)
	d.rd.Reset(b)
	d.dec.Reset(&d.rd)
	r, err := DecodeRecordFrom(d.dec)
	d.rd.Reset(nil)
	d.dec.Reset(nil)
	decoders.Put(d)
	if err != nil {
		return Record{}, err
	}
	return r, nil
}

// pooledDecoder saves DecodeRecord a decoder allocation per record. The
// decoded record never aliases the input (readBytes copies).
type pooledDecoder struct {
	rd  bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	return &pooledDecoder{dec: msgpack.NewDecoder(nil)}
}}

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRecord, fmt.Sprintf(format, a...))
}

// maxEntries bounds array lengths read from untrusted bytes before
// allocation.
const maxEntries = 1 << 20

func arrayLen(dec *msgpack.Decoder, want int) (int, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return 0, bad("%v", err)
	}
	if n < 0 || n > maxEntries || (want >= 0 && n != want) {
		return 0, bad("array length %d", n)
	}
	return n, nil
}

// readBytes reads a bin (or str) like dec.DecodeBytes, but allocates as the
// bytes arrive rather than as the length header claims: DecodeBytes
// allocates the claimed length (up to 4 GiB) up front, so a few bytes of
// untrusted input could make a decode allocate gigabytes.
func readBytes(dec *msgpack.Decoder) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err // n < 0: nil
	}
	const chunk = 64 << 10
	b := make([]byte, 0, min(n, chunk))
	for len(b) < n {
		m := min(n-len(b), chunk)
		b = slices.Grow(b, m)
		if err := dec.ReadFull(b[len(b) : len(b)+m]); err != nil {
			return nil, err
		}
		b = b[:len(b)+m]
	}
	return b, nil
}

// decodeReplica reads a 16-byte bin straight into the id.
func decodeReplica(dec *msgpack.Decoder) (clock.ReplicaID, error) {
	var id clock.ReplicaID
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return id, bad("replica: %v", err)
	}
	if n != len(id) {
		return id, bad("replica id of %d bytes", max(n, 0))
	}
	if err := dec.ReadFull(id[:]); err != nil {
		return id, bad("replica: %v", err)
	}
	if id.IsZero() {
		return id, bad("zero replica id")
	}
	return id, nil
}

// DecodeVector reads a vector written by EncodeVector.
func DecodeVector(dec *msgpack.Decoder) (clock.Vector, error) {
	n, err := arrayLen(dec, -1)
	if err != nil {
		return nil, err
	}
	v := make(clock.Vector, min(n, 64))
	for range n {
		if _, err := arrayLen(dec, 2); err != nil {
			return nil, err
		}
		id, err := decodeReplica(dec)
		if err != nil {
			return nil, err
		}
		c, err := dec.DecodeUint64()
		if err != nil {
			return nil, bad("counter: %v", err)
		}
		if _, dup := v[id]; dup {
			return nil, bad("duplicate clock entry")
		}
		if c > 0 {
			v[id] = c
		}
	}
	return v, nil
}

// DecodeRecordFrom reads one record written by EncodeRecordTo.
func DecodeRecordFrom(dec *msgpack.Decoder) (Record, error) {
	if _, err := arrayLen(dec, 2); err != nil {
		return Record{}, err
	}
	c, err := DecodeVector(dec)
	if err != nil {
		return Record{}, err
	}
	n, err := arrayLen(dec, -1)
	if err != nil {
		return Record{}, err
	}
	r := Record{Clock: c, Versions: make([]Version, 0, min(n, 64))}
	for range n {
		if _, err := arrayLen(dec, 5); err != nil {
			return Record{}, err
		}
		var v Version
		code, err := dec.PeekCode()
		if err != nil {
			return Record{}, bad("%v", err)
		}
		if code == 0xc0 { // nil
			if err := dec.DecodeNil(); err != nil {
				return Record{}, bad("%v", err)
			}
		} else {
			b, err := readBytes(dec)
			if err != nil {
				return Record{}, bad("value: %v", err)
			}
			if b == nil {
				b = []byte{}
			}
			v.Value = b
		}
		if v.Deleted, err = dec.DecodeBool(); err != nil {
			return Record{}, bad("deleted: %v", err)
		}
		if v.Dot.Replica, err = decodeReplica(dec); err != nil {
			return Record{}, err
		}
		if v.Dot.Counter, err = dec.DecodeUint64(); err != nil {
			return Record{}, bad("counter: %v", err)
		}
		t, err := dec.DecodeUint64()
		if err != nil {
			return Record{}, bad("hlc: %v", err)
		}
		v.Time = clock.HLC(t)
		if v.Dot.Counter == 0 || !c.Covers(v.Dot) {
			return Record{}, bad("version %s not covered by clock %s", v.Dot, c)
		}
		if v.Deleted && v.Value != nil {
			return Record{}, bad("tombstone with a value")
		}
		r.Versions = append(r.Versions, v)
	}
	if !slices.IsSortedFunc(r.Versions, func(a, b Version) int { return a.Dot.Compare(b.Dot) }) {
		return Record{}, bad("versions out of order")
	}
	for i := 1; i < len(r.Versions); i++ {
		if r.Versions[i].Dot == r.Versions[i-1].Dot {
			return Record{}, bad("duplicate version")
		}
	}
	return r, nil
}
