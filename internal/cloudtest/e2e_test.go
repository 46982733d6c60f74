package cloudtest_test

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"github.com/ebreplica/ebreplica/internal/cloudtest"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/azremote"
	"github.com/ebreplica/ebreplica/replica"
)

// clearAzureEnv unsets, for t, every variable azremote.Open reads.
func clearAzureEnv(t *testing.T) {
	for _, v := range []string{azremote.EnvConnectionString, azremote.EnvAccount, azremote.EnvKey, azremote.EnvSASToken} {
		t.Setenv(v, "")
	}
}

// TestEndToEndCloud: two replicas bound to the same gs:// or az:// store on
// the emulators through their URLs (opened by remoteurl.Open, the replica's
// default) sync
// with concurrent writes, one compacts and prunes the log, and a third
// bootstraps from the snapshot; all three converge.
func TestEndToEndCloud(t *testing.T) {
	t.Run("gcs", func(t *testing.T) {
		srv := cloudtest.GCSConfig(t)
		_, bucket := srv.NewBucket(t)
		testEndToEnd(t, srv.URL(bucket, "stores/e2e"))
	})
	t.Run("azure", func(t *testing.T) {
		srv := cloudtest.AzureConfig(t)
		_, container := srv.NewContainer(t)
		clearAzureEnv(t)
		t.Setenv(azremote.EnvConnectionString, srv.ConnectionString())
		testEndToEnd(t, "az://"+container+"/stores/e2e")
	})
}

func testEndToEnd(t *testing.T, url string) {
	ctx := t.Context()
	newReplica := func(name string, o *replica.Options) *replica.Replica {
		t.Helper()
		r, err := replica.Init(filepath.Join(t.TempDir(), name), url, o)
		if err != nil {
			t.Fatalf("Init %s on %s: %v", name, url, err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	sync := func(rs ...*replica.Replica) {
		t.Helper()
		for _, r := range rs {
			if _, err := r.Sync(ctx); err != nil {
				t.Fatalf("Sync: %v", err)
			}
		}
	}
	a, b := newReplica("a", nil), newReplica("b", nil)
	if created, err := a.Connect(ctx); err != nil || !created {
		t.Fatalf("first Connect = %v, %v; want the store created", created, err)
	}
	if created, err := b.Connect(ctx); err != nil || created {
		t.Fatalf("second Connect = %v, %v; want the store adopted", created, err)
	}
	for round := range 5 {
		for i, r := range []*replica.Replica{a, b} {
			for k := range 6 {
				key := fmt.Sprintf("k%02d", (round*7+k*3+i)%15)
				if err := r.Put(ctx, key, fmt.Appendf(nil, "r%d-%d-%d", i, round, k)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Put(ctx, "shared", fmt.Appendf(nil, "r%d-%d", i, round)); err != nil {
				t.Fatal(err)
			}
		}
		sync(a, b)
	}
	if err := a.Delete(ctx, "k00"); err != nil && !errors.Is(err, replica.ErrNotFound) {
		t.Fatal(err)
	}
	sync(a, b, a)
	want := contents(t, a)
	if got := contents(t, b); !maps.Equal(got, want) {
		t.Fatalf("b diverged from a:\n%v\nvs\n%v", got, want)
	}
	if v, err := a.Versions("shared"); err != nil || len(v) < 1 {
		t.Fatalf("Versions(shared) = %v, %v", v, err)
	}

	be, err := a.Backend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logBefore := count(t, be, remote.LogPrefix)
	cs, err := a.Compact(ctx, replica.CompactOptions{Prune: true, Grace: -1})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if cs.Parts < 1 || cs.Pruned < 1 || cs.Records < int64(len(want)) {
		t.Fatalf("Compact = %+v, want a snapshot of at least %d records and a pruned log", cs, len(want))
	}
	if n := count(t, be, remote.LogPrefix); n >= logBefore {
		t.Fatalf("the log has %d segments after pruning, %d before", n, logBefore)
	}
	if count(t, be, remote.SnapPrefix) < 2 {
		t.Fatal("no snapshot in the store after Compact")
	}

	// A write after the snapshot, then a new replica bootstraps from it.
	if err := b.Put(ctx, "after", []byte("snapshot")); err != nil {
		t.Fatal(err)
	}
	sync(b)
	bootstrapped := false
	c := newReplica("c", &replica.Options{Progress: func(stage string, _, _ int64) {
		if stage == "bootstrap" {
			bootstrapped = true
		}
	}})
	sync(c, a, b, c)
	if !bootstrapped {
		t.Error("the new replica did not bootstrap from the snapshot")
	}
	want = contents(t, a)
	if want["after"] != "snapshot" {
		t.Fatalf("a did not get the write after the snapshot: %v", want)
	}
	for name, r := range map[string]*replica.Replica{"b": b, "c": c} {
		if got := contents(t, r); !maps.Equal(got, want) {
			t.Fatalf("%s diverged from a:\n%v\nvs\n%v", name, got, want)
		}
	}
	rep, err := c.Verify(ctx, replica.VerifyOptions{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("Verify: ok %v, problems %+v", rep.OK, rep.Problems)
	}
}

// contents returns every live key of r with the value its policy reads.
func contents(t *testing.T, r *replica.Replica) map[string]string {
	t.Helper()
	m := map[string]string{}
	for it, err := range r.Scan("") {
		if err != nil {
			t.Fatal(err)
		}
		m[it.Key] = string(it.Value)
	}
	return m
}

// count returns the number of objects under prefix.
func count(t *testing.T, b remote.Backend, prefix string) int {
	t.Helper()
	n := 0
	for _, err := range b.List(t.Context(), prefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
