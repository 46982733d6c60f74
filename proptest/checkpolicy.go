package proptest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"pgregory.net/rapid"
)

// DefaultPolicyChecks is the number of generated cases CheckPolicy runs.
const DefaultPolicyChecks = 10_000

// MaxSiblings is the largest number of siblings CheckPolicy hands to
// Resolve at once. Sets of up to 3 are tried in every order.
const MaxSiblings = 6

// Folder is implemented by policies that fold a binary merge over the
// siblings, as the policies of merge.NewFunc do (*merge.Func). CheckPolicy
// then also checks the fold itself.
type Folder interface {
	Fold(key string, a, b merge.Version) (merge.Version, error)
}

// CheckPolicy checks a merge policy with DefaultPolicyChecks generated
// cases; see CheckPolicyN. Run it from a test:
//
//	func TestMyPolicy(t *testing.T) {
//		proptest.CheckPolicy(t, merge.NewFunc("my-merge", myMerge), myVersions())
//	}
func CheckPolicy(t rapid.TB, p merge.Policy, gen *rapid.Generator[merge.Version]) {
	t.Helper()
	CheckPolicyN(t, p, gen, DefaultPolicyChecks)
}

// CheckPolicyN checks the laws a merge.Policy must keep, on about checks
// generated sets of siblings: 1 to MaxSiblings versions drawn from gen
// (Version() when nil), repeated dots dropped, in canonical dot order, as
// Resolve receives them. For each set it checks that:
//
//   - Resolve is deterministic: called again, and from another goroutine
//     at the same time, it gives the same result (Value, Deleted, Conflict
//     and whether it failed); run the test with -race to catch data races;
//   - Resolve does not panic and does not modify its input;
//   - the Result is consistent: Winner is -1 or the index of a version
//     whose Value and Deleted the result carries, and -1 on a conflict;
//   - the result does not depend on the order of the siblings: every
//     permutation of up to 3 siblings (of more, the reverse and a few drawn
//     at random) gives the same result — the fold is commutative and
//     associative. Siblings reach Resolve in dot order, so a policy that
//     fails this still converges, but what it reads depends on which
//     replica ids its writers drew;
//   - for a Folder, also that the fold is idempotent (fold(a, a) ≈ a),
//     commutative and associative on versions drawn from gen, where ≈
//     compares Value (unless deleted), Deleted and failure.
//
// (Idempotence of a whole policy has no general form: canonical siblings
// never repeat a dot, and two siblings with equal values are two versions,
// which mv, for one, rightly reports as a conflict.)
//
// A broken law fails t with the counterexample rapid has shrunk, and the
// seed to replay it. The cases run as rounds of rapid.Check, each with as
// many cases as -rapid.checks says (100 by default; -short runs a fifth, as
// rapid does), so that each counterexample is a single small input; with
// -rapid.seed set, one round runs. t is usually a *testing.T; any rapid.TB
// will do.
func CheckPolicyN(t rapid.TB, p merge.Policy, gen *rapid.Generator[merge.Version], checks int) {
	t.Helper()
	if gen == nil {
		gen = Version()
	}
	prop := policyProperty(p, gen)
	per := rapidChecks()
	rounds := (checks + per - 1) / per
	if seedFixed() {
		rounds = min(rounds, 1)
	}
	for range rounds {
		if t.Failed() {
			return
		}
		rapid.Check(t, prop)
	}
}

