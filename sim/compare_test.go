package sim

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/merge"
)

// larger is a user's own policy: the larger value wins.
var larger = merge.NewFunc("larger", func(_ string, a, b merge.Version) (merge.Version, error) {
	if b.Deleted || (!a.Deleted && bytes.Compare(a.Value, b.Value) >= 0) {
		return a, nil
	}
	return b, nil
})

// opLine matches a trace line of an operation: its id, the logical time
// after it, the operation, and the outcome.
var opLine = regexp.MustCompile(`^\s*#(\d+)\s+(\S+) (.*?) -> `)

type seenOp struct{ id, at, op string }

// opsSeen are the operations a run's trace shows it ran, in order.
func opsSeen(t *testing.T, trace []string) []seenOp {
	t.Helper()
	var out []seenOp
	for _, l := range trace {
		if m := opLine.FindStringSubmatch(l); m != nil {
			out = append(out, seenOp{m[1], m[2], m[3]})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no operation in the trace:\n%s", strings.Join(trace, "\n"))
	}
	return out
}

// TestCompareIdenticalSchedules: every policy of a comparison runs the
// same operations (ids, replicas, logical times; the same writes, in each
// policy's vocabulary: exactly MapSchedule of lww's generated schedule),
// on every seed.
func TestCompareIdenticalSchedules(t *testing.T) {
	policies := []string{PolicyLWW, PolicyMV, PolicyCounter, PolicySet, PolicyJSON}
	for seed := uint64(1); seed <= 3; seed++ {
		cfg := Config{Seed: seed, Ops: 80, Keys: 5}
		c, err := Compare(cfg, CompareOptions{Policies: policies, User: []merge.Policy{larger}})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Policies) != 6 || c.Policies[5].Policy != "larger" {
			t.Fatalf("rows: %+v", c.Policies)
		}
		base, err := Generate(Config{Seed: seed, Ops: 80, Keys: 5})
		if err != nil {
			t.Fatal(err)
		}
		var first []seenOp
		for j, name := range append(policies, "larger") {
			seen := opsSeen(t, c.PerRun[j][0].Trace)
			want := MapSchedule(base, name)
			if len(seen) != len(want) {
				t.Fatalf("seed %d: %s ran %d operations, the schedule has %d", seed, name, len(seen), len(want))
			}
			for i, o := range want {
				if seen[i].id != itoa(o.ID) || seen[i].op != o.String() {
					t.Fatalf("seed %d: %s's operation %d was #%s %s, want #%d %s", seed, name, i, seen[i].id, seen[i].op, o.ID, o)
				}
			}
			// The same seed: the same replica ids, clock offsets and
			// drifts (drawn from it before anything runs).
			if r := c.PerRun[j][0]; r.Seed != seed || !slices.Equal(clocks(r.Trace), clocks(c.PerRun[0][0].Trace)) {
				t.Fatalf("seed %d: %s ran seed %d with replicas %q, lww %q", seed, name, r.Seed, clocks(r.Trace), clocks(c.PerRun[0][0].Trace))
			}
			if first == nil {
				first = seen
				continue
			}
			for i := range seen {
				a, b := first[i], seen[i]
				// The same operation at the same time on the same replica
				// and key: the op texts agree up to the write's payload.
				if a.id != b.id || a.at != b.at || strings.Fields(a.op)[0] != strings.Fields(b.op)[0] ||
					isWrite(a.op) != isWrite(b.op) || isWrite(a.op) && keyOf(a.op) != keyOf(b.op) {
					t.Fatalf("seed %d: operation %d differs: lww ran #%s at %s %q, %s ran #%s at %s %q", seed, i, a.id, a.at, a.op, name, b.id, b.at, b.op)
				}
			}
		}
	}
}

