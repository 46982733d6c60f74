package remote_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// The probe passing on memremote, fileremote and S3 is the conformance
// suite's ProbeConditional test (remote/remotetest).

// objects lists every object of b.
func objects(t *testing.T, b remote.Backend) []string {
	t.Helper()
	var keys []string
	for info, err := range b.List(t.Context(), "", "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

// ignoring returns a memory store behind a server that ignores the given
// conditions.
func ignoring(ifNoneMatch, ifMatch bool) (*memremote.Backend, remote.Backend) {
	inner := memremote.New("probe")
	return inner, faultremote.New(inner, rand.New(rand.NewPCG(1, 2)), faultremote.Options{
		IgnoreIfNoneMatch: ifNoneMatch, IgnoreIfMatch: ifMatch,
	})
}

func TestProbeConditionalRefusesIgnoringServers(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		ifNoneMatch, ifMatch bool
		want, notWant        string
	}{
		{"IfNoneMatch", true, false, "ignores If-None-Match", "If-Match:"},
		{"IfMatch", false, true, "ignores If-Match", "If-None-Match:"},
		{"Both", true, true, "ignores If-None-Match", "If-Match:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, b := ignoring(tc.ifNoneMatch, tc.ifMatch)
			err := remote.ProbeConditional(t.Context(), b)
			if !errors.Is(err, remote.ErrNoConditionalWrites) {
				t.Fatalf("ProbeConditional on a server that ignores %s = %v, want ErrNoConditionalWrites", tc.name, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, tc.notWant) ||
				!strings.Contains(msg, b.String()) {
				t.Errorf("message %q: want it to name the store and say %q (and not %q)", msg, tc.want, tc.notWant)
			}
			if errors.Is(err, remote.ErrTransient) {
				t.Errorf("a verdict wraps ErrTransient: %v", err)
			}
			if left := objects(t, inner); len(left) != 0 {
				t.Errorf("the probe left %q behind", left)
			}
			// A verdict is given at once: nothing to retry.
			if c := inner.Stats().Snapshot(); c.Put > 4 {
				t.Errorf("%d puts for a verdict", c.Put)
			}
		})
	}
	// The same wrapper honouring both conditions passes.
	_, b := ignoring(false, false)
	if err := remote.ProbeConditional(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

func TestProbeConditionalCost(t *testing.T) {
	b := memremote.New("cost")
	if err := remote.ProbeConditional(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if c := b.Stats().Snapshot(); c.Put != 4 || c.Delete != 1 || c.Get != 0 || c.List != 0 {
		t.Errorf("the probe made %+v, want 4 puts and 1 delete", c)
	}
	if left := objects(t, b); len(left) != 0 {
		t.Errorf("the probe left %q behind", left)
	}
}

// scripted passes calls to a memory store, and lets a test answer any
// conditional write (numbered from 1 in call order) itself.
type scripted struct {
	*memremote.Backend
	mu    sync.Mutex
	n     int
	keys  []string // key of each conditional write
	calls []string // "put-if-absent" or "put-if-match", in order
	// answer decides call n: pass false means "do not perform it"; a
	// non-nil err replaces the call's result (after performing it, when
	// pass is true: an ambiguous write).
	answer func(n int, op, key string) (pass bool, err error)
}

func newScripted(answer func(n int, op, key string) (bool, error)) *scripted {
	return &scripted{Backend: memremote.New("scripted"), answer: answer}
}

func (s *scripted) next(op, key string) (bool, error) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.keys = append(s.keys, key)
	s.calls = append(s.calls, op)
	s.mu.Unlock()
	return s.answer(n, op, key)
}

func (s *scripted) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	pass, err := s.next("put-if-absent", key)
	var etag string
	var ierr error
	if pass {
		etag, ierr = s.Backend.PutIfAbsent(ctx, key, data)
	}
	if err != nil {
		return "", err
	}
	return etag, ierr
}

func (s *scripted) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	pass, err := s.next("put-if-match", key)
	var tag string
	var ierr error
	if pass {
		tag, ierr = s.Backend.PutIfMatch(ctx, key, data, etag)
	}
	if err != nil {
		return "", err
	}
	return tag, ierr
}

var errFlaky = fmt.Errorf("test: 503 slow down: %w", remote.ErrTransient)

func TestProbeConditionalTransient(t *testing.T) {
	t.Run("AmbiguousCreate", func(t *testing.T) {
		// The first create lands but answers a transient error: the probe
		// starts again on a fresh key (the same key would look taken) and
		// cleans up both.
		b := newScripted(func(n int, op, key string) (bool, error) {
			if n == 1 {
				return true, errFlaky
			}
			return true, nil
		})
		if err := remote.ProbeConditional(t.Context(), b); err != nil {
			t.Fatalf("an ambiguous create failed the probe: %v", err)
		}
		if b.keys[0] == b.keys[1] {
			t.Errorf("the retry reused the scratch key %s", b.keys[0])
		}
		if left := objects(t, b); len(left) != 0 {
			t.Errorf("the probe left %q behind", left)
		}
	})
	t.Run("EveryStep", func(t *testing.T) {
		// One transient failure of each step in turn is retried.
		for step := 1; step <= 4; step++ {
			b := newScripted(func(n int, op, key string) (bool, error) {
				if n == step {
					return false, errFlaky
				}
				return true, nil
			})
			if err := remote.ProbeConditional(t.Context(), b); err != nil {
				t.Fatalf("a transient failure of step %d: %v", step, err)
			}
			if left := objects(t, b); len(left) != 0 {
				t.Errorf("step %d: the probe left %q behind", step, left)
			}
		}
	})
	t.Run("GivesUp", func(t *testing.T) {
		b := newScripted(func(n int, op, key string) (bool, error) { return false, errFlaky })
		err := remote.ProbeConditional(t.Context(), b)
		if !errors.Is(err, remote.ErrTransient) || errors.Is(err, remote.ErrNoConditionalWrites) {
			t.Fatalf("always transient: %v, want ErrTransient and no verdict", err)
		}
		if len(b.calls) != remote.ProbeAttempts {
			t.Errorf("%d attempts, want %d", len(b.calls), remote.ProbeAttempts)
		}
	})
	t.Run("TransientSecondCreateIsNoVerdict", func(t *testing.T) {
		// An ambiguous error on the create that must lose is retried,
		// never read as "it overwrote".
		creates := map[string]int{}
		b := newScripted(func(n int, op, key string) (bool, error) {
			if op == "put-if-absent" {
				if creates[key]++; creates[key] == 2 {
					return true, errFlaky
				}
			}
			return true, nil
		})
		err := remote.ProbeConditional(t.Context(), b)
		if !errors.Is(err, remote.ErrTransient) || errors.Is(err, remote.ErrNoConditionalWrites) {
			t.Fatalf("got %v, want ErrTransient and no verdict", err)
		}
	})
}

func TestProbeConditionalOwnETagRefused(t *testing.T) {
	// A swap refused on the object's own ETag is retried (a stray write
	// could explain it) and is a verdict only when every attempt gets it.
	refuse := func(times int) *scripted {
		return newScripted(func(n int, op, key string) (bool, error) {
			if n%4 == 0 && n/4 <= times {
				return false, fmt.Errorf("test: 412: %w", remote.ErrPrecondition)
			}
			return true, nil
		})
	}
	if err := remote.ProbeConditional(t.Context(), refuse(1)); err != nil {
		t.Fatalf("one refused own-ETag swap: %v", err)
	}
	b := refuse(remote.ProbeAttempts)
	err := remote.ProbeConditional(t.Context(), b)
	if !errors.Is(err, remote.ErrNoConditionalWrites) || !strings.Contains(err.Error(), "If-Match") ||
		strings.Contains(err.Error(), "inconclusive") {
		t.Fatalf("own ETag always refused: %v, want the If-Match verdict", err)
	}
	if len(b.calls) != 4*remote.ProbeAttempts {
		t.Errorf("%d conditional writes, want %d", len(b.calls), 4*remote.ProbeAttempts)
	}
}

func TestProbeConditionalOtherErrors(t *testing.T) {
	t.Run("AccessDenied", func(t *testing.T) {
		b := newScripted(func(n int, op, key string) (bool, error) {
			return false, fmt.Errorf("test: 403: %w", remote.ErrAccessDenied)
		})
		err := remote.ProbeConditional(t.Context(), b)
		if !errors.Is(err, remote.ErrAccessDenied) || errors.Is(err, remote.ErrNoConditionalWrites) {
			t.Fatalf("got %v, want ErrAccessDenied and no verdict", err)
		}
		if len(b.calls) != 1 {
			t.Errorf("%d calls, want 1: access denied is not retried", len(b.calls))
		}
	})
	t.Run("WrongKind", func(t *testing.T) {
		// A losing create answered as a lost swap is a driver bug, not
		// evidence of an ignoring server.
		b := newScripted(func(n int, op, key string) (bool, error) {
			if n == 2 {
				return false, fmt.Errorf("test: %w", remote.ErrPrecondition)
			}
			return true, nil
		})
		err := remote.ProbeConditional(t.Context(), b)
		if err == nil || errors.Is(err, remote.ErrNoConditionalWrites) {
			t.Fatalf("got %v, want an error that is no verdict", err)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		b := newScripted(func(n int, op, key string) (bool, error) {
			if n == 4 {
				cancel()
				return false, fmt.Errorf("test: %w", context.Canceled)
			}
			return true, nil
		})
		err := remote.ProbeConditional(ctx, b)
		if !errors.Is(err, context.Canceled) || errors.Is(err, remote.ErrNoConditionalWrites) {
			t.Fatalf("got %v, want context.Canceled and no verdict", err)
		}
		if len(b.calls) != 4 {
			t.Errorf("%d calls after the cancel, want none", len(b.calls)-4)
		}
		if left := objects(t, b); len(left) != 0 {
			t.Errorf("a cancelled probe left %q behind", left)
		}
	})
}
