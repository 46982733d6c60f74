package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// docPolicies are the policies of the stores of the export/import tests
// of json documents: every kind of key.
var docPolicies = []string{"--policy", "docs/=json", "--policy", "mvdocs/=json-mv",
	"--policy", "hits/=counter", "--policy", "tags/=set"}

func initDocStore(t *testing.T, remote string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "r")
	ok(t, nil, append([]string{"init", "--dir", dir, "--remote", "file://" + filepath.ToSlash(remote)}, docPolicies...)...)
	return dir
}

// TestExportImportDocRoundTrip: export writes json documents in operation
// form, so an import into a fresh store with the same policies recreates
// them exactly, field kinds included: registers (with "$" names, nested
// objects, arrays holding "$" names), counters and sets, also of a
// document edited concurrently on two replicas; the second export is the
// same bytes, and increments and adds then behave the same on both stores.
func TestExportImportDocRoundTrip(t *testing.T) {
	t.Parallel()
	remote := t.TempDir()
	a, b := initDocStore(t, remote), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", b, "--remote", "file://"+filepath.ToSlash(remote))
	ok(t, nil, "patch", "--dir", a, "docs/ann",
		`{"name":"Ann","visits":{"$inc":5},"tags":{"$add":["b","a"]},"$$ref":1,"$$":"dollar",`+
			`"addr":{"city":"Oslo","$$x":{"$$y":true},"n":{"$counter":-3},"s":{"$set":[]}},"empty":{},"arr":[{"$k":1},2.50]}`)
	ok(t, nil, "patch", "--dir", a, "mvdocs/m", `{"c":{"$inc":1},"s":{"$set":["x"]},"v":7}`)
	ok(t, nil, "put", "--dir", a, "plain", "three")
	ok(t, nil, "incr", "--dir", a, "hits/x", "4")
	ok(t, nil, "sadd", "--dir", a, "tags/t", "red")
	// A concurrent edit on b: the counter and the set hold two replicas'
	// entries.
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "patch", "--dir", a, "docs/ann", `{"visits":{"$inc":2},"tags":{"$remove":["b"]}}`)
	ok(t, nil, "patch", "--dir", b, "docs/ann", `{"visits":{"$inc":10},"tags":{"$add":["c"]},"addr":{"n":{"$inc":1}}}`)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "sync", "--dir", a)

	exported := ok(t, nil, "export", "--dir", a).out()
	want := `{"key":"docs/ann","doc":{"$$":"dollar","$$ref":1,"addr":{"$$x":{"$$y":true},"city":"Oslo","n":{"$counter":-2},"s":{"$set":[]}},` +
		`"arr":[{"$k":1},2.50],"empty":{},"name":"Ann","tags":{"$set":["a","c"]},"visits":{"$counter":17}}}` + "\n" +
		`{"key":"hits/x","counter":4}` + "\n" +
		`{"key":"mvdocs/m","doc":{"c":{"$counter":1},"s":{"$set":["x"]},"v":7}}` + "\n" +
		`{"key":"plain","value":"three"}` + "\n" +
		`{"key":"tags/t","members":["red"]}` + "\n"
	if exported != want {
		t.Fatalf("export:\n%s\nwant:\n%s", exported, want)
	}

	c := initDocStore(t, t.TempDir())
	if got := ok(t, []byte(exported), "import", "--dir", c).out(); got != "imported 5\n" {
		t.Fatalf("import printed %q", got)
	}
	if again := ok(t, nil, "export", "--dir", c).out(); again != exported {
		t.Fatalf("export after import differs:\n%s\nvs\n%s", again, exported)
	}
	for _, key := range []string{"docs/ann", "mvdocs/m"} {
		if ga, gc := ok(t, nil, "get", "--dir", a, key).out(), ok(t, nil, "get", "--dir", c, key).out(); ga != gc {
			t.Fatalf("get %s: %s on the exporter, %s on the importer", key, ga, gc)
		}
	}

	// The kinds survived: the same operations give the same documents.
	for _, dir := range []string{a, c} {
		ok(t, nil, "patch", "--dir", dir, "docs/ann", `{"visits":{"$inc":1},"tags":{"$add":["z"]},"addr":{"n":{"$inc":-1},"s":{"$add":["q"]}}}`)
		ok(t, nil, "patch", "--dir", dir, "mvdocs/m", `{"c":{"$inc":2},"s":{"$remove":["x"]}}`)
		// A register stays a register.
		failsWith(t, ExitError, nil, []string{"patch", "--dir", dir, "docs/ann", `{"$$ref":{"$inc":1}}`}, "not a counter")
		failsWith(t, ExitError, nil, []string{"patch", "--dir", dir, "docs/ann", `{"arr":{"$add":["a"]}}`}, "not a set")
	}
	wantDoc := `{"$":"dollar","$ref":1,"addr":{"$x":{"$y":true},"city":"Oslo","n":-3,"s":["q"]},"arr":[{"$k":1},2.50],"empty":{},` +
		`"name":"Ann","tags":["a","c","z"],"visits":18}`
	for _, dir := range []string{a, c} {
		if got := ok(t, nil, "get", "--dir", dir, "docs/ann").out(); got != wantDoc {
			t.Fatalf("after the same patches, %s reads %s, want %s", dir, got, wantDoc)
		}
		if got := ok(t, nil, "get", "--dir", dir, "mvdocs/m").out(); got != `{"c":3,"s":[],"v":7}` {
			t.Fatalf("after the same patches, %s reads mvdocs/m as %s", dir, got)
		}
	}
}

