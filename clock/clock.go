// Package clock holds the causal metadata of ebreplica: replica ids, dots,
// version vectors and a hybrid logical clock.
//
// A dot (replica, counter) names exactly one write. A version vector maps
// each replica to the highest counter of that replica's writes it has seen;
// it is the join of every dot it covers. Causality (which write saw which)
// is decided by version vectors only; the hybrid logical clock orders truly
// concurrent writes for last-writer-wins and never decides causality.
//
// Laws (checked by property tests in this package and in proptest/):
//   - Join is commutative, associative and idempotent, and an upper bound:
//     a.Compare(a.Join(b)) is Before or Equal.
//   - Compare is a partial order: Equal iff the vectors are equal (missing
//     entries count as 0), Before/After antisymmetric, transitive.
package clock

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// ReplicaID identifies one replica. It is a UUID made once at init and kept
// in the replica's store. The zero ReplicaID is invalid.
type ReplicaID uuid.UUID

// NewReplicaID returns a fresh random id.
func NewReplicaID() ReplicaID { return ReplicaID(uuid.New()) }

// ParseReplicaID parses the canonical text form.
func ParseReplicaID(s string) (ReplicaID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return ReplicaID{}, fmt.Errorf("clock: bad replica id %q: %w", s, err)
	}
	if u == uuid.Nil {
		return ReplicaID{}, fmt.Errorf("clock: bad replica id %q: nil uuid", s)
	}
	return ReplicaID(u), nil
}

// String returns the canonical UUID text form.
func (r ReplicaID) String() string { return uuid.UUID(r).String() }

// Short returns the first 8 hex digits, for human output.
func (r ReplicaID) Short() string { return r.String()[:8] }

// IsZero reports whether r is the invalid zero id.
func (r ReplicaID) IsZero() bool { return r == ReplicaID{} }

// Compare orders ids by their bytes.
func (r ReplicaID) Compare(o ReplicaID) int { return bytes.Compare(r[:], o[:]) }

// MarshalText implements encoding.TextMarshaler.
func (r ReplicaID) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *ReplicaID) UnmarshalText(b []byte) error {
	id, err := ParseReplicaID(string(b))
	if err != nil {
		return err
	}
	*r = id
	return nil
}

// Dot names one write: the Counter-th write of Replica. Counters start at 1.
type Dot struct {
	Replica ReplicaID
	Counter uint64
}

// Compare orders dots canonically: by replica id, then counter.
func (d Dot) Compare(o Dot) int {
	if c := d.Replica.Compare(o.Replica); c != 0 {
		return c
	}
	switch {
	case d.Counter < o.Counter:
		return -1
	case d.Counter > o.Counter:
		return 1
	}
	return 0
}

func (d Dot) String() string { return fmt.Sprintf("%s:%d", d.Replica.Short(), d.Counter) }

// Ordering is the result of comparing two version vectors. The zero value is
// invalid, so an unset Ordering is never mistaken for a real answer.
type Ordering int

const (
	_          Ordering = iota
	Before              // a < b: b has seen everything a has, and more
	After               // a > b
	Equal               // a == b
	Concurrent          // neither has seen all of the other
)

func (o Ordering) String() string {
	switch o {
	case Before:
		return "before"
	case After:
		return "after"
	case Equal:
		return "equal"
	case Concurrent:
		return "concurrent"
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// Vector is a version vector: replica -> highest counter seen. A missing
// entry means 0. A nil Vector is the empty vector. Methods never modify
// their receiver unless they say so.
type Vector map[ReplicaID]uint64

// Get returns the counter for r (0 when absent).
func (v Vector) Get(r ReplicaID) uint64 { return v[r] }

// Covers reports whether the vector has seen dot d.
func (v Vector) Covers(d Dot) bool { return d.Counter != 0 && v[d.Replica] >= d.Counter }

// Clone returns a copy (nil stays nil-equivalent empty).
func (v Vector) Clone() Vector {
	if len(v) == 0 {
		return Vector{}
	}
	return maps.Clone(v)
}

// Join returns the pointwise maximum of v and o as a new vector.
func (v Vector) Join(o Vector) Vector {
	out := make(Vector, max(len(v), len(o)))
	for r, c := range v {
		if c > 0 {
			out[r] = c
		}
	}
	for r, c := range o {
		if c > out[r] {
			out[r] = c
		}
	}
	return out
}

// JoinInPlace raises v to include o. v must not be nil.
func (v Vector) JoinInPlace(o Vector) {
	for r, c := range o {
		if c > v[r] {
			v[r] = c
		}
	}
}

// Add records dot d (raises d.Replica's entry to d.Counter) in place.
func (v Vector) Add(d Dot) {
	if d.Counter > v[d.Replica] {
		v[d.Replica] = d.Counter
	}
}

// Compare returns how v relates to o causally.
func (v Vector) Compare(o Vector) Ordering {
	less, greater := false, false
	for r, c := range v {
		oc := o[r]
		if c > oc {
			greater = true
		} else if c < oc {
			less = true
		}
	}
	for r, oc := range o {
		if _, ok := v[r]; !ok && oc > 0 {
			less = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// Equal reports whether v and o have the same non-zero entries.
func (v Vector) Equal(o Vector) bool { return v.Compare(o) == Equal }

// Entries returns the non-zero entries sorted by replica id.
func (v Vector) Entries() []Dot {
	out := make([]Dot, 0, len(v))
	for r, c := range v {
		if c > 0 {
			out = append(out, Dot{r, c})
		}
	}
	slices.SortFunc(out, Dot.Compare)
	return out
}

// String is deterministic: entries sorted by replica id, e.g.
// "{0a1b2c3d:4 ff00aa11:2}".
func (v Vector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, d := range v.Entries() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(d.String())
	}
	b.WriteByte('}')
	return b.String()
}
