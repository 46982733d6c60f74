package cli

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// compact --prune --dry-run says what compact --prune would delete, and
// changes nothing (issue 15).
func TestCompactDryRun(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	remoteURL := "file://" + filepath.ToSlash(remoteDir)
	a := filepath.Join(t.TempDir(), "a")
	ok(t, nil, "init", "--dir", a, "--remote", remoteURL)
	for _, k := range []string{"k1", "k2", "k3"} {
		ok(t, nil, "put", "--dir", a, k, "v")
		ok(t, nil, "push", "--dir", a)
	}
	ok(t, nil, "compact", "--dir", a)
	ok(t, nil, "put", "--dir", a, "k4", "v")
	ok(t, nil, "push", "--dir", a)

	objects := func() string {
		return ok(t, nil, "log", "--dir", a).out() + ok(t, nil, "snapshots", "--dir", a).out()
	}
	before, st := objects(), state(t, a)
	plan := decodeOne(t, ok(t, nil, "compact", "--prune", "--dry-run", "--grace", "0", "--json", "--dir", a).stdout)
	if after := objects(); after != before || state(t, a) != st {
		t.Fatalf("--dry-run changed something:\n%s\n%s", before, after)
	}
	var would []string
	for _, k := range plan["would_delete"].([]any) {
		would = append(would, k.(string))
	}
	reqs, _ := plan["requests"].(map[string]any)
	if plan["dry_run"] != true || len(plan["would_retire"].([]any)) != 0 || len(would) == 0 ||
		reqs["put"] != json.Number("0") || reqs["delete"] != json.Number("0") {
		t.Fatalf("plan %v", plan)
	}
	text := ok(t, nil, "compact", "--prune", "--dry-run", "--grace", "0", "--dir", a).out()
	if !strings.HasPrefix(text, "dry run: a snapshot at position") || !strings.Contains(text, "delete log/") {
		t.Errorf("text:\n%s", text)
	}

	// The real run deletes what the plan named (no other replica runs).
	real := decodeOne(t, ok(t, nil, "compact", "--prune", "--grace", "0", "--json", "--dir", a).stdout)
	if real["pruned"] != json.Number(strconv.Itoa(len(would))) || real["position"] != plan["position"] {
		t.Errorf("compact --prune did %v; the plan said %v", real, plan)
	}
	if slices.Contains(would, "store.json") {
		t.Errorf("plan deletes the manifest")
	}
}
