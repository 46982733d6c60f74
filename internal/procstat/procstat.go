// Package procstat reads this process's memory figures from
// /proc/self/status (Linux), for the footprint tests and harnesses.
package procstat

import (
	"os"
	"strconv"
	"strings"
)

// Self returns VmHWM (peak resident set), VmRSS, RssAnon (heap and other
// anonymous memory) and RssFile (resident pages of mapped files: the
// binary, Badger's tables and logs), in KiB. A field the kernel does not
// report reads 0.
func Self() (hwm, rss, anon, file int64, err error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		case "RssAnon:":
			anon = v
		case "RssFile:":
			file = v
		}
	}
	return hwm, rss, anon, file, nil
}
