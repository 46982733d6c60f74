package procstat

import (
	"runtime"
	"testing"
)

// TestSelf: on Linux every figure is read, the peak is at least the
// resident set, and the resident set is its anonymous and file parts (and
// shared memory, hence at least their sum).
func TestSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/status is Linux's")
	}
	hwm, rss, anon, file, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || anon <= 0 || file <= 0 || hwm < rss || rss < anon+file {
		t.Fatalf("VmHWM %d, VmRSS %d, RssAnon %d, RssFile %d KiB: inconsistent", hwm, rss, anon, file)
	}
}
