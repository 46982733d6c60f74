package merge_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// pid is pool id i; pdot names its c-th write.
func pid(i int) clock.ReplicaID      { return proptest.Pool(proptest.PoolSize)[i] }
func pdot(i int, c uint64) clock.Dot { return clock.Dot{Replica: pid(i), Counter: c} }

func TestBuiltin(t *testing.T) {
	for _, name := range merge.BuiltinNames() {
		p, ok := merge.Builtin(name)
		if !ok || p.Name() != name {
			t.Fatalf("Builtin(%q) = %v, %v", name, p, ok)
		}
	}
	if !slices.IsSorted(merge.BuiltinNames()) || len(merge.BuiltinNames()) != 6 {
		t.Fatalf("BuiltinNames %v", merge.BuiltinNames())
	}
	for _, name := range []string{"", "LWW", "func", "counter "} {
		if _, ok := merge.Builtin(name); ok {
			t.Fatalf("Builtin(%q) found", name)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	fn := merge.NewFunc("json-merge", func(_ string, a, b merge.Version) (merge.Version, error) { return a, nil })
	funcs := map[string]merge.Policy{"json-merge": fn}
	reg, err := merge.ParsePolicies([]string{"=mv", "hits/=counter", "tags/=set", "a=b=lww", "doc/=json-merge", "hits/=counter"}, funcs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"": "mv", "hits/": "counter", "tags/": "set", "a=b": "lww", "doc/": "json-merge"}
	if got := reg.Names(); !maps.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	if reg.For("doc/1") != fn || reg.For("zzz").Name() != "mv" {
		t.Fatalf("lookup wrong")
	}
	reg, err = merge.ParsePolicies(nil, nil)
	if err != nil || !maps.Equal(reg.Names(), map[string]string{"": "lww"}) {
		t.Fatalf("empty specs: %v, %v", reg.Names(), err)
	}

	for _, tc := range []struct {
		specs   []string
		funcs   map[string]merge.Policy
		unknown bool
		want    string
	}{
		{specs: []string{"hits/counter"}, want: "want PREFIX=NAME"},
		{specs: []string{"x/=crdt"}, unknown: true, want: `"crdt"`},
		{specs: []string{"x/=json-merge"}, unknown: true, want: "known: counter, json, json-mv, lww, mv, set"},
		{specs: []string{"x/=counter", "x/=set"}, want: "two policies"},
		{specs: []string{"\xff=lww"}, want: "UTF-8"},
		{funcs: map[string]merge.Policy{"other": fn}, want: `is named "json-merge"`},
		{funcs: map[string]merge.Policy{"lww": merge.LWW{}}, want: "built-in"},
		{funcs: map[string]merge.Policy{"x": nil}, want: "nil"},
	} {
		_, err := merge.ParsePolicies(tc.specs, tc.funcs)
		if err == nil || errors.Is(err, merge.ErrUnknownPolicy) != tc.unknown || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePolicies(%q, %v) = %v, want an error with %q (unknown %v)", tc.specs, tc.funcs, err, tc.want, tc.unknown)
		}
	}
}

func TestMV(t *testing.T) {
	live := func(c uint64, v string) merge.Version { return merge.Version{Value: []byte(v), Dot: pdot(0, c)} }
	tomb := func(c uint64) merge.Version { return merge.Version{Deleted: true, Dot: pdot(1, c)} }
	for _, tc := range []struct {
		vs   []merge.Version
		want merge.Result
	}{
		{[]merge.Version{live(1, "a")}, merge.Result{Value: []byte("a"), Winner: 0}},
		{[]merge.Version{tomb(1)}, merge.Result{Deleted: true, Winner: 0}},
		{[]merge.Version{live(1, "a"), live(2, "b")}, merge.Result{Conflict: true, Winner: -1}},
		{[]merge.Version{live(1, "a"), live(2, "a")}, merge.Result{Conflict: true, Winner: -1}},
		{[]merge.Version{live(1, "a"), tomb(1)}, merge.Result{Conflict: true, Winner: -1}},
		{[]merge.Version{tomb(1), tomb(2)}, merge.Result{Deleted: true, Winner: -1}},
	} {
		got, err := merge.MV{}.Resolve("k", tc.vs)
		if err != nil || !bytes.Equal(got.Value, tc.want.Value) || got.Deleted != tc.want.Deleted ||
			got.Conflict != tc.want.Conflict || got.Winner != tc.want.Winner {
			t.Errorf("MV(%v) = %+v, %v; want %+v", tc.vs, got, err, tc.want)
		}
	}
	if (merge.MV{}).Name() != "mv" {
		t.Fatal("name")
	}
}

func TestFuncFoldsInOrder(t *testing.T) {
	var calls []string
	join := merge.NewFunc("join", func(key string, a, b merge.Version) (merge.Version, error) {
		calls = append(calls, fmt.Sprintf("%s:%s+%s", key, a.Value, b.Value))
		return merge.Version{Value: append(slices.Clip(a.Value), b.Value...)}, nil
	})
	if join.Name() != "join" {
		t.Fatalf("name %q", join.Name())
	}
	vs := []merge.Version{
		{Value: []byte("a"), Dot: pdot(3, 1)},
		{Value: []byte("b"), Dot: pdot(1, 1)},
		{Value: []byte("c"), Dot: pdot(0, 1)},
	}
	res, err := join.Resolve("k", vs)
	if err != nil || string(res.Value) != "abc" || res.Winner != -1 || res.Deleted || res.Conflict {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	if want := []string{"k:a+b", "k:ab+c"}; !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}

	// One version: no call; itself, as winner.
	calls = nil
	res, err = join.Resolve("k", vs[1:2])
	if err != nil || string(res.Value) != "b" || res.Winner != 0 || len(calls) != 0 {
		t.Fatalf("single: %+v, %v, calls %v", res, err, calls)
	}
}

func TestFuncWinnerAndDeleted(t *testing.T) {
	vs := []merge.Version{
		{Value: []byte("short"), Dot: pdot(3, 1), Time: 5},
		{Deleted: true, Dot: pdot(1, 2), Time: 9},
		{Value: []byte("longest"), Dot: pdot(0, 1), Time: 1},
	}
	longest := merge.NewFunc("longest", func(_ string, a, b merge.Version) (merge.Version, error) {
		if len(b.Value) > len(a.Value) {
			return b, nil
		}
		return a, nil
	})
	res, err := longest.Resolve("k", vs)
	if err != nil || string(res.Value) != "longest" || res.Winner != 2 {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	deleting := merge.NewFunc("deleting", func(_ string, a, b merge.Version) (merge.Version, error) {
		return merge.Version{Deleted: true, Value: []byte("ignored")}, nil
	})
	res, err = deleting.Resolve("k", vs)
	if err != nil || !res.Deleted || res.Value != nil || res.Winner != -1 {
		t.Fatalf("deleted result = %+v, %v", res, err)
	}
}

func TestFuncErrorsAndPanics(t *testing.T) {
	boom := errors.New("boom")
	failing := merge.NewFunc("failing", func(string, merge.Version, merge.Version) (merge.Version, error) {
		return merge.Version{}, boom
	})
	panicking := merge.NewFunc("panicking", func(string, merge.Version, merge.Version) (merge.Version, error) {
		panic("oops")
	})
	r := merge.Record{Clock: clock.Vector{pid(0): 1, pid(1): 1}, Versions: []merge.Version{
		{Value: []byte("a"), Dot: pdot(1, 1)}, {Value: []byte("b"), Dot: pdot(0, 1)},
	}}
	slices.SortFunc(r.Versions, func(a, b merge.Version) int { return a.Dot.Compare(b.Dot) })
	for _, tc := range []struct {
		p    merge.Policy
		want string
	}{{failing, "boom"}, {panicking, "callback panicked: oops"}} {
		_, err := merge.Read(tc.p, "users/7", r)
		var pe *merge.PolicyError
		if !errors.As(err, &pe) || pe.Key != "users/7" || pe.Policy != tc.p.Name() || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: Read error %v", tc.p.Name(), err)
		}
	}
	if _, err := merge.Read(failing, "k", r); !errors.Is(err, boom) {
		t.Fatalf("the callback's error is not wrapped: %v", err)
	}
	if _, err := (&merge.Func{}).Resolve("k", r.Versions); err == nil {
		t.Fatalf("a zero Func resolved")
	}
}

func TestNewFuncRejects(t *testing.T) {
	ok := func(string, merge.Version, merge.Version) (merge.Version, error) { return merge.Version{}, nil }
	for _, tc := range []struct {
		name string
		fn   merge.OnConflict
	}{
		{"", ok}, {"lww", ok}, {"counter", ok}, {"has space", ok}, {"a=b", ok},
		{strings.Repeat("x", 65), ok}, {"fine", nil},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewFunc(%q, fn nil: %v) did not panic", tc.name, tc.fn == nil)
				}
			}()
			merge.NewFunc(tc.name, tc.fn)
		}()
	}
	for _, name := range []string{"json-merge", "acme.com/max:v2", "x_1"} {
		if merge.NewFunc(name, ok).Name() != name {
			t.Fatalf("name %q", name)
		}
	}
}