// clocks are a trace's first lines: each replica's id, offset and drift.
func clocks(trace []string) []string {
	var out []string
	for _, l := range trace {
		if strings.Contains(l, " offset ") && strings.Contains(l, " drift ") && !strings.Contains(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// isWrite says an operation text is a write (of any policy).
func isWrite(op string) bool {
	f := strings.Fields(op)
	switch f[1] {
	case "put", "del", "batch", "add", "sadd", "srem", "patch":
		return true
	}
	return false
}

// keyOf is the key a write's text names (its first item for a batch).
func keyOf(op string) string {
	f := strings.Fields(op)
	k := strings.TrimPrefix(f[2], "-")
	k, _, _ = strings.Cut(k, "=")
	if i := strings.IndexAny(k, "+-"); i > 0 {
		k = k[:i]
	}
	return k
}

// TestCompareMatchesSingleRuns: each row of a comparison is the report a
// run of that policy alone gives for the same seeds: RunMany for lww, mv
// and a user policy (whose schedules are Generate's), Replay of the mapped
// schedule for counter; and a lineup of one is RunMany exactly.
func TestCompareMatchesSingleRuns(t *testing.T) {
	cfg := Config{Seed: 40, Ops: 60, Keys: 4}
	c, err := Compare(cfg, CompareOptions{Runs: 2, Policies: []string{PolicyLWW, PolicyMV, PolicyCounter, "larger"}, User: []merge.Policy{larger}})
	if err != nil {
		t.Fatal(err)
	}
	js := func(r Report) string {
		r.Trace, r.Timeline = nil, nil
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for j, one := range []Config{{Policy: PolicyLWW}, {Policy: PolicyMV}, {}, {UserPolicy: larger}} {
		if j == 2 {
			continue
		}
		one.Seed, one.Ops, one.Keys = cfg.Seed, cfg.Ops, cfg.Keys
		rep, err := RunMany(one, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := js(c.Policies[j]), js(rep); got != want {
			t.Fatalf("%s: the comparison's row\n%s\nthe single runs\n%s", c.Policies[j].Policy, got, want)
		}
	}
	var sum Report
	for i := range 2 {
		base, _ := Generate(Config{Seed: cfg.Seed + uint64(i), Ops: 60, Keys: 4})
		rep, err := Replay(Config{Seed: cfg.Seed + uint64(i), Ops: 60, Keys: 4, Policy: PolicyCounter}, MapSchedule(base, PolicyCounter))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := js(c.PerRun[2][i]), js(rep); got != want {
			t.Fatalf("counter, run %d: the comparison's\n%s\nReplay's\n%s", i, got, want)
		}
		sum.add(rep)
	}
	if got, want := js(c.Policies[2]), js(sum); got != want {
		t.Fatalf("counter: the row\n%s\nthe runs summed\n%s", got, want)
	}
	// A lineup of one runs the policy's own schedule, as RunMany.
	solo, err := Compare(Config{Seed: 40, Ops: 60, Keys: 4}, CompareOptions{Runs: 2, Policies: []string{PolicySet}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := RunMany(Config{Seed: 40, Ops: 60, Keys: 4, Policy: PolicySet}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := js(solo.Policies[0]), js(rep); got != want {
		t.Fatalf("set alone: Compare\n%s\nRunMany\n%s", got, want)
	}
}

// TestCompareDeterministic: the same comparison gives the same table, JSON
// and HTML, byte for byte.
func TestCompareDeterministic(t *testing.T) {
	render := func() (string, string, string) {
		c, err := Compare(Config{Seed: 9, Ops: 50, Keys: 4, Timeline: true}, CompareOptions{Runs: 2, Policies: []string{PolicyLWW, PolicyMV, PolicySet}})
		if err != nil {
			t.Fatal(err)
		}
		var text, page bytes.Buffer
		if err := c.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteHTML(&page); err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return text.String(), string(j), page.String()
	}
	t1, j1, h1 := render()
	t2, j2, h2 := render()
	if t1 != t2 || j1 != j2 || h1 != h2 {
		t.Fatalf("two renderings differ:\n%s\n%s", t1, t2)
	}
	for _, name := range []string{"lww", "mv", "set"} {
		if !regexp.MustCompile(`(?m)^\s+` + name + `\s+yes\s+\d`).MatchString(t1) {
			t.Fatalf("no converged row for %s:\n%s", name, t1)
		}
	}
	var back struct {
		Policies []struct {
			Policy string `json:"policy"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(j1), &back); err != nil || len(back.Policies) != 3 || back.Policies[2].Policy != "set" {
		t.Fatalf("json: %v %s", err, j1)
	}
}

// TestCompareBadLineup: a lineup that names an unknown policy, one twice,
// a user policy under a built-in name, or nothing, is refused before
// anything runs.
func TestCompareBadLineup(t *testing.T) {
	shadow := renamed{larger, "lww"}
	for _, o := range []CompareOptions{
		{Policies: []string{"lww", "nope"}},
		{Policies: []string{"mv", "mv"}},
		{User: []merge.Policy{shadow}},
		{User: []merge.Policy{larger, larger}},
		{},
		{Policies: []string{"lww"}, Runs: -1},
	} {
		c, err := Compare(Config{Seed: 1, Ops: 10}, o)
		if err == nil || len(c.Policies) != 0 {
			t.Fatalf("%+v: %v, %d rows", o, err, len(c.Policies))
		}
	}
	if _, err := Compare(Config{Seed: 1, Replicas: 30}, CompareOptions{Policies: []string{"lww", "mv"}}); err == nil || !strings.Contains(err.Error(), "Replicas") {
		t.Fatalf("a bad config: %v", err)
	}
}

// renamed is a policy under another name.
type renamed struct {
	merge.Policy
	name string
}

func (r renamed) Name() string { return r.name }
