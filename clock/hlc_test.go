package clock_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"pgregory.net/rapid"
)

// base is an arbitrary fixed instant; tests never read the real clock.
var base = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// fakeWall is an injected wall clock, safe for concurrent use.
type fakeWall struct{ ns atomic.Int64 }

func newFakeWall(t time.Time) *fakeWall {
	w := &fakeWall{}
	w.ns.Store(t.UnixNano())
	return w
}

func (w *fakeWall) Now() time.Time          { return time.Unix(0, w.ns.Load()).UTC() }
func (w *fakeWall) Set(t time.Time)         { w.ns.Store(t.UnixNano()) }
func (w *fakeWall) Advance(d time.Duration) { w.ns.Add(int64(d)) }
func wallHLC(t time.Time) clock.HLC         { return clock.MakeHLC(t.UnixMilli(), 0) }
func limitHLC(t time.Time, drift time.Duration) clock.HLC {
	return clock.MakeHLC(t.Add(drift).UnixMilli(), 1<<16-1)
}

// hlcModel is the naive model of a Clock: the highest timestamp issued or
// observed (as capped), and the skew statistics.
type hlcModel struct {
	wall   *fakeWall
	drift  time.Duration
	c      *clock.Clock
	last   clock.HLC
	capped uint64
	skew   time.Duration
}

// TestClockStateMachine drives a Clock with an injected wall clock through
// random backward and forward jumps, Now and Observe calls, and checks it
// against hlcModel after every step.
func TestClockStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &hlcModel{wall: newFakeWall(base)}
		driftMs := rapid.SampledFrom([]int64{0, 1, 1000, 60_000}).Draw(t, "max drift ms")
		m.drift = time.Duration(driftMs) * time.Millisecond
		if driftMs == 0 {
			m.drift = clock.DefaultMaxDrift
		}
		// The persisted last timestamp may be behind or ahead of the wall clock.
		m.last = clock.MakeHLC(base.UnixMilli()+rapid.Int64Range(-5, 5).Draw(t, "last ms"), rapid.Uint16().Draw(t, "last logical"))
		if rapid.Bool().Draw(t, "fresh") {
			m.last = 0
		}
		m.c = clock.NewClock(m.wall.Now, m.last, time.Duration(driftMs)*time.Millisecond)

		t.Repeat(map[string]func(*rapid.T){
			"jump": func(t *rapid.T) {
				ms := rapid.OneOf(
					rapid.Int64Range(-3, 3),
					rapid.Int64Range(-3*3600_000, 3*3600_000),
				).Draw(t, "jump ms")
				ns := rapid.Int64Range(0, 999_999).Draw(t, "jump ns")
				m.wall.Advance(time.Duration(ms)*time.Millisecond + time.Duration(ns))
			},
			"now": func(t *rapid.T) {
				now := m.wall.Now()
				h := m.c.Now()
				last := m.last
				if last > limitHLC(now, clock.FarAhead) {
					// Far ahead of the wall clock (it was set back by more
					// than FarAhead): the clock comes back to the cap.
					last = limitHLC(now, m.drift)
				} else if h <= m.last {
					t.Fatalf("Now() = %v, not after %v (wall %v)", h, m.last, now)
				}
				// Kulkarni's rule: the wall time when it is ahead, else one tick
				// more. So the clock never runs ahead of what it must.
				if want := max(last+1, wallHLC(now)); h != want {
					t.Fatalf("Now() = %v, want %v (last %v, wall %v)", h, want, m.last, now)
				}
				m.last = h
			},
			"observe": func(t *rapid.T) {
				now := m.wall.Now()
				var remote clock.HLC
				switch rapid.IntRange(0, 3).Draw(t, "remote kind") {
				case 0: // within about twice the drift either way
					span := 2 * m.drift.Milliseconds()
					ms := now.UnixMilli() + rapid.Int64Range(-span, span).Draw(t, "remote offset ms")
					remote = clock.MakeHLC(ms, rapid.Uint16().Draw(t, "remote logical"))
				case 1: // exactly at the cap, or one tick past it
					remote = limitHLC(now, m.drift) + clock.HLC(rapid.IntRange(0, 1).Draw(t, "past"))
				case 2: // close to the local clock
					remote = m.last + clock.HLC(rapid.Int64Range(-3, 3).Draw(t, "ticks from last"))
				case 3: // absurd
					remote = rapid.SampledFrom([]clock.HLC{0, 1, clock.MakeHLC(1<<48-1, 1<<16-1)}).Draw(t, "absurd")
				}
				limit := limitHLC(now, m.drift)
				capped := m.c.Observe(remote)
				if want := remote > limit; capped != want {
					t.Fatalf("Observe(%v) capped = %v, want %v (wall %v, limit %v)", remote, capped, want, now, limit)
				}
				if capped {
					m.capped++
				}
				if skew := remote.Time().Sub(now); skew > m.skew {
					m.skew = skew
				}
				m.last = max(m.last, min(remote, limit))
				if !capped && m.c.Last() < remote {
					t.Fatalf("Observe(%v) within drift left the clock at %v", remote, m.c.Last())
				}
			},
			"": func(t *rapid.T) {
				if got := m.c.Last(); got != m.last {
					t.Fatalf("Last() = %v, model %v", got, m.last)
				}
				capped, skew := m.c.SkewStats()
				if capped != m.capped || skew != m.skew {
					t.Fatalf("SkewStats() = %d, %v; model %d, %v", capped, skew, m.capped, m.skew)
				}
			},
		})
	})
}

