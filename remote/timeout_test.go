package remote_test

import (
	"context"
	"errors"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// stalled is a backend whose calls block where no context reaches (a
// stalled network filesystem) until released.
type stalled struct {
	remote.Backend
	release chan struct{}
}

func (s stalled) Get(ctx context.Context, key string) (remote.Object, error) {
	<-s.release
	return s.Backend.Get(ctx, key)
}

func (s stalled) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	<-s.release
	return s.Backend.PutIfAbsent(ctx, key, data)
}

func (s stalled) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		<-s.release
		for info, err := range s.Backend.List(ctx, prefix, startAfter) {
			if !yield(info, err) {
				return
			}
		}
	}
}

// TestWithTimeout: a call that never returns fails at the limit with an
// error that is ErrTimeout, ErrTransient and DeadlineExceeded and names the
// backend, the operation and the key; a cancelled caller gets its own
// error; a call that answers in time is unchanged.
func TestWithTimeout(t *testing.T) {
	ctx := context.Background()
	inner := memremote.New("stall")
	if _, err := inner.Put(ctx, "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s := stalled{Backend: inner, release: make(chan struct{})}
	defer close(s.release)
	b := remote.WithTimeout(s, 20*time.Millisecond)
	check := func(what string, err error, key string) {
		t.Helper()
		if !errors.Is(err, remote.ErrTimeout) || !errors.Is(err, remote.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v", what, err)
		}
		if msg := err.Error(); !strings.Contains(msg, inner.String()) || !strings.Contains(msg, key) || !strings.Contains(msg, "no answer within 20ms") {
			t.Fatalf("%s: message %q does not name the backend and key", what, msg)
		}
	}
	_, err := b.Get(ctx, "a")
	check("Get", err, "GET a")
	_, err = b.PutIfAbsent(ctx, "b", []byte("y"))
	check("PutIfAbsent", err, "PUT b")
	for _, err := range b.List(ctx, "", "") {
		check("List", err, "LIST")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Get(cctx, "a"); !errors.Is(err, context.Canceled) || errors.Is(err, remote.ErrTimeout) {
		t.Fatalf("cancelled Get: %v", err)
	}
	quick := remote.WithTimeout(inner, time.Minute)
	if obj, err := quick.Get(ctx, "a"); err != nil || string(obj.Data) != "x" {
		t.Fatalf("Get in time: %q %v", obj.Data, err)
	}
	var n int
	for _, err := range quick.List(ctx, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 || quick.String() != inner.String() || quick.Stats() != inner.Stats() {
		t.Fatalf("listing in time: %d items", n)
	}
	if remote.WithTimeout(inner, -1) != remote.Backend(inner) {
		t.Fatal("a negative limit wraps")
	}
}
