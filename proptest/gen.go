package proptest

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"pgregory.net/rapid"
)

// PoolSize is the number of ids in the fixed pool that ReplicaIDs draws from.
const PoolSize = 8

// DefaultIDs is how many pool ids Vector, Version and Record use, and
// MaxCounter the largest counter they draw: small on purpose, so that
// generated vectors are often comparable and dots often collide.
const (
	DefaultIDs = 4
	MaxCounter = 4
)

// pool is fixed and deliberately not in byte order, so that a test that
// confuses pool order with canonical id order fails.
var pool = func() []clock.ReplicaID {
	texts := []string{
		"a1000000-0000-4000-8000-000000000001",
		"3b000000-0000-4000-8000-000000000002",
		"f2000000-0000-4000-8000-000000000003",
		"05000000-0000-4000-8000-000000000004",
		"7c000000-0000-4000-8000-000000000005",
		"d9000000-0000-4000-8000-000000000006",
		"12000000-0000-4000-8000-000000000007",
		"68000000-0000-4000-8000-000000000008",
	}
	ids := make([]clock.ReplicaID, len(texts))
	for i, s := range texts {
		id, err := clock.ParseReplicaID(s)
		if err != nil {
			panic(err)
		}
		ids[i] = id
	}
	return ids
}()

// Pool returns the first n ids of the fixed pool (n is clamped to
// [1, PoolSize]). The ids are distinct and non-zero.
func Pool(n int) []clock.ReplicaID {
	n = min(max(n, 1), PoolSize)
	return slices.Clone(pool[:n])
}

// ReplicaIDs draws one of the first n ids of the fixed pool (n is clamped
// to [1, PoolSize]).
func ReplicaIDs(n int) *rapid.Generator[clock.ReplicaID] {
	return rapid.SampledFrom(Pool(n))
}

// Counter draws a dot counter in [1, MaxCounter].
func Counter() *rapid.Generator[uint64] { return rapid.Uint64Range(1, MaxCounter) }

// Dot draws a dot over DefaultIDs ids and counters in [1, MaxCounter].
func Dot() *rapid.Generator[clock.Dot] {
	return rapid.Custom(func(t *rapid.T) clock.Dot {
		return clock.Dot{Replica: ReplicaIDs(DefaultIDs).Draw(t, "replica"), Counter: Counter().Draw(t, "counter")}
	})
}

// Vector draws a version vector over DefaultIDs ids with counters in
// [0, MaxCounter]. Explicit zero entries appear now and then: they must
// behave exactly like missing ones.
func Vector() *rapid.Generator[clock.Vector] {
	return rapid.Custom(func(t *rapid.T) clock.Vector {
		m := rapid.MapOfN(ReplicaIDs(DefaultIDs), rapid.Uint64Range(0, MaxCounter), 0, DefaultIDs).Draw(t, "vector")
		return clock.Vector(m)
	})
}

// HLC draws a timestamp from a small set (a few milliseconds, a few logical
// values), so that ties between versions are frequent.
func HLC() *rapid.Generator[clock.HLC] {
	const base = 1_700_000_000_000 // 2023-11-14, any fixed instant does
	return rapid.Custom(func(t *rapid.T) clock.HLC {
		ms := rapid.Int64Range(0, 2).Draw(t, "ms")
		l := rapid.Uint16Range(0, 2).Draw(t, "logical")
		return clock.MakeHLC(base+ms, l)
	})
}

// Value draws a live value: nil, empty or a few bytes.
func Value() *rapid.Generator[[]byte] {
	return rapid.OneOf(rapid.Just([]byte(nil)), rapid.SliceOfN(rapid.Byte(), 0, 4))
}

// VersionAt draws a version named by dot d: a value or a tombstone (nil
// Value) and an HLC from HLC().
func VersionAt(d clock.Dot) *rapid.Generator[merge.Version] {
	return rapid.Custom(func(t *rapid.T) merge.Version {
		v := merge.Version{Dot: d, Time: HLC().Draw(t, "time")}
		if rapid.IntRange(0, 3).Draw(t, "tombstone") == 0 {
			v.Deleted = true
		} else {
			v.Value = Value().Draw(t, "value")
		}
		return v
	})
}

// Version draws a version with a dot from Dot().
func Version() *rapid.Generator[merge.Version] {
	return rapid.Custom(func(t *rapid.T) merge.Version {
		return VersionAt(Dot().Draw(t, "dot")).Draw(t, "version")
	})
}

// Universe fixes the one version each dot names. Records drawn from the same
// universe agree on every dot they share, as real records do (a dot names
// exactly one immutable version); records drawn independently need not, and
// merging such records is meaningless.
type Universe map[clock.Dot]merge.Version

