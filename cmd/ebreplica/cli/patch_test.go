package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPatchCommand: two replicas patch different fields of one document;
// both survive the sync; get --all shows each version's document; export
// and import round-trip the documents; bad input writes nothing.
func TestPatchCommand(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", "file://"+remoteDir, "--policy", "docs/=json")
	ok(t, nil, "init", "--dir", b, "--remote", "file://"+remoteDir)
	ok(t, nil, "put", "--dir", a, "docs/ann", `{"name":"Ann","email":"ann@old"}`)
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "patch", "--dir", a, "docs/ann", `{"name":"Anna"}`)
	ok(t, nil, "patch", "--dir", b, "docs/ann", `{"email":"anna@new","addr":{"city":"Oslo"}}`)
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	if n := len(splitLines(ok(t, nil, "get", "--all", "--dir", b, "docs/ann").out())); n != 2 {
		t.Fatalf("get --all shows %d versions, want the two concurrent patches", n)
	}
	all := ok(t, nil, "get", "--all", "--json", "--dir", b, "docs/ann").out()
	if !strings.Contains(all, `"value":"{\"email\":\"ann@old\",\"name\":\"Anna\"}"`) {
		t.Fatalf("get --all --json does not show a version's document:\n%s", all)
	}
	ok(t, nil, "sync", "--dir", a)
	want := `{"addr":{"city":"Oslo"},"email":"anna@new","name":"Anna"}`
	for _, d := range []string{a, b} {
		if got := ok(t, nil, "get", "--dir", d, "docs/ann").out(); got != want {
			t.Fatalf("get on %s = %s, want %s", d, got, want)
		}
	}
	// Bad input: an error naming the problem, nothing written.
	before := state(t, a)
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "docs/ann", `[1]`}, "JSON object", "an array")
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "docs/ann", `{"a":`}, "JSON object")
	failsWith(t, ExitError, nil, []string{"put", "--dir", a, "docs/ann", `7`}, "JSON object", "a number")
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "plain", `{"a":1}`}, `policy "lww"`)
	failsWith(t, ExitUsage, nil, []string{"patch", "--dir", a, "docs/ann"})
	if after := state(t, a); after != before {
		t.Fatalf("a failed patch changed the replica:\n%s\nvs\n%s", after, before)
	}
	if got := ok(t, nil, "pending", "--dir", a).out(); got != "" {
		t.Fatalf("pending after failed patches: %q", got)
	}
	// export, then import into a fresh store: the same documents.
	exported := ok(t, nil, "export", "--dir", a).stdout
	c := filepath.Join(t.TempDir(), "c")
	ok(t, nil, "init", "--dir", c, "--remote", "file://"+t.TempDir(), "--policy", "docs/=json")
	ok(t, exported, "import", "--dir", c)
	if got := ok(t, nil, "get", "--dir", c, "docs/ann").out(); got != want {
		t.Fatalf("imported document = %s, want %s", got, want)
	}
	if again := ok(t, nil, "export", "--dir", c).out(); again != string(exported) {
		t.Fatalf("export after import differs:\n%s\nvs\n%s", again, exported)
	}
	// del clears the document.
	ok(t, nil, "del", "--dir", a, "docs/ann")
	failsWith(t, ExitNotFound, nil, []string{"get", "--dir", a, "docs/ann"}, "not found")
}

// TestPatchJSONMV: under json-mv, concurrent patches of one field make get
// exit 4 until a patch settles them.
func TestPatchJSONMV(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", "file://"+remoteDir, "--policy", "docs/=json-mv")
	ok(t, nil, "init", "--dir", b, "--remote", "file://"+remoteDir)
	ok(t, nil, "patch", "--dir", a, "docs/p", `{"name":"A"}`)
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "patch", "--dir", a, "docs/p", `{"name":"Ann"}`)
	ok(t, nil, "patch", "--dir", b, "docs/p", `{"name":"Anne"}`)
	for _, d := range []string{a, b, a} {
		ok(t, nil, "sync", "--dir", d)
	}
	failsWith(t, ExitConflict, nil, []string{"get", "--dir", a, "docs/p"}, "concurrent versions")
	all := ok(t, nil, "get", "--all", "--dir", a, "docs/p").out()
	if !strings.Contains(all, `{\"name\":\"Ann\"}`) || !strings.Contains(all, `{\"name\":\"Anne\"}`) {
		t.Fatalf("get --all does not show both documents:\n%s", all)
	}
	ok(t, nil, "patch", "--dir", a, "docs/p", `{"name":"Anna"}`)
	if got := ok(t, nil, "get", "--dir", a, "docs/p").out(); got != `{"name":"Anna"}` {
		t.Fatalf("after settling: %s", got)
	}
}
