package proptest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
	"pgregory.net/rapid"
)

// jsonMerge merges two JSON objects key by key; where both hold a key with
// different values, the larger encoding wins. A live version wins over a
// tombstone (an update survives a concurrent delete). It is deterministic,
// commutative, associative and idempotent on canonical JSON (what
// json.Marshal writes).
func jsonMerge(_ string, a, b merge.Version) (merge.Version, error) {
	switch {
	case a.Deleted:
		return b, nil
	case b.Deleted:
		return a, nil
	}
	var ma, mb map[string]json.RawMessage
	if err := json.Unmarshal(a.Value, &ma); err != nil {
		return merge.Version{}, fmt.Errorf("version %v: %w", a.Dot, err)
	}
	if err := json.Unmarshal(b.Value, &mb); err != nil {
		return merge.Version{}, fmt.Errorf("version %v: %w", b.Dot, err)
	}
	out := make(map[string]json.RawMessage, len(ma)+len(mb))
	for k, v := range ma {
		out[k] = v
	}
	for k, v := range mb {
		if cur, ok := out[k]; !ok || bytes.Compare(v, cur) > 0 {
			out[k] = v
		}
	}
	val, err := json.Marshal(out)
	if err != nil {
		return merge.Version{}, err
	}
	return merge.Version{Value: val}, nil
}

// jsonVersions draws versions holding small canonical JSON objects (or
// tombstones).
func jsonVersions() *rapid.Generator[merge.Version] {
	return rapid.Custom(func(t *rapid.T) merge.Version {
		v := merge.Version{Dot: proptest.Dot().Draw(t, "dot"), Time: proptest.HLC().Draw(t, "time")}
		if rapid.IntRange(0, 4).Draw(t, "tombstone") == 0 {
			v.Deleted = true
			return v
		}
		m := rapid.MapOfN(rapid.SampledFrom([]string{"a", "b", "c"}), rapid.IntRange(-2, 2), 0, 3).Draw(t, "object")
		v.Value, _ = json.Marshal(m)
		return v
	})
}

// counting forwards to a *testing.T and adds up the cases rapid reports.
type counting struct {
	*testing.T
	cases atomic.Int64
}

func (c *counting) Logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if rest, ok := strings.CutPrefix(msg, "[rapid] OK, passed "); ok {
		if n, err := strconv.Atoi(strings.Fields(rest)[0]); err == nil {
			c.cases.Add(int64(n))
			return
		}
	}
	c.T.Log(msg)
}

func TestBuiltinsPassCheckPolicy(t *testing.T) {
	ids := proptest.Pool(4)
	for _, tc := range []struct {
		p   merge.Policy
		gen *rapid.Generator[merge.Version]
	}{
		{merge.LWW{}, proptest.Version()},
		{merge.MV{}, proptest.Version()},
		{merge.Counter{}, proptest.CounterVersions(ids)},
		{merge.Set{}, proptest.SetVersions(ids)},
		{merge.JSON{}, proptest.DocVersions(ids)},
		{merge.JSON{Siblings: true}, proptest.DocVersions(ids)},
		{merge.NewFunc("json-merge", jsonMerge), jsonVersions()},
	} {
		t.Run(tc.p.Name(), func(t *testing.T) {
			t.Parallel()
			c := &counting{T: t}
			proptest.CheckPolicy(c, tc.p, tc.gen)
			want := int64(proptest.DefaultPolicyChecks)
			if testing.Short() {
				want /= 5
			}
			if seed := flagValue("rapid.seed"); seed != "0" {
				t.Logf("-rapid.seed=%s: one round, %d cases", seed, c.cases.Load())
				return
			}
			if c.cases.Load() < want {
				t.Fatalf("ran %d cases, want at least %d", c.cases.Load(), want)
			}
			t.Logf("%d cases passed", c.cases.Load())
		})
	}
}

// Built-ins also pass on arbitrary byte values, where CRDT policies fail
// consistently (malformed states).
func TestCRDTPoliciesOnArbitraryBytes(t *testing.T) {
	for _, p := range []merge.Policy{merge.Counter{}, merge.Set{}, merge.JSON{}, merge.JSON{Siblings: true}} {
		t.Run(p.Name(), func(t *testing.T) {
			proptest.CheckPolicyN(t, p, nil, 500)
		})
	}
}

