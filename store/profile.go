package store

import (
	"math/bits"
	"os"
	"strconv"
	"strings"
)

// Profile names how the Badger engine is sized: its memtables, caches and
// value-log files, so its memory and address space.
type Profile string

const (
	// ProfileDefault is Badger's sizing with a 256 KiB value threshold:
	// 64 MiB memtables (up to 5), a 256 MiB block cache, 1 GiB value-log
	// files. Badger maps each value-log file at twice its size (2 GiB), so
	// it cannot open where the address space is 32 bits.
	ProfileDefault Profile = "default"
	// ProfileSmall is the edge-device profile: two 4 MiB memtables, no
	// block cache, an 8 MiB index cache, two compactors, 64 MiB value-log
	// files (mapped at 128 MiB), values of 64 KiB or more in the value log.
	// Every memory map fits a 32-bit address space, and its resident set is
	// a fraction of the default's (README, BENCHMARKS.md "Profiles").
	ProfileSmall Profile = "small"
)

// Is32Bit reports whether this build's pointers are 32 bits wide
// (linux/arm, linux/386, linux/mips...): the address space a process can
// map is then at most 4 GiB, usually 2 to 3 GiB.
const Is32Bit = bits.UintSize == 32

// LowMemoryEnv is the environment variable that chooses the small profile
// when set to a true value (1, true, yes, on); the CLI reads it, as does
// ProfileFor.
const LowMemoryEnv = "EBREPLICA_LOW_MEMORY"

// LowMemoryFromEnv reports whether $EBREPLICA_LOW_MEMORY asks for the small
// profile: 1, t, true, y, yes or on (any case) do; anything else, or unset,
// does not.
func LowMemoryFromEnv() bool {
	v := strings.TrimSpace(os.Getenv(LowMemoryEnv))
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	switch strings.ToLower(v) {
	case "y", "yes", "on":
		return true
	}
	return false
}

// ProfileFor is the profile an engine opened with lowMemory uses: the small
// one when asked, and always on a 32-bit platform, where the default one's
// value-log map cannot fit.
func ProfileFor(lowMemory bool) Profile {
	if lowMemory || Is32Bit {
		return ProfileSmall
	}
	return ProfileDefault
}

// profiled is an engine that knows its profile (Badger).
type profiled interface {
	Profile() Profile
}

// Profile reports the engine's profile: "default" or "small" for Badger,
// "" for an engine without one (the simulator's map).
func (s *Store) Profile() Profile {
	if p, ok := s.eng.(profiled); ok {
		return p.Profile()
	}
	return ""
}