func TestObserveThenNowIsAfterRemote(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		wall := newFakeWall(base.Add(time.Duration(rapid.Int64Range(0, 1e9).Draw(t, "wall ns"))))
		c := clock.NewClock(wall.Now, 0, 0)
		for range rapid.IntRange(0, 3).Draw(t, "warm up") {
			c.Now()
		}
		off := time.Duration(rapid.Int64Range(-int64(2*clock.DefaultMaxDrift), int64(clock.DefaultMaxDrift)-int64(time.Millisecond)).Draw(t, "offset"))
		remote := clock.MakeHLC(wall.Now().Add(off).UnixMilli(), rapid.Uint16().Draw(t, "logical"))
		if c.Observe(remote) {
			t.Fatalf("Observe(%v) within MaxDrift was capped", remote)
		}
		if h := c.Now(); h <= remote {
			t.Fatalf("Now() = %v after observing %v", h, remote)
		}
		if n, _ := c.SkewStats(); n != 0 {
			t.Fatalf("%d capped observations", n)
		}
	})
}

func TestObserveFarAheadIsCappedAndCounted(t *testing.T) {
	wall := newFakeWall(base)
	c := clock.NewClock(wall.Now, 0, time.Hour)
	before := c.Now()
	remote := clock.MakeHLC(base.Add(5*time.Hour).UnixMilli(), 7)
	if !c.Observe(remote) {
		t.Fatalf("a timestamp 5h ahead was not capped")
	}
	if got, limit := c.Last(), limitHLC(base, time.Hour); got > limit || got <= before {
		t.Fatalf("Last() = %v, want in (%v, %v]", got, before, limit)
	}
	if n, skew := c.SkewStats(); n != 1 || skew != 5*time.Hour {
		t.Fatalf("SkewStats() = %d, %v; want 1, 5h", n, skew)
	}
	// Still strictly monotonic, and a second far-ahead observation is counted.
	prev := c.Last()
	for range 3 {
		h := c.Now()
		if h <= prev {
			t.Fatalf("Now() = %v after %v", h, prev)
		}
		prev = h
	}
	if !c.Observe(remote + 1) {
		t.Fatalf("second far-ahead timestamp not capped")
	}
	if n, _ := c.SkewStats(); n != 2 {
		t.Fatalf("capped count %d, want 2", n)
	}
	// Once the wall clock catches up, the same timestamp is merely observed.
	wall.Set(base.Add(4*time.Hour + 30*time.Minute))
	if c.Observe(remote) {
		t.Fatalf("remote within MaxDrift of the new wall time was capped")
	}
	if h := c.Now(); h <= remote {
		t.Fatalf("Now() = %v, not after %v", h, remote)
	}
}

func TestDefaultMaxDrift(t *testing.T) {
	for _, drift := range []time.Duration{0, -time.Second} {
		wall := newFakeWall(base)
		c := clock.NewClock(wall.Now, 0, drift)
		if c.Observe(clock.MakeHLC(base.Add(clock.DefaultMaxDrift-time.Minute).UnixMilli(), 0)) {
			t.Fatalf("drift %v: capped within the default MaxDrift", drift)
		}
		if !c.Observe(clock.MakeHLC(base.Add(clock.DefaultMaxDrift+time.Minute).UnixMilli(), 0)) {
			t.Fatalf("drift %v: not capped beyond the default MaxDrift", drift)
		}
	}
}

func TestLogicalOverflowCarries(t *testing.T) {
	wall := newFakeWall(base) // frozen
	ms := base.UnixMilli()
	c := clock.NewClock(wall.Now, 0, 0)
	prev := clock.HLC(0)
	const n = 1<<16 + 10
	for i := range n {
		h := c.Now()
		if h <= prev {
			t.Fatalf("call %d: Now() = %v after %v", i, h, prev)
		}
		// Call i (from 0) is tick i after the wall time: logical i within
		// the frozen millisecond, then it carries into the next one.
		if want := clock.MakeHLC(ms+int64(i>>16), uint16(i)); h != want {
			t.Fatalf("call %d: Now() = %v (%d, %d), want %v", i, h, h.Physical(), h.Logical(), want)
		}
		prev = h
	}
	if prev.Physical() != ms+1 {
		t.Fatalf("after %d calls the physical part is %d, want %d", n, prev.Physical(), ms+1)
	}
	// A persisted last at the top of a millisecond carries too.
	c = clock.NewClock(wall.Now, clock.MakeHLC(ms, 1<<16-1), 0)
	if h, want := c.Now(), clock.MakeHLC(ms+1, 0); h != want {
		t.Fatalf("Now() = %v, want %v", h, want)
	}
}

