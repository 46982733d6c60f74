package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// execEnv makes the test binary act as the ebreplica command, so tests can
// run the CLI as a second process (see runProcess).
const execEnv = "EBREPLICA_CLI_TEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		os.Exit(Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type result struct {
	code   int
	stdout []byte
	stderr string
}

func (r result) out() string { return string(r.stdout) }

// cli runs the command line in this process with stdin (nil: empty).
func cli(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.Bytes(), stderr: errb.String()}
}

// ok runs the command line and fails the test unless it exits 0 with
// nothing on stderr.
func ok(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	r := cli(t, stdin, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("ebreplica %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r
}

// failsWith runs the command line and checks it exits with code and one
// line on stderr, starting "ebreplica: " and containing each of want, and
// nothing on stdout.
func failsWith(t *testing.T, code int, stdin []byte, args []string, want ...string) result {
	t.Helper()
	r := cli(t, stdin, args...)
	checkFailure(t, r, code, args, want...)
	return r
}

func checkFailure(t *testing.T, r result, code int, args []string, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("ebreplica %q: exit %d, want %d (stderr %q)", args, r.code, code, r.stderr)
	}
	if len(r.stdout) != 0 {
		t.Errorf("ebreplica %q: stdout %q, want nothing", args, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "ebreplica: ") || !strings.HasSuffix(r.stderr, "\n") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("ebreplica %q: stderr %q is not one line starting \"ebreplica: \"", args, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("ebreplica %q: stderr %q does not contain %q", args, r.stderr, w)
		}
	}
	if code == ExitUsage && !strings.Contains(r.stderr, "ebreplica help") {
		t.Errorf("ebreplica %q: usage error %q does not point at ebreplica help", args, r.stderr)
	}
}

// newReplica initialises a replica in a new directory with a file://
// remote and returns the directory.
func newReplica(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "replica")
	ok(t, nil, "init", "--dir", dir, "--remote", "file://"+filepath.ToSlash(t.TempDir()))
	return dir
}

// decodeLines decodes JSON lines.
func decodeLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("decoding %q: %v", b, err)
		}
		out = append(out, m)
	}
	if n := bytes.Count(b, []byte("\n")); n != len(out) {
		t.Fatalf("%d JSON objects on %d lines in %q", len(out), n, b)
	}
	return out
}

// decodeOne decodes output that must be exactly one JSON object line.
func decodeOne(t *testing.T, b []byte) map[string]any {
	t.Helper()
	ms := decodeLines(t, b)
	if len(ms) != 1 {
		t.Fatalf("want one JSON object, got %d in %q", len(ms), b)
	}
	return ms[0]
}

// state is what a replica holds as the CLI sees it: its key count, export,
// pending list and write counter. Failed commands must leave it unchanged.
func state(t *testing.T, dir string) string {
	t.Helper()
	st := decodeOne(t, ok(t, nil, "status", "--json", "--dir", dir).stdout)
	return ok(t, nil, "len", "--dir", dir).out() + "|" +
		ok(t, nil, "export", "--dir", dir).out() + "|" +
		ok(t, nil, "pending", "--json", "--dir", dir).out() + "|" +
		string(st["counter"].(json.Number))
}

func noDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s exists after the command (stat: %v)", dir, err)
	}
}
