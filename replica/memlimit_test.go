package replica_test

import (
	"math"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/ebreplica/ebreplica/replica"
)

// TestSoftMemoryLimitOption: the library sets the process's soft memory
// limit only when Options.SoftMemoryLimit asks, on Init and on Open; the
// small profile alone does not.
func TestSoftMemoryLimitOption(t *testing.T) {
	prev := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	dir := filepath.Join(t.TempDir(), "r")
	r, err := replica.Init(dir, "file://"+t.TempDir(), &replica.Options{LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("LowMemory alone set the memory limit to %d", got)
	}
	r, err = replica.Open(dir, &replica.Options{LowMemory: true, SoftMemoryLimit: replica.SmallMemoryLimit})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if got := debug.SetMemoryLimit(-1); got != replica.SmallMemoryLimit {
		t.Fatalf("SoftMemoryLimit: the limit is %d, want %d", got, replica.SmallMemoryLimit)
	}
}
