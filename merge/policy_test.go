package merge_test

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

// naiveLWWLess is the lww order written out: time, then replica id bytes,
// then counter.
func naiveLWWLess(a, b merge.Version) bool {
	if a.Time != b.Time {
		return a.Time < b.Time
	}
	if c := bytes.Compare(a.Dot.Replica[:], b.Dot.Replica[:]); c != 0 {
		return c < 0
	}
	return a.Dot.Counter < b.Dot.Counter
}

// siblings draws 1..6 versions with distinct dots, in canonical order.
func siblings() *rapid.Generator[[]merge.Version] {
	return rapid.Custom(func(t *rapid.T) []merge.Version {
		ds := rapid.SliceOfNDistinct(proptest.Dot(), 1, 6, rapid.ID[clock.Dot]).Draw(t, "dots")
		slices.SortFunc(ds, clock.Dot.Compare)
		vs := make([]merge.Version, len(ds))
		for i, d := range ds {
			vs[i] = proptest.VersionAt(d).Draw(t, "version")
		}
		return vs
	})
}

func TestLWWAgainstOracle(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vs := siblings().Draw(t, "siblings")
		want := vs[0]
		for _, v := range vs[1:] {
			if naiveLWWLess(want, v) {
				want = v
			}
		}
		w := merge.LWWWinner(vs)
		if !vs[w].Equal(want) {
			t.Fatalf("winner %v, want %v", vs[w].Dot, want.Dot)
		}
		// The winner does not depend on the order of the slice.
		perm := rapid.Permutation(vs).Draw(t, "perm")
		if got := perm[merge.LWWWinner(perm)]; !got.Equal(want) {
			t.Fatalf("permuted: winner %v, want %v", got.Dot, want.Dot)
		}

		r := merge.Record{Clock: clock.Vector{}, Versions: vs}
		for _, v := range vs {
			r.Clock.Add(v.Dot)
		}
		res, err := merge.Read(merge.LWW{}, "key", r)
		if err != nil {
			t.Fatal(err)
		}
		if res.Winner != w || res.Deleted != want.Deleted || res.Conflict || !bytes.Equal(res.Value, want.Value) {
			t.Fatalf("Read = %+v, want winner %d %+v", res, w, want)
		}
		if want.Deleted && res.Value != nil {
			t.Fatalf("a winning tombstone read a value %q", res.Value)
		}
		if live := merge.Live(merge.LWW{}, "key", r); live != !want.Deleted {
			t.Fatalf("Live = %v, winner deleted = %v", live, want.Deleted)
		}
	})
}

func TestLWWExamples(t *testing.T) {
	// Byte order of the pool ids: ids[3] < ids[1] < ids[0] < ids[2].
	tests := []struct {
		name string
		vs   []merge.Version
		want clock.Dot
	}{
		{"largest time wins over largest dot", []merge.Version{put(0, 1, "x", 7), put(2, 9, "y", 6)}, dot(0, 1)},
		{"tie on time: largest replica id by bytes", []merge.Version{put(3, 5, "x", 7), put(0, 1, "y", 7), put(1, 9, "z", 7)}, dot(0, 1)},
		{"tie on time and replica: largest counter", []merge.Version{put(1, 2, "x", 7), put(1, 3, "y", 7)}, dot(1, 3)},
		{"a single version wins", []merge.Version{del(2, 1, 0)}, dot(2, 1)},
		{"a tombstone can win", []merge.Version{put(3, 1, "x", 3), del(1, 1, 4)}, dot(1, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.vs[merge.LWWWinner(tt.vs)].Dot; got != tt.want {
				t.Fatalf("winner %v, want %v", got, tt.want)
			}
		})
	}
	if (merge.LWW{}).Name() != "lww" {
		t.Fatalf("LWW name %q", merge.LWW{}.Name())
	}
}

func TestReadEmptyRecord(t *testing.T) {
	for _, r := range []merge.Record{{}, {Clock: vec(3, 1)}} {
		res, err := merge.Read(failing{}, "k", r) // the policy is not even asked
		if err != nil || !res.Deleted || res.Winner != -1 || res.Value != nil {
			t.Fatalf("Read(empty) = %+v, %v", res, err)
		}
		if merge.Live(failing{}, "k", r) {
			t.Fatalf("an empty record is live")
		}
	}
}

var errBoom = errors.New("boom")

type failing struct{}

func (failing) Name() string { return "failing" }
func (failing) Resolve(string, []merge.Version) (merge.Result, error) {
	return merge.Result{}, errBoom
}

