package cli

import (
	"context"
	"fmt"
	"sync"

	"github.com/ebreplica/ebreplica/replica"
)

// roundHub hands the rounds of serve's live syncer to the `sync --watch`
// commands forwarded to it, which print them as a local sync --watch
// prints its own. The syncer never waits: a subscriber that has
// roundBuffer rounds unread misses the next ones (and is told so).
type roundHub struct {
	mu   sync.Mutex
	subs map[*roundSub]struct{}
}

// roundBuffer is how many rounds a subscriber may have unread.
const roundBuffer = 64

type roundSub struct {
	ch     chan replica.Round
	missed int // rounds dropped since the last one taken (under roundHub.mu)
}

// publish gives rd to every subscriber, never blocking.
func (h *roundHub) publish(rd replica.Round) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- rd:
		default:
			s.missed++
		}
	}
}

// subscribe returns a new subscriber; cancel it when done.
func (h *roundHub) subscribe() (*roundSub, func()) {
	s := &roundSub{ch: make(chan replica.Round, roundBuffer)}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*roundSub]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}
}

// takeMissed returns and clears the count of rounds s missed.
func (h *roundHub) takeMissed(s *roundSub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := s.missed
	s.missed = 0
	return n
}

// followRounds is `sync --watch` forwarded to a server whose syncer runs:
// it prints each of the server's rounds as they happen, as a local sync
// --watch prints its own, until ctx ends (exit 0). --interval cannot
// change the server's syncer and is ignored.
func followRounds(ctx context.Context, e *env, h *roundHub) error {
	s, cancel := h.subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case rd := <-s.ch:
			if n := h.takeMissed(s); n > 0 {
				fmt.Fprintf(e.stderr, "ebreplica: sync: %d rounds of the server's syncer not shown (the output was too slow)\n", n)
			}
			if err := printRound(e, rd); err != nil {
				return err
			}
		}
	}
}