// Universes draws a version for every dot over DefaultIDs ids and counters
// [1, MaxCounter].
func Universes() *rapid.Generator[Universe] {
	return rapid.Custom(func(t *rapid.T) Universe {
		u := make(Universe)
		for _, id := range Pool(DefaultIDs) {
			for c := uint64(1); c <= MaxCounter; c++ {
				d := clock.Dot{Replica: id, Counter: c}
				u[d] = VersionAt(d).Draw(t, "version")
			}
		}
		return u
	})
}

var clockEntries = func() []int {
	var out []int
	for c := MaxCounter; c >= -1; c-- {
		out = append(out, c)
	}
	return out
}()

// RecordFrom draws a valid record whose versions come from u: a clock over
// DefaultIDs ids, then any subset of the dots it covers, in canonical order.
// Records may have several siblings of one replica, no versions at all, or
// be the zero record: they are valid inputs for the merge laws even when no
// history produces them.
func RecordFrom(u Universe) *rapid.Generator[merge.Record] {
	dots := slices.SortedFunc(maps.Keys(u), clock.Dot.Compare)
	return rapid.Custom(func(t *rapid.T) merge.Record {
		if rapid.IntRange(0, 15).Draw(t, "zero") == 0 {
			return merge.Record{}
		}
		// Clock entries drawn about uniformly (rapid's integer generators
		// favour the minimum) cover more dots than Vector() tends to, so
		// that records often share versions. -1: no entry; 0: an explicit
		// zero entry.
		r := merge.Record{Clock: clock.Vector{}}
		for _, id := range Pool(DefaultIDs) {
			if c := rapid.SampledFrom(clockEntries).Draw(t, "clock entry"); c >= 0 {
				r.Clock[id] = uint64(c)
			}
		}
		for _, d := range dots {
			if r.Clock.Covers(d) && rapid.Bool().Draw(t, "keep "+d.String()) {
				r.Versions = append(r.Versions, u[d])
			}
		}
		return r
	})
}

// Record draws a valid record (see ValidateRecord) over a fresh universe.
func Record() *rapid.Generator[merge.Record] {
	return rapid.Custom(func(t *rapid.T) merge.Record {
		return RecordFrom(Universes().Draw(t, "universe")).Draw(t, "record")
	})
}

// ValidateRecord checks the invariants of a stored record: every version's
// dot is non-zero and covered by the clock, dots are unique and in canonical
// order, tombstones have a nil Value.
func ValidateRecord(r merge.Record) error {
	for i, v := range r.Versions {
		if v.Dot.Replica.IsZero() || v.Dot.Counter == 0 {
			return fmt.Errorf("version %d: zero dot %v", i, v.Dot)
		}
		if !r.Clock.Covers(v.Dot) {
			return fmt.Errorf("version %d: dot %v not covered by clock %v", i, v.Dot, r.Clock)
		}
		if v.Deleted && v.Value != nil {
			return fmt.Errorf("version %d: tombstone %v with a value", i, v.Dot)
		}
		if i > 0 && r.Versions[i-1].Dot.Compare(v.Dot) >= 0 {
			return fmt.Errorf("version %d: dot %v not after %v", i, v.Dot, r.Versions[i-1].Dot)
		}
	}
	return nil
}

// DotSet is a set of dots.
type DotSet map[clock.Dot]bool

// Sorted returns the dots in canonical order.
func (s DotSet) Sorted() []clock.Dot {
	return slices.SortedFunc(maps.Keys(s), clock.Dot.Compare)
}

// StepKind says what a history step does.
type StepKind uint8

const (
	// Write: replica At writes a new version (merge.LocalWrite with an empty
	// collected context).
	Write StepKind = iota + 1
	// Receive: replica At merges replica From's state into its own.
	Receive
)

func (k StepKind) String() string {
	switch k {
	case Write:
		return "write"
	case Receive:
		return "receive"
	}
	return fmt.Sprintf("StepKind(%d)", uint8(k))
}

// Step is one step of a history. Kind, At, From and the Value, Deleted and
// Time of Version are the input; Run fills in the rest.
type Step struct {
	Kind StepKind
	At   int // acting replica, an index into History.Replicas
	From int // Receive: the sending replica (may equal At)

	// Version is the version written (Write). Run sets its Dot to At's
	// next counter.
	Version merge.Version

	State merge.Record // At's state after the step (set by Run)
	Seen  DotSet       // At's causal knowledge after the step (set by Run)
}

