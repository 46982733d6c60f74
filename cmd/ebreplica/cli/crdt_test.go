package cli

import (
	"path/filepath"
	"testing"
)

func TestCounterAndSetCommands(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", "file://"+remoteDir, "--policy", "hits/=counter", "--policy", "tags/=set", "--policy", "mv/=mv")
	ok(t, nil, "init", "--dir", b, "--remote", "file://"+remoteDir)
	if got := ok(t, nil, "incr", "--dir", a, "hits/x").out(); got != "1\n" {
		t.Fatalf("incr = %q", got)
	}
	if got := ok(t, nil, "incr", "hits/x", "-3", "--dir", b, "--json").out(); got != "{\"key\":\"hits/x\",\"value\":-3}\n" {
		t.Fatalf("incr -3 = %q", got)
	}
	ok(t, nil, "sadd", "--dir", a, "tags/t", "x", "y")
	ok(t, nil, "sadd", "--dir", b, "tags/t", "z")
	ok(t, nil, "srem", "--dir", b, "tags/t", "z")
	ok(t, nil, "put", "--dir", a, "mv/k", "from-a")
	ok(t, nil, "put", "--dir", b, "mv/k", "from-b")
	for _, d := range []string{a, b, a} {
		ok(t, nil, "sync", "--dir", d)
	}
	for _, d := range []string{a, b} {
		if got := ok(t, nil, "get", "--dir", d, "hits/x").out(); got != "-2" {
			t.Fatalf("get counter on %s = %q", d, got)
		}
		if got := ok(t, nil, "smembers", "--dir", d, "tags/t").out(); got != "x\ny\n" {
			t.Fatalf("smembers on %s = %q", d, got)
		}
		if got := ok(t, nil, "smembers", "--dir", d, "--json", "tags/t").out(); got != "{\"members\":[\"x\",\"y\"]}\n" {
			t.Fatalf("smembers --json = %q", got)
		}
		// Concurrent writes under mv: get exits 4, get --all shows both.
		failsWith(t, ExitConflict, nil, []string{"get", "--dir", d, "mv/k"}, "concurrent versions")
		if n := len(splitLines(ok(t, nil, "get", "--all", "--dir", d, "mv/k").out())); n != 2 {
			t.Fatalf("get --all shows %d versions", n)
		}
	}
	// ls --conflicts lists only the keys with concurrent versions (issue 15).
	ok(t, nil, "put", "--dir", a, "plain", "p")
	if got := ok(t, nil, "ls", "--conflicts", "--dir", a).out(); got != "mv/k\n" {
		t.Errorf("ls --conflicts = %q", got)
	}
	if m := decodeOne(t, ok(t, nil, "ls", "--conflicts", "--json", "--dir", a).stdout); m["key"] != "mv/k" || m["conflict"] != true {
		t.Errorf("ls --conflicts --json = %v", m)
	}
	failsWith(t, ExitError, nil, []string{"incr", "--dir", a, "plain"}, `policy "lww"`)
	failsWith(t, ExitUsage, nil, []string{"incr", "--dir", a, "hits/x", "many"}, "not an integer")
	failsWith(t, ExitNotFound, nil, []string{"smembers", "--dir", a, "tags/none"}, "not found")
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
