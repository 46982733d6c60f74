package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkDamage checks a verify that found damage: exit 1, the report on
// stdout, one line on stderr naming the remote and the first problem.
func checkDamage(t *testing.T, r result, args []string, want ...string) {
	t.Helper()
	if r.code != ExitError {
		t.Fatalf("ebreplica %q: exit %d, want %d (stderr %q)", args, r.code, ExitError, r.stderr)
	}
	if len(r.stdout) == 0 {
		t.Fatalf("ebreplica %q: no report on stdout", args)
	}
	if !strings.HasPrefix(r.stderr, "ebreplica: verify: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("ebreplica %q: stderr %q is not one line", args, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("ebreplica %q: stderr %q does not contain %q", args, r.stderr, w)
		}
	}
}

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	url := "file://" + filepath.ToSlash(remoteDir)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", url)
	ok(t, nil, "init", "--dir", b, "--remote", url)
	for i, d := range []string{a, b, a} {
		ok(t, nil, "put", "--dir", d, "k"+string(rune('0'+i)), "v")
		ok(t, nil, "sync", "--dir", d)
	}
	ok(t, nil, "compact", "--dir", a)
	ok(t, nil, "put", "--dir", a, "after", "snapshot")
	ok(t, nil, "push", "--dir", a)

	// Healthy: exit 0, human and JSON reports.
	if out := ok(t, nil, "verify", "--dir", b).out(); !strings.HasSuffix(out, "ok\n") || !strings.Contains(out, url) {
		t.Fatalf("verify: %q", out)
	}
	rep := decodeOne(t, ok(t, nil, "verify", "--dir", b, "--json").stdout)
	if rep["ok"] != true || string(mustJSON(t, rep["problems"])) != "[]" || rep["snapshots"].(json.Number) != "1" {
		t.Fatalf("verify --json: %v", rep)
	}
	// Without a replica directory.
	ok(t, nil, "verify", "--remote", url, "--dir", filepath.Join(t.TempDir(), "none"))

	// A flipped byte in the newest segment, which b has not pulled.
	logs, err := filepath.Glob(filepath.Join(remoteDir, "log", "*"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("log files %v, %v", logs, err)
	}
	seg := logs[len(logs)-1]
	segKey := "log/" + filepath.Base(seg)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0x01
	if err := os.WriteFile(seg, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(remoteDir, "junk.txt"), []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "--dir", b}
	r := cli(t, nil, args...)
	checkDamage(t, r, args, "2 problems", url, "junk.txt: foreign")
	for _, w := range []string{"PROBLEM", "corrupt", segKey, "checksum mismatch", "foreign", "junk.txt", "damaged: 2 problems"} {
		if !strings.Contains(r.out(), w) {
			t.Fatalf("report %q does not contain %q", r.out(), w)
		}
	}
	args = []string{"verify", "--dir", b, "--json"}
	r = cli(t, nil, args...)
	checkDamage(t, r, args, "2 problems")
	rep = decodeOne(t, r.stdout)
	probs, _ := rep["problems"].([]any)
	if rep["ok"] != false || len(probs) != 2 {
		t.Fatalf("verify --json: %v", rep)
	}
	if p := probs[1].(map[string]any); p["object"] != segKey || p["kind"] != "corrupt" || !strings.Contains(p["message"].(string), "checksum mismatch") {
		t.Fatalf("problem %v", p)
	}
	failsWith(t, ExitError, nil, []string{"pull", "--dir", b}, segKey)

	// Repair: the junk stays a problem, the segment is repaired.
	if err := os.Remove(filepath.Join(remoteDir, "junk.txt")); err != nil {
		t.Fatal(err)
	}
	r = ok(t, nil, "verify", "--dir", b, "--repair", "--json")
	rep = decodeOne(t, r.stdout)
	repaired, _ := rep["repaired"].([]any)
	if rep["ok"] != true || len(repaired) != 1 || repaired[0].(map[string]any)["object"] != segKey {
		t.Fatalf("verify --repair: %v", rep)
	}
	q, err := filepath.Glob(filepath.Join(remoteDir, "quarantine", "*"))
	if err != nil || len(q) != 1 {
		t.Fatalf("quarantine %v, %v", q, err)
	}
	if got, err := os.ReadFile(q[0]); err != nil || string(got) != string(bad) {
		t.Fatalf("quarantined copy differs (%v)", err)
	}
	ok(t, nil, "pull", "--dir", b)
	ok(t, nil, "push", "--all", "--dir", a)
	ok(t, nil, "pull", "--dir", b)
	if got := ok(t, nil, "get", "--dir", b, "after").out(); got != "snapshot" {
		t.Fatalf("after repair and push --all: %q", got)
	}
	out := ok(t, nil, "verify", "--dir", a).out()
	for _, w := range []string{"info", "placeholder", "quarantine", "ok\n"} {
		if !strings.Contains(out, w) {
			t.Fatalf("verify after repair: %q does not contain %q", out, w)
		}
	}

	failsWith(t, ExitUsage, nil, []string{"verify", "--dir", a, "extra"}, "unexpected argument")
	failsWith(t, ExitError, nil, []string{"verify", "--dir", filepath.Join(t.TempDir(), "none")}, "no replica")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
