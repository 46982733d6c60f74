package cli

import (
	"path/filepath"
	"testing"

	"github.com/ebreplica/ebreplica/internal/cloudtest"
)

// TestInitCloud: init, sync and get through the command line on gs:// and
// az:// against their emulators, as on s3:// (testInitS3).
func TestInitCloud(t *testing.T) {
	t.Run("gs", func(t *testing.T) {
		g := cloudtest.GCSConfig(t)
		_, bucket := g.NewBucket(t)
		cliRoundTrip(t, g.URL(bucket, "some/prefix"))
	})
	t.Run("az", func(t *testing.T) {
		a := cloudtest.AzureConfig(t)
		t.Setenv("AZURE_STORAGE_CONNECTION_STRING", a.ConnectionString())
		_, container := a.NewContainer(t)
		cliRoundTrip(t, a.URL(container, "some/prefix"))
	})
}

func cliRoundTrip(t *testing.T, u string) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	m := decodeOne(t, ok(t, nil, "init", "--json", "--dir", a, "--remote", u).stdout)
	if m["remote"] != u || m["created_store"] != true {
		t.Fatalf("init: %v", m)
	}
	m = decodeOne(t, ok(t, nil, "init", "--json", "--dir", b, "--remote", u).stdout)
	if m["created_store"] != false {
		t.Fatalf("second init: %v", m)
	}
	ok(t, nil, "put", "--dir", a, "k", "from-a")
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	if got := string(ok(t, nil, "get", "--dir", b, "k").stdout); got != "from-a" {
		t.Fatalf("get on b = %q", got)
	}
	ok(t, nil, "compact", "--dir", b, "--prune")
	if rep := decodeOne(t, ok(t, nil, "verify", "--dir", a, "--json").stdout); rep["ok"] != true {
		t.Fatalf("verify: %v", rep)
	}
}
