package fsck_test

import (
	"bytes"
	"context"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/internal/fsck"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// damagedReads damages chosen reads: plan says how the nth Get (from 1) of
// a key comes back, and a damaged one goes through a faultremote.Backend
// that tears (or corrupts) every read. Each key has its own faultremote
// backends, seeded by the key, so the damage does not depend on the order
// in which concurrent reads of different keys arrive.
type damagedReads struct {
	remote.Backend
	plan func(key string, n int) faultremote.Kind // 0: a clean read

	mu     sync.Mutex
	gets   map[string]int
	faulty map[string]map[faultremote.Kind]*faultremote.Backend
}

func newDamagedReads(b remote.Backend, plan func(key string, n int) faultremote.Kind) *damagedReads {
	return &damagedReads{Backend: b, plan: plan, gets: map[string]int{}, faulty: map[string]map[faultremote.Kind]*faultremote.Backend{}}
}

func (d *damagedReads) Get(ctx context.Context, key string) (remote.Object, error) {
	d.mu.Lock()
	d.gets[key]++
	kind := d.plan(key, d.gets[key])
	fb := d.faulty[key][kind]
	if kind != 0 && fb == nil {
		h := fnv.New64a()
		h.Write([]byte(key))
		o := faultremote.Options{TornReadRate: 1}
		if kind == faultremote.KindCorruptRead {
			o = faultremote.Options{CorruptReadRate: 1}
		}
		fb = faultremote.New(d.Backend, rand.New(rand.NewPCG(h.Sum64(), uint64(kind))), o)
		if d.faulty[key] == nil {
			d.faulty[key] = map[faultremote.Kind]*faultremote.Backend{}
		}
		d.faulty[key][kind] = fb
	}
	d.mu.Unlock()
	if fb == nil {
		return d.Backend.Get(ctx, key)
	}
	return fb.Get(ctx, key)
}

// damaged returns the number of reads damaged.
func (d *damagedReads) damaged() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for _, m := range d.faulty {
		for _, fb := range m {
			c := fb.Faults()
			n += c.TornRead + c.CorruptRead
		}
	}
	return n
}

// Damage patterns: which Gets of a key are damaged, and how.
var readPatterns = map[string]func(kind faultremote.Kind) func(n int) faultremote.Kind{
	"first": func(kind faultremote.Kind) func(int) faultremote.Kind {
		return func(n int) faultremote.Kind { return pick(n == 1, kind) }
	},
	"alternate": func(kind faultremote.Kind) func(int) faultremote.Kind {
		return func(n int) faultremote.Kind { return pick(n%2 == 1, kind) }
	},
}

func pick(damage bool, kind faultremote.Kind) faultremote.Kind {
	if damage {
		return kind
	}
	return 0
}

// checksummed reports whether a key is an object whose every damaged read
// fails verification: segments and snapshot parts carry a checksum, and a
// torn JSON object never parses. (A bit flipped in a registry or the
// manifest can still parse, and one read of those is trusted.)
func checksummed(key string, kind faultremote.Kind) bool {
	return kind == faultremote.KindTornRead || strings.HasPrefix(key, remote.LogPrefix) || strings.HasPrefix(key, remote.SnapPrefix)
}

// TestVerifyRepairDamagedReads: torn or bit-flipped reads of a healthy
// store, on the first read of each object or on every other read, never
// make verify --repair quarantine or overwrite anything, nor report
// damage: a later read verifies, and a warning says a read was damaged.
func TestVerifyRepairDamagedReads(t *testing.T) {
	s := newVerifyStore(t, memremote.New("verify"))
	before := listing(t, s.b)
	segments := len(s.positions(t))
	for pname, pattern := range readPatterns {
		for _, kind := range []faultremote.Kind{faultremote.KindTornRead, faultremote.KindCorruptRead} {
			t.Run(pname+"/"+strings.ReplaceAll(kind.String(), " ", "_"), func(t *testing.T) {
				at := pattern(kind)
				d := newDamagedReads(s.b, func(key string, n int) faultremote.Kind {
					return pick(checksummed(key, kind), at(n))
				})
				rep := verify(t, d, fsck.Options{Repair: true})
				if d.damaged() == 0 {
					t.Fatal("no read was damaged")
				}
				if after := listing(t, s.b); !maps.Equal(before, after) {
					t.Fatalf("verify --repair changed a healthy store:\nbefore %v\nafter  %v", before, after)
				}
				if !rep.OK || len(rep.Problems) != 0 || len(rep.Repaired) != 0 || rep.Segments != segments || rep.Snapshots != 1 {
					t.Fatalf("healthy store, damaged reads: %s", dumpReport(rep))
				}
				// Every segment's first read was damaged: each says so.
				for _, p := range s.positions(t) {
					key := remote.LogKey(p)
					if !hasFinding(rep.Warnings, finding{key, fsck.KindUnstable, []string{"later read", "the object is fine"}}) {
						t.Fatalf("no warning about the damaged read of %s: %s", key, dumpReport(rep))
					}
				}
				if part := s.index(t).Parts[0].Name; !hasFinding(rep.Warnings, finding{part, fsck.KindUnstable, nil}) {
					t.Fatalf("no warning about the damaged read of %s: %s", part, dumpReport(rep))
				}
			})
		}
	}
}