// rapidChecks returns the -rapid.checks flag (rapid's checks per Check).
func rapidChecks() int {
	if f := flag.Lookup("rapid.checks"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// seedFixed reports whether -rapid.seed (or RAPID_SEED) fixes the seed.
func seedFixed() bool {
	f := flag.Lookup("rapid.seed")
	return f != nil && f.Value.String() != "0"
}

// checkKeys are the keys CheckPolicy passes to Resolve: a policy may
// depend on the key, deterministically.
var checkKeys = []string{"k", "users/42", "a/b/c"}

// Siblings draws 1..MaxSiblings versions from gen with distinct dots (a
// repeated dot keeps its first version), in canonical dot order, as
// Resolve receives them.
func Siblings(gen *rapid.Generator[merge.Version]) *rapid.Generator[[]merge.Version] {
	return rapid.Custom(func(t *rapid.T) []merge.Version {
		raw := rapid.SliceOfN(gen, 1, MaxSiblings).Draw(t, "versions")
		seen := map[clock.Dot]bool{}
		var vs []merge.Version
		for _, v := range raw {
			if !seen[v.Dot] {
				seen[v.Dot] = true
				vs = append(vs, v)
			}
		}
		slices.SortFunc(vs, func(a, b merge.Version) int { return a.Dot.Compare(b.Dot) })
		return vs
	})
}

// outcome is what a read shows: the comparable part of a Result, or a
// failure.
type outcome struct {
	value    []byte
	deleted  bool
	conflict bool
	failed   bool
	err      string
	panicked string
	res      merge.Result
}

func (o outcome) same(p outcome) bool {
	if o.failed || p.failed {
		return o.failed == p.failed
	}
	if o.deleted != p.deleted || o.conflict != p.conflict {
		return false
	}
	return o.deleted || o.conflict || bytes.Equal(o.value, p.value)
}

func (o outcome) String() string {
	switch {
	case o.panicked != "":
		return "panic: " + o.panicked
	case o.failed:
		return "error: " + o.err
	case o.conflict:
		return "conflict"
	case o.deleted:
		return "deleted"
	}
	return fmt.Sprintf("value %q", o.value)
}

func resolve(p merge.Policy, key string, vs []merge.Version) (o outcome) {
	defer func() {
		if r := recover(); r != nil {
			o = outcome{failed: true, panicked: fmt.Sprint(r)}
		}
	}()
	res, err := p.Resolve(key, vs)
	if err != nil {
		return outcome{failed: true, err: err.Error()}
	}
	return outcome{value: res.Value, deleted: res.Deleted, conflict: res.Conflict, res: res}
}

func versionOutcome(v merge.Version, err error) outcome {
	if err != nil {
		return outcome{failed: true, err: err.Error()}
	}
	return outcome{value: v.Value, deleted: v.Deleted}
}

func fold(f Folder, key string, a, b merge.Version) (v merge.Version, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fold panicked: %v", r)
		}
	}()
	return f.Fold(key, a, b)
}

// describe lists versions for a counterexample; deterministic for the
// same input, as rapid requires to replay and shrink a failure.
func describe(vs []merge.Version) string {
	var b strings.Builder
	for i, v := range vs {
		fmt.Fprintf(&b, "\n  [%d] %s", i, describeVersion(v))
	}
	return b.String()
}

func describeVersion(v merge.Version) string {
	if v.Deleted {
		return fmt.Sprintf("%v tombstone @%d", v.Dot, uint64(v.Time))
	}
	return fmt.Sprintf("%v %q @%d", v.Dot, v.Value, uint64(v.Time))
}

func deepCopy(vs []merge.Version) []merge.Version {
	out := slices.Clone(vs)
	for i := range out {
		if out[i].Value != nil {
			out[i].Value = bytes.Clone(out[i].Value)
		}
	}
	return out
}

