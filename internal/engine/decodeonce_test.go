package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// craftSegment encodes n records of size-byte values from origin, keys
// k00000.., with a checksum that holds. bad >= 0 makes record bad one that
// does not decode (a version its clock does not cover): the encoder writes
// it, merge's bounded decoder refuses it.
func craftSegment(t *testing.T, origin clock.ReplicaID, n, size, bad int) []byte {
	t.Helper()
	enc := segment.NewEncoder()
	for i := range n {
		c := uint64(i + 1)
		rec := merge.Record{
			Clock:    clock.Vector{origin: c},
			Versions: []merge.Version{{Value: bytes.Repeat([]byte{byte(i)}, size), Dot: clock.Dot{Replica: origin, Counter: c}, Time: clock.HLC(1 << 20)}},
		}
		if i == bad {
			rec.Clock = clock.Vector{origin: c - 1} // does not cover the dot
		}
		if err := enc.Add(fmt.Sprintf("k%05d", i), rec); err != nil {
			t.Fatal(err)
		}
	}
	b, err := enc.Finish(segment.Header{Origin: origin, Base: 0, HLC: clock.HLC(1 << 20)}, segment.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// resum recomputes a segment's SHA-256 trailer after an edit.
func resum(b []byte) []byte {
	b = bytes.Clone(b)
	sum := sha256.Sum256(b[:len(b)-sha256.Size])
	copy(b[len(b)-sha256.Size:], sum[:])
	return b
}

// TestPullRefusesBadSegmentWhole: a pulled segment that is corrupt or
// malformed — a record deep inside that does not decode, a flipped byte,
// an object cut short, a newer format version — stops the pull with an
// error naming it, and changes nothing locally: no key, no cursor, though
// the records before the bad one span several transactions (chunks of
// 100). Under both profiles: the default one keeps every record Open
// decoded for the apply; the small one's 16 MiB budget runs short first
// and the rest are decoded again as they are applied. The same segment
// made whole then applies in full.
func TestPullRefusesBadSegmentWhole(t *testing.T) {
	origin := clock.ReplicaID{0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	for _, tc := range []struct {
		name    string
		low     bool
		n, size int
		bad     int // the malformed record
	}{
		// 1000 records of 100 B: all kept.
		{name: "default", n: 1000, size: 100, bad: 499},
		// 5000 records of 2 KB: 10 MB of body, held of the 16 MiB budget;
		// the records Open can keep in the rest stop near 2,500.
		{name: "small", low: true, n: 5000, size: 2000, bad: 4900},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			good := craftSegment(t, origin, tc.n, tc.size, -1)
			version := bytes.Clone(good)
			version[4] = segment.Version + 1
			flipped := bytes.Clone(good)
			flipped[len(flipped)/2] ^= 1
			cases := []struct {
				name string
				data []byte
				want error
			}{
				{"malformed record", craftSegment(t, origin, tc.n, tc.size, tc.bad), segment.ErrCorrupt},
				{"malformed last record", craftSegment(t, origin, tc.n, tc.size, tc.n-1), segment.ErrCorrupt},
				{"flipped byte", flipped, segment.ErrCorrupt},
				{"truncated", good[:len(good)*3/4], segment.ErrCorrupt},
				{"newer version", resum(version), segment.ErrVersion},
			}
			be := memremote.New("t")
			r, err := engine.Open(t.TempDir(), &engine.Options{Create: true, Backend: be, LowMemory: tc.low,
				Durability: store.Relaxed, Hooks: &engine.Hooks{ApplyChunk: 100}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			name := remote.LogKey(1)
			for _, c := range cases {
				if err := be.SetObject(name, c.data); err != nil {
					t.Fatal(err)
				}
				_, err := r.Pull(ctx)
				if !errors.Is(err, c.want) || !strings.Contains(err.Error(), name) {
					t.Fatalf("%s: pull = %v, want %v naming %s", c.name, err, c.want, name)
				}
				if n := r.Len(); n != 0 {
					t.Fatalf("%s: %d keys applied from a segment that was refused", c.name, n)
				}
				if st, err := r.Status(); err != nil || st.Cursor != 0 {
					t.Fatalf("%s: cursor %d (%v), want 0", c.name, st.Cursor, err)
				}
			}
			if err := be.SetObject(name, good); err != nil {
				t.Fatal(err)
			}
			ps, err := r.Pull(ctx)
			if err != nil || ps.Records != tc.n || ps.Changed != tc.n {
				t.Fatalf("pull of the whole segment: %+v, %v", ps, err)
			}
			if n := r.Len(); n != int64(tc.n) {
				t.Fatalf("Len %d, want %d", n, tc.n)
			}
			for _, i := range []int{0, tc.bad, tc.n - 1} {
				k := fmt.Sprintf("k%05d", i)
				if v, err := r.Get(k); err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, tc.size)) {
					t.Fatalf("%s: %d bytes, %v", k, len(v), err)
				}
			}
		})
	}
}