// --- counter ---

func TestCounterBasics(t *testing.T) {
	var s merge.CounterState
	if s.Value() != 0 {
		t.Fatal("zero state is not 0")
	}
	s = s.Add(pdot(0, 1), 5).Add(pdot(1, 1), -2).Add(pdot(0, 3), 4)
	if s.Value() != 7 {
		t.Fatalf("value %d, want 7 (%v)", s.Value(), s)
	}
	if s.Empty() || !(merge.CounterState{}).Empty() || !s.Clear().Empty() || s.Clear().Value() != 0 ||
		!s.Clear().Context().Equal(s.Context()) {
		t.Fatalf("Empty or Clear wrong")
	}
	if (merge.CounterState{}).Add(pdot(0, 1), 0).Empty() {
		t.Fatalf("an add of 0 leaves the counter empty")
	}
	if got := s.String(); strings.Count(got, "=+") != 2 {
		t.Fatalf("one entry per replica expected: %s", got)
	}
	for _, st := range []merge.CounterState{{}, s} {
		got, err := merge.DecodeCounter(st.Encode())
		if err != nil || !got.Equal(st) || got.Value() != st.Value() {
			t.Fatalf("round trip of %v: %v, %v", st, got, err)
		}
	}
	// Add does not modify its receiver.
	before := s.Encode()
	_ = s.Add(pdot(2, 1), 1)
	if !bytes.Equal(before, s.Encode()) {
		t.Fatal("Add modified its receiver")
	}
	// int64 arithmetic, whatever the order.
	big := merge.CounterState{}.Add(pdot(0, 1), math.MaxInt64).Add(pdot(1, 1), 1)
	if big.Value() != math.MinInt64 {
		t.Fatalf("MaxInt64+1 = %d", big.Value())
	}
	low := merge.CounterState{}.Add(pdot(0, 1), math.MinInt64).Add(pdot(1, 1), 5)
	if low.Value() != math.MinInt64+5 {
		t.Fatalf("MinInt64+5 = %d", low.Value())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Add with a zero dot did not panic")
			}
		}()
		merge.CounterState{}.Add(clock.Dot{}, 1)
	}()
}

