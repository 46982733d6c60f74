package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/store"
)

// TestLowMemoryProfile: status shows the profile in use (text and JSON,
// every earlier field kept); --low-memory (before or after the command)
// and $EBREPLICA_LOW_MEMORY choose the small one, which a 32-bit build
// uses anyway; a small-profile replica syncs a value over Badger's small
// transaction limit with another.
func TestLowMemoryProfile(t *testing.T) {
	t.Setenv(store.LowMemoryEnv, "")
	remoteDir := t.TempDir()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", remoteDir)
	ok(t, nil, "--low-memory", "init", "--dir", b, "--remote", remoteDir)

	def := string(store.ProfileFor(false))
	st := decodeOne(t, ok(t, nil, "status", "--json", "--dir", a).stdout)
	var keys []string
	for k := range st {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"commits", "counter", "cursor", "dir", "durability", "hlc", "keys", "last_pull", "last_push",
		"max_skew_ns", "pending", "profile", "remote", "replica_id", "skew_capped"}
	if !slices.Equal(keys, want) {
		t.Errorf("status --json fields %v, want %v", keys, want)
	}
	if st["profile"] != def {
		t.Errorf("status --json profile %v, want %q", st["profile"], def)
	}
	if got := ok(t, nil, "status", "--dir", a).out(); !strings.Contains(got, "\nprofile     "+def+"\n") {
		t.Errorf("status does not show the profile %q:\n%s", def, got)
	}
	for _, args := range [][]string{
		{"--low-memory", "status", "--json", "--dir", a},
		{"status", "--json", "--low-memory", "--dir", a},
	} {
		if got := decodeOne(t, ok(t, nil, args...).stdout)["profile"]; got != "small" {
			t.Errorf("%q: profile %v", args, got)
		}
	}
	if got := ok(t, nil, "status", "--low-memory", "--dir", a).out(); !strings.Contains(got, "\nprofile     small\n") {
		t.Errorf("status --low-memory:\n%s", got)
	}
	t.Setenv(store.LowMemoryEnv, "1")
	if got := decodeOne(t, ok(t, nil, "status", "--json", "--dir", a).stdout)["profile"]; got != "small" {
		t.Errorf("%s=1: profile %v", store.LowMemoryEnv, got)
	}
	// Small profile on both ends: a 3 MiB value and 2,000 1 KiB values
	// (segments far over the 614 KiB transaction limit) go through.
	big := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 9))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	ok(t, big, "put", "--dir", a, "big")
	var lines bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&lines, `{"key":"k%04d","value":"%s"}`+"\n", i, strings.Repeat("v", 1024))
	}
	ok(t, lines.Bytes(), "import", "--dir", a)
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	if got := ok(t, nil, "get", "--dir", b, "big").stdout; !bytes.Equal(got, big) {
		t.Fatalf("b read %d bytes of big, want %d", len(got), len(big))
	}
	if got := decodeOne(t, ok(t, nil, "len", "--json", "--dir", b).stdout)["keys"]; got != json.Number("2001") {
		t.Fatalf("b holds %v keys, want 2001", got)
	}
}