func policyProperty(p merge.Policy, gen *rapid.Generator[merge.Version]) func(*rapid.T) {
	folder, _ := p.(Folder)
	siblings := Siblings(gen)
	return func(t *rapid.T) {
		key := rapid.SampledFrom(checkKeys).Draw(t, "key")
		vs := siblings.Draw(t, "siblings")
		orig := deepCopy(vs)
		name := p.Name()

		// Determinism: again, and concurrently from another goroutine.
		first := resolve(p, key, vs)
		if first.panicked != "" {
			t.Fatalf("policy %q: Resolve panicked on %d siblings: %s%s", name, len(vs), first.panicked, describe(orig))
		}
		if !slices.EqualFunc(vs, orig, merge.Version.Equal) {
			t.Fatalf("policy %q: Resolve modified its input; before:%s\nafter:%s", name, describe(orig), describe(vs))
		}
		other := make(chan outcome, 1)
		go func() { other <- resolve(p, key, vs) }()
		again := resolve(p, key, vs)
		concurrent := <-other
		for _, o := range []outcome{again, concurrent} {
			if !o.same(first) {
				t.Logf("first call: %v; second call: %v; concurrent call: %v", first, again, concurrent)
				t.Fatalf("policy %q is not deterministic: calls on the same %d siblings (key %q) gave different results%s",
					name, len(vs), key, describe(orig))
			}
		}

		// The Result is consistent.
		if !first.failed {
			w := first.res.Winner
			switch {
			case w < -1 || w >= len(vs):
				t.Fatalf("policy %q: Winner %d out of range for %d siblings%s", name, w, len(vs), describe(orig))
			case first.conflict && w != -1:
				t.Fatalf("policy %q: Winner %d on a conflict, want -1%s", name, w, describe(orig))
			case w >= 0 && !first.conflict && !versionOutcome(vs[w], nil).same(first):
				t.Fatalf("policy %q: result %v differs from the version Winner %d names%s", name, first, w, describe(orig))
			}
		}

		// The fold's own laws.
		if folder != nil {
			checkFold(t, name, folder, key, gen)
		}

		// Order: every permutation of up to 3 siblings; of more, the
		// reverse and a few drawn at random.
		var perms [][]merge.Version
		if len(vs) <= 3 {
			perms = permutations(vs)
		} else {
			perms = append(perms, slices.Clone(vs))
			slices.Reverse(perms[0])
			for i := range 3 {
				perms = append(perms, rapid.Permutation(vs).Draw(t, fmt.Sprintf("permutation %d", i)))
			}
		}
		for _, perm := range perms {
			if got := resolve(p, key, perm); !got.same(first) {
				t.Fatalf("policy %q is order-dependent on %d siblings: in dot order they read as %v, in this order as %v:%s",
					name, len(vs), first, got, describe(perm))
			}
		}
		if !slices.EqualFunc(vs, orig, merge.Version.Equal) {
			t.Fatalf("policy %q: Resolve modified its input; before:%s\nafter:%s", name, describe(orig), describe(vs))
		}
	}
}

func checkFold(t *rapid.T, name string, f Folder, key string, gen *rapid.Generator[merge.Version]) {
	a := gen.Draw(t, "a")
	b := gen.Draw(t, "b")
	c := gen.Draw(t, "c")
	one := func(x, y merge.Version) outcome { return versionOutcome(fold(f, key, x, y)) }
	two := func(x, y, z merge.Version, left bool) outcome {
		if left {
			xy, err := fold(f, key, x, y)
			if err != nil {
				return versionOutcome(xy, err)
			}
			return versionOutcome(fold(f, key, xy, z))
		}
		yz, err := fold(f, key, y, z)
		if err != nil {
			return versionOutcome(yz, err)
		}
		return versionOutcome(fold(f, key, x, yz))
	}
	if got := one(a, a); !got.same(versionOutcome(a, nil)) {
		t.Fatalf("policy %q: the fold is not idempotent: fold(a, a) = %v, want a = %v\n  a = %s",
			name, got, versionOutcome(a, nil), describeVersion(a))
	}
	if ab, ba := one(a, b), one(b, a); !ab.same(ba) {
		t.Fatalf("policy %q: the fold is not commutative: fold(a, b) = %v, fold(b, a) = %v\n  a = %s\n  b = %s",
			name, ab, ba, describeVersion(a), describeVersion(b))
	}
	if l, r := two(a, b, c, true), two(a, b, c, false); !l.same(r) {
		t.Fatalf("policy %q: the fold is not associative: fold(fold(a, b), c) = %v, fold(a, fold(b, c)) = %v\n  a = %s\n  b = %s\n  c = %s",
			name, l, r, describeVersion(a), describeVersion(b), describeVersion(c))
	}
}

// permutations returns every ordering of vs except vs itself (Heap's
// algorithm; deterministic).
func permutations(vs []merge.Version) [][]merge.Version {
	var out [][]merge.Version
	a := slices.Clone(vs)
	c := make([]int, len(a))
	for i := 1; i < len(a); {
		if c[i] < i {
			if i%2 == 0 {
				a[0], a[i] = a[i], a[0]
			} else {
				a[c[i]], a[i] = a[i], a[c[i]]
			}
			out = append(out, slices.Clone(a))
			c[i]++
			i = 1
		} else {
			c[i] = 0
			i++
		}
	}
	return out
}

