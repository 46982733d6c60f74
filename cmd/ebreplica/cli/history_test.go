package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHistoryRestoreRevert drives history, restore, revert and retention
// through the command line on a directory remote: the contract's output
// forms, a restored copy that refuses writes, a prefix deleted by mistake
// brought back everywhere, and bad input refused with nothing written.
func TestHistoryRestoreRevert(t *testing.T) {
	t.Parallel()
	remoteURL := "file://" + filepath.ToSlash(t.TempDir())
	a := filepath.Join(t.TempDir(), "a")
	b := filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", remoteURL)
	ok(t, nil, "init", "--dir", b, "--remote", remoteURL)
	ok(t, nil, "put", "--dir", a, "docs/1", "one")
	ok(t, nil, "put", "--dir", a, "docs/2", "two")
	ok(t, nil, "put", "--dir", a, "k", "v1")
	ok(t, nil, "push", "--dir", a)
	ok(t, nil, "put", "--dir", a, "k", "v2")
	ok(t, nil, "push", "--dir", a)
	logs := decodeLines(t, ok(t, nil, "log", "--json", "--dir", a).stdout)
	if len(logs) != 2 {
		t.Fatalf("log %v", logs)
	}
	good := logs[1]["modified"].(string)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "del", "--dir", b, "docs/1")
	ok(t, nil, "del", "--dir", b, "docs/2")
	ok(t, nil, "put", "--dir", b, "k", "v3")
	ok(t, nil, "push", "--dir", b)
	ok(t, nil, "sync", "--dir", a)

	// history KEY: one line per version, oldest first.
	hs := decodeLines(t, ok(t, nil, "history", "--json", "--dir", a, "k").stdout)
	if len(hs) != 3 {
		t.Fatalf("history %v", hs)
	}
	for i, want := range []string{"v1", "v2", "v3"} {
		h := hs[i]
		if h["value"] != want || h["deleted"] != false || h["position"] != json.Number(string(rune('1'+i))) ||
			h["history_start"] != json.Number("0") {
			t.Errorf("history line %d: %v", i, h)
		}
		if _, isString := h["hlc"].(string); !isString || h["replica_id"] == "" {
			t.Errorf("history line %d: hlc %v replica %v", i, h["hlc"], h["replica_id"])
		}
	}
	hd := decodeLines(t, ok(t, nil, "history", "--json", "--dir", a, "docs/1").stdout)
	if len(hd) != 2 || hd[1]["deleted"] != true || hd[1]["value"] != nil {
		t.Fatalf("history of a deleted key %v", hd)
	}
	if out := ok(t, nil, "history", "--dir", a, "k").out(); !strings.HasPrefix(out, `history of "k" from position 0`) || strings.Count(out, "\n") != 4 {
		t.Fatalf("human history %q", out)
	}
	failsWith(t, ExitNotFound, nil, []string{"history", "--dir", a, "never"}, `"never"`, "retained history", "position 0")

	// restore: a read-only copy as of position 2.
	st := state(t, a)
	into := filepath.Join(t.TempDir(), "copy")
	rs := decodeOne(t, ok(t, nil, "restore", "--json", "--dir", a, "--position", "2", "--into", into).stdout)
	if rs["position"] != json.Number("2") || rs["keys"] != json.Number("3") {
		t.Fatalf("restore %v", rs)
	}
	if v := ok(t, nil, "get", "--dir", into, "k").out(); v != "v2" {
		t.Fatalf("restored k = %q", v)
	}
	if v := ok(t, nil, "get", "--dir", into, "docs/1").out(); v != "one" {
		t.Fatalf("restored docs/1 = %q", v)
	}
	failsWith(t, ExitError, nil, []string{"put", "--dir", into, "k", "z"}, "read-only")
	failsWith(t, ExitError, nil, []string{"del", "--dir", into, "k"}, "read-only")
	if out := ok(t, nil, "status", "--dir", into).out(); !strings.Contains(out, "read-only copy of "+remoteURL+" at position 2") {
		t.Fatalf("status of the copy: %s", out)
	}
	// Bad restores: nothing created, the live replica unchanged.
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "mine"), []byte("x"), 0o644)
	fresh := filepath.Join(t.TempDir(), "fresh")
	for _, c := range []struct {
		code int
		args []string
		want string
	}{
		{ExitUsage, []string{"--at", good, "--position", "1", "--into", fresh}, "not both"},
		{ExitUsage, []string{"--into", fresh}, "--at TIME or --position N"},
		{ExitUsage, []string{"--position", "1"}, "--into DIR"},
		{ExitUsage, []string{"--at", "yesterday", "--into", fresh}, "RFC 3339"},
		{ExitUsage, []string{"--position", "-3", "--into", fresh}, "not a log position"},
		{ExitError, []string{"--at", "2100-01-01T00:00:00Z", "--into", fresh}, "after now"},
		{ExitError, []string{"--position", "1", "--into", full}, "not empty"},
		{ExitError, []string{"--position", "99", "--into", fresh}, "past the log's end"},
	} {
		failsWith(t, c.code, nil, append([]string{"restore", "--dir", a}, c.args...), c.want)
		noDir(t, fresh)
		if ents, _ := os.ReadDir(full); len(ents) != 1 {
			t.Fatalf("restore %v changed %s", c.args, full)
		}
	}
	if state(t, a) != st {
		t.Fatal("restore changed the live replica")
	}

	// revert: the deleted prefix comes back everywhere.
	dry := decodeLines(t, ok(t, nil, "revert", "--json", "--dry-run", "--dir", a, "--to", good, "--prefix", "docs/").stdout)
	if len(dry) != 2 || dry[0]["key"] != "docs/1" || dry[0]["op"] != "put" || dry[0]["value"] != "one" || dry[1]["key"] != "docs/2" {
		t.Fatalf("dry run %v", dry)
	}
	if state(t, a) != st {
		t.Fatal("revert --dry-run wrote")
	}
	for _, c := range []struct {
		code int
		args []string
		want string
	}{
		{ExitUsage, []string{"--prefix", "docs/"}, "--to TIME"},
		{ExitUsage, []string{"--to", good}, "--prefix P or one or more KEYs"},
		{ExitUsage, []string{"--to", good, "--prefix", "docs/", "k"}, "not both"},
		{ExitUsage, []string{"--to", "soon", "k"}, "RFC 3339"},
		{ExitError, []string{"--to", "2100-01-01T00:00:00Z", "k"}, "after now"},
		{ExitError, []string{"--to", "2000-01-01T00:00:00Z", "k"}, "oldest restorable time"},
	} {
		failsWith(t, c.code, nil, append([]string{"revert", "--dir", a}, c.args...), c.want)
	}
	if state(t, a) != st {
		t.Fatal("a refused revert wrote")
	}
	if rv := decodeOne(t, ok(t, nil, "revert", "--json", "--dir", a, "--to", good, "--prefix", "docs/").stdout); rv["reverted"] != json.Number("2") {
		t.Fatalf("revert %v", rv)
	}
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	for _, d := range []string{a, b} {
		if ok(t, nil, "get", "--dir", d, "docs/1").out() != "one" || ok(t, nil, "get", "--dir", d, "docs/2").out() != "two" ||
			ok(t, nil, "get", "--dir", d, "k").out() != "v3" {
			t.Fatalf("%s after revert and sync: %s", d, ok(t, nil, "export", "--dir", d).out())
		}
	}

	// retention: shown, set, kept by compact --prune, shown by status.
	if r := decodeOne(t, ok(t, nil, "retention", "--json", "--dir", a).stdout); r["keep_snapshots"] != json.Number("1") || r["keep_age_seconds"] != json.Number("0") {
		t.Fatalf("default retention %v", r)
	}
	failsWith(t, ExitUsage, nil, []string{"retention", "set", "--dir", a}, "--keep-snapshots")
	failsWith(t, ExitUsage, nil, []string{"retention", "set", "--dir", a, "--keep-snapshots", "-1"}, "not a count")
	failsWith(t, ExitUsage, nil, []string{"retention", "set", "--dir", a, "--keep-age", "-2h"}, "--keep-age")
	failsWith(t, ExitUsage, nil, []string{"retention", "--dir", a, "--keep-snapshots", "2"}, "retention set")
	failsWith(t, ExitUsage, nil, []string{"retention", "get", "--dir", a}, "unknown argument")
	set := decodeOne(t, ok(t, nil, "retention", "set", "--json", "--dir", a, "--keep-snapshots", "3", "--keep-age", "7d").stdout)
	if set["keep_snapshots"] != json.Number("3") || set["keep_age_seconds"] != json.Number("604800") {
		t.Fatalf("set %v", set)
	}
	// b reads the store's setting.
	if r := decodeOne(t, ok(t, nil, "retention", "--json", "--dir", b).stdout); r["keep_snapshots"] != json.Number("3") {
		t.Fatalf("b reads %v", r)
	}
	ok(t, nil, "compact", "--prune", "--grace", "0", "--dir", a)
	ok(t, nil, "put", "--dir", a, "k", "v4")
	ok(t, nil, "compact", "--prune", "--grace", "0", "--dir", a)
	if snaps := decodeLines(t, ok(t, nil, "snapshots", "--json", "--dir", a).stdout); len(snaps) != 2 || snaps[0]["retained"] != true || snaps[1]["retained"] != true {
		t.Fatalf("retention 3 kept %v", snaps)
	}
	if out := ok(t, nil, "snapshots", "--dir", a).out(); !strings.HasPrefix(out, "retention: keep the newest 3 snapshot(s)") || strings.Count(out, "retained\n") != 2 {
		t.Fatalf("snapshots: %s", out)
	}
	// The history starts at the older snapshot (the default retention
	// would have dropped it: only v4, from the newest).
	if hs := decodeLines(t, ok(t, nil, "history", "--json", "--dir", a, "k").stdout); len(hs) != 2 ||
		hs[0]["value"] != "v3" || hs[1]["value"] != "v4" || hs[0]["history_start"] != json.Number("4") {
		t.Fatalf("history after compactions kept by retention: %v", hs)
	}
	stj := decodeOne(t, ok(t, nil, "status", "--json", "--dir", a).stdout)
	if ret, _ := stj["retention"].(map[string]any); ret["keep_snapshots"] != json.Number("3") {
		t.Fatalf("status retention %v", stj["retention"])
	}
	if !strings.Contains(ok(t, nil, "status", "--dir", a).out(), "keep the newest 3 snapshot(s) and what restores the last 168h0m0s") {
		t.Fatal("status does not show the retention")
	}
	// A store holding what retention keeps verifies clean.
	if rep := decodeOne(t, ok(t, nil, "verify", "--json", "--dir", a).stdout); rep["ok"] != true {
		t.Fatalf("verify %v", rep)
	}
}
