package fsck_test

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
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/fsck"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// verifyStore is a healthy store: three replicas, a pruned log below a
// snapshot, and segments above it that every replica has applied.
type verifyStore struct {
	b    remote.Backend
	rs   []*engine.Engine
	snap uint64 // newest snapshot position
}

func newVerifyStore(t *testing.T, b remote.Backend) *verifyStore {
	t.Helper()
	ctx := context.Background()
	s := &verifyStore{b: b}
	for range 3 {
		// Every pull lists log/: a ready replica's idle poll (one GET of
		// the next position) would take a hole at cursor+1 for "idle"
		// until its next listing (Options.ListEvery), and these tests
		// look at what a listing pull makes of damage.
		s.rs = append(s.rs, newReplicaOpts(t, b, engine.Options{ListEvery: -1}))
	}
	for i := range 9 {
		r := s.rs[i%3]
		if err := r.Put(ctx, fmt.Sprintf("k%d", i%5), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
		mustSync(t, r)
	}
	s.syncAll(t)
	cs, err := s.rs[0].Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
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

func (s *verifyStore) index(t *testing.T) format.SnapIndex {
	t.Helper()
	var idx format.SnapIndex
	if err := json.Unmarshal(s.get(t, remote.SnapKey(s.snap)), &idx); err != nil {
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

func verify(t *testing.T, b remote.Backend, o fsck.Options) fsck.Report {
	t.Helper()
	rep, err := fsck.Verify(context.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func mustBeHealthy(t *testing.T, rep fsck.Report) {
	t.Helper()
	if !rep.OK || len(rep.Problems) != 0 || len(rep.Warnings) != 0 || len(rep.Repaired) != 0 {
		t.Fatalf("healthy store reported: %s", dumpReport(rep))
	}
}

func dumpReport(rep fsck.Report) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	return string(b)
}

// finding is what a test expects: a problem (or warning) of kind about
// object whose message contains each of msg.
type finding struct {
	object, kind string
	msg          []string
}

func hasFinding(list []fsck.Problem, f finding) bool {
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

// modify replaces an object's bytes with f(old) and returns the undo.
func (s *verifyStore) modify(t *testing.T, key string, f func(old []byte) []byte) func() {
	t.Helper()
	old := s.get(t, key)
	s.put(t, key, f(bytes.Clone(old)))
	return func() { s.put(t, key, old) }
}

// add creates objects and returns the undo.
func (s *verifyStore) add(t *testing.T, objs map[string][]byte) func() {
	t.Helper()
	for k, v := range objs {
		s.put(t, k, v)
	}
	return func() {
		for k := range objs {
			s.del(t, k)
		}
	}
}

// resum recomputes a segment's SHA-256 trailer.
func resum(b []byte) []byte {
	sum := sha256.Sum256(b[:len(b)-sha256.Size])
	return append(b[:len(b)-sha256.Size], sum[:]...)
}

func TestVerify(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newVerifyStore(t, mk(t))
			rep := verify(t, s.b, fsck.Options{})
			mustBeHealthy(t, rep)
			ps := s.positions(t)
			if rep.Segments != len(ps) || rep.Snapshots != 1 || rep.Objects != len(objects(t, s.b, "")) {
				t.Fatalf("counts: %s (log %v)", dumpReport(rep), ps)
			}
			// The replica's own method says the same.
			if r2, err := s.rs[0].Verify(ctx, fsck.Options{}); err != nil || !r2.OK || r2.Segments != rep.Segments {
				t.Fatalf("Replica.Verify: %s, %v", dumpReport(r2), err)
			}
			above, tip := ps[len(ps)-2], ps[len(ps)-1] // above the snapshot
			if above <= s.snap {
				t.Fatalf("positions %v, snapshot %d", ps, s.snap)
			}
			logKey, tipKey := remote.LogKey(above), remote.LogKey(tip)
			idxKey := remote.SnapKey(s.snap)
			part := s.index(t).Parts[0].Name
			stranger := clock.NewReplicaID()
			strangerSeg, err := segment.Encode(segment.Header{Origin: stranger, Base: tip}, segment.Raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name    string
				inject  func(t *testing.T) (undo func())
				problem *finding // nil: none, OK stays true
				warning *finding
			}{
				{"flipped byte in a segment", func(t *testing.T) func() {
					return s.modify(t, logKey, func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b })
				}, &finding{logKey, fsck.KindCorrupt, []string{"checksum mismatch", "verify --repair"}}, nil},
				{"segment of a newer format", func(t *testing.T) func() {
					return s.modify(t, logKey, func(b []byte) []byte { b[4] = segment.Version + 1; return resum(b) })
				}, &finding{logKey, fsck.KindVersion, []string{"upgrade"}}, nil},
				{"truncated snapshot part", func(t *testing.T) func() {
					return s.modify(t, part, func(b []byte) []byte { return b[:len(b)/2] })
				}, &finding{part, fsck.KindCorrupt, []string{"bytes", idxKey, "compact"}}, nil},
				{"snapshot part replaced", func(t *testing.T) func() {
					return s.modify(t, part, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
				}, &finding{part, fsck.KindCorrupt, []string{"checksum does not match " + idxKey}}, nil},
				{"snapshot part missing", func(t *testing.T) func() {
					old := s.get(t, part)
					s.del(t, part)
					return func() { s.put(t, part, old) }
				}, &finding{part, fsck.KindMissing, []string{"listed by " + idxKey}}, nil},
				{"snapshot of another store", func(t *testing.T) func() {
					return s.modify(t, idxKey, func(b []byte) []byte {
						var m map[string]any
						if err := json.Unmarshal(b, &m); err != nil {
							t.Fatal(err)
						}
						m["store_id"] = "someone-else"
						b, _ = json.Marshal(m)
						return b
					})
				}, &finding{idxKey, fsck.KindForeign, []string{"someone-else"}}, nil},
				{"snapshot index not JSON", func(t *testing.T) func() {
					return s.modify(t, idxKey, func(b []byte) []byte { return b[:len(b)/2] })
				}, &finding{idxKey, fsck.KindCorrupt, []string{"not a snapshot index"}}, nil},
				{"segment missing above the floor", func(t *testing.T) func() {
					old := s.get(t, logKey)
					s.del(t, logKey)
					return func() { s.put(t, logKey, old) }
				}, &finding{logKey, fsck.KindMissing, []string{logKey + " is missing", "compact", s.rs[0].ID().String()}}, nil},
				{"acknowledged tip missing", func(t *testing.T) func() {
					old := s.get(t, tipKey)
					s.del(t, tipKey)
					return func() { s.put(t, tipKey, old) }
				}, &finding{tipKey, fsck.KindMissing, []string{tipKey + " is missing", "compact", s.rs[2].ID().String()}}, nil},
				{"junk at the top", func(t *testing.T) func() {
					return s.add(t, map[string][]byte{"junk.txt": []byte("hello")})
				}, &finding{"junk.txt", fsck.KindForeign, []string{"not an ebreplica object"}}, nil},
				{"junk in log/", func(t *testing.T) func() {
					return s.add(t, map[string][]byte{"log/notanumber": []byte("hello")})
				}, &finding{"log/notanumber", fsck.KindForeign, []string{"log/<20-digit position"}}, nil},
				{"log position 0", func(t *testing.T) func() {
					return s.add(t, map[string][]byte{remote.LogKey(0): strangerSeg})
				}, &finding{remote.LogKey(0), fsck.KindForeign, nil}, nil},
				{"junk in snap/", func(t *testing.T) func() {
					return s.add(t, map[string][]byte{"snap/" + fmt.Sprintf("%020d", s.snap) + "/notes": []byte("x")})
				}, &finding{"snap/" + fmt.Sprintf("%020d", s.snap) + "/notes", fsck.KindForeign, nil}, nil},
				{"junk in replicas/", func(t *testing.T) func() {
					return s.add(t, map[string][]byte{"replicas/bob.json": []byte("{}")})
				}, &finding{"replicas/bob.json", fsck.KindForeign, []string{"replicas/<replica id>.json"}}, nil},
				{"registry not JSON", func(t *testing.T) func() {
					return s.add(t, map[string][]byte{remote.RegistryKey(stranger): []byte(`{"format":1,"replica_id":`)})
				}, &finding{remote.RegistryKey(stranger), fsck.KindCorrupt, []string{"not a registry object"}}, nil},
				{"registry under another name", func(t *testing.T) func() {
					body := s.get(t, remote.RegistryKey(s.rs[1].ID()))
					return s.add(t, map[string][]byte{remote.RegistryKey(stranger): body})
				}, &finding{remote.RegistryKey(stranger), fsck.KindCorrupt, []string{"does not match the object's name"}}, nil},
				{"manifest missing", func(t *testing.T) func() {
					old := s.get(t, remote.ManifestKey)
					s.del(t, remote.ManifestKey)
					return func() { s.put(t, remote.ManifestKey, old) }
				}, &finding{remote.ManifestKey, fsck.KindMissing, []string{"no store manifest"}}, nil},
				{"manifest corrupt", func(t *testing.T) func() {
					return s.modify(t, remote.ManifestKey, func(b []byte) []byte { return b[:len(b)-3] })
				}, &finding{remote.ManifestKey, fsck.KindCorrupt, []string{"not an ebreplica store manifest"}}, nil},
				{"manifest of a newer format", func(t *testing.T) func() {
					return s.modify(t, remote.ManifestKey, func(b []byte) []byte {
						return bytes.Replace(b, []byte(`"format": 1`), []byte(`"format": 9`), 1)
					})
				}, &finding{remote.ManifestKey, fsck.KindVersion, []string{"upgrade"}}, nil},
				{"orphan parts", func(t *testing.T) func() {
					dir := fmt.Sprintf("snap/%020d/", s.snap+1)
					return s.add(t, map[string][]byte{dir + "part-0123456789ab-0000": []byte("x"), dir + "part-0123456789ab-0001": []byte("y")})
				}, nil, &finding{fmt.Sprintf("snap/%020d/part-0123456789ab-0000", s.snap+1), fsck.KindOrphan, []string{"2 snapshot part(s)", "listed by no index"}}},
				{"segment from an unregistered origin", func(t *testing.T) func() {
					return s.add(t, map[string][]byte{remote.LogKey(tip + 1): strangerSeg})
				}, nil, &finding{remote.LogKey(tip + 1), fsck.KindUnregistered, []string{stranger.String()}}},
			}
			for _, c := range cases {
				t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
					undo := c.inject(t)
					rep := verify(t, s.b, fsck.Options{})
					undo()
					if c.problem == nil {
						if !rep.OK || len(rep.Problems) != 0 {
							t.Fatalf("not OK: %s", dumpReport(rep))
						}
					} else if rep.OK || !hasFinding(rep.Problems, *c.problem) {
						t.Fatalf("want problem %+v in %s", *c.problem, dumpReport(rep))
					}
					if c.warning != nil && !hasFinding(rep.Warnings, *c.warning) {
						t.Fatalf("want warning %+v in %s", *c.warning, dumpReport(rep))
					}
					mustBeHealthy(t, verify(t, s.b, fsck.Options{}))
				})
			}
			// Cancelled: an error, not a report.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := fsck.Verify(cctx, s.b, fsck.Options{}); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled verify: %v", err)
			}
		})
	}
}

