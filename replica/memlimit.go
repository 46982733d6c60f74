package replica

import "runtime/debug"

// SmallMemoryLimit is the soft memory limit the command line sets under the
// small profile (--low-memory, $EBREPLICA_LOW_MEMORY, 32-bit builds), and a
// value an application on a small device may give Options.SoftMemoryLimit:
// the garbage collector runs harder as the heap nears it, which keeps the
// resident set of a long-running sync within what a device of 128 MiB can
// spare (BENCHMARKS.md, "Profiles"). It is soft: a process that needs more
// gets more, at the cost of more collection.
const SmallMemoryLimit = 48 << 20

// setSoftMemoryLimit sets the runtime's soft memory limit when n > 0.
func setSoftMemoryLimit(n int64) {
	if n > 0 {
		debug.SetMemoryLimit(n)
	}
}
