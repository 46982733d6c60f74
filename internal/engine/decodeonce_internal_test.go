package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// logSegment encodes n records from origin under keys <prefix>000..,
// counters from first, the header naming header as the origin. bad >= 0
// makes that record one that does not decode.
func logSegment(t *testing.T, header, origin clock.ReplicaID, prefix string, first uint64, n, bad int) []byte {
	t.Helper()
	enc := segment.NewEncoder()
	for i := range n {
		c := first + uint64(i)
		rec := merge.Record{Clock: clock.Vector{origin: c},
			Versions: []merge.Version{{Value: []byte("v"), Dot: clock.Dot{Replica: origin, Counter: c}, Time: clock.HLC(1 << 20)}}}
		if i == bad {
			rec.Clock = clock.Vector{origin: c - 1}
		}
		if err := enc.Add(fmt.Sprintf("%s%03d", prefix, i), rec); err != nil {
			t.Fatal(err)
		}
	}
	b, err := enc.Finish(segment.Header{Origin: header, HLC: clock.HLC(1 << 20)}, segment.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPullOpensNextWhileApplying: a pull opens each segment while the one
// before it is applied (openAhead), and that changes nothing of what a
// pull applies or refuses: with log/3 malformed halfway, log/1 and log/2
// are applied, nothing of log/3 or log/4, the cursor stops at 2 and the
// error names log/3; with log/2 refused after its Open (published under
// this replica's id by another directory) while log/3 is being opened,
// the pull stops at log/2. Either way the decode budget is all given back
// (the Reader opened ahead is closed), and once the log is whole the pull
// applies the rest.
func TestPullOpensNextWhileApplying(t *testing.T) {
	ctx := context.Background()
	be := memremote.New("t")
	r, err := Open("", &Options{InMemory: true, Create: true, Backend: be, Durability: store.Relaxed,
		Hooks: &Hooks{ApplyChunk: 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	x := clock.ReplicaID{0xee, 1}
	seg := func(p int, bad int) []byte {
		return logSegment(t, x, x, fmt.Sprintf("p%d/", p), uint64(p*1000), 100, bad)
	}
	put := func(p int, b []byte) {
		t.Helper()
		if err := be.SetObject(remote.LogKey(uint64(p)), b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, err error, want error, name string, keys int64, cursor uint64) {
		t.Helper()
		if !errors.Is(err, want) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: pull = %v, want %v naming %s", what, err, want, name)
		}
		if n := r.Len(); n != keys {
			t.Fatalf("%s: %d keys, want %d", what, n, keys)
		}
		if c := r.cursor(); c != cursor {
			t.Fatalf("%s: cursor %d, want %d", what, c, cursor)
		}
		if h := r.budget().Held(); h != 0 {
			t.Fatalf("%s: the decode budget holds %d bytes after the pull", what, h)
		}
	}
	// log/2 under this replica's id, never staged here: refused after its
	// Open, while log/3 opens ahead.
	put(1, seg(1, -1))
	put(2, logSegment(t, r.ID(), x, "p2/", 2000, 100, -1))
	put(3, seg(3, -1))
	put(4, seg(4, -1))
	_, err = r.Pull(ctx)
	check("cloned log/2", err, ErrCloned, remote.LogKey(2), 100, 1)

	put(2, seg(2, -1))
	put(3, seg(3, 50))
	_, err = r.Pull(ctx)
	check("malformed log/3", err, segment.ErrCorrupt, remote.LogKey(3), 200, 2)

	put(3, seg(3, -1))
	ps, err := r.Pull(ctx)
	if err != nil || ps.Segments != 2 || ps.Records != 200 || r.Len() != 400 || r.cursor() != 4 {
		t.Fatalf("pull of the whole log: %+v, %v; %d keys, cursor %d", ps, err, r.Len(), r.cursor())
	}
	if h := r.budget().Held(); h != 0 {
		t.Fatalf("the decode budget holds %d bytes after the pull", h)
	}
}
