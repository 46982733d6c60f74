package fsck_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/fsck"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// crdtStore is a healthy store of two replicas with counter and set keys,
// and a user policy under f/.
type crdtStore struct {
	b  remote.Backend
	rs []*engine.Engine
}

func newCRDTStore(t *testing.T) *crdtStore {
	t.Helper()
	ctx := context.Background()
	reg, err := merge.ParsePolicies([]string{"cnt/=counter", "set/=set", "f/=first"},
		map[string]merge.Policy{"first": merge.NewFunc("first", func(_ string, a, _ merge.Version) (merge.Version, error) { return a, nil })})
	if err != nil {
		t.Fatal(err)
	}
	s := &crdtStore{b: memremote.New("verify")}
	for range 2 {
		s.rs = append(s.rs, newReplicaOpts(t, s.b, engine.Options{Policies: reg}))
	}
	if _, err := s.rs[0].CounterAdd(ctx, "cnt/total", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.rs[1].SetAdd(ctx, "set/x", "a", "b"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.rs[i%2].Put(ctx, fmt.Sprintf("f/%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	s.syncAll(t)
	return s
}

func (s *crdtStore) syncAll(t *testing.T) {
	t.Helper()
	for range 2 {
		for _, r := range s.rs {
			mustSync(t, r)
		}
	}
}

func replicaVerify(t *testing.T, r *engine.Engine) fsck.Report {
	t.Helper()
	rep, err := r.Verify(context.Background(), fsck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestVerifyUnreadableRecords: a raw value where a counter's state should
// be decodes as a record and passes every checksum, yet makes the counter
// unreadable on every replica that applies it. Verify names the object and
// the key: in the log segment, in the snapshot part that carries it on, and
// in each replica's local store.
func TestVerifyUnreadableRecords(t *testing.T) {
	ctx := context.Background()
	s := newCRDTStore(t)
	// Healthy: every record reads, remote and local; the user policy is
	// read only where the verify has it.
	for _, r := range s.rs {
		rep := replicaVerify(t, r)
		mustBeHealthy(t, rep)
		if rep.LocalRecords != 5 {
			t.Fatalf("local records checked: %d, want 5", rep.LocalRecords)
		}
	}
	rep := verify(t, s.b, fsck.Options{})
	mustBeHealthy(t, rep)
	if !hasFinding(rep.Info, finding{remote.ManifestKey, fsck.KindUnchecked, []string{`"f/"`, `"first"`}}) {
		t.Fatalf("want the unchecked user policy in info: %s", dumpReport(rep))
	}

	// A broken writer publishes a raw value under the counter key.
	ps := objects(t, s.b, remote.LogPrefix)
	tip, _ := remote.ParseLogKey(ps[len(ps)-1])
	writer := clock.NewReplicaID()
	d := clock.Dot{Replica: writer, Counter: 1}
	raw := merge.Record{Clock: clock.Vector{writer: 1}, Versions: []merge.Version{{Value: []byte("5"), Dot: d, Time: 1}}}
	seg, err := segment.Encode(segment.Header{Origin: writer, Base: tip}, segment.Raw,
		[]segment.Entry{{Key: "cnt/total", Record: raw}, {Key: "other", Record: raw}})
	if err != nil {
		t.Fatal(err)
	}
	badKey := remote.LogKey(tip + 1)
	if _, err := s.b.PutIfAbsent(ctx, badKey, seg); err != nil {
		t.Fatal(err)
	}
	s.syncAll(t)
	for _, r := range s.rs {
		if _, err := r.CounterValue("cnt/total"); !errors.Is(err, merge.ErrBadState) {
			t.Fatalf("counter after the raw write: %v", err)
		}
	}
	remoteFinding := finding{badKey, fsck.KindUnreadable, []string{`"cnt/total"`, "1 record(s)", "malformed CRDT state"}}
	localFinding := finding{fsck.LocalObject + "cnt/total", fsck.KindUnreadable, []string{"cnt/total", "counter"}}
	for _, r := range s.rs {
		rep := replicaVerify(t, r)
		if rep.OK || !hasFinding(rep.Problems, remoteFinding) || !hasFinding(rep.Problems, localFinding) || len(rep.Problems) != 2 {
			t.Fatalf("want %+v and %+v in %s", remoteFinding, localFinding, dumpReport(rep))
		}
	}
	// Without a replica, the manifest's built-in policies read it.
	rep = verify(t, s.b, fsck.Options{Repair: true})
	if rep.OK || len(rep.Problems) != 1 || !hasFinding(rep.Problems, remoteFinding) || len(rep.Repaired) != 0 {
		t.Fatalf("want %+v in %s", remoteFinding, dumpReport(rep))
	}

	// Compaction carries the record on into a snapshot part.
	cs, err := s.rs[0].Compact(ctx, engine.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var part string
	for _, k := range objects(t, s.b, remote.SnapDir(cs.Position)) {
		if strings.Contains(k, "/part-") {
			part = k
		}
	}
	rep = verify(t, s.b, fsck.Options{})
	if part == "" || !hasFinding(rep.Problems, finding{part, fsck.KindUnreadable, []string{`"cnt/total"`}}) {
		t.Fatalf("want the part %q unreadable in %s", part, dumpReport(rep))
	}
}

// TestVerifyLocalRecords: a record only the local store holds (written
// past the replica's checks, not pushed) is checked too; the remote is
// healthy.
func TestVerifyLocalRecords(t *testing.T) {
	s := newCRDTStore(t)
	r := s.rs[1]
	for _, key := range []string{"set/raw", "cnt/raw"} {
		if err := r.Store().Update(context.Background(), func(tx *store.Tx) error {
			_, err := tx.Write(key, []byte("not a state"), false)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rep := replicaVerify(t, r)
	for _, key := range []string{"set/raw", "cnt/raw"} {
		if !hasFinding(rep.Problems, finding{fsck.LocalObject + key, fsck.KindUnreadable, []string{key}}) {
			t.Fatalf("want %s unreadable in %s", key, dumpReport(rep))
		}
	}
	if rep.OK || len(rep.Problems) != 2 || rep.LocalRecords != 7 {
		t.Fatalf("%s", dumpReport(rep))
	}
	mustBeHealthy(t, verify(t, s.b, fsck.Options{}))
}
