package cli

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestSimLatency(t *testing.T) {
	args := []string{"sim", "--latency", "20ms", "--replicas", "40", "--seed", "5", "--json"}
	r := ok(t, nil, args...)
	var rep map[string]any
	if err := json.Unmarshal(r.stdout, &rep); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	c, isObj := rep["contention"].(map[string]any)
	if !isObj {
		t.Fatalf("no contention object: %s", r.stdout)
	}
	var keys []string
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"commits_per_s", "first_try", "list_per_push", "put_per_push"}; !slices.Equal(keys, want) {
		t.Fatalf("contention keys %v, want %v", keys, want)
	}
	if rep["converged"] != true || rep["replicas"] != 40.0 || c["put_per_push"].(float64) < 2 || c["first_try"].(float64) > 1 {
		t.Fatalf("report: %s", r.stdout)
	}
	if again := ok(t, nil, args...); !bytes.Equal(again.stdout, r.stdout) {
		t.Fatalf("same flags, two reports:\n%s\n%s", r.stdout, again.stdout)
	}
	text := ok(t, nil, "sim", "--latency", "20ms", "--replicas", "40", "--seed", "5").out()
	for _, w := range []string{"40 replicas", "one global log", "PUT and", "LIST per push", "first try", "commits per simulated second", "GET per pull"} {
		if !strings.Contains(text, w) {
			t.Errorf("text report lacks %q:\n%s", w, text)
		}
	}
}

func TestSimLatencyBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "--latency", "0"}, "--latency"},
		{[]string{"sim", "--latency", "-20ms"}, "--latency"},
		{[]string{"sim", "--latency", "fast"}, "--latency"},
		{[]string{"sim", "--latency", "20ms", "--replicas", "1001"}, "--replicas"},
		{[]string{"sim", "--latency", "20ms", "--replicas", "0"}, "--replicas"},
		{[]string{"sim", "--latency", "20ms", "--faults", "0.1"}, "--faults: not with --latency"},
		{[]string{"sim", "--latency", "20ms", "--sealed"}, "--sealed: not with --latency"},
		{[]string{"sim", "--latency", "20ms", "--seed", "x"}, "--seed"},
	} {
		failsWith(t, ExitUsage, nil, c.args, c.want)
	}
}
