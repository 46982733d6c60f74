package residency

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReleaseExecutable drops the resident pages of the executable's
// read-only mappings (see the package doc) and returns how many KiB were
// resident in them before.
func ReleaseExecutable() (int64, error) {
	ms, err := executableMappings()
	if err != nil {
		return 0, err
	}
	return release(ms, reflect.ValueOf(ReleaseExecutable).Pointer(), func(start, length uintptr) error {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, start, length, unix.MADV_DONTNEED); errno != 0 {
			return errno
		}
		return nil
	})
}

// release advises away the releasable mappings of ms, once one of the
// executable's mappings is seen to hold pc, the address of code running
// now.
func release(ms []mapping, pc uintptr, advise func(start, length uintptr) error) (int64, error) {
	ours := false
	for _, m := range ms {
		ours = ours || (m.perms == "r-xp" && m.start <= pc && pc < m.end)
	}
	if !ours {
		return 0, ErrForeignMaps
	}
	var released int64
	for _, m := range ms {
		if !m.releasable() {
			continue
		}
		if err := advise(m.start, m.end-m.start); err != nil {
			return released, fmt.Errorf("residency: madvise %x-%x: %w", m.start, m.end, err)
		}
		released += m.rssKiB
	}
	return released, nil
}

// mapping is one of /proc/self/smaps's entries for the executable.
type mapping struct {
	start, end uintptr
	perms      string
	rssKiB     int64
	anonKiB    int64
}

// releasable reports whether dropping m's pages loses nothing: private,
// not writable, and no page of it a private copy.
func (m mapping) releasable() bool {
	return len(m.perms) == 4 && m.perms[1] == '-' && m.perms[3] == 'p' && m.anonKiB == 0
}

// executableMappings reads /proc/self/smaps for the mappings of the file
// /proc/self/exe names (by device and inode: its path may have been
// replaced since).
func executableMappings() ([]mapping, error) {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("residency: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("residency: no device and inode for /proc/self/exe")
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	ino := strconv.FormatUint(uint64(st.Ino), 10)
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, fmt.Errorf("residency: %w", err)
	}
	defer f.Close()
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if !strings.HasSuffix(fs[0], ":") { // a mapping's first line: range perms offset dev inode [path]
			cur = nil
			if len(fs) < 5 || fs[3] != dev || fs[4] != ino {
				continue
			}
			lo, hi, ok := strings.Cut(fs[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil || b <= a {
				return nil, fmt.Errorf("residency: /proc/self/smaps: unreadable range %q", fs[0])
			}
			if b-1 > uint64(^uintptr(0)) {
				return nil, ErrForeignMaps // addresses past this process's own (a 32-bit guest under qemu-user)
			}
			out = append(out, mapping{start: uintptr(a), end: uintptr(b), perms: fs[1], anonKiB: -1})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || len(fs) < 2 {
			continue
		}
		switch fs[0] {
		case "Rss:":
			cur.rssKiB, _ = strconv.ParseInt(fs[1], 10, 64)
		case "Anonymous:":
			if v, err := strconv.ParseInt(fs[1], 10, 64); err == nil {
				cur.anonKiB = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("residency: /proc/self/smaps: %w", err)
	}
	return out, nil
}
