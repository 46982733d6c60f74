package cli

import (
	"path/filepath"
	"testing"
)

// TestPatchCountersAndSets: ebreplica patch with counter and set
// operations on two replicas: concurrent increments and adds all count
// after the sync; get prints the counter as a number and the set as a
// sorted array; a put of the document read back keeps them; bad operations
// are one-line errors that write nothing.
func TestPatchCountersAndSets(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", "file://"+remoteDir, "--policy", "docs/=json")
	ok(t, nil, "init", "--dir", b, "--remote", "file://"+remoteDir)
	ok(t, nil, "patch", "--dir", a, "docs/ann", `{"name":"Ann","visits":{"$inc":1},"tags":{"$add":["x"]}}`)
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "patch", "--dir", a, "docs/ann", `{"visits":{"$inc":1},"tags":{"$remove":["x"]}}`)
	ok(t, nil, "patch", "--dir", b, "docs/ann", `{"visits":{"$inc":3}, "tags":{"$add":["x","b"]}}`)
	if got := ok(t, nil, "get", "--dir", b, "docs/ann").out(); got != `{"name":"Ann","tags":["b","x"],"visits":4}` {
		t.Fatalf("b before the sync: %s", got)
	}
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "sync", "--dir", a)
	want := `{"name":"Ann","tags":["b","x"],"visits":5}`
	for _, d := range []string{a, b} {
		if got := ok(t, nil, "get", "--dir", d, "docs/ann").out(); got != want {
			t.Fatalf("get on %s = %s, want %s", d, got, want)
		}
	}
	// A put of the document with another field changed keeps the counter.
	ok(t, nil, "put", "--dir", a, "docs/ann", `{"name":"Anna","tags":["b","x"],"visits":5}`)
	ok(t, nil, "patch", "--dir", a, "docs/ann", `{"visits":{"$inc":-2}}`)
	if got := ok(t, nil, "get", "--dir", a, "docs/ann").out(); got != `{"name":"Anna","tags":["b","x"],"visits":3}` {
		t.Fatalf("after the put and an increment: %s", got)
	}

	ok(t, nil, "sync", "--dir", a)
	before := state(t, a)
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "docs/ann", `{"visits":{"$inc":1.5}}`}, "$inc takes an integer")
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "docs/ann", `{"tags":{"$add":"b"}}`}, "$add takes an array of strings")
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "docs/ann", `{"tags":{"$append":["b"]}}`}, `unknown operation "$append"`)
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "docs/ann", `{"name":{"$inc":1}}`}, `field "name" is a value, not a counter`)
	failsWith(t, ExitError, nil, []string{"patch", "--dir", a, "docs/ann", `{"visits":{"$add":["b"]}}`}, `field "visits" is a counter, not a set`)
	if after := state(t, a); after != before {
		t.Fatalf("a failed patch changed the replica:\n%s\nvs\n%s", after, before)
	}
	if got := ok(t, nil, "pending", "--dir", a).out(); got != "" {
		t.Fatalf("pending after failed patches: %q", got)
	}
}
