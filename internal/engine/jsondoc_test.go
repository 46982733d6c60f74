package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

func docPolicies(t *testing.T) *merge.Registry {
	t.Helper()
	reg, err := merge.ParsePolicies([]string{"docs/=json", "c/=counter"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func docIs(t *testing.T, r *engine.Engine, key, want string) {
	t.Helper()
	got, err := r.Get(key)
	if want == "" {
		if !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("%s on %s = %s, %v; want not found", key, r.ID().Short(), got, err)
		}
		return
	}
	if err != nil || string(got) != want {
		t.Fatalf("%s on %s = %s, %v; want %s", key, r.ID().Short(), got, err, want)
	}
}

func mustPatch(t *testing.T, r *engine.Engine, key, patch string) {
	t.Helper()
	if err := r.Patch(context.Background(), key, []byte(patch)); err != nil {
		t.Fatalf("patch %s %s: %v", key, patch, err)
	}
}

// TestJSONDocumentsEndToEnd: two replicas edit different fields of one
// document concurrently and both edits survive the sync; a removal loses
// to a concurrent edit of the field (add-wins); a cleared document is
// collected; after a compaction with pruning a new replica bootstraps
// from the snapshot and reads the same documents.
func TestJSONDocumentsEndToEnd(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplicaOpts(t, b, engine.Options{Policies: docPolicies(t)})
	c := newReplicaOpts(t, b, engine.Options{Policies: docPolicies(t)})
	if err := a.Put(ctx, "docs/ann", []byte(`{"name":"Ann","email":"ann@old","addr":{"city":"Oslo","zip":"0150"},"tags":["a"]}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "docs/gone", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, c)
	docIs(t, c, "docs/ann", `{"addr":{"city":"Oslo","zip":"0150"},"email":"ann@old","name":"Ann","tags":["a"]}`)

	// Concurrent: the phone renames and drops the address; the laptop
	// changes the email and the zip code; a whole-document put on the
	// phone stamps only what it changes.
	mustPatch(t, a, "docs/ann", `{"name":"Anna","addr":null}`)
	if err := c.Put(ctx, "docs/ann", []byte(`{"name":"Ann","email":"anna@new","addr":{"city":"Oslo","zip":"0151"},"tags":["a"]}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "docs/gone"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		mustSync(t, a)
		mustSync(t, c)
	}
	want := `{"addr":{"zip":"0151"},"email":"anna@new","name":"Anna","tags":["a"]}`
	docIs(t, a, "docs/ann", want)
	docIs(t, c, "docs/ann", want)
	docIs(t, c, "docs/gone", "")

	cs, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Records == 0 {
		t.Fatalf("compact %+v", cs)
	}
	mustPatch(t, c, "docs/ann", `{"tags":["a","b"]}`)
	mustSync(t, c)
	d := newReplicaOpts(t, b, engine.Options{Policies: docPolicies(t)})
	mustSync(t, d)
	mustSync(t, a)
	want = `{"addr":{"zip":"0151"},"email":"anna@new","name":"Anna","tags":["a","b"]}`
	for _, r := range []*engine.Engine{a, c, d} {
		docIs(t, r, "docs/ann", want)
		docIs(t, r, "docs/gone", "")
	}
	if sa, sd := state(t, a), state(t, d); sa != sd {
		t.Fatalf("bootstrapped replica differs:\n%s\nvs\n%s", sd, sa)
	}
	// The bootstrapped replica edits on from the snapshot's state.
	mustPatch(t, d, "docs/ann", `{"email":null}`)
	mustSync(t, d)
	mustSync(t, a)
	docIs(t, a, "docs/ann", `{"addr":{"zip":"0151"},"name":"Anna","tags":["a","b"]}`)
}

// TestJSONDocumentBadInput: each bad write is a clear error that changes
// nothing: no version, no pending change.
func TestJSONDocumentBadInput(t *testing.T) {
	ctx := context.Background()
	r := newReplicaOpts(t, memremote.New("t"), engine.Options{Policies: docPolicies(t), MaxValueSize: 256})
	if err := r.Put(ctx, "docs/p", []byte(`{"name":"A"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	before := state(t, r)
	for _, tc := range []struct {
		name string
		do   func() error
		is   error
		msg  string
	}{
		{"patch an array", func() error { return r.Patch(ctx, "docs/p", []byte(`[1,2]`)) }, engine.ErrBadPatch, "an array"},
		{"patch a string", func() error { return r.Patch(ctx, "docs/p", []byte(`"x"`)) }, engine.ErrBadPatch, "a string"},
		{"patch broken JSON", func() error { return r.Patch(ctx, "docs/p", []byte(`{"a":`)) }, engine.ErrBadPatch, "docs/p"},
		{"patch null", func() error { return r.Patch(ctx, "docs/new", []byte(`null`)) }, engine.ErrBadPatch, "null"},
		{"put a number", func() error { return r.Put(ctx, "docs/p", []byte(`42`)) }, engine.ErrBadPatch, "a number"},
		{"put text", func() error { return r.Put(ctx, "docs/p", []byte(`hello`)) }, engine.ErrBadPatch, "not valid JSON"},
		{"patch over the limit", func() error {
			return r.Patch(ctx, "docs/p", []byte(`{"big":"`+strings.Repeat("x", 300)+`"}`))
		}, engine.ErrValueTooLarge, "limit"},
		{"state over the limit", func() error {
			return r.Patch(ctx, "docs/p", []byte(`{"big":"`+strings.Repeat("x", 200)+`"}`))
		}, engine.ErrValueTooLarge, "limit"},
		{"patch a plain key", func() error { return r.Patch(ctx, "plain", []byte(`{}`)) }, engine.ErrWrongPolicy, "lww"},
		{"patch a counter", func() error { return r.Patch(ctx, "c/n", []byte(`{}`)) }, engine.ErrWrongPolicy, "counter"},
		{"batch put of an array", func() error {
			return r.Batch(ctx, func(b *engine.Batch) error {
				b.Put("docs/q", []byte(`{"ok":1}`))
				b.Put("docs/p", []byte(`[1]`))
				return nil
			})
		}, engine.ErrBadPatch, "an array"},
	} {
		err := tc.do()
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.is, tc.msg)
		}
		if after := state(t, r); after != before {
			t.Fatalf("%s changed the state:\n%s\nvs\n%s", tc.name, after, before)
		}
		for pk, err := range r.Pending() {
			t.Fatalf("%s left a pending change: %v %v", tc.name, pk, err)
		}
	}
	docIs(t, r, "docs/p", `{"name":"A"}`)
	// A batch of documents and a delete.
	err := r.Batch(ctx, func(b *engine.Batch) error {
		b.Put("docs/q", []byte(`{"ok":1}`))
		b.Delete("docs/p")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	docIs(t, r, "docs/q", `{"ok":1}`)
	docIs(t, r, "docs/p", "")
}

// TestJSONDocumentReidentify: a copied directory's unpublished patch
// survives reidentify as state, beside the original's concurrent patch.
func TestJSONDocumentReidentify(t *testing.T) {
	ctx := context.Background()
	b, err := fileremote.New(t.TempDir(), &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	a, err := engine.Init(dirA, "file://x", &engine.Options{Backend: b, Policies: docPolicies(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustPatch(t, a, "docs/p", `{"name":"A","email":"a@x"}`)
	mustSync(t, a)
	mustPatch(t, a, "docs/p", `{"phone":"1"}`)
	a.Close()
	if out, err := exec.Command("cp", "-a", dirA, dirB).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if a, err = engine.Open(dirA, &engine.Options{Backend: b, Policies: docPolicies(t)}); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := engine.Open(dirB, &engine.Options{Backend: b, Policies: docPolicies(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustPatch(t, a, "docs/p", `{"name":"Ann"}`)
	mustPatch(t, c, "docs/p", `{"email":"copy@x"}`)
	mustSync(t, a)
	if _, err := c.Reidentify(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		mustSync(t, c)
		mustSync(t, a)
	}
	want := `{"email":"copy@x","name":"Ann","phone":"1"}`
	docIs(t, a, "docs/p", want)
	docIs(t, c, "docs/p", want)
}

// TestJSONMVDocument: under json-mv, concurrent assignments of one field
// read as a conflict until a patch settles them; different fields merge.
func TestJSONMVDocument(t *testing.T) {
	reg, err := merge.ParsePolicies([]string{"docs/=json-mv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := memremote.New("t")
	a := newReplicaOpts(t, b, engine.Options{Policies: reg})
	c := newReplicaOpts(t, b, engine.Options{Policies: reg})
	mustPatch(t, a, "docs/p", `{"name":"A","email":"a@x"}`)
	mustSync(t, a)
	mustSync(t, c)
	mustPatch(t, a, "docs/p", `{"name":"Ann"}`)
	mustPatch(t, c, "docs/p", `{"name":"Anne","phone":"1"}`)
	mustSync(t, a)
	mustSync(t, c)
	mustSync(t, a)
	for _, r := range []*engine.Engine{a, c} {
		var ce *engine.ConflictError
		if _, err := r.Get("docs/p"); !errors.As(err, &ce) || len(ce.Versions) != 2 {
			t.Fatalf("get on %s: %v, want a conflict of 2 versions", r.ID().Short(), err)
		}
	}
	mustPatch(t, c, "docs/p", `{"name":"Anna"}`)
	mustSync(t, c)
	mustSync(t, a)
	docIs(t, a, "docs/p", `{"email":"a@x","name":"Anna","phone":"1"}`)
	docIs(t, c, "docs/p", `{"email":"a@x","name":"Anna","phone":"1"}`)
}

// TestJSONDocumentCountersAndSets: counter and set fields of a document
// through the engine: concurrent increments and adds on two replicas all
// count after the sync; a put of the document read back (another field
// changed) and a batch put keep them; a new replica bootstrapped from a
// pruned snapshot reads the same; a delete clears them.
func TestJSONDocumentCountersAndSets(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplicaOpts(t, b, engine.Options{Policies: docPolicies(t)})
	c := newReplicaOpts(t, b, engine.Options{Policies: docPolicies(t)})
	mustPatch(t, a, "docs/ann", `{"name":"Ann","visits":{"$inc":1},"tags":{"$add":["a","b"]}}`)
	mustSync(t, a)
	mustSync(t, c)
	mustPatch(t, a, "docs/ann", `{"visits":{"$inc":2},"tags":{"$remove":["b"]}}`)
	mustPatch(t, c, "docs/ann", `{"visits":{"$inc":5},"tags":{"$add":["b","c"]}}`)
	// A put of the document c reads, with the name changed: the counter
	// and the set keep c's increment and adds, and a's.
	got, err := c.Get("docs/ann")
	if err != nil || string(got) != `{"name":"Ann","tags":["a","b","c"],"visits":6}` {
		t.Fatalf("c reads %s, %v", got, err)
	}
	if err := c.Put(ctx, "docs/ann", []byte(strings.Replace(string(got), "Ann", "Anna", 1))); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		mustSync(t, a)
		mustSync(t, c)
	}
	want := `{"name":"Anna","tags":["a","b","c"],"visits":8}`
	docIs(t, a, "docs/ann", want)
	docIs(t, c, "docs/ann", want)

	// A batch put sets the counter to a new integer and the set to a new
	// array; a concurrent increment and add survive it.
	if err := a.Batch(ctx, func(bt *engine.Batch) error {
		bt.Put("docs/ann", []byte(`{"name":"Anna","tags":["a","z"],"visits":100}`))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustPatch(t, c, "docs/ann", `{"visits":{"$inc":1},"tags":{"$add":["y"]}}`)
	for range 2 {
		mustSync(t, a)
		mustSync(t, c)
	}
	// c's running total (its 5+1, as for the counter policy) survives the
	// put that saw its 5.
	want = `{"name":"Anna","tags":["a","y","z"],"visits":106}`
	docIs(t, a, "docs/ann", want)
	docIs(t, c, "docs/ann", want)
	mustPatch(t, a, "docs/ann", `{"visits":{"$inc":-6}}`) // still a counter after the batch put
	want = `{"name":"Anna","tags":["a","y","z"],"visits":100}`
	docIs(t, a, "docs/ann", want)

	if _, err := a.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	d := newReplicaOpts(t, b, engine.Options{Policies: docPolicies(t)})
	mustSync(t, d)
	docIs(t, d, "docs/ann", want)
	mustPatch(t, d, "docs/ann", `{"visits":{"$inc":1}}`)
	mustSync(t, d)
	mustSync(t, a)
	docIs(t, a, "docs/ann", `{"name":"Anna","tags":["a","y","z"],"visits":101}`)

	if err := a.Delete(ctx, "docs/ann"); err != nil {
		t.Fatal(err)
	}
	docIs(t, a, "docs/ann", "")
	mustPatch(t, a, "docs/ann", `{"visits":{"$inc":1}}`) // starts from zero again
	docIs(t, a, "docs/ann", `{"visits":1}`)
}

// TestJSONDocumentBadOperations: malformed operations, and operations on a
// field of another kind (found only inside the write's transaction), are
// clear errors that write nothing.
func TestJSONDocumentBadOperations(t *testing.T) {
	ctx := context.Background()
	r := newReplicaOpts(t, memremote.New("t"), engine.Options{Policies: docPolicies(t)})
	mustPatch(t, r, "docs/p", `{"o":{"x":1},"n":3,"c":{"$inc":1},"t":{"$add":["a"]}}`)
	mustSync(t, r)
	before := state(t, r)
	for _, tc := range []struct {
		patch string
		is    error
		msg   string
	}{
		{`{"c":{"$inc":1.5}}`, engine.ErrBadPatch, "$inc takes an integer"},
		{`{"c":{"$inc":"1"}}`, engine.ErrBadPatch, "$inc takes an integer"},
		{`{"t":{"$add":"a"}}`, engine.ErrBadPatch, "$add takes an array of strings"},
		{`{"t":{"$oops":["a"]}}`, engine.ErrBadPatch, `unknown operation "$oops"`},
		{`{"t":{"$add":["a"],"x":1}}`, engine.ErrBadPatch, "must be the only member"},
		{`{"name":"B","o":{"$inc":1}}`, engine.ErrFieldKind, `field "o" is an object, not a counter`},
		{`{"c":{"$add":["a"]}}`, engine.ErrFieldKind, `field "c" is a counter, not a set`},
		{`{"n":{"$inc":1}}`, engine.ErrFieldKind, `field "n" is a value, not a counter`},
	} {
		err := r.Patch(ctx, "docs/p", []byte(tc.patch))
		if !errors.Is(err, tc.is) || !errors.Is(err, engine.ErrBadPatch) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "docs/p") {
			t.Errorf("patch %s: %v, want %v mentioning %q", tc.patch, err, tc.is, tc.msg)
		}
		if after := state(t, r); after != before {
			t.Fatalf("patch %s changed the state:\n%s\nvs\n%s", tc.patch, after, before)
		}
		for pk, err := range r.Pending() {
			t.Fatalf("patch %s left a pending change: %v %v", tc.patch, pk, err)
		}
	}
	// A put is data: "$" names are fields.
	if err := r.Put(ctx, "docs/q", []byte(`{"$ref":"#/x","o":{"$inc":1}}`)); err != nil {
		t.Fatal(err)
	}
	docIs(t, r, "docs/q", `{"$ref":"#/x","o":{"$inc":1}}`)
}

// TestJSONDocumentReidentifyCounters: a copied directory's unpublished
// increments and adds survive reidentify beside the original's, and the
// document's counter field ends where a counter key under the counter
// policy given the same increments does.
func TestJSONDocumentReidentifyCounters(t *testing.T) {
	ctx := context.Background()
	b, err := fileremote.New(t.TempDir(), &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	a, err := engine.Init(dirA, "file://x", &engine.Options{Backend: b, Policies: docPolicies(t)})
	if err != nil {
		t.Fatal(err)
	}
	inc := func(r *engine.Engine, n int64, member string) {
		t.Helper()
		mustPatch(t, r, "docs/p", fmt.Sprintf(`{"v":{"$inc":%d},"t":{"$add":[%q]}}`, n, member))
		if _, err := r.CounterAdd(ctx, "c/n", n); err != nil {
			t.Fatal(err)
		}
	}
	inc(a, 1, "a")
	mustSync(t, a)
	inc(a, 10, "b") // unpublished, copied
	a.Close()
	if out, err := exec.Command("cp", "-a", dirA, dirB).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if a, err = engine.Open(dirA, &engine.Options{Backend: b, Policies: docPolicies(t)}); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	c, err := engine.Open(dirB, &engine.Options{Backend: b, Policies: docPolicies(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inc(a, 100, "x")
	inc(c, 1000, "y")
	mustSync(t, a)
	if _, err := c.Reidentify(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		mustSync(t, c)
		mustSync(t, a)
	}
	// The counter policy reads 1122 here: the original's running total
	// (1+10+100) plus the copy's, moved to its new id (1+10+1000): the
	// copied unpublished 10 counts in both directories, and so does the
	// published 1, which the moved running total carries
	// (CounterState.Reidentify's rule).
	n, err := a.Get("c/n")
	if err != nil || string(n) != "1122" {
		t.Fatalf("counter policy: %s, %v", n, err)
	}
	want := `{"t":["a","b","x","y"],"v":` + string(n) + `}`
	docIs(t, a, "docs/p", want)
	docIs(t, c, "docs/p", want)
}

// TestJSONMVCounterConflict: under json-mv, a counter on one replica and a
// plain value on another read as a conflict; an increment settles it.
func TestJSONMVCounterConflict(t *testing.T) {
	reg, err := merge.ParsePolicies([]string{"docs/=json-mv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := memremote.New("t")
	a := newReplicaOpts(t, b, engine.Options{Policies: reg})
	c := newReplicaOpts(t, b, engine.Options{Policies: reg})
	mustPatch(t, a, "docs/p", `{"v":{"$inc":1}}`)
	mustSync(t, a)
	mustSync(t, c)
	mustPatch(t, a, "docs/p", `{"v":{"$inc":1}}`)
	mustPatch(t, c, "docs/p", `{"v":"many"}`)
	mustSync(t, a)
	mustSync(t, c)
	mustSync(t, a)
	var ce *engine.ConflictError
	if _, err := a.Get("docs/p"); !errors.As(err, &ce) {
		t.Fatalf("get: %v, want a conflict", err)
	}
	// A $counter, which assigns the field whatever it holds, settles it.
	mustPatch(t, a, "docs/p", `{"v":{"$counter":7}}`)
	mustSync(t, a)
	mustSync(t, c)
	docIs(t, a, "docs/p", `{"v":7}`)
	docIs(t, c, "docs/p", `{"v":7}`)
}