func TestPolicyError(t *testing.T) {
	r := merge.Record{Clock: vec(1, 1), Versions: []merge.Version{del(1, 1, 0), put(0, 1, "x", 0)}}
	_, err := merge.Read(failing{}, "users/7", r)
	var pe *merge.PolicyError
	if !errors.As(err, &pe) || !errors.Is(err, errBoom) {
		t.Fatalf("Read error %v is not a PolicyError wrapping the cause", err)
	}
	if pe.Key != "users/7" || pe.Policy != "failing" {
		t.Fatalf("PolicyError %+v", pe)
	}
	if msg := err.Error(); !strings.Contains(msg, `"users/7"`) || !strings.Contains(msg, `"failing"`) || !strings.Contains(msg, "boom") {
		t.Fatalf("message %q does not name key, policy and cause", msg)
	}
	// Live stays defined when the policy fails: live iff some version is not a tombstone.
	if !merge.Live(failing{}, "k", r) {
		t.Fatalf("a record with a live version counts as not live")
	}
	tomb := merge.Record{Clock: vec(1, 1), Versions: []merge.Version{del(1, 1, 0), del(0, 1, 0)}}
	if merge.Live(failing{}, "k", tomb) {
		t.Fatalf("a record of tombstones counts as live")
	}
}

type named string

func (n named) Name() string { return string(n) }
func (n named) Resolve(_ string, vs []merge.Version) (merge.Result, error) {
	return merge.Result{Value: []byte(n), Winner: -1}, nil
}

func TestRegistryLongestPrefix(t *testing.T) {
	prefix := rapid.StringOfN(rapid.RuneFrom([]rune("ab/")), 0, 3, -1)
	rapid.Check(t, func(t *rapid.T) {
		reg := merge.NewRegistry()
		bound := map[string]string{"": "lww"}
		for _, p := range rapid.SliceOfN(prefix, 0, 6).Draw(t, "prefixes") {
			name := "p:" + p + ":" + rapid.SampledFrom([]string{"1", "2"}).Draw(t, "version")
			reg.Set(p, named(name))
			bound[p] = name
		}
		if got := reg.Names(); !maps.Equal(got, bound) {
			t.Fatalf("Names() = %v, want %v", got, bound)
		}
		if got, want := reg.Prefixes(), slices.Sorted(maps.Keys(bound)); !slices.Equal(got, want) {
			t.Fatalf("Prefixes() = %q, want %q", got, want)
		}
		for _, key := range rapid.SliceOfN(rapid.StringOfN(rapid.RuneFrom([]rune("ab/")), 0, 5, -1), 1, 8).Draw(t, "keys") {
			best := ""
			for p := range bound {
				if strings.HasPrefix(key, p) && len(p) > len(best) {
					best = p
				}
			}
			if got := reg.For(key).Name(); got != bound[best] {
				t.Fatalf("For(%q) = %q, want %q (prefix %q)", key, got, bound[best], best)
			}
		}
	})
}

func TestRegistryDefault(t *testing.T) {
	reg := merge.NewRegistry()
	if _, ok := reg.For("anything").(merge.LWW); !ok {
		t.Fatalf("default policy %T, want LWW", reg.For("anything"))
	}
	if got := reg.Names(); !maps.Equal(got, map[string]string{"": "lww"}) {
		t.Fatalf("Names() = %v", got)
	}
	reg.Set("", named("mine"))
	reg.Set("c/", named("counter"))
	if reg.For("x").Name() != "mine" || reg.For("c/1").Name() != "counter" || reg.For("c").Name() != "mine" {
		t.Fatalf("rebinding the default: %q %q %q", reg.For("x").Name(), reg.For("c/1").Name(), reg.For("c").Name())
	}
}

func TestRegistryConcurrentSetAndFor(t *testing.T) {
	reg := merge.NewRegistry()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				p := string(rune('a'+g)) + strings.Repeat("x", i%5)
				reg.Set(p, named(p))
				if got := reg.For(p + "/key").Name(); !strings.HasPrefix(got, string(rune('a'+g))) {
					t.Errorf("For(%q) = %q", p+"/key", got)
					return
				}
				_ = reg.Names()
				_ = reg.Prefixes()
			}
		}()
	}
	wg.Wait()
	if n := len(reg.Names()); n != 1+4*5 {
		t.Fatalf("%d bindings, want %d", n, 1+4*5)
	}
}