// TestVerifyRepairDamagedReadsOfCorrupt: a segment that is really corrupt
// is still repaired when some of its reads are damaged too, and the
// quarantined copy holds its stored bytes, not a damaged read of them.
// When every read is damaged, and differently, nothing is repaired: the
// segment is reported unstable.
func TestVerifyRepairDamagedReadsOfCorrupt(t *testing.T) {
	for pname, pattern := range readPatterns {
		for _, kind := range []faultremote.Kind{faultremote.KindTornRead, faultremote.KindCorruptRead} {
			t.Run(pname+"/"+strings.ReplaceAll(kind.String(), " ", "_"), func(t *testing.T) {
				s := newVerifyStore(t, memremote.New("verify"))
				ps := s.positions(t)
				key := remote.LogKey(ps[len(ps)-1])
				s.modify(t, key, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
				bad := s.get(t, key)
				before := listing(t, s.b)
				at := pattern(kind)
				d := newDamagedReads(s.b, func(string, int) faultremote.Kind { return 0 })
				d.plan = func(k string, n int) faultremote.Kind { return pick(k == key, at(n)) }
				rep := verify(t, d, fsck.Options{Repair: true})
				if d.damaged() == 0 {
					t.Fatal("no read was damaged")
				}
				if !rep.OK || len(rep.Repaired) != 1 || rep.Repaired[0].Object != key {
					t.Fatalf("corrupt segment, damaged reads: %s", dumpReport(rep))
				}
				var quarantined []string
				for k, etag := range listing(t, s.b) {
					switch {
					case strings.HasPrefix(k, remote.QuarantinePref):
						quarantined = append(quarantined, k)
					case k != key && before[k] != etag:
						t.Fatalf("repair changed %s", k)
					}
				}
				if len(quarantined) != 1 || !bytes.Equal(s.get(t, quarantined[0]), bad) {
					t.Fatalf("quarantined %v: want one copy of the stored bytes", quarantined)
				}
			})
		}
	}
	t.Run("every", func(t *testing.T) {
		s := newVerifyStore(t, memremote.New("verify"))
		ps := s.positions(t)
		key := remote.LogKey(ps[len(ps)-1])
		s.modify(t, key, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
		before := listing(t, s.b)
		// Torn, flipped, torn, flipped: no two reads alike.
		d := newDamagedReads(s.b, func(k string, n int) faultremote.Kind {
			if k != key {
				return 0
			}
			return [...]faultremote.Kind{faultremote.KindCorruptRead, faultremote.KindTornRead}[n%2]
		})
		rep := verify(t, d, fsck.Options{Repair: true})
		if rep.OK || len(rep.Repaired) != 0 || len(rep.Problems) != 1 ||
			!hasFinding(rep.Problems, finding{key, fsck.KindUnstable, []string{"different bytes", "nothing was changed"}}) {
			t.Fatalf("%s", dumpReport(rep))
		}
		if after := listing(t, s.b); !maps.Equal(before, after) {
			t.Fatalf("verify --repair acted on reads that differ: %v", after)
		}
	})
}

// shortReads cuts every read of one key to the same length, as a proxy
// that truncates responses would.
type shortReads struct {
	remote.Backend
	key string
	n   int
}

func (s *shortReads) Get(ctx context.Context, key string) (remote.Object, error) {
	obj, err := s.Backend.Get(ctx, key)
	if err == nil && key == s.key {
		obj.Data = obj.Data[:s.n]
	}
	return obj, err
}

// TestVerifyRepairShortReads: reads cut short the same way every time are
// the same bytes twice, but fewer than the listing says the object holds:
// not the object's damage, so nothing is repaired.
func TestVerifyRepairShortReads(t *testing.T) {
	s := newVerifyStore(t, memremote.New("verify"))
	ps := s.positions(t)
	key := remote.LogKey(ps[len(ps)-1])
	before := listing(t, s.b)
	rep := verify(t, &shortReads{Backend: s.b, key: key, n: len(s.get(t, key)) - 7}, fsck.Options{Repair: true})
	if rep.OK || len(rep.Repaired) != 0 || !hasFinding(rep.Problems, finding{key, fsck.KindUnstable, []string{"the listing says"}}) {
		t.Fatalf("%s", dumpReport(rep))
	}
	if after := listing(t, s.b); !maps.Equal(before, after) {
		t.Fatalf("verify --repair acted on short reads: %v", after)
	}
}

// editedReads rewrites the first read of one key with edit.
type editedReads struct {
	remote.Backend
	key  string
	edit func([]byte) []byte
	once sync.Once
}

func (e *editedReads) Get(ctx context.Context, key string) (remote.Object, error) {
	obj, err := e.Backend.Get(ctx, key)
	if err == nil && key == e.key {
		e.once.Do(func() { obj.Data = e.edit(obj.Data) })
	}
	return obj, err
}

// TestVerifyIndexReadDamaged: a snapshot index has no checksum, so a
// damaged read of it can still parse; one that names a wrong part
// checksum must not make verify report the healthy part.
func TestVerifyIndexReadDamaged(t *testing.T) {
	s := newVerifyStore(t, memremote.New("verify"))
	idx := s.index(t)
	sum := idx.Parts[0].SHA256
	wrong := []byte(sum)
	if wrong[0] == '0' { // another hex digit
		wrong[0] = '1'
	} else {
		wrong[0] = '0'
	}
	key := remote.SnapKey(s.snap)
	e := &editedReads{Backend: s.b, key: key, edit: func(b []byte) []byte {
		if !bytes.Contains(b, []byte(sum)) {
			t.Fatalf("index %s does not name %s", b, sum)
		}
		return bytes.Replace(b, []byte(sum), wrong, 1)
	}}
	rep := verify(t, e, fsck.Options{})
	if !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("one damaged read of the index: %s", dumpReport(rep))
	}
}