// listing maps every object to its ETag.
func listing(t *testing.T, b remote.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	for info, err := range b.List(context.Background(), "", "") {
		if err != nil {
			t.Fatal(err)
		}
		out[info.Key] = info.ETag
	}
	return out
}

// TestVerifyRepair: a corrupt segment stops a pull; repair quarantines its
// bytes, puts a valid placeholder in its place and changes nothing else;
// the pull then goes on, and push --all on the origin brings the lost
// records back.
func TestVerifyRepair(t *testing.T) {
	for name, mk := range backends() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newVerifyStore(t, mk(t))
			origin, behind := s.rs[1], s.rs[2]
			if err := origin.Put(ctx, "lost", []byte("and found")); err != nil {
				t.Fatal(err)
			}
			ps, err := origin.Push(ctx)
			if err != nil || len(ps.Positions) != 1 {
				t.Fatalf("push %+v, %v", ps, err)
			}
			key := remote.LogKey(ps.Positions[0])
			good := s.get(t, key)
			bad := bytes.Clone(good)
			bad[len(bad)/3] ^= 0x55
			s.put(t, key, bad)
			if _, err := behind.Pull(ctx); !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), key) {
				t.Fatalf("pull over a corrupt segment: %v", err)
			}
			before := listing(t, s.b)

			rep := verify(t, s.b, fsck.Options{Repair: true})
			if !rep.OK || len(rep.Problems) != 0 || len(rep.Repaired) != 1 || rep.Repaired[0].Object != key ||
				!strings.Contains(rep.Repaired[0].Message, "quarantine/") || !strings.Contains(rep.Repaired[0].Message, "push --all") {
				t.Fatalf("repair: %s", dumpReport(rep))
			}
			after := listing(t, s.b)
			var quarantined []string
			for k, etag := range after {
				switch {
				case strings.HasPrefix(k, remote.QuarantinePref):
					quarantined = append(quarantined, k)
				case k == key:
					if etag == before[k] {
						t.Fatalf("%s unchanged", k)
					}
				case before[k] != etag:
					t.Fatalf("repair changed %s", k)
				}
			}
			for k := range before {
				if _, ok := after[k]; !ok {
					t.Fatalf("repair deleted %s", k)
				}
			}
			if len(quarantined) != 1 || len(after) != len(before)+1 ||
				!strings.HasPrefix(quarantined[0], remote.QuarantinePref+"log-"+key[len(remote.LogPrefix):]+"-") {
				t.Fatalf("quarantined %v; objects %d -> %d", quarantined, len(before), len(after))
			}
			if q := s.get(t, quarantined[0]); !bytes.Equal(q, bad) {
				t.Fatal("the quarantined copy is not the damaged segment's bytes")
			}
			ph, err := segment.Decode(key, s.get(t, key))
			if err != nil || len(ph.Entries) != 0 || !ph.Origin.IsZero() || !strings.Contains(ph.Note, quarantined[0]) {
				t.Fatalf("placeholder %+v, %v", ph, err)
			}

			// The pull goes on; the origin republishes what was lost.
			if _, err := behind.Pull(ctx); err != nil {
				t.Fatalf("pull after repair: %v", err)
			}
			if _, err := behind.Get("lost"); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("lost key before push --all: %v", err)
			}
			if _, err := origin.PushAll(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := behind.Pull(ctx); err != nil {
				t.Fatal(err)
			}
			if v, err := behind.Get("lost"); err != nil || string(v) != "and found" {
				t.Fatalf("after push --all: %q, %v", v, err)
			}
			s.syncAll(t)
			if a, b := state(t, s.rs[0]), state(t, behind); a != b {
				t.Fatalf("replicas differ after repair:\n%s\nvs\n%s", a, b)
			}

			// Healthy again; the repair's traces are listed as info.
			rep = verify(t, s.b, fsck.Options{Repair: true})
			mustBeHealthy(t, rep)
			kinds := map[string]string{}
			for _, p := range rep.Info {
				kinds[p.Object] = p.Kind
			}
			if want := map[string]string{key: fsck.KindPlaceholder, quarantined[0]: fsck.KindQuarantine}; !maps.Equal(kinds, want) {
				t.Fatalf("info %v, want %v", kinds, want)
			}
		})
	}
}