func TestCounterResolve(t *testing.T) {
	a := merge.CounterState{}.Add(pdot(0, 1), 3)
	b := merge.CounterState{}.Add(pdot(1, 1), -5)
	vs := []merge.Version{
		{Value: a.Encode(), Dot: pdot(0, 1)},
		{Value: b.Encode(), Dot: pdot(1, 1)},
		{Deleted: true, Dot: pdot(2, 1)},
	}
	slices.SortFunc(vs, func(x, y merge.Version) int { return x.Dot.Compare(y.Dot) })
	res, err := merge.Counter{}.Resolve("k", vs)
	if err != nil || string(res.Value) != "-2" || res.Deleted || res.Conflict || res.Winner != -1 {
		t.Fatalf("Resolve = %+v (%q), %v", res, res.Value, err)
	}
	res, err = merge.Counter{}.Resolve("k", []merge.Version{{Deleted: true, Dot: pdot(0, 1)}, {Deleted: true, Dot: pdot(1, 1)}})
	if err != nil || !res.Deleted || res.Value != nil {
		t.Fatalf("all tombstones: %+v, %v", res, err)
	}
	// No entries: deleted. Entries summing to 0: live 0.
	res, err = merge.Counter{}.Resolve("k", []merge.Version{{Value: a.Join(b).Clear().Encode(), Dot: pdot(0, 2)}})
	if err != nil || !res.Deleted {
		t.Fatalf("cleared: %+v, %v", res, err)
	}
	zero := a.Add(pdot(0, 2), -3)
	res, err = merge.Counter{}.Resolve("k", []merge.Version{{Value: zero.Encode(), Dot: pdot(0, 2)}})
	if err != nil || res.Deleted || string(res.Value) != "0" {
		t.Fatalf("zero: %+v, %v", res, err)
	}
	_, err = merge.Counter{}.Resolve("k", []merge.Version{{Value: []byte("7"), Dot: pdot(0, 1)}})
	if !errors.Is(err, merge.ErrBadState) || !strings.Contains(err.Error(), pdot(0, 1).String()) {
		t.Fatalf("plain bytes: %v", err)
	}
	// A set state is not a counter state.
	_, err = merge.Counter{}.Resolve("k", []merge.Version{{Value: merge.SetState{}.Encode(), Dot: pdot(0, 1)}})
	if !errors.Is(err, merge.ErrBadState) {
		t.Fatalf("set state read as counter: %v", err)
	}
}

