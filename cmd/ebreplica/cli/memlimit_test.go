package cli

import (
	"math"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// TestSmallProfileMemoryLimit: a command run under the small profile sets
// the runtime's soft memory limit to replica.SmallMemoryLimit; the default
// profile leaves it alone, and so does the small one when $GOMEMLIMIT is
// set (the user's choice wins).
func TestSmallProfileMemoryLimit(t *testing.T) {
	if store.Is32Bit {
		t.Skip("a 32-bit build always runs the small profile")
	}
	t.Setenv(store.LowMemoryEnv, "")
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	dir := filepath.Join(t.TempDir(), "a")
	ok(t, nil, "init", "--dir", dir, "--remote", t.TempDir())

	ok(t, nil, "status", "--dir", dir)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("default profile: memory limit %d, want none", got)
	}
	ok(t, nil, "--low-memory", "status", "--dir", dir)
	if got := debug.SetMemoryLimit(-1); got != replica.SmallMemoryLimit {
		t.Fatalf("small profile: memory limit %d, want %d", got, replica.SmallMemoryLimit)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "100MiB")
	ok(t, nil, "--low-memory", "status", "--dir", dir)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("small profile with $GOMEMLIMIT set: memory limit %d, want it left alone", got)
	}
}