func (s Step) String() string {
	if s.Kind == Receive {
		return fmt.Sprintf("%d<-%d", s.At, s.From)
	}
	what := fmt.Sprintf("%q", s.Version.Value)
	if s.Version.Deleted {
		what = "del"
	}
	return fmt.Sprintf("%d:w(%v %s @%d)", s.At, s.Version.Dot, what, uint64(s.Version.Time))
}

// History is a causal history of one key over a few replicas, with ground
// truth kept independently of version vectors.
type History struct {
	Replicas []clock.ReplicaID
	Steps    []Step

	States []merge.Record // final state of each replica
	Seen   []DotSet       // final causal knowledge of each replica: every dot it has seen

	Writes []merge.Version      // every version written, in order
	Past   map[clock.Dot]DotSet // for each written dot, the dots its writer had seen (its strict causal past)
}

// Run replays steps over fresh replicas with the given ids and returns the
// history, with every step's Version.Dot, State and Seen filled in. The input
// slice is not modified. Steps naming a replica out of range panic.
func Run(replicas []clock.ReplicaID, steps []Step) History {
	n := len(replicas)
	h := History{
		Replicas: slices.Clone(replicas),
		Steps:    make([]Step, 0, len(steps)),
		States:   make([]merge.Record, n),
		Seen:     make([]DotSet, n),
		Past:     make(map[clock.Dot]DotSet),
	}
	counters := make([]uint64, n)
	for i := range h.Seen {
		h.Seen[i] = DotSet{}
	}
	for _, s := range steps {
		i := s.At
		switch s.Kind {
		case Write:
			counters[i]++
			v := s.Version
			v.Dot = clock.Dot{Replica: replicas[i], Counter: counters[i]}
			if v.Deleted {
				v.Value = nil
			}
			h.Past[v.Dot] = maps.Clone(h.Seen[i])
			h.Seen[i][v.Dot] = true
			h.States[i] = merge.LocalWrite(h.States[i], clock.Vector{}, v)
			h.Writes = append(h.Writes, v)
			s.Version = v
		case Receive:
			h.States[i] = merge.Merge(h.States[i], h.States[s.From])
			maps.Copy(h.Seen[i], h.Seen[s.From])
		default:
			panic(fmt.Sprintf("proptest: bad step kind %v", s.Kind))
		}
		s.State = h.States[i].Clone()
		s.Seen = maps.Clone(h.Seen[i])
		h.Steps = append(h.Steps, s)
	}
	return h
}

// HappenedBefore reports whether write d is in the causal past of write e.
func (h History) HappenedBefore(d, e clock.Dot) bool { return h.Past[e][d] }

// Maximal returns, in canonical order, the dots of known that are not in the
// causal past of another dot of known: exactly the versions a state that has
// seen known must hold.
func (h History) Maximal(known DotSet) []clock.Dot {
	var out []clock.Dot
	for d := range known {
		superseded := false
		for e := range known {
			if h.HappenedBefore(d, e) {
				superseded = true
				break
			}
		}
		if !superseded {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, clock.Dot.Compare)
	return out
}

// Written returns every written dot.
func (h History) Written() DotSet {
	s := make(DotSet, len(h.Writes))
	for _, v := range h.Writes {
		s[v.Dot] = true
	}
	return s
}

// Histories draws a history of 2..maxReplicas replicas (ids from the pool,
// in random order) and 0..maxSteps steps, about half of them writes. Written
// values and tombstones are random, and so are their HLC times, drawn from
// HLC() with no regard for causality.
func Histories(maxReplicas, maxSteps int) *rapid.Generator[History] {
	maxReplicas = min(max(maxReplicas, 2), PoolSize)
	counts := make([]int, max(maxSteps, maxReplicas)+1)
	for i := range counts {
		counts[i] = i
	}
	return rapid.Custom(func(t *rapid.T) History {
		n := rapid.SampledFrom(counts[2:maxReplicas+1]).Draw(t, "replicas")
		ids := rapid.Permutation(Pool(PoolSize)).Draw(t, "ids")[:n]
		step := rapid.Custom(func(t *rapid.T) Step {
			s := Step{At: rapid.IntRange(0, n-1).Draw(t, "at")}
			if rapid.Bool().Draw(t, "write") {
				s.Kind = Write
				s.Version = VersionAt(clock.Dot{}).Draw(t, "version")
			} else {
				s.Kind = Receive
				s.From = rapid.IntRange(0, n-1).Draw(t, "from")
			}
			return s
		})
		// SampledFrom is about uniform; IntRange would favour short histories.
		steps := make([]Step, rapid.SampledFrom(counts[:max(maxSteps, 0)+1]).Draw(t, "steps"))
		for i := range steps {
			steps[i] = step.Draw(t, "step")
		}
		return Run(ids, steps)
	})
}
