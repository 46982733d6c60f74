package residency

import (
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
// running code and collecting garbage.
func TestReleaseExecutable(t *testing.T) {
	probe[0] = 42
	before, err := executableMappings()
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
