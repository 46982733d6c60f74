package merge

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

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

// EncodeRecord appends nothing and returns the canonical bytes of r.
func EncodeRecord(r Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := EncodeRecordTo(enc, r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	r, err := DecodeRecordFrom(dec)
	if err != nil {
		return Record{}, err
	}
	return r, nil
}

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

func decodeReplica(dec *msgpack.Decoder) (clock.ReplicaID, error) {
	b, err := readBytes(dec)
	if err != nil {
		return clock.ReplicaID{}, bad("replica: %v", err)
	}
	if len(b) != 16 {
		return clock.ReplicaID{}, bad("replica id of %d bytes", len(b))
	}
	var id clock.ReplicaID
	copy(id[:], b)
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
