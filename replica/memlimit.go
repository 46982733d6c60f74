package replica

import "runtime/debug"

// SmallMemoryLimit is the soft memory limit the command line sets under the
// small profile (--low-memory, $EBREPLICA_LOW_MEMORY, 32-bit builds), and a
// value an application on a small device may give Options.SoftMemoryLimit:
// the garbage collector runs harder as the Go heap nears it, which keeps the
// resident set of a long-running sync of 100k keys within 64 MiB
// (BENCHMARKS.md, "Profiles"). It is soft: a process that needs more gets
// more, at the cost of more collection. 24 MiB sits above what a live sync
// keeps live (about 14 MiB: memtables, index cache, a round's records), so
// live rounds cost almost nothing more; a large pull holds more (up to the
// 16 MiB decode budget) and pays in CPU: an initial pull of 100k records
// took about 1.5x the CPU it takes under 48 MiB (its wall time 1.3x).
const SmallMemoryLimit = 24 << 20

// setSoftMemoryLimit sets the runtime's soft memory limit when n > 0.
func setSoftMemoryLimit(n int64) {
	if n > 0 {
		debug.SetMemoryLimit(n)
	}
}