func TestNowConcurrent(t *testing.T) {
	wall := newFakeWall(base)
	c := clock.NewClock(wall.Now, 0, 0)
	const workers, calls = 4, 500
	out := make([][]clock.HLC, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				switch i % 50 {
				case 0:
					wall.Advance(-3 * time.Millisecond)
				case 25:
					wall.Advance(5 * time.Millisecond)
				case 10:
					c.Observe(clock.MakeHLC(base.Add(time.Duration(i)*time.Millisecond).UnixMilli(), 9))
				}
				out[w] = append(out[w], c.Now())
			}
		}()
	}
	wg.Wait()
	seen := map[clock.HLC]bool{}
	for w, hs := range out {
		for i, h := range hs {
			if i > 0 && h <= hs[i-1] {
				t.Fatalf("worker %d: %v after %v", w, h, hs[i-1])
			}
			if seen[h] {
				t.Fatalf("timestamp %v issued twice", h)
			}
			seen[h] = true
		}
	}
}

func TestHLCParts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := rapid.Int64Range(0, 1<<48-1).Draw(t, "ms")
		l := rapid.Uint16().Draw(t, "logical")
		h := clock.MakeHLC(ms, l)
		if h.Physical() != ms || h.Logical() != l {
			t.Fatalf("MakeHLC(%d, %d) = (%d, %d)", ms, l, h.Physical(), h.Logical())
		}
		if clock.MakeHLC(h.Physical(), h.Logical()) != h {
			t.Fatalf("round trip of %d", uint64(h))
		}
		if h.Time().UnixMilli() != ms || h.Time().Location() != time.UTC {
			t.Fatalf("Time() = %v, want %d ms UTC", h.Time(), ms)
		}
		// Timestamps order as (physical, logical) pairs.
		ms2 := rapid.Int64Range(0, 1<<48-1).Draw(t, "ms2")
		l2 := rapid.Uint16().Draw(t, "logical2")
		h2 := clock.MakeHLC(ms2, l2)
		if want := ms < ms2 || (ms == ms2 && l < l2); (h < h2) != want {
			t.Fatalf("(%d,%d) < (%d,%d) is %v as HLCs", ms, l, ms2, l2, h < h2)
		}
	})
	if h := clock.MakeHLC(-5, 3); h.Physical() != 0 || h.Logical() != 3 {
		t.Fatalf("negative ms: (%d, %d), want (0, 3)", h.Physical(), h.Logical())
	}
	if s := clock.MakeHLC(1_000, 4).String(); s != "1970-01-01T00:00:01.000Z+4" {
		t.Fatalf("String() = %q", s)
	}
}

// NewClock with a nil wall clock reads the real one.
func TestNilWallUsesRealTime(t *testing.T) {
	h := clock.NewClock(nil, 0, 0).Now()
	if d := time.Since(h.Time()); d < -time.Minute || d > time.Minute {
		t.Fatalf("Now() = %v, %v away from the real clock", h, d)
	}
}

// TestNowComesBackFromFarFuture: a wall clock once far in the future (then
// set right) does not keep the HLC there for good.
func TestNowComesBackFromFarFuture(t *testing.T) {
	wall := newFakeWall(base)
	c := clock.NewClock(wall.Now, 0, time.Hour)
	wall.Advance(10 * 365 * 24 * time.Hour) // set ten years ahead
	future := c.Now()
	wall.Advance(-10 * 365 * 24 * time.Hour) // set right
	h := c.Now()
	if h >= future || h > limitHLC(wall.Now(), time.Hour)+1 {
		t.Fatalf("Now() = %v after a far-future %v: want back within MaxDrift of the wall clock", h, future)
	}
	// A clock restarted from the persisted far-future timestamp comes back too.
	c2 := clock.NewClock(wall.Now, future, time.Hour)
	if h2 := c2.Now(); h2 >= future {
		t.Fatalf("restarted Now() = %v, still at %v", h2, future)
	}
	// Within FarAhead ahead, Now stays strictly increasing.
	c3 := clock.NewClock(wall.Now, limitHLC(wall.Now(), clock.FarAhead-time.Hour), time.Hour)
	prev := c3.Last()
	if h3 := c3.Now(); h3 <= prev {
		t.Fatalf("Now() = %v not after %v", h3, prev)
	}
}