// TestVerifyRepairOnlyCorruptSegments: repair touches nothing but corrupt
// log segments.
func TestVerifyRepairOnlyCorruptSegments(t *testing.T) {
	s := newVerifyStore(t, memremote.New("verify"))
	ps := s.positions(t)
	key := remote.LogKey(ps[len(ps)-1])
	// A newer-format segment is not damage to repair, and neither is a
	// broken snapshot: both stay as they are.
	undo := s.modify(t, key, func(b []byte) []byte { b[4] = segment.Version + 1; return resum(b) })
	defer undo()
	part := s.index(t).Parts[0].Name
	undoPart := s.modify(t, part, func(b []byte) []byte { return b[:10] })
	defer undoPart()
	before := listing(t, s.b)
	rep := verify(t, s.b, fsck.Options{Repair: true})
	if rep.OK || len(rep.Repaired) != 0 || len(rep.Problems) != 2 {
		t.Fatalf("%s", dumpReport(rep))
	}
	if after := listing(t, s.b); !maps.Equal(before, after) {
		t.Fatalf("repair changed objects it may not repair: %v", slices.Sorted(maps.Keys(after)))
	}
}

func TestVerifyEmptyBackend(t *testing.T) {
	rep := verify(t, memremote.New("verify"), fsck.Options{})
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != fsck.KindMissing || rep.Objects != 0 {
		t.Fatalf("%s", dumpReport(rep))
	}
	if _, err := fsck.Verify(context.Background(), nil, fsck.Options{}); !errors.Is(err, fsck.ErrNoRemote) {
		t.Fatalf("nil backend: %v", err)
	}
	if _, err := engine.Verify(context.Background(), nil, fsck.Options{}); !errors.Is(err, engine.ErrNoRemote) {
		t.Fatalf("engine, nil backend: %v", err)
	}
	b, _ := json.Marshal(rep)
	if !bytes.Contains(b, []byte(`"ok":false`)) || !bytes.Contains(b, []byte(`"problems":[{"object":"store.json","kind":"missing"`)) ||
		!bytes.Contains(b, []byte(`"warnings":[]`)) {
		t.Fatalf("JSON form %s", b)
	}
}

