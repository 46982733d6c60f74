//go:build !linux

package residency

// ReleaseExecutable does nothing outside Linux (returns 0, nil): the
// kernel reclaims the pages under memory pressure there.
func ReleaseExecutable() (int64, error) { return 0, nil }
