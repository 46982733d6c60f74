package clock

import (
	"fmt"
	"sync"
	"time"
)

// HLC is a hybrid logical clock timestamp (Kulkarni et al. 2014): the high
// 48 bits are physical Unix milliseconds, the low 16 bits a logical counter.
// Timestamps compare as plain integers.
type HLC uint64

const logicalBits = 16
const logicalMask = 1<<logicalBits - 1

// MakeHLC builds a timestamp from physical milliseconds and a logical count.
func MakeHLC(ms int64, logical uint16) HLC {
	if ms < 0 {
		ms = 0
	}
	return HLC(uint64(ms)<<logicalBits | uint64(logical))
}

// Physical returns the physical part in Unix milliseconds.
func (h HLC) Physical() int64 { return int64(uint64(h) >> logicalBits) }

// Logical returns the logical counter.
func (h HLC) Logical() uint16 { return uint16(uint64(h) & logicalMask) }

// Time returns the physical part as a time.Time (UTC).
func (h HLC) Time() time.Time { return time.UnixMilli(h.Physical()).UTC() }

func (h HLC) String() string {
	return fmt.Sprintf("%s+%d", h.Time().Format("2006-01-02T15:04:05.000Z"), h.Logical())
}

// DefaultMaxDrift is how far ahead of local wall time a remote timestamp may
// drag the local clock.
const DefaultMaxDrift = time.Hour

// Clock issues HLC timestamps. It is safe for concurrent use.
//
// Now is strictly increasing across calls, whatever the wall clock does
// (backward jumps included). When the logical counter would overflow, the
// clock borrows the next millisecond. Observe folds in a timestamp seen in
// remote data so later local writes order after it, but never lets it drag
// the clock more than MaxDrift past local wall time: such a timestamp is
// merged anyway (data is never rejected for its clock) and counted, because
// that peer's clock is wrong. Causality never depends on the HLC (version
// vectors decide it), so the cap is safe.
type Clock struct {
	mu       sync.Mutex
	wall     func() time.Time
	maxDrift time.Duration
	last     HLC
	capped   uint64 // observations beyond MaxDrift
	maxSkew  time.Duration
}

// NewClock returns a clock reading wall (time.Now when nil), starting after
// last (the last timestamp issued, persisted by the caller), with the given
// MaxDrift (DefaultMaxDrift when <= 0).
func NewClock(wall func() time.Time, last HLC, maxDrift time.Duration) *Clock {
	if wall == nil {
		wall = time.Now
	}
	if maxDrift <= 0 {
		maxDrift = DefaultMaxDrift
	}
	return &Clock{wall: wall, maxDrift: maxDrift, last: last}
}

// FarAhead is how far ahead of the wall clock the clock may be before Now
// brings it back (see Now).
const FarAhead = 30 * 24 * time.Hour

// Now returns a timestamp greater than every timestamp issued or observed
// (observed ones as capped) before, as long as that one is at most
// FarAhead (30 days) ahead of the wall clock: a wall clock set back by
// hours or days (a wrong time zone, a bad NTP answer) never makes Now go
// back. A clock further ahead was broken — an RTC that booted in 2099,
// set right since — and it comes back to wall time + MaxDrift instead of
// staying in the future for good, where every write of this replica would
// win every lww tie against concurrent writes for years. That is safe:
// version vectors decide causality, so a local write supersedes every
// version it has seen whatever their timestamps; the HLC only orders
// concurrent writes. (Observe never takes the clock past MaxDrift.)
func (c *Clock) Now() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.wall()
	pt := MakeHLC(wall.UnixMilli(), 0)
	if far := MakeHLC(wall.Add(FarAhead).UnixMilli(), logicalMask); c.last > far {
		c.last = MakeHLC(wall.Add(c.maxDrift).UnixMilli(), logicalMask)
	}
	if pt > c.last {
		c.last = pt
	} else {
		c.last++ // a logical overflow carries into the next millisecond
	}
	return c.last
}

// Last returns the highest timestamp issued or observed.
func (c *Clock) Last() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Observe folds a remote timestamp in. It reports whether the timestamp was
// beyond MaxDrift ahead of local wall time (and so was capped).
func (c *Clock) Observe(remote HLC) (capped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.wall()
	limit := MakeHLC(wall.Add(c.maxDrift).UnixMilli(), logicalMask)
	if skew := remote.Time().Sub(wall); skew > c.maxSkew {
		c.maxSkew = skew
	}
	if remote > limit {
		c.capped++
		remote = limit
		capped = true
	}
	if remote > c.last {
		c.last = remote
	}
	return capped
}

// SeedSkewStats restores skew statistics persisted by an earlier process.
func (c *Clock) SeedSkewStats(capped uint64, maxAhead time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capped += capped
	c.maxSkew = max(c.maxSkew, maxAhead)
}

// SkewStats reports how many observed timestamps were capped, and the
// largest amount by which an observed timestamp was ahead of local wall time.
func (c *Clock) SkewStats() (capped uint64, maxAhead time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.capped, c.maxSkew
}