// racer changes an object just before a compare-and-swap on it, as
// another writer would.
type racer struct {
	remote.Backend
	raced []string
}

func (r *racer) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if strings.HasPrefix(key, remote.LogPrefix) {
		r.raced = append(r.raced, key)
		if _, err := r.Backend.Put(ctx, key, []byte("someone else's bytes")); err != nil {
			return "", err
		}
	}
	return r.Backend.PutIfMatch(ctx, key, data, etag)
}

// TestVerifyRepairLosesRace: a segment replaced between the read and the
// swap is left as the other writer made it, and the quarantine copy of the
// bytes read goes away.
func TestVerifyRepairLosesRace(t *testing.T) {
	s := newVerifyStore(t, memremote.New("verify"))
	ps := s.positions(t)
	key := remote.LogKey(ps[len(ps)-1])
	s.modify(t, key, func(b []byte) []byte { b[20] ^= 1; return b })
	before := listing(t, s.b)
	rb := &racer{Backend: s.b}
	rep := verify(t, rb, fsck.Options{Repair: true})
	if len(rb.raced) != 1 || rep.OK || len(rep.Repaired) != 0 ||
		!hasFinding(rep.Problems, finding{key, fsck.KindCorrupt, []string{"not repaired", "changed while verifying"}}) {
		t.Fatalf("%s", dumpReport(rep))
	}
	after := listing(t, s.b)
	if string(s.get(t, key)) != "someone else's bytes" {
		t.Fatal("the other writer's bytes were overwritten")
	}
	delete(before, key)
	delete(after, key)
	if !maps.Equal(before, after) {
		t.Fatalf("objects changed: %v", slices.Sorted(maps.Keys(after)))
	}
}