// recorder is a rapid.TB that records failures and output instead of
// failing the test; FailNow ends the goroutine, as testing.T's does.
type recorder struct {
	name   string
	mu     sync.Mutex
	out    strings.Builder
	failed bool
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return r.name }
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.out, format+"\n", args...)
}
func (r *recorder) Log(args ...any)                   { r.Logf("%s", fmt.Sprint(args...)) }
func (r *recorder) Skipf(format string, args ...any)  { r.Logf(format, args...); runtime.Goexit() }
func (r *recorder) Skip(args ...any)                  { r.Log(args...); runtime.Goexit() }
func (r *recorder) SkipNow()                          { runtime.Goexit() }
func (r *recorder) Errorf(format string, args ...any) { r.Logf(format, args...); r.Fail() }
func (r *recorder) Error(args ...any)                 { r.Log(args...); r.Fail() }
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)                 { r.Error(args...); runtime.Goexit() }
func (r *recorder) FailNow()                          { r.Fail(); runtime.Goexit() }
func (r *recorder) Fail()                             { r.mu.Lock(); r.failed = true; r.mu.Unlock() }
func (r *recorder) Failed() bool                      { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }

// runChecker runs CheckPolicyN against a recorder and returns whether it
// failed and its output.
func runChecker(t *testing.T, p merge.Policy, gen *rapid.Generator[merge.Version], checks int) (bool, string) {
	t.Helper()
	r := &recorder{name: t.Name()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		proptest.CheckPolicyN(r, p, gen, checks)
	}()
	<-done
	return r.Failed(), r.out.String()
}

type policyFunc struct {
	name string
	fn   func(key string, vs []merge.Version) (merge.Result, error)
}

func (p policyFunc) Name() string { return p.name }
func (p policyFunc) Resolve(key string, vs []merge.Version) (merge.Result, error) {
	return p.fn(key, vs)
}

var globalCalls atomic.Uint64

