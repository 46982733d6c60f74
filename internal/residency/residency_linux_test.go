package residency

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// probe is initialised data of the executable (a writable, file-backed
// mapping): a write to it makes a private copy of its page, which
// releasing that mapping would lose.
var probe = [8]int64{1, 2, 3, 4, 5, 6, 7, 8}

// TestReleaseExecutable: the executable's read-only mappings are found
// and their pages dropped (their resident KiB fall), while its writable
// data keeps what the process wrote to it, and the process goes on
// running code and collecting garbage. Under qemu-user
// (scripts/qemu-test.sh), where /proc/self/smaps is the host's, it is
// refused instead, with nothing changed.
func TestReleaseExecutable(t *testing.T) {
	probe[0] = 42
	before, err := executableMappings()
	if errors.Is(err, ErrForeignMaps) { // a 32-bit guest: the host's addresses do not fit
		t.Logf("%v", err)
		if n, err := ReleaseExecutable(); n != 0 || !errors.Is(err, ErrForeignMaps) || probe[0] != 42 {
			t.Fatalf("ReleaseExecutable = %d KiB, %v (initialised data %v); want it refused with nothing changed", n, err, probe)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var ro, rw int
	var roBefore int64
	for _, m := range before {
		if m.releasable() {
			ro++
			roBefore += m.rssKiB
		}
		if strings.Contains(m.perms, "w") {
			rw++
		}
	}
	if ro == 0 || rw == 0 || roBefore == 0 {
		t.Fatalf("executable mappings %+v: want read-only ones with resident pages and a writable one", before)
	}
	released, err := ReleaseExecutable()
	if errors.Is(err, ErrForeignMaps) {
		// Under qemu-user (scripts/qemu-test.sh): refused, and nothing
		// may have changed.
		t.Logf("%v", err)
		if released != 0 || probe[0] != 42 {
			t.Fatalf("refused, yet released %d KiB (initialised data %v)", released, probe)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if released < roBefore/2 {
		t.Errorf("released %d KiB, but %d were resident in the read-only mappings", released, roBefore)
	}
	after, err := executableMappings()
	if err != nil {
		t.Fatal(err)
	}
	var roAfter int64
	for _, m := range after {
		if m.releasable() {
			roAfter += m.rssKiB
		}
	}
	if roAfter >= roBefore {
		t.Errorf("read-only mappings' resident KiB: %d before, %d after", roBefore, roAfter)
	}
	if want := [8]int64{42, 2, 3, 4, 5, 6, 7, 8}; probe != want {
		t.Fatalf("initialised data after the release: %v, want %v", probe, want)
	}
	// Code and read-only data come back from the file as they are used.
	runtime.GC()
	s := slices.Sorted(slices.Values([]string{"c", "a", "b"}))
	if strings.Join(s, "") != "abc" {
		t.Fatalf("sorted %q", s)
	}
}

// TestReleasable: only private mappings that are not writable and hold no
// private copies qualify.
func TestReleasable(t *testing.T) {
	for _, c := range []struct {
		m    mapping
		want bool
	}{
		{mapping{perms: "r-xp"}, true},
		{mapping{perms: "r--p"}, true},
		{mapping{perms: "rw-p"}, false},
		{mapping{perms: "r--s"}, false},
		{mapping{perms: "r-xp", anonKiB: 4}, false},
		{mapping{perms: "r-xp", anonKiB: -1}, false}, // no Anonymous: line read
		{mapping{perms: "rwxp"}, false},
	} {
		if got := c.m.releasable(); got != c.want {
			t.Errorf("%+v releasable = %v, want %v", c.m, got, c.want)
		}
	}
}

// TestReleaseRefusesForeignMaps: when no executable mapping read holds the
// code running (the file describes another address space, as the host's
// does under qemu-user), nothing is advised; when one does, every
// releasable mapping is, and only those.
func TestReleaseRefusesForeignMaps(t *testing.T) {
	ms := []mapping{
		{start: 0x400000, end: 0x800000, perms: "r-xp", rssKiB: 100},
		{start: 0x800000, end: 0x900000, perms: "r--p", rssKiB: 50},
		{start: 0x900000, end: 0x940000, perms: "rw-p", rssKiB: 20, anonKiB: 8},
	}
	var advised [][2]uintptr
	advise := func(start, length uintptr) error {
		advised = append(advised, [2]uintptr{start, length})
		return nil
	}
	for _, pc := range []uintptr{0x3fffff, 0x800000, 0x850000, 0x900010} { // outside the text mapping
		if n, err := release(ms, pc, advise); !errors.Is(err, ErrForeignMaps) || n != 0 || len(advised) != 0 {
			t.Fatalf("code at %#x outside every text mapping: released %d KiB, advised %v, err %v; want ErrForeignMaps and nothing", pc, n, advised, err)
		}
	}
	n, err := release(ms, 0x401234, advise)
	if err != nil || n != 150 {
		t.Fatalf("released %d KiB, err %v; want 150", n, err)
	}
	if want := [][2]uintptr{{0x400000, 0x400000}, {0x800000, 0x100000}}; !slices.Equal(advised, want) {
		t.Fatalf("advised %x, want %x", advised, want)
	}
}
