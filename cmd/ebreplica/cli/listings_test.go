package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// replicas, snapshots and log show what is in the store (issue 15).
func TestStoreListings(t *testing.T) {
	t.Parallel()
	remoteURL := "file://" + filepath.ToSlash(t.TempDir())
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	idA := strings.TrimSpace(ok(t, nil, "init", "--dir", a, "--remote", remoteURL).out())
	idB := strings.TrimSpace(ok(t, nil, "init", "--dir", b, "--remote", remoteURL).out())
	ok(t, nil, "put", "--dir", a, "k1", "v")
	ok(t, nil, "push", "--dir", a)
	ok(t, nil, "put", "--dir", b, "k2", "v")
	ok(t, nil, "put", "--dir", b, "k3", "v")
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "compact", "--dir", a)

	rs := decodeLines(t, ok(t, nil, "replicas", "--json", "--dir", a).stdout)
	if len(rs) != 2 {
		t.Fatalf("replicas --json: %v", rs)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		id := r["replica_id"].(string)
		seen[id] = true
		if r["this"] != (id == idA) || r["retired"] != false || r["last_seen"] == "" {
			t.Errorf("replica line %v", r)
		}
	}
	if !seen[idA] || !seen[idB] {
		t.Errorf("replicas %v, want %s and %s", rs, idA, idB)
	}
	if text := ok(t, nil, "replicas", "--dir", a).out(); strings.Count(text, "\n") != 2 || !strings.Contains(text, idA) ||
		!strings.Contains(text, "(this replica)") || !strings.Contains(text, "last seen") {
		t.Errorf("replicas:\n%s", text)
	}

	ss := decodeLines(t, ok(t, nil, "snapshots", "--json", "--dir", b).stdout)
	if len(ss) != 1 || ss[0]["records"] != json.Number("3") || ss[0]["origin"] != idA {
		t.Errorf("snapshots --json: %v", ss)
	}
	if text := ok(t, nil, "snapshots", "--dir", b).out(); !strings.Contains(text, "3 records") {
		t.Errorf("snapshots:\n%s", text)
	}

	ls := decodeLines(t, ok(t, nil, "log", "--json", "--dir", a).stdout)
	if len(ls) != 2 || ls[0]["origin"] != idA || ls[0]["records"] != json.Number("1") ||
		ls[1]["origin"] != idB || ls[1]["records"] != json.Number("2") {
		t.Fatalf("log --json: %v", ls)
	}
	second := string(ls[1]["position"].(json.Number))
	if got := decodeLines(t, ok(t, nil, "log", "--json", "--from", second, "--dir", a).stdout); len(got) != 1 || got[0]["origin"] != idB {
		t.Errorf("log --from %s: %v", second, got)
	}
	if got := decodeLines(t, ok(t, nil, "log", "--json", "--limit", "1", "--dir", a).stdout); len(got) != 1 || got[0]["origin"] != idA {
		t.Errorf("log --limit 1: %v", got)
	}
	if text := ok(t, nil, "log", "--dir", a).out(); strings.Count(text, "\n") != 2 || !strings.Contains(text, "2 records") {
		t.Errorf("log:\n%s", text)
	}
	failsWith(t, ExitUsage, nil, []string{"log", "--dir", a, "--from", "x"}, "--from")
}