func TestCheckPolicyCatchesBrokenPolicies(t *testing.T) {
	// rapid saves fail files under testdata/ of the working directory.
	t.Chdir(t.TempDir())
	sum := func(_ string, a, b merge.Version) (merge.Version, error) {
		x, _ := strconv.Atoi(string(a.Value))
		y, _ := strconv.Atoi(string(b.Value))
		return merge.Version{Value: []byte(strconv.Itoa(x + y))}, nil
	}
	numbers := rapid.Custom(func(t *rapid.T) merge.Version {
		return merge.Version{Dot: proptest.Dot().Draw(t, "dot"), Value: []byte(strconv.Itoa(rapid.IntRange(0, 9).Draw(t, "n")))}
	})
	for _, tc := range []struct {
		name  string
		p     merge.Policy
		gen   *rapid.Generator[merge.Version]
		want  []string // in the report
		anyOf []string // one of them in the report
	}{
		{
			name: "first sibling wins",
			p: policyFunc{"first", func(_ string, vs []merge.Version) (merge.Result, error) {
				return merge.Result{Value: vs[0].Value, Deleted: vs[0].Deleted}, nil
			}},
			want: []string{"is order-dependent on 2 siblings"},
		},
		{
			name: "concatenation",
			p: merge.NewFunc("concat", func(_ string, a, b merge.Version) (merge.Version, error) {
				return merge.Version{Value: append(slices.Clip(a.Value), b.Value...)}, nil
			}),
			// Whichever law rapid's first failing case breaks.
			anyOf: []string{"the fold is not idempotent", "is order-dependent on 2 siblings", "the fold is not commutative"},
		},
		{
			name: "sum (commutative, associative, not idempotent)",
			p:    merge.NewFunc("sum", sum),
			gen:  numbers,
			want: []string{"the fold is not idempotent", `fold(a, a) = value "`},
		},
		{
			name: "global counter",
			p: policyFunc{"counter-global", func(_ string, vs []merge.Version) (merge.Result, error) {
				return merge.Result{Value: []byte(strconv.FormatUint(globalCalls.Add(1), 10)), Winner: -1}, nil
			}},
			want: []string{"is not deterministic", "1 siblings"},
		},
		{
			name: "random",
			p: policyFunc{"random", func(_ string, vs []merge.Version) (merge.Result, error) {
				return merge.Result{Value: strconv.AppendUint(nil, rand.Uint64(), 10), Winner: -1}, nil
			}},
			want: []string{"is not deterministic"},
		},
		{
			name: "error now and then",
			p: policyFunc{"flaky", func(_ string, vs []merge.Version) (merge.Result, error) {
				if globalCalls.Add(1)%2 == 0 {
					return merge.Result{}, errors.New("sometimes")
				}
				return merge.Result{Winner: -1}, nil
			}},
			want: []string{"is not deterministic"},
		},
		{
			name: "modifies its input",
			p: policyFunc{"tamper", func(key string, vs []merge.Version) (merge.Result, error) {
				res, err := merge.LWW{}.Resolve(key, vs)
				vs[len(vs)-1].Time++
				return res, err
			}},
			want: []string{"Resolve modified its input"},
		},
		{
			name: "panics",
			p: policyFunc{"panics", func(_ string, vs []merge.Version) (merge.Result, error) {
				if len(vs) > 1 {
					panic("boom")
				}
				return merge.Result{Winner: 0, Value: vs[0].Value, Deleted: vs[0].Deleted}, nil
			}},
			want: []string{"Resolve panicked on 2 siblings: boom"},
		},
		{
			name: "winner out of range",
			p: policyFunc{"winner", func(_ string, vs []merge.Version) (merge.Result, error) {
				return merge.Result{Winner: len(vs)}, nil
			}},
			want: []string{"Winner 1 out of range for 1 siblings"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed, out := runChecker(t, tc.p, tc.gen, 100)
			if !failed {
				t.Fatalf("CheckPolicy passed a broken policy; output:\n%s", out)
			}
			// rapid's report: the seed to replay, and the shrunk
			// counterexample (a non-deterministic policy may not
			// reproduce while shrinking: rapid calls it flaky).
			for _, w := range append([]string{"-rapid.seed=", "[rapid] draw siblings"}, tc.want...) {
				if !strings.Contains(out, w) {
					t.Errorf("report lacks %q; output:\n%s", w, out)
				}
			}
			if len(tc.anyOf) > 0 && !slices.ContainsFunc(tc.anyOf, func(w string) bool { return strings.Contains(out, w) }) {
				t.Errorf("report lacks any of %q; output:\n%s", tc.anyOf, out)
			}
		})
	}
}

func TestCheckPolicyPassesGoodPolicy(t *testing.T) {
	failed, out := runChecker(t, merge.LWW{}, nil, 200)
	if failed {
		t.Fatalf("lww failed:\n%s", out)
	}
}

func TestGeneratedStatesAreValid(t *testing.T) {
	ids := proptest.Pool(3)
	rapid.Check(t, func(t *rapid.T) {
		c := proptest.CounterStates(ids).Draw(t, "counter")
		if got, err := merge.DecodeCounter(c.Encode()); err != nil || !got.Equal(c) {
			t.Fatalf("counter %v does not round-trip: %v", c, err)
		}
		s := proptest.SetStates(ids).Draw(t, "set")
		if got, err := merge.DecodeSet(s.Encode()); err != nil || !got.Equal(s) {
			t.Fatalf("set %v does not round-trip: %v", s, err)
		}
		d := proptest.DocStates(ids).Draw(t, "doc")
		if got, err := merge.DecodeDoc(d.Encode()); err != nil || !got.Equal(d) {
			t.Fatalf("doc %v does not round-trip: %v", d, err)
		}
		for _, gen := range []*rapid.Generator[merge.Version]{proptest.CounterVersions(ids), proptest.SetVersions(ids), proptest.DocVersions(ids)} {
			v := gen.Draw(t, "version")
			if !slices.Contains(ids, v.Dot.Replica) || v.Dot.Counter == 0 || v.Deleted != (v.Value == nil) {
				t.Fatalf("bad version %+v", v)
			}
		}
	})
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return "0"
}
