package merge_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// allocBytes returns the bytes f allocates (the TotalAlloc delta), the
// least over a few runs so that a stray allocation elsewhere cannot fail a
// test.
func allocBytes(f func()) uint64 {
	best := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	return best
}

// hostileStates are a few bytes whose length headers claim far more
// entries or bytes than follow them.
var hostileStates = []struct {
	name string
	data []byte
}{
	// [ "pn1", ctx: array32 of 2^20 entries ]
	{"counter context of 2^20 entries", []byte{0x93, 0xa3, 'p', 'n', '1', 0xdd, 0, 0x10, 0, 0}},
	// [ "pn1", [], entries: array32 of 2^20 ]
	{"counter of 2^20 entries", []byte{0x93, 0xa3, 'p', 'n', '1', 0x90, 0xdd, 0, 0x10, 0, 0, 0x94, 0xc4, 16, 1}},
	// [ "pn1", [ [bin32 of ~4 GiB ...
	{"counter replica id of 4 GiB", []byte{0x93, 0xa3, 'p', 'n', '1', 0x91, 0x92, 0xc6, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3}},
	// [ "orswot1", [], members: array32 of 2^20 ]
	{"set of 2^20 members", []byte{0x93, 0xa7, 'o', 'r', 's', 'w', 'o', 't', '1', 0x90, 0xdd, 0, 0x10, 0, 0}},
	// [ "orswot1", [], [ [ "x", dots: array32 of 2^20 ] ] ]
	{"set member of 2^20 dots", []byte{0x93, 0xa7, 'o', 'r', 's', 'w', 'o', 't', '1', 0x90, 0x91, 0x92, 0xa1, 'x', 0xdd, 0, 0x10, 0, 0}},
	// [ "orswot1", [], [ [ str32 of ~4 GiB ...
	{"set member of 4 GiB", []byte{0x93, 0xa7, 'o', 'r', 's', 'w', 'o', 't', '1', 0x90, 0x91, 0x92, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'}},
	// [ "orswot1", ctx: array32 of 2^20 entries ]
	{"set context of 2^20 entries", []byte{0x93, 0xa7, 'o', 'r', 's', 'w', 'o', 't', '1', 0xdd, 0, 0x10, 0, 0}},
}

// TestDecodeStatesHostileLengths: a state whose length headers claim more
// than its bytes can hold fails with ErrBadState, allocating in proportion
// to the bytes given, never to the lengths claimed.
func TestDecodeStatesHostileLengths(t *testing.T) {
	const limit = 64 << 10
	for _, c := range hostileStates {
		t.Run(c.name, func(t *testing.T) {
			var cerr, serr error
			n := allocBytes(func() {
				_, cerr = merge.DecodeCounter(c.data)
				_, serr = merge.DecodeSet(c.data)
			})
			if !errors.Is(cerr, merge.ErrBadState) || !errors.Is(serr, merge.ErrBadState) {
				t.Fatalf("DecodeCounter: %v; DecodeSet: %v; want ErrBadState", cerr, serr)
			}
			if n > limit {
				t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", len(c.data), n, limit)
			}
		})
	}
}

// TestDecodeStatesDenseFit: states whose elements take the fewest bytes
// possible (one-byte counters and totals) still decode: the length checks
// use exact minima, not guesses that could reject a valid state.
func TestDecodeStatesDenseFit(t *testing.T) {
	id := func(i int) clock.ReplicaID {
		var r clock.ReplicaID
		r[0], r[1] = 1, byte(i)
		return r
	}
	var c merge.CounterState
	var s merge.SetState
	for i := range 100 {
		d := clock.Dot{Replica: id(i), Counter: 1}
		c = c.Add(d, 1)
		s = s.Add(d, string(rune('!'+i)))
	}
	for _, b := range [][]byte{c.Encode(), merge.CounterState{}.Add(clock.Dot{Replica: id(0), Counter: 1}, 0).Encode()} {
		got, err := merge.DecodeCounter(b)
		if err != nil || !bytes.Equal(got.Encode(), b) {
			t.Fatalf("DecodeCounter: %v", err)
		}
	}
	if got, err := merge.DecodeSet(s.Encode()); err != nil || !got.Equal(s) {
		t.Fatalf("DecodeSet: %v", err)
	}
}
