package remote

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// ErrTimeout: a request got no answer within its time limit (see
// WithTimeout). It wraps ErrTransient and context.DeadlineExceeded too.
var ErrTimeout = errors.New("remote: no answer in time")

// DefaultTimeout is the time limit of one request under WithTimeout when
// none is given: the command line's default.
const DefaultTimeout = 30 * time.Second

// timeoutBackend bounds every call of a Backend.
type timeoutBackend struct {
	b Backend
	d time.Duration
}

var _ Backend = (*timeoutBackend)(nil)

// WithTimeout returns b with every request bounded by d (DefaultTimeout
// when d is 0): a call that has no answer within d returns an error
// wrapping ErrTimeout (and ErrTransient, context.DeadlineExceeded) that
// names the backend, the operation and the key, e.g. "remote: s3://b/p:
// no answer within 5s (GET log/00000000000000000007)". The call's context
// is cancelled at d, which stops an SDK's request and its retries; a call
// blocked where no context reaches (a stalled network filesystem) is left
// behind and the error returned at d all the same — its outcome, if it
// lands later, is ambiguous, as after any lost answer, and the sync
// protocol reads back what it must. A List is bounded per item: d between
// two items (a page each), not for the whole listing. d < 0: no bound.
func WithTimeout(b Backend, d time.Duration) Backend {
	if d == 0 {
		d = DefaultTimeout
	}
	if d < 0 {
		return b
	}
	return &timeoutBackend{b: b, d: d}
}

func (t *timeoutBackend) Stats() *Stats   { return t.b.Stats() }
func (t *timeoutBackend) String() string  { return t.b.String() }
func (t *timeoutBackend) Unwrap() Backend { return t.b }

func (t *timeoutBackend) timeoutError(op, key string) error {
	return &timeoutError{msg: fmt.Sprintf("%s: no answer within %v (%s %s)", t.b, t.d, op, key)}
}

// timeoutError is ErrTimeout, ErrTransient and context.DeadlineExceeded,
// with a message that names the backend, the operation and the key once.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }

func (e *timeoutError) Is(target error) bool {
	return target == ErrTimeout || target == ErrTransient || target == context.DeadlineExceeded
}

// call runs fn under a context cancelled at d and returns at d whether fn
// has returned or not.
func call[T any](t *timeoutBackend, ctx context.Context, op, key string, fn func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn(cctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			var zero T
			return zero, t.timeoutError(op, key)
		}
		return r.v, r.err
	case <-cctx.Done():
		var zero T
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		return zero, t.timeoutError(op, key)
	}
}

func (t *timeoutBackend) Get(ctx context.Context, key string) (Object, error) {
	return call(t, ctx, "GET", key, func(ctx context.Context) (Object, error) { return t.b.Get(ctx, key) })
}

func (t *timeoutBackend) Put(ctx context.Context, key string, data []byte) (string, error) {
	return call(t, ctx, "PUT", key, func(ctx context.Context) (string, error) { return t.b.Put(ctx, key, data) })
}

func (t *timeoutBackend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	return call(t, ctx, "PUT", key, func(ctx context.Context) (string, error) { return t.b.PutIfAbsent(ctx, key, data) })
}

func (t *timeoutBackend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	return call(t, ctx, "PUT", key, func(ctx context.Context) (string, error) { return t.b.PutIfMatch(ctx, key, data, etag) })
}

func (t *timeoutBackend) Delete(ctx context.Context, key string) error {
	_, err := call(t, ctx, "DELETE", key, func(ctx context.Context) (struct{}, error) { return struct{}{}, t.b.Delete(ctx, key) })
	return err
}

// List pulls the inner listing from a goroutine, d at most per item.
func (t *timeoutBackend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type item struct {
			info Info
			err  error
		}
		items := make(chan item)
		go func() {
			defer close(items)
			for info, err := range t.b.List(cctx, prefix, startAfter) {
				select {
				case items <- item{info, err}:
				case <-cctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
		timer := time.NewTimer(t.d)
		defer timer.Stop()
		for {
			select {
			case it, ok := <-items:
				if !ok {
					return
				}
				if it.err != nil && ctx.Err() == nil && errors.Is(it.err, context.DeadlineExceeded) {
					it.err = t.timeoutError("LIST", prefix)
				}
				if !yield(it.info, it.err) || it.err != nil {
					return
				}
				timer.Reset(t.d)
			case <-timer.C:
				yield(Info{}, t.timeoutError("LIST", prefix))
				return
			case <-ctx.Done():
				yield(Info{}, ctx.Err())
				return
			}
		}
	}
}
