package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

// A store whose program uses a library OnConflict policy opens in the
// command line (issue 15: status, get and verify all failed): keys under
// that policy read as their raw versions, writes to them are refused with
// the reason, and everything else works.
func TestLibraryPolicyStore(t *testing.T) {
	t.Parallel()
	longest := merge.NewFunc("myapp/longest", func(key string, a, b merge.Version) (merge.Version, error) {
		if len(b.Value) > len(a.Value) {
			return b, nil
		}
		return a, nil
	})
	remoteURL := "file://" + filepath.ToSlash(t.TempDir())
	dir := filepath.Join(t.TempDir(), "lib")
	reg, err := merge.ParsePolicies([]string{"notes/=myapp/longest"}, map[string]merge.Policy{"myapp/longest": longest})
	if err != nil {
		t.Fatal(err)
	}
	r, err := replica.Init(dir, remoteURL, &replica.Options{Policies: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Put(ctx, "notes/a", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, "plain", []byte("p")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	ok(t, nil, "status", "--dir", dir)
	ok(t, nil, "verify", "--dir", dir)
	if got := ok(t, nil, "get", "--dir", dir, "plain").out(); got != "p" {
		t.Errorf("get plain = %q", got)
	}
	if got := ok(t, nil, "get", "--dir", dir, "notes/a").out(); !strings.Contains(got, `"hello"`) {
		t.Errorf("get notes/a = %q, want its raw versions", got)
	}
	ok(t, nil, "put", "--dir", dir, "other", "x")
	snapshot := func() string {
		return ok(t, nil, "len", "--dir", dir).out() + ok(t, nil, "pending", "--dir", dir).out()
	}
	before := snapshot()
	failsWith(t, ExitError, nil, []string{"put", "--dir", dir, "notes/a", "x"}, `policy "myapp/longest"`, "library")
	failsWith(t, ExitError, nil, []string{"del", "--dir", dir, "notes/b"}, `policy "myapp/longest"`)
	failsWith(t, ExitError, []byte(`{"key":"notes/c","value":"x"}`+"\n"), []string{"import", "--dir", dir}, "line 1", `policy "myapp/longest"`)
	// export writes the other keys, then says which it left out.
	if r := cli(t, nil, "export", "--dir", dir); r.code != ExitError || strings.Count(r.out(), "\n") != 2 ||
		!strings.Contains(r.stderr, `left out 1 keys under library policies`) {
		t.Errorf("export: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if after := snapshot(); after != before {
		t.Errorf("a refused write changed the replica")
	}
	ok(t, nil, "sync", "--dir", dir)
}
