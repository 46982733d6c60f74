package replica

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// LiveOptions configure Run. Zero values take the defaults.
type LiveOptions struct {
	// Interval is how often Run pulls (DefaultLiveInterval, 5s), each
	// wait jittered by ±20% so that many replicas do not poll in step.
	Interval time.Duration
	// Debounce is how soon after a local write Run pushes: it looks at
	// the outbox this often and pushes whatever is pending, so writes
	// within one Debounce go out in one push (DefaultDebounce, 200ms).
	Debounce time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed round: it
	// starts at MinBackoff (1s), doubles with each failure in a row,
	// jittered, never above MaxBackoff (1m), and resets after a success.
	MinBackoff, MaxBackoff time.Duration
	// Clock is the time source (nil: the wall clock). Tests inject one.
	Clock Clock
	// Jitter returns a number in [0, 1) for the jitter (nil: math/rand/v2).
	Jitter func() float64
	// OnRound, when set, is called after each round from Run's goroutine;
	// it must not block for long (the next round waits for it).
	OnRound func(Round)
}

// Live defaults.
const (
	DefaultLiveInterval = 5 * time.Second
	DefaultDebounce     = 200 * time.Millisecond
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
)

// Clock is what Run reads time from: Now, and a channel that receives
// once d has passed.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Round is one round of Run: a pull (when due), a push (when anything was
// pending), and the error that ended it (nil: success).
type Round struct {
	At   time.Time
	Pull *PullStats
	Push *PushStats
	Err  error
	// Backoff is the wait before the next round after an error (0 after
	// a success).
	Backoff time.Duration
}

// LiveStatus is the state of a running Run, as Status reports it.
type LiveStatus = engine.LiveStatus

func (o LiveOptions) withDefaults() LiveOptions {
	if o.Interval <= 0 {
		o.Interval = DefaultLiveInterval
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Clock == nil {
		o.Clock = wallClock{}
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	return o
}

// ErrRunning: Run was called while another Run of the replica runs.
var ErrRunning = errors.New("replica: already running live")

// live is the state Run shares with Status.
type live struct {
	mu      sync.Mutex
	running bool
	st      LiveStatus
}

func (l *live) status() *LiveStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return nil
	}
	s := l.st
	return &s
}

// Run keeps the replica in sync until ctx is cancelled: it pulls every
// Interval (jittered), pushes within Debounce of a local write, and after
// a failed round waits an exponentially growing, capped, jittered backoff
// before the next round (a pull and a push). Local reads and writes never
// wait for it (a round holds only the sync lock that Push and Pull take).
// Its state (online, last success, last error, errors in a row, backoff,
// lag) is in Status().Live while it runs.
//
// Cancelling ctx stops it: a request in flight is cancelled, and what the
// round had done stays done (a push is staged before it uploads, so an
// interrupted one is finished by the next). Run returns nil then, after
// the round in flight has returned; any other return is ErrRunning.
func (r *Replica) Run(ctx context.Context, o LiveOptions) error {
	o = o.withDefaults()
	r.live.mu.Lock()
	if r.live.running {
		r.live.mu.Unlock()
		return ErrRunning
	}
	r.live.running, r.live.st = true, LiveStatus{Running: true}
	r.live.mu.Unlock()
	defer func() {
		r.live.mu.Lock()
		r.live.running = false
		r.live.mu.Unlock()
	}()

	jitter := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * (0.8 + 0.4*o.Jitter()))
	}
	nextPull := o.Clock.Now() // pull at once
	var backoff time.Duration
	for {
		if ctx.Err() != nil {
			return nil
		}
		now := o.Clock.Now()
		doPull := !now.Before(nextPull)
		doPush := r.e.Store().OutboxLen() > 0
		if doPull || doPush {
			rd := r.round(ctx, doPull, doPush)
			rd.At = now
			if ctx.Err() != nil {
				return nil // stopped mid-round: what was done stays done
			}
			if rd.Err != nil {
				backoff = min(max(2*backoff, o.MinBackoff), o.MaxBackoff)
				rd.Backoff = min(jitter(backoff), o.MaxBackoff)
				nextPull = now.Add(rd.Backoff) // the next round pulls too
			} else {
				backoff = 0
				if doPull {
					nextPull = now.Add(jitter(o.Interval))
				}
			}
			r.record(rd, o.Clock.Now())
			if o.OnRound != nil {
				o.OnRound(rd)
			}
			if rd.Err != nil {
				select {
				case <-ctx.Done():
					return nil
				case <-o.Clock.After(rd.Backoff):
				}
				continue
			}
		}
		wait := min(o.Debounce, max(nextPull.Sub(o.Clock.Now()), 0))
		select {
		case <-ctx.Done():
			return nil
		case <-o.Clock.After(wait):
		}
	}
}

// round pulls (when due), then pushes (when anything is pending).
func (r *Replica) round(ctx context.Context, doPull, doPush bool) Round {
	var rd Round
	if doPull {
		ps, err := r.Pull(ctx)
		rd.Pull = &ps
		if err != nil {
			rd.Err = err
			return rd
		}
		doPush = r.e.Store().OutboxLen() > 0
	}
	if doPush {
		ps, err := r.Push(ctx)
		rd.Push = &ps
		rd.Err = err
	}
	return rd
}

// record updates the state Status reports after round rd ended at now.
func (r *Replica) record(rd Round, now time.Time) {
	r.live.mu.Lock()
	defer r.live.mu.Unlock()
	s := &r.live.st
	s.Rounds++
	s.Backoff = rd.Backoff
	if rd.Err != nil {
		s.Online = false
		s.ErrorsInRow++
		s.Errors++
		s.LastError = rd.Err.Error()
		at := now
		s.LastErrorAt = &at
		if rd.Pull != nil && rd.Pull.Behind > 0 {
			s.Lag = rd.Pull.Behind // what it listed and could not apply
		}
		return
	}
	s.Online, s.ErrorsInRow = true, 0
	at := now
	s.LastSuccess = &at
	if rd.Pull != nil {
		s.Lag = 0 // pulled to the tip it found
	}
}