// CounterStates draws valid counter states over ids (the first DefaultIDs
// pool ids when empty): the join of one to three histories of adds of
// small (now and then extreme) deltas under drawn dots and clears, with
// contexts widened now and then as a writer's record clock widens them.
func CounterStates(ids []clock.ReplicaID) *rapid.Generator[merge.CounterState] {
	ids = idsOrPool(ids)
	deltas := rapid.OneOf(rapid.Int64Range(-3, 5), rapid.Int64())
	history := rapid.Custom(func(t *rapid.T) merge.CounterState {
		var s merge.CounterState
		for range rapid.IntRange(0, 3).Draw(t, "ops") {
			switch rapid.IntRange(0, 5).Draw(t, "op") {
			case 0:
				s = widen(s.Encode(), vectorOver(ids).Draw(t, "seen"), merge.CounterOf)
			case 1:
				s = s.Clear()
			default:
				s = s.Add(dotOver(ids).Draw(t, "dot"), deltas.Draw(t, "delta"))
			}
		}
		return s
	})
	return rapid.Custom(func(t *rapid.T) merge.CounterState {
		var s merge.CounterState
		for _, h := range rapid.SliceOfN(history, 1, 3).Draw(t, "histories") {
			s = s.Join(h)
		}
		return s
	})
}

// SetStates draws valid set states over ids (the first DefaultIDs pool ids
// when empty) and the members "a" to "d": the join of one to three
// histories of adds under drawn dots and removes, with contexts widened now
// and then.
func SetStates(ids []clock.ReplicaID) *rapid.Generator[merge.SetState] {
	ids = idsOrPool(ids)
	elems := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"a", "b", "c", "d"}), 1, 2, rapid.ID[string])
	history := rapid.Custom(func(t *rapid.T) merge.SetState {
		var s merge.SetState
		for range rapid.IntRange(0, 4).Draw(t, "ops") {
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0:
				s = widen(s.Encode(), vectorOver(ids).Draw(t, "seen"), merge.SetOf)
			case 1:
				s = s.Remove(elems.Draw(t, "removed")...)
			default:
				s = s.Add(dotOver(ids).Draw(t, "dot"), elems.Draw(t, "added")...)
			}
		}
		return s
	})
	return rapid.Custom(func(t *rapid.T) merge.SetState {
		var s merge.SetState
		for _, h := range rapid.SliceOfN(history, 1, 3).Draw(t, "histories") {
			s = s.Join(h)
		}
		return s
	})
}

// widen joins seen into a state's context the way a local update does:
// through the record its writer holds.
func widen[S any](state []byte, seen clock.Vector, of func(merge.Record) (S, error)) S {
	id := Pool(1)[0]
	seen = seen.Join(clock.Vector{id: 1})
	s, err := of(merge.Record{Clock: seen, Versions: []merge.Version{{Value: state, Dot: clock.Dot{Replica: id, Counter: 1}}}})
	if err != nil {
		panic(fmt.Sprintf("proptest: a generated state does not decode: %v", err))
	}
	return s
}

// CounterVersions draws versions of a counter key: a CounterStates state
// (or, one time in four, a tombstone) under a dot over ids.
func CounterVersions(ids []clock.ReplicaID) *rapid.Generator[merge.Version] {
	states := CounterStates(ids)
	return stateVersions(ids, func(t *rapid.T) []byte { return states.Draw(t, "state").Encode() })
}

// SetVersions draws versions of a set key: a SetStates state (or, one time
// in four, a tombstone) under a dot over ids.
func SetVersions(ids []clock.ReplicaID) *rapid.Generator[merge.Version] {
	states := SetStates(ids)
	return stateVersions(ids, func(t *rapid.T) []byte { return states.Draw(t, "state").Encode() })
}

