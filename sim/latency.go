package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultJitter is the jitter of a Latency whose Jitter is 0: a request
// takes from half to one and a half times the mean.
const DefaultJitter = 0.5

// Latency is the request latency model of a fleet run (RunFleet, ebreplica
// sim --latency): every remote request takes Mean × (1 + Jitter × (2u − 1))
// of logical time, u uniform in [0, 1) drawn from the run's seeded source
// in event order. The request takes effect at the store half-way through
// (the first half is the way there, the second the answer's way back): two
// requests sent at once reach the store in the order of their draws, and a
// listing shows the store as it was half a request before its answer
// arrives. Every verb is delayed alike: GET, PUT (conditional or not),
// LIST (each page is one request) and DELETE.
type Latency struct {
	// Mean is the average time a request takes (the round trip).
	Mean time.Duration
	// Jitter is the spread around Mean, as a fraction of it, 0 to 1
	// (DefaultJitter when 0; negative: none).
	Jitter float64
}

func (l Latency) validate() (Latency, error) {
	if l.Jitter == 0 {
		l.Jitter = DefaultJitter
	}
	if l.Mean <= 0 {
		return l, fmt.Errorf("sim: latency %s: want a positive duration", l.Mean)
	}
	if l.Jitter > 1 {
		return l, fmt.Errorf("sim: latency jitter %v: at most 1", l.Jitter)
	}
	return l, nil
}

// draw returns how long a request takes to reach the store and how long
// its answer takes to come back.
func (l Latency) draw(r *rand.Rand) (there, back time.Duration) {
	d := l.Mean
	if j := max(l.Jitter, 0); j > 0 {
		d = time.Duration(float64(l.Mean) * (1 + j*(2*r.Float64()-1)))
	}
	d = max(d, time.Microsecond)
	there = d / 2
	return there, d - there
}

// clockEvent is something that happens at a logical time; seq breaks ties
// in the order the events were scheduled, so a run is deterministic.
type clockEvent struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type eventHeap []clockEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(clockEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// eventClock is a discrete-event loop on logical time: one goroutine, the
// earliest event first, ties in scheduling order. Nothing sleeps.
type eventClock struct {
	now  time.Duration
	seq  uint64
	heap eventHeap
}

// at schedules fn at logical time t (now, if t is in the past).
func (c *eventClock) at(t time.Duration, fn func()) {
	c.seq++
	heap.Push(&c.heap, clockEvent{at: max(t, c.now), seq: c.seq, fn: fn})
}

// run runs events until none is left or the next one is after until.
func (c *eventClock) run(until time.Duration) {
	for len(c.heap) > 0 && c.heap[0].at <= until {
		e := heap.Pop(&c.heap).(clockEvent)
		c.now = e.at
		e.fn()
	}
}
