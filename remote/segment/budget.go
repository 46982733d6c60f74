package segment

import (
	"context"
	"fmt"
	"sync"
)

// Budget bounds the memory that concurrent decodes hold together: a
// weighted semaphore counted in bytes, shared by every decode of a process
// (or of a replica). A Decoder with a Budget holds a decode's cost from
// Open until Reader.Close, so eight pulls and a verify fetching at once
// cannot together hold more than the budget.
//
// Waiters are served in order: a large request is not starved by a stream
// of small ones. A request larger than the whole budget waits for the
// budget to be entirely free and then takes all of it (it runs alone rather
// than never). Budget is safe for concurrent use; a nil *Budget is no
// limit.
type Budget struct {
	size int64

	mu      sync.Mutex
	held    int64
	waiters []*budgetWaiter // FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

// NewBudget returns a budget of size bytes (size > 0).
func NewBudget(size int64) *Budget {
	if size <= 0 {
		panic(fmt.Sprintf("segment: NewBudget(%d): size must be positive", size))
	}
	return &Budget{size: size}
}

// Size returns the budget's size in bytes.
func (b *Budget) Size() int64 { return b.size }

// clamp maps a request to what it takes: at most the whole budget.
func (b *Budget) clamp(n int64) int64 { return max(0, min(n, b.size)) }

// Acquire waits until n bytes of the budget are free and takes them, or
// returns an error wrapping ctx.Err() when ctx ends first (taking nothing).
// Every successful Acquire(n) is paired with one Release(n) of the same n.
// On a nil Budget it returns at once.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	if b == nil {
		return nil
	}
	n = b.clamp(n)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("segment: waiting for decode budget: %w", err)
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.held+n <= b.size {
		b.held += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted while ctx ended: give it back
		b.held -= n
	default:
		for i, o := range b.waiters {
			if o == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	b.grant() // a waiter behind this one may fit now
	return fmt.Errorf("segment: waiting for decode budget: %w", ctx.Err())
}

// TryAcquire takes n bytes if they are free now and nobody is waiting, and
// reports whether it did. On a nil Budget it returns true.
func (b *Budget) TryAcquire(n int64) bool {
	if b == nil {
		return true
	}
	n = b.clamp(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) == 0 && b.held+n <= b.size {
		b.held += n
		return true
	}
	return false
}

// Release returns n bytes taken by Acquire or TryAcquire. Releasing more
// than is held panics (a pairing bug).
func (b *Budget) Release(n int64) {
	if b == nil {
		return
	}
	n = b.clamp(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.held {
		panic(fmt.Sprintf("segment: Budget.Release(%d) with %d held", n, b.held))
	}
	b.held -= n
	b.grant()
}

// grant wakes the waiters at the head of the queue that fit; b.mu is held.
func (b *Budget) grant() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.held+w.n > b.size {
			return
		}
		b.held += w.n
		close(w.ready)
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
	}
}

// Held returns the bytes taken now (for status, metrics and tests).
func (b *Budget) Held() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// Waiting returns the number of callers blocked in Acquire.
func (b *Budget) Waiting() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters)
}