// encodeRaw writes msgpack values in order.
func encodeRaw(t *testing.T, vals ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	for _, v := range vals {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDecodeStatesReject(t *testing.T) {
	a, b := pid(0), pid(1)
	if bytes.Compare(a[:], b[:]) < 0 {
		a, b = b, a // a > b in byte order
	}
	ent := func(id clock.ReplicaID, c uint64) []any { return []any{id[:], c} }
	cnt := func(id clock.ReplicaID, c, p, n uint64) []any { return []any{id[:], c, p, n} }
	valid := merge.CounterState{}.Add(clock.Dot{Replica: a, Counter: 2}, 1).Encode()
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"garbage":      []byte("hello"),
		"wrong tag":    encodeRaw(t, []any{"orswot1", []any{}, []any{}}),
		"trailing":     append(slices.Clone(valid), 0xc0),
		"not covered":  encodeRaw(t, []any{"pn1", []any{ent(a, 1)}, []any{cnt(a, 2, 1, 0)}}),
		"zero counter": encodeRaw(t, []any{"pn1", []any{ent(a, 0)}, []any{}}),
		"unsorted ctx": encodeRaw(t, []any{"pn1", []any{ent(a, 1), ent(b, 1)}, []any{}}),
		"unsorted entries": encodeRaw(t, []any{"pn1", []any{ent(b, 1), ent(a, 1)},
			[]any{cnt(a, 1, 1, 0), cnt(b, 1, 1, 0)}}),
		"duplicate entry": encodeRaw(t, []any{"pn1", []any{ent(a, 1)}, []any{cnt(a, 1, 1, 0), cnt(a, 1, 1, 0)}}),
		"short id":        encodeRaw(t, []any{"pn1", []any{[]any{[]byte{1}, 1}}, []any{}}),
		"wide int":        bytes.Replace(valid, []byte{0x02}, []byte{0xcc, 0x02}, 1),
	} {
		if _, err := merge.DecodeCounter(bad); !errors.Is(err, merge.ErrBadState) {
			t.Errorf("%s: DecodeCounter(%x) = %v", name, bad, err)
		}
	}
	for i := range len(valid) {
		if _, err := merge.DecodeCounter(valid[:i]); !errors.Is(err, merge.ErrBadState) {
			t.Errorf("truncated to %d: %v", i, err)
		}
	}

	validSet := merge.SetState{}.Add(clock.Dot{Replica: a, Counter: 1}, "x", "y").Encode()
	for name, bad := range map[string][]byte{
		"empty":            nil,
		"counter":          valid,
		"no dots":          encodeRaw(t, []any{"orswot1", []any{ent(a, 1)}, []any{[]any{"x", []any{}}}}),
		"not covered":      encodeRaw(t, []any{"orswot1", []any{ent(a, 1)}, []any{[]any{"x", []any{ent(a, 2)}}}}),
		"dots unsorted":    encodeRaw(t, []any{"orswot1", []any{ent(b, 1), ent(a, 1)}, []any{[]any{"x", []any{ent(a, 1), ent(b, 1)}}}}),
		"dots repeated":    encodeRaw(t, []any{"orswot1", []any{ent(a, 1)}, []any{[]any{"x", []any{ent(a, 1), ent(a, 1)}}}}),
		"members unsorted": encodeRaw(t, []any{"orswot1", []any{ent(a, 1)}, []any{[]any{"y", []any{ent(a, 1)}}, []any{"x", []any{ent(a, 1)}}}}),
		"member repeated":  encodeRaw(t, []any{"orswot1", []any{ent(a, 1)}, []any{[]any{"x", []any{ent(a, 1)}}, []any{"x", []any{ent(a, 1)}}}}),
	} {
		if _, err := merge.DecodeSet(bad); !errors.Is(err, merge.ErrBadState) {
			t.Errorf("set %s: DecodeSet(%x) = %v", name, bad, err)
		}
	}
	for i := range len(validSet) {
		if _, err := merge.DecodeSet(validSet[:i]); !errors.Is(err, merge.ErrBadState) {
			t.Errorf("set truncated to %d: %v", i, err)
		}
	}
}

// FuzzDecodeStates: the state decoders never panic, and what they accept
// re-encodes to the same bytes. The checked-in corpus in
// testdata/fuzz/FuzzDecodeStates holds valid states and hostile length
// headers (see TestDecodeStatesHostileLengths).
//
//	go test -run='^$' -fuzz=FuzzDecodeStates -fuzztime=60s ./merge/
func FuzzDecodeStates(f *testing.F) {
	f.Add(merge.CounterState{}.Add(pdot(0, 2), 3).Add(pdot(1, 1), -1).Encode())
	f.Add(merge.SetState{}.Add(pdot(0, 2), "a", "b").Remove("a").Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := merge.DecodeCounter(data); err == nil && !bytes.Equal(c.Encode(), data) {
			t.Fatalf("counter %v re-encodes differently", c)
		} else if err != nil && !errors.Is(err, merge.ErrBadState) {
			t.Fatalf("counter error %v does not wrap ErrBadState", err)
		}
		if s, err := merge.DecodeSet(data); err == nil && !bytes.Equal(s.Encode(), data) {
			t.Fatalf("set %v re-encodes differently", s)
		} else if err != nil && !errors.Is(err, merge.ErrBadState) {
			t.Fatalf("set error %v does not wrap ErrBadState", err)
		}
	})
}