// DocPatches draws small JSON Merge Patches over the fields "a" to "c",
// some nested (objects over "x" and "y"), some removing a field (null),
// some counter and set operations ($inc, $counter, $add, $remove, $set;
// applied to a field of another kind they fail with merge.ErrFieldKind).
// As whole documents (DocState.Replace) the operations are data.
func DocPatches() *rapid.Generator[[]byte] {
	leaf := rapid.SampledFrom([]string{`1`, `2`, `"s"`, `true`, `[1,2]`, `null`, `{}`, `["p"]`, `["p","q"]`,
		`{"$inc":2}`, `{"$inc":-1}`, `{"$counter":5}`, `{"$add":["p","q"]}`, `{"$add":["q"]}`, `{"$remove":["p"]}`, `{"$set":["q"]}`})
	return rapid.Custom(func(t *rapid.T) []byte {
		fields := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"a", "b", "c"}), 0, 3, rapid.ID[string]).Draw(t, "fields")
		parts := make([]string, 0, len(fields))
		for _, f := range fields {
			v := leaf.Draw(t, "value")
			if rapid.IntRange(0, 2).Draw(t, "nested") == 0 {
				sub := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"x", "y"}), 0, 2, rapid.ID[string]).Draw(t, "subfields")
				var in []string
				for _, k := range sub {
					in = append(in, fmt.Sprintf("%q:%s", k, leaf.Draw(t, "subvalue")))
				}
				v = "{" + strings.Join(in, ",") + "}"
			}
			parts = append(parts, fmt.Sprintf("%q:%s", f, v))
		}
		return []byte("{" + strings.Join(parts, ",") + "}")
	})
}

// DocStates draws valid JSON document states over ids (the first
// DefaultIDs pool ids when empty): the join of one to three histories of
// DocPatches patches and whole-document replacements under drawn dots and
// times, and clears, with contexts widened now and then.
func DocStates(ids []clock.ReplicaID) *rapid.Generator[merge.DocState] {
	ids = idsOrPool(ids)
	patches := DocPatches()
	history := rapid.Custom(func(t *rapid.T) merge.DocState {
		var s merge.DocState
		for range rapid.IntRange(0, 4).Draw(t, "ops") {
			var err error
			prev := s
			switch rapid.IntRange(0, 6).Draw(t, "op") {
			case 0:
				s = widen(s.Encode(), vectorOver(ids).Draw(t, "seen"), merge.DocOf)
			case 1:
				s = s.Clear()
			case 2:
				s, err = s.Replace(dotOver(ids).Draw(t, "dot"), HLC().Draw(t, "time"), patches.Draw(t, "document"))
			default:
				s, err = s.Patch(dotOver(ids).Draw(t, "dot"), HLC().Draw(t, "time"), patches.Draw(t, "patch"))
			}
			if errors.Is(err, merge.ErrFieldKind) {
				s = prev // an operation on a field of another kind: nothing written
			} else if err != nil {
				panic(fmt.Sprintf("proptest: a generated patch fails: %v", err))
			}
		}
		return s
	})
	return rapid.Custom(func(t *rapid.T) merge.DocState {
		var s merge.DocState
		for _, h := range rapid.SliceOfN(history, 1, 3).Draw(t, "histories") {
			s = s.Join(h)
		}
		return s
	})
}

// DocVersions draws versions of a json key: a DocStates state (or, one
// time in four, a tombstone) under a dot over ids.
func DocVersions(ids []clock.ReplicaID) *rapid.Generator[merge.Version] {
	states := DocStates(ids)
	return stateVersions(ids, func(t *rapid.T) []byte { return states.Draw(t, "state").Encode() })
}

func stateVersions(ids []clock.ReplicaID, value func(*rapid.T) []byte) *rapid.Generator[merge.Version] {
	ids = idsOrPool(ids)
	return rapid.Custom(func(t *rapid.T) merge.Version {
		v := merge.Version{Dot: dotOver(ids).Draw(t, "dot"), Time: HLC().Draw(t, "time")}
		if rapid.IntRange(0, 3).Draw(t, "tombstone") == 0 {
			v.Deleted = true
		} else {
			v.Value = value(t)
		}
		return v
	})
}

func idsOrPool(ids []clock.ReplicaID) []clock.ReplicaID {
	if len(ids) == 0 {
		return Pool(DefaultIDs)
	}
	return slices.Clone(ids)
}

func dotOver(ids []clock.ReplicaID) *rapid.Generator[clock.Dot] {
	return rapid.Custom(func(t *rapid.T) clock.Dot {
		return clock.Dot{Replica: rapid.SampledFrom(ids).Draw(t, "replica"), Counter: Counter().Draw(t, "counter")}
	})
}

func vectorOver(ids []clock.ReplicaID) *rapid.Generator[clock.Vector] {
	return rapid.Custom(func(t *rapid.T) clock.Vector {
		return clock.Vector(rapid.MapOfN(rapid.SampledFrom(ids), rapid.Uint64Range(1, MaxCounter), 0, len(ids)).Draw(t, "vector"))
	})
}
