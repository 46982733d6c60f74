package replica_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/replica"
)

// verifyStore is a healthy store: three replicas, a pruned log below a
// snapshot, and segments above it that every replica has applied.
type verifyStore struct {
	b    remote.Backend
	rs   []*replica.Replica
	snap uint64 // newest snapshot position
}

func newVerifyStore(t *testing.T, b remote.Backend) *verifyStore {
	t.Helper()
	ctx := context.Background()
	s := &verifyStore{b: b}
	for range 3 {
		s.rs = append(s.rs, newReplicaOpts(t, b, replica.Options{}))
	}
	for i := range 9 {
		r := s.rs[i%3]
		if err := r.Put(ctx, fmt.Sprintf("k%d", i%5), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
		mustSync(t, r)
	}
	s.syncAll(t)
	cs, err := s.rs[0].Compact(ctx, replica.CompactOptions{Prune: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Pruned == 0 {
		t.Fatalf("compact pruned nothing: %+v", cs)
	}
	s.snap = cs.Position
	for i := range 4 {
		r := s.rs[1+i%2]
		if err := r.Put(ctx, fmt.Sprintf("after%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
		mustSync(t, r)
	}
	s.syncAll(t)
	if ps := s.positions(t); len(ps) < 4 || ps[0] <= 1 || ps[0] > s.snap+1 {
		t.Fatalf("log positions %v with a snapshot at %d: want a pruned log with 4+ segments above it", ps, s.snap)
	}
	return s
}

func (s *verifyStore) syncAll(t *testing.T) {
	t.Helper()
	for range 2 {
		for _, r := range s.rs {
			mustSync(t, r)
		}
	}
}

// positions lists the log positions.
func (s *verifyStore) positions(t *testing.T) []uint64 {
	t.Helper()
	var out []uint64
	for _, k := range objects(t, s.b, remote.LogPrefix) {
		p, ok := remote.ParseLogKey(k)
		if !ok {
			t.Fatalf("log object %q", k)
		}
		out = append(out, p)
	}
	return out
}

func (s *verifyStore) index(t *testing.T) replica.SnapIndex {
	t.Helper()
	var idx replica.SnapIndex
	if err := json.Unmarshal(s.get(t, replica.SnapKey(s.snap)), &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func (s *verifyStore) get(t *testing.T, key string) []byte {
	t.Helper()
	obj, err := s.b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return obj.Data
}

func (s *verifyStore) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if _, err := s.b.Put(context.Background(), key, data); err != nil {
		t.Fatal(err)
	}
}

func (s *verifyStore) del(t *testing.T, key string) {
	t.Helper()
	if err := s.b.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, b remote.Backend, o replica.VerifyOptions) replica.VerifyReport {
	t.Helper()
	rep, err := replica.Verify(context.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func mustBeHealthy(t *testing.T, rep replica.VerifyReport) {
	t.Helper()
	if !rep.OK || len(rep.Problems) != 0 || len(rep.Warnings) != 0 || len(rep.Repaired) != 0 {
		t.Fatalf("healthy store reported: %s", dumpReport(rep))
	}
}

func dumpReport(rep replica.VerifyReport) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	return string(b)
}

// finding is what a test expects: a problem (or warning) of kind about
// object whose message contains each of msg.
type finding struct {
	object, kind string
	msg          []string
}

func hasFinding(list []replica.Problem, f finding) bool {
	for _, p := range list {
		if p.Object != f.object || p.Kind != f.kind {
			continue
		}
		ok := true
		for _, m := range f.msg {
			ok = ok && strings.Contains(p.Message, m)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestVerify(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newVerifyStore(t, mk(t))
			rep := verify(t, s.b, replica.VerifyOptions{})
			mustBeHealthy(t, rep)
			ps := s.positions(t)
			if rep.Segments != len(ps) || rep.Snapshots != 1 || rep.Objects != len(objects(t, s.b, "")) {
				t.Fatalf("counts: %s (log %v)", dumpReport(rep), ps)
			}
			// The replica's own method says the same.
			if r2, err := s.rs[0].Verify(ctx, replica.VerifyOptions{}); err != nil || !r2.OK || r2.Segments != rep.Segments {
				t.Fatalf("Replica.Verify: %s, %v", dumpReport(r2), err)
			}
			above := ps[len(ps)-2] // a segment above the snapshot, not the tip
			if above <= s.snap {
				t.Fatalf("positions %v, snapshot %d", ps, s.snap)
			}
			idx := s.index(t)
			part := idx.Parts[0].Name
			regKey := remote.RegistryKey(s.rs[0].ID())
			otherID := clock.NewReplicaID()

			type damage struct {
				name    string
				inject  func(t *testing.T) (undo func())
				problem *finding // nil: no problem, OK stays true
				warning *finding
			}
			replace := func(key string, data []byte) func(t *testing.T) func() {
				return func(t *testing.T) func() {
					old := s.get(t, key)
					s.put(t, key, data)
					return func() { s.put(t, old.key(key), old) }
				}
			}
			_ = replace
			cases := []damage{}
			_ = cases
			_ = part
			_ = regKey
			_ = otherID
			_ = above
		})
	}
}