// freshDot returns a dot of a pool replica that no context covers.
func freshDot(t *rapid.T, ctxs ...clock.Vector) clock.Dot {
	id := proptest.ReplicaIDs(proptest.DefaultIDs).Draw(t, "writer")
	var c uint64
	for _, v := range ctxs {
		c = max(c, v.Get(id))
	}
	return clock.Dot{Replica: id, Counter: c + 1}
}

func TestCounterJoinLaws(t *testing.T) {
	gen := proptest.CounterStates(nil)
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := gen.Draw(t, "a"), gen.Draw(t, "b"), gen.Draw(t, "c")
		if !a.Join(b).Equal(b.Join(a)) {
			t.Fatalf("not commutative: %v ⊔ %v", a, b)
		}
		if !a.Join(b).Join(c).Equal(a.Join(b.Join(c))) {
			t.Fatalf("not associative")
		}
		if !a.Join(a).Equal(a) {
			t.Fatalf("not idempotent: %v ⊔ itself = %v", a, a.Join(a))
		}
		// An update dominates every state it was derived from.
		u := a.Join(b).Add(freshDot(t, a.Context(), b.Context()), rapid.Int64Range(-9, 9).Draw(t, "delta"))
		if !u.Join(a).Equal(u) || !u.Join(b).Equal(u) {
			t.Fatalf("update %v does not dominate its inputs %v, %v", u, a, b)
		}
	})
}

// --- set ---

func TestSetBasics(t *testing.T) {
	var s merge.SetState
	if s.Len() != 0 || len(s.Members()) != 0 || s.Members() == nil {
		t.Fatal("zero state is not the empty set")
	}
	s = s.Add(pdot(0, 1), "b", "a").Add(pdot(1, 1), "c").Remove("b", "zzz")
	if got := s.Members(); !slices.Equal(got, []string{"a", "c"}) || !s.Contains("a") || s.Contains("b") || s.Len() != 2 {
		t.Fatalf("members %v", got)
	}
	got, err := merge.DecodeSet(s.Encode())
	if err != nil || !got.Equal(s) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	before := s.Encode()
	_ = s.Add(pdot(2, 1), "d").Remove("a")
	if !bytes.Equal(before, s.Encode()) {
		t.Fatal("Add or Remove modified the receiver")
	}
	res, err := merge.Set{}.Resolve("k", []merge.Version{{Value: s.Encode(), Dot: pdot(0, 1)}})
	if err != nil || string(res.Value) != "a\nc" || res.Winner != -1 {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	// A set without members reads as deleted (Redis drops empty sets too),
	// however it got there.
	for _, empty := range []merge.SetState{s.Remove("a", "c"), s.Clear()} {
		if empty.Len() != 0 || !empty.Context().Equal(s.Context()) {
			t.Fatalf("emptied %v", empty)
		}
		res, err = merge.Set{}.Resolve("k", []merge.Version{{Value: empty.Encode(), Dot: pdot(0, 1)}, {Deleted: true, Dot: pdot(1, 1)}})
		if err != nil || !res.Deleted || res.Value != nil {
			t.Fatalf("empty set: %+v, %v", res, err)
		}
	}
	res, err = merge.Set{}.Resolve("k", []merge.Version{{Deleted: true, Dot: pdot(1, 1)}})
	if err != nil || !res.Deleted {
		t.Fatalf("tombstone: %+v, %v", res, err)
	}
	if _, err := (merge.Set{}).Resolve("k", []merge.Version{{Value: []byte("a\nb"), Dot: pdot(0, 1)}}); !errors.Is(err, merge.ErrBadState) {
		t.Fatalf("plain bytes: %v", err)
	}
}

func TestSetAddWins(t *testing.T) {
	base := merge.SetState{}.Add(pdot(0, 1), "x")
	// Replica 1 saw the add and removes x; replica 0 concurrently adds x again.
	removed := base.Remove("x")
	readded := base.Add(pdot(0, 2), "x")
	if got := removed.Join(readded); !got.Contains("x") {
		t.Fatalf("a concurrent add lost to a remove: %v", got)
	}
	// A remove that saw the add wins over it.
	if got := removed.Join(base); got.Contains("x") {
		t.Fatalf("an observed add survived its remove: %v", got)
	}
	// Concurrent adds of the same member keep both dots; a remove that saw
	// only one of them leaves the other.
	other := merge.SetState{}.Add(pdot(1, 1), "x")
	both := base.Join(other)
	if got := base.Remove("x").Join(both); !got.Contains("x") {
		t.Fatalf("remove that did not see %v removed it", pdot(1, 1))
	}
	if got := both.Remove("x").Join(base).Join(other); got.Contains("x") {
		t.Fatalf("remove that saw both adds did not win: %v", got)
	}
}

func TestSetJoinLaws(t *testing.T) {
	gen := proptest.SetStates(nil)
	elem := rapid.SampledFrom([]string{"a", "b", "c", "d"})
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := gen.Draw(t, "a"), gen.Draw(t, "b"), gen.Draw(t, "c")
		if !a.Join(b).Equal(b.Join(a)) {
			t.Fatalf("not commutative: %v ⊔ %v", a, b)
		}
		if !a.Join(b).Join(c).Equal(a.Join(b.Join(c))) {
			t.Fatalf("not associative")
		}
		if !a.Join(a).Equal(a) {
			t.Fatalf("not idempotent")
		}
		j := a.Join(b)
		for _, u := range []merge.SetState{
			j.Add(freshDot(t, a.Context(), b.Context()), elem.Draw(t, "added")),
			j.Remove(elem.Draw(t, "removed")),
		} {
			if !u.Join(a).Equal(u) || !u.Join(b).Equal(u) {
				t.Fatalf("update %v does not dominate its inputs %v, %v", u, a, b)
			}
		}
	})
}