// TestVerifyGap: a segment deleted above the floor is reported with the
// replicas that applied it; compact on one of them covers the gap, and a
// replica stuck below it rebases and catches up. A gap nobody applied says
// to republish.
func TestVerifyGap(t *testing.T) {
	ctx := context.Background()
	s := newVerifyStore(t, memremote.New("verify"))
	a, b, behind := s.rs[0], s.rs[1], s.rs[2]
	if err := a.Put(ctx, "gap", []byte("applied by a and b")); err != nil {
		t.Fatal(err)
	}
	ps, err := a.Push(ctx)
	if err != nil || len(ps.Positions) != 1 {
		t.Fatalf("push %+v, %v", ps, err)
	}
	mustSync(t, b)
	mustSync(t, a)
	if err := b.Put(ctx, "later", []byte("x")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	mustSync(t, a)
	key := remote.LogKey(ps.Positions[0])
	s.del(t, key)
	rep := verify(t, s.b, fsck.Options{Repair: true})
	want := finding{key, fsck.KindMissing, []string{key + " is missing", "pulls stop there", a.ID().String(), b.ID().String(), "compact"}}
	if rep.OK || len(rep.Problems) != 1 || len(rep.Repaired) != 0 || !hasFinding(rep.Problems, want) ||
		strings.Contains(rep.Problems[0].Message, behind.ID().String()) {
		t.Fatalf("want %+v in %s", want, dumpReport(rep))
	}
	if _, err := behind.Pull(ctx); !errors.Is(err, engine.ErrGap) {
		t.Fatalf("pull over the gap: %v", err)
	}
	if _, err := a.Compact(ctx, engine.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	mustBeHealthy(t, verify(t, s.b, fsck.Options{}))
	mustSync(t, behind)
	if v, err := behind.Get("gap"); err != nil || string(v) != "applied by a and b" {
		t.Fatalf("after compact: %q, %v", v, err)
	}

	// Nobody applied it: republish.
	if err := a.Put(ctx, "unseen", []byte("x")); err != nil {
		t.Fatal(err)
	}
	ps, err = a.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "unseen2", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(ctx); err != nil {
		t.Fatal(err)
	}
	key = remote.LogKey(ps.Positions[0])
	s.del(t, key)
	rep = verify(t, s.b, fsck.Options{})
	if !hasFinding(rep.Problems, finding{key, fsck.KindMissing, []string{"no replica acknowledges", "push --all"}}) {
		t.Fatalf("%s", dumpReport(rep))
	}
}