// TestImportDocIntoExistingKey: a "doc" line is a whole-document write:
// the key comes to read exactly as the line, with the line's kinds, fields
// it leaves out removed, a counter set to the value, a set to exactly the
// members; importing the export of a store into itself changes no field.
func TestImportDocIntoExistingKey(t *testing.T) {
	t.Parallel()
	dir := initDocStore(t, t.TempDir())
	ok(t, nil, "patch", "--dir", dir, "docs/ann",
		`{"gone":1,"visits":{"$inc":10},"tags":{"$add":["a","b","c"]},"addr":{"city":"Oslo","zip":"0150"},"n":{"$inc":2},"s":{"$add":["p"]},"r":[1]}`)
	line := `{"key":"docs/ann","doc":{"addr":{"city":"Rome"},"n":5,"r":{"$set":["1"]},"s":["p"],"tags":{"$set":["b","d"]},"visits":{"$counter":3}}}` + "\n"
	ok(t, []byte(line), "import", "--dir", dir)
	if got := ok(t, nil, "export", "--dir", dir).out(); got != line {
		t.Fatalf("after the import, export reads\n%s\nwant\n%s", got, line)
	}
	// The line's kinds: "n" is now a register, "r" a set.
	failsWith(t, ExitError, nil, []string{"patch", "--dir", dir, "docs/ann", `{"n":{"$inc":1}}`}, "not a counter")
	ok(t, nil, "patch", "--dir", dir, "docs/ann", `{"r":{"$add":["2"]},"visits":{"$inc":1}}`)
	if got := ok(t, nil, "get", "--dir", dir, "docs/ann").out(); got != `{"addr":{"city":"Rome"},"n":5,"r":["1","2"],"s":["p"],"tags":["b","d"],"visits":4}` {
		t.Fatalf("after import and patch: %s", got)
	}
	// The export imported back reads the same.
	exp := ok(t, nil, "export", "--dir", dir).out()
	ok(t, []byte(exp), "import", "--dir", dir)
	if got := ok(t, nil, "export", "--dir", dir).out(); got != exp {
		t.Fatalf("import of its own export changed the store:\n%s\nvs\n%s", got, exp)
	}
	// A "value" line on a json key is still a put of data: a counter given
	// a number keeps its kind.
	ok(t, []byte(`{"key":"docs/ann","value":"{\"visits\":9,\"$x\":1}"}`+"\n"), "import", "--dir", dir)
	if got := ok(t, nil, "export", "--dir", dir).out(); got != `{"key":"docs/ann","doc":{"$$x":1,"visits":{"$counter":9}}}`+"\n" {
		t.Fatalf("after a value line: %s", got)
	}
}

// TestImportDocBadInput: a bad "doc" line exits 1 naming its line, and
// nothing is imported (not even the good line before it).
func TestImportDocBadInput(t *testing.T) {
	t.Parallel()
	dir := initDocStore(t, t.TempDir())
	ok(t, nil, "patch", "--dir", dir, "docs/ann", `{"visits":{"$inc":1}}`)
	good := `{"key":"docs/new","doc":{"c":{"$counter":1}}}` + "\n"
	for _, tc := range []struct{ line, want string }{
		{`{"key":"docs/ann","doc":[1]}`, `is an array: it must be a JSON object`},
		{`{"key":"docs/ann","doc":"{}"}`, `is a string`},
		{`{"key":"docs/ann","doc":null}`, `is null`},
		{`{"key":"docs/ann","doc":7}`, `not a JSON object`},
		{`{"key":"docs/ann","doc":{"visits":{"$inc":1}}}`, `$inc is a change, not a state`},
		{`{"key":"docs/ann","doc":{"tags":{"$add":["a"]}}}`, `$add is a change`},
		{`{"key":"docs/ann","doc":{"visits":{"$counter":1.5}}}`, `$counter takes an integer`},
		{`{"key":"docs/ann","doc":{"tags":{"$set":[1]}}}`, `$set takes an array of strings`},
		{`{"key":"docs/ann","doc":{"$ref":1}}`, `"$$ref"`},
		{`{"key":"docs/ann","doc":{"o":{"$push":1}}}`, `unknown operation "$push"`},
		{`{"key":"docs/ann","doc":{"o":{"$counter":1,"p":2}}}`, `must be the only member`},
		{`{"key":"docs/ann","doc":{"a":1},"value":"{}"}`, `has "doc" and one of`},
		{`{"key":"plain","doc":{"a":1}}`, `policy is lww, not json or json-mv`},
		{`{"key":"hits/x","doc":{"a":1}}`, `key "hits/x" is a counter`},
		{`{"key":"mvdocs/m","value":"[1]"}`, `policy json-mv): its value must be a JSON object`},
	} {
		before := state(t, dir)
		failsWith(t, ExitError, []byte(good+tc.line+"\n"), []string{"import", "--dir", dir}, "stdin line 2: ", tc.want, "nothing imported")
		if after := state(t, dir); after != before {
			t.Errorf("%s: the failed import changed the replica", tc.line)
		}
		if strings.Contains(state(t, dir), "docs/new") {
			t.Errorf("%s: the good line was imported", tc.line)
		}
	}
}