// --- histories: replicas that update one key and exchange records ---

// model is a few replicas of one key, with ground truth kept outside the
// clocks: every write's causal past as a set of dots.
type model struct {
	ids     []clock.ReplicaID
	recs    []merge.Record
	seen    []map[clock.Dot]bool // per replica: every write it has seen
	counter []uint64
	past    map[clock.Dot]map[clock.Dot]bool
}

func newModel(n int) *model {
	m := &model{ids: proptest.Pool(n), recs: make([]merge.Record, n), counter: make([]uint64, n),
		past: map[clock.Dot]map[clock.Dot]bool{}}
	for range n {
		m.seen = append(m.seen, map[clock.Dot]bool{})
	}
	return m
}

// write makes a local write at replica i; value computes the new value from
// the current record and the fresh dot (nil: a tombstone).
func (m *model) write(t *rapid.T, i int, value func(merge.Record, clock.Dot) []byte) clock.Dot {
	m.counter[i]++
	d := clock.Dot{Replica: m.ids[i], Counter: m.counter[i]}
	val := value(m.recs[i], d)
	v := merge.Version{Value: val, Deleted: val == nil, Dot: d}
	m.past[d] = maps.Clone(m.seen[i])
	m.seen[i][d] = true
	m.recs[i] = merge.LocalWrite(m.recs[i], nil, v)
	return d
}

func (m *model) receive(i, j int) {
	m.recs[i] = merge.Merge(m.recs[i], m.recs[j])
	maps.Copy(m.seen[i], m.seen[j])
}

func (m *model) before(a, b clock.Dot) bool { return m.past[b][a] }

func (m *model) syncAll() {
	for range 2 {
		for i := range m.recs {
			for j := range m.recs {
				m.receive(i, j)
			}
		}
	}
}

// deleteMode is how a history deletes a CRDT key: never, with tombstones
// (Replica.Delete), or by writing the cleared state.
type deleteMode int

const (
	noDeletes deleteMode = iota
	tombstones
	clears
)

func (d deleteMode) String() string { return [...]string{"none", "tombstones", "clears"}[d] }

func TestCounterHistories(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "replicas")
		mode := rapid.SampledFrom([]deleteMode{noDeletes, tombstones, clears}).Draw(t, "deletes")
		m := newModel(n)
		deltas := map[clock.Dot]int64{}
		deletes := map[clock.Dot]bool{}
		check := func(i int) {
			res, err := merge.Read(merge.Counter{}, "k", m.recs[i])
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
			var got int64
			if !res.Deleted {
				got, _ = strconv.ParseInt(string(res.Value), 10, 64)
			}
			var all, unobserved int64
			for d := range m.seen[i] {
				if delta, ok := deltas[d]; ok {
					all += delta
					observed := false
					for x := range deletes {
						observed = observed || (m.seen[i][x] && m.before(d, x))
					}
					if !observed {
						unobserved += delta
					}
				}
			}
			if mode == noDeletes && got != all {
				t.Fatalf("replica %d reads %d, want the sum %d of every increment it has seen", i, got, all)
			}
			// With deletes (and only positive deltas): no increment that no
			// delete saw is lost, and nothing is counted twice.
			if got < unobserved || got > all {
				t.Fatalf("replica %d reads %d, want between %d (increments no delete saw) and %d (all)", i, got, unobserved, all)
			}
		}
		update := func(i int, f func(merge.CounterState, clock.Dot) merge.CounterState) clock.Dot {
			return m.write(t, i, func(r merge.Record, d clock.Dot) []byte {
				s, err := merge.CounterOf(r)
				if err != nil {
					t.Fatal(err)
				}
				return f(s, d).Encode()
			})
		}
		for range rapid.IntRange(0, 30).Draw(t, "steps") {
			i := rapid.IntRange(0, n-1).Draw(t, "at")
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 4:
				delta := rapid.Int64Range(-3, 5).Draw(t, "delta")
				if mode != noDeletes {
					delta = rapid.Int64Range(1, 5).Draw(t, "positive delta")
				}
				deltas[update(i, func(s merge.CounterState, d clock.Dot) merge.CounterState { return s.Add(d, delta) })] = delta
			case op == 4 && mode == tombstones:
				deletes[m.write(t, i, func(merge.Record, clock.Dot) []byte { return nil })] = true
			case op == 4 && mode == clears:
				deletes[update(i, func(s merge.CounterState, _ clock.Dot) merge.CounterState { return s.Clear() })] = true
			default:
				m.receive(i, rapid.IntRange(0, n-1).Draw(t, "from"))
			}
			check(i)
		}
		m.syncAll()
		for i := range n {
			check(i)
			if !m.recs[i].Equal(m.recs[0]) {
				t.Fatalf("replicas %d and 0 differ after a full exchange", i)
			}
		}
	})
}

