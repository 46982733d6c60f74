// Package residency gives back to the kernel the resident pages of this
// process's executable that start-up touched, for the command line's
// small-memory profile.
//
// A Go process's initialisation runs every linked package's init (the
// cloud SDKs', Prometheus', Badger's), parses flags and opens the store:
// code and read-only data of the ebreplica binary (about 6 MiB resident,
// BENCHMARKS.md "Profiles") that a long-running `sync --watch`, `serve` or
// `watch` seldom touches again, yet which
// stays in its resident set (and in VmHWM) until the kernel needs the
// memory. ReleaseExecutable drops those pages from the page tables at
// once; whatever is still needed is faulted in again from the page cache,
// as on first use. Only mappings that cannot hold data of this process's
// own are touched: private, not writable, with no anonymous (copied)
// pages — the binary's text and read-only data. Its writable data and
// every other mapping (the heap, Badger's files) are left alone. And only
// when /proc/self/smaps is seen to describe this address space (one of the
// executable's mappings it lists holds the code running): under qemu-user
// it is the host's, and nothing is released (ErrForeignMaps).
package residency

import "errors"

// ErrForeignMaps is returned, and nothing released, when /proc/self/smaps
// does not describe this process's address space: no executable mapping
// it lists holds this package's own code. qemu-user (7.x) passes the
// host's file through, whose addresses are not the guest's, and an advice
// at them could land on the guest's own data.
var ErrForeignMaps = errors.New("residency: /proc/self/smaps does not describe this address space (run under an emulator?)")
