// Package stats has the order statistics the benchmarks and measurement
// harnesses report (BENCHMARKS.md gives min and median of each figure).
package stats

import "slices"

// Number is what Median takes: counts, durations, rates.
type Number interface {
	~int | ~int64 | ~float64
}

// Median is the middle value of x, or the mean of the two middle values
// when len(x) is even; 0 for an empty x. x is left as it was.
func Median[T Number](x []T) T {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