func TestSetHistories(t *testing.T) {
	elems := []string{"a", "b", "c"}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "replicas")
		mode := rapid.SampledFrom([]deleteMode{noDeletes, tombstones, clears}).Draw(t, "deletes")
		m := newModel(n)
		adds := map[clock.Dot]string{}
		removes := map[clock.Dot]string{} // "" for a delete or clear: every member
		check := func(i int) {
			s, err := merge.SetOf(m.recs[i])
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
			for _, e := range elems {
				// Add-wins, observed-remove: e is a member when some add of
				// e is in the past of no remove of e (nor delete).
				want := false
				for a, ae := range adds {
					if ae != e || !m.seen[i][a] {
						continue
					}
					removed := false
					for r, re := range removes {
						removed = removed || ((re == e || re == "") && m.seen[i][r] && m.before(a, r))
					}
					want = want || !removed
				}
				// A tombstone replaces the state that recorded earlier
				// removes: an update concurrent with it can bring a removed
				// member back (see the package doc). Nothing is ever lost.
				if got := s.Contains(e); got != want && (mode != tombstones || want) {
					t.Fatalf("replica %d: member %q is %v, want %v (%v)", i, e, got, want, s)
				}
			}
		}
		update := func(i int, f func(merge.SetState, clock.Dot) merge.SetState) clock.Dot {
			return m.write(t, i, func(r merge.Record, d clock.Dot) []byte {
				s, err := merge.SetOf(r)
				if err != nil {
					t.Fatal(err)
				}
				return f(s, d).Encode()
			})
		}
		for range rapid.IntRange(0, 30).Draw(t, "steps") {
			i := rapid.IntRange(0, n-1).Draw(t, "at")
			e := rapid.SampledFrom(elems).Draw(t, "member")
			switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
			case op < 3:
				adds[update(i, func(s merge.SetState, d clock.Dot) merge.SetState { return s.Add(d, e) })] = e
			case op < 5:
				removes[update(i, func(s merge.SetState, _ clock.Dot) merge.SetState { return s.Remove(e) })] = e
			case op == 5 && mode == tombstones:
				removes[m.write(t, i, func(merge.Record, clock.Dot) []byte { return nil })] = ""
			case op == 5 && mode == clears:
				removes[update(i, func(s merge.SetState, _ clock.Dot) merge.SetState { return s.Clear() })] = ""
			default:
				m.receive(i, rapid.IntRange(0, n-1).Draw(t, "from"))
			}
			check(i)
		}
		m.syncAll()
		for i := range n {
			check(i)
		}
	})
}

// The anomaly of tombstones that the package doc describes, and how
// clearing avoids it: B removes x, then deletes the key; A, concurrently,
// adds y to the state it had, which still holds x.
func TestSetDeleteAfterRemove(t *testing.T) {
	a, b := pid(0), pid(1)
	write := func(r merge.Record, d clock.Dot, f func(merge.SetState) merge.SetState) merge.Record {
		s, err := merge.SetOf(r)
		if err != nil {
			t.Fatal(err)
		}
		return merge.LocalWrite(r, nil, merge.Version{Value: f(s).Encode(), Dot: d})
	}
	members := func(r merge.Record) []string {
		s, err := merge.SetOf(r)
		if err != nil {
			t.Fatal(err)
		}
		return s.Members()
	}
	ra := write(merge.Record{}, clock.Dot{Replica: a, Counter: 1}, func(s merge.SetState) merge.SetState {
		return s.Add(clock.Dot{Replica: a, Counter: 1}, "x")
	})
	rb := write(ra, clock.Dot{Replica: b, Counter: 1}, func(s merge.SetState) merge.SetState { return s.Remove("x") })
	ra = write(ra, clock.Dot{Replica: a, Counter: 2}, func(s merge.SetState) merge.SetState {
		return s.Add(clock.Dot{Replica: a, Counter: 2}, "y")
	})
	tomb := merge.LocalWrite(rb, nil, merge.Version{Deleted: true, Dot: clock.Dot{Replica: b, Counter: 2}})
	if got := members(merge.Merge(ra, tomb)); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("tombstone: %v, want [x y] (the concurrent update survives whole)", got)
	}
	cleared := write(rb, clock.Dot{Replica: b, Counter: 2}, merge.SetState.Clear)
	if got := members(merge.Merge(ra, cleared)); !slices.Equal(got, []string{"y"}) {
		t.Fatalf("clear: %v, want [y]", got)
	}
}

