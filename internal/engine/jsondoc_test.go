package engine_test

import (
	"context"
	"errors"
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