// S2 (DESIGN.md): Z and B increment concurrently; C increments after seeing
// Z. Every order of merging reads 3.
func TestCounterS2(t *testing.T) {
	z, b, c := pid(0), pid(1), pid(2)
	inc := func(r merge.Record, d clock.Dot) merge.Record {
		s, err := merge.CounterOf(r)
		if err != nil {
			t.Fatal(err)
		}
		return merge.LocalWrite(r, nil, merge.Version{Value: s.Add(d, 1).Encode(), Dot: d})
	}
	rz := inc(merge.Record{}, clock.Dot{Replica: z, Counter: 1})
	rb := inc(merge.Record{}, clock.Dot{Replica: b, Counter: 1})
	rc := inc(rz, clock.Dot{Replica: c, Counter: 1})
	for _, order := range [][]merge.Record{{rz, rb, rc}, {rc, rb, rz}, {rb, rc, rz}, {rb, rz, rc}} {
		r := merge.Merge(merge.Merge(order[0], order[1]), order[2])
		res, err := merge.Read(merge.Counter{}, "k", r)
		if err != nil || string(res.Value) != "3" {
			t.Fatalf("S2 reads %q, %v; want 3", res.Value, err)
		}
	}
}

func TestCounterAfterDelete(t *testing.T) {
	a, b := pid(0), pid(1)
	inc := func(r merge.Record, d clock.Dot, delta int64) merge.Record {
		s, err := merge.CounterOf(r)
		if err != nil {
			t.Fatal(err)
		}
		return merge.LocalWrite(r, nil, merge.Version{Value: s.Add(d, delta).Encode(), Dot: d})
	}
	read := func(r merge.Record) string {
		res, err := merge.Read(merge.Counter{}, "k", r)
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted {
			return "deleted"
		}
		return string(res.Value)
	}
	// A adds 5; B sees it. A deletes, then adds 1: it starts from zero.
	ra := inc(merge.Record{}, clock.Dot{Replica: a, Counter: 1}, 5)
	rb := ra.Clone()
	ra = merge.LocalWrite(ra, nil, merge.Version{Deleted: true, Dot: clock.Dot{Replica: a, Counter: 2}})
	if read(ra) != "deleted" {
		t.Fatalf("after delete: %s", read(ra))
	}
	ra = inc(ra, clock.Dot{Replica: a, Counter: 3}, 1)
	if read(ra) != "1" {
		t.Fatalf("after delete and add 1: %s", read(ra))
	}
	// B, concurrently with the delete, adds 2. Its increment survives; A's
	// 5, which the delete saw, does not come back, and A's new 1 is kept
	// (a counter keyed by replica alone would read 5+2 here, losing it).
	rb = inc(rb, clock.Dot{Replica: b, Counter: 1}, 2)
	if got := read(merge.Merge(ra, rb)); got != "3" {
		t.Fatalf("after exchange: %s, want 3", got)
	}
	// A replica that holds a delete and an update concurrent with it reads
	// the update's whole state, including what its writer had seen before
	// the delete (A's 5), and an update made after seeing both starts from
	// that.
	rd := merge.LocalWrite(ra.Clone(), nil, merge.Version{Deleted: true, Dot: clock.Dot{Replica: a, Counter: 4}})
	rb2 := inc(rb, clock.Dot{Replica: b, Counter: 2}, 0)
	both := merge.Merge(rd, rb2)
	if got := read(both); got != "7" {
		t.Fatalf("update concurrent with a delete: %s, want 7", got)
	}
	if got := read(inc(both, clock.Dot{Replica: a, Counter: 5}, 1)); got != "8" {
		t.Fatalf("update after seeing both: %s, want 8", got)
	}
}

func TestCounterOfStartsFromContext(t *testing.T) {
	g := clock.Vector{pid(0): 7, pid(1): 2}
	s, err := merge.CounterOf(merge.Record{Clock: g})
	if err != nil || !s.Empty() || s.Value() != 0 || !s.Context().Equal(g) {
		t.Fatalf("CounterOf(G) = %v, %v", s, err)
	}
	st, err := merge.SetOf(merge.Record{Clock: g})
	if err != nil || st.Len() != 0 || !st.Context().Equal(g) {
		t.Fatalf("SetOf(G) = %v, %v", st, err)
	}
	if _, err := merge.SetOf(merge.Record{Clock: g, Versions: []merge.Version{{Value: []byte("x"), Dot: pdot(0, 1)}}}); !errors.Is(err, merge.ErrBadState) {
		t.Fatalf("SetOf(junk) = %v", err)
	}
}
