package s3remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
	"github.com/ebreplica/ebreplica/remote/s3remote"
)

// fastRetries keeps test backoff negligible.
func fastRetries(attempts int) *s3remote.Options {
	return &s3remote.Options{MaxAttempts: attempts, MaxBackoff: time.Millisecond, PageSize: 2}
}

// proxied returns a backend on a fresh bucket of the real server whose
// requests pass through a fault-injecting proxy.
func proxied(t *testing.T, opts *s3remote.Options, fault s3test.FaultFunc) (*s3remote.Backend, *s3test.Proxy) {
	t.Helper()
	p := s3test.NewProxy(t, fault)
	_, bucket := s3test.NewBucket(t) // created directly, not through the proxy
	be, err := s3remote.New(p.Client(t), bucket, "retry", opts)
	if err != nil {
		t.Fatal(err)
	}
	return be, p
}

func slowDown(w http.ResponseWriter) {
	s3test.WriteError(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
}

// ops runs every kind of operation once, in order, through be and calls
// check with the error and the number of attempts the proxy saw for it.
func ops(t *testing.T, be *s3remote.Backend, p *s3test.Proxy, check func(op string, attempts int64, err error)) {
	t.Helper()
	ctx := t.Context()
	big := remotetest.Content(1, 1<<20)
	var etag string
	run := func(op string, fn func() error) {
		t.Helper()
		before := p.Requests.Load()
		err := fn()
		check(op, p.Requests.Load()-before, err)
	}
	run("Put", func() (err error) { etag, err = be.Put(ctx, "a", big); return err })
	if etag == "" {
		etag = `"0123456789abcdef0123456789abcdef"` // Put failed: any ETag will do
	}
	run("Get", func() error {
		obj, err := be.Get(ctx, "a")
		if err == nil && !bytes.Equal(obj.Data, big) {
			return fmt.Errorf("Get returned %d bytes, want the %d put", len(obj.Data), len(big))
		}
		return err
	})
	run("PutIfAbsent", func() error { _, err := be.PutIfAbsent(ctx, "b", []byte("b")); return err })
	run("PutIfMatch", func() error { _, err := be.PutIfMatch(ctx, "a", []byte("a2"), etag); return err })
	run("List page 1", func() error {
		// PageSize 2 and 2 objects: one page, then stop.
		n := 0
		for _, err := range be.List(ctx, "", "") {
			if err != nil {
				return err
			}
			n++
		}
		if n != 2 {
			return fmt.Errorf("listed %d objects, want 2", n)
		}
		return nil
	})
	run("Delete", func() error { return be.Delete(ctx, "b") })
}

// TestRetryThenSucceed: a proxy answers 503 SlowDown, 500 InternalError or
// resets the connection before letting a request through; every operation
// succeeds within MaxAttempts attempts and counts once in Stats.
func TestRetryThenSucceed(t *testing.T) {
	const maxAttempts = 4
	// Request n: 1 → 503 SlowDown, 2 → connection reset, 3 → 500, 4 →
	// forwarded; so every operation needs exactly 4 attempts.
	be, p := proxied(t, fastRetries(maxAttempts), func(n int64, w http.ResponseWriter, r *http.Request) bool {
		switch n % 4 {
		case 1:
			slowDown(w)
		case 2:
			s3test.ResetConnection(w)
		case 3:
			s3test.WriteError(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error.")
		default:
			return false
		}
		return true
	})
	before := be.Stats().Snapshot()
	nops := 0
	ops(t, be, p, func(op string, attempts int64, err error) {
		nops++
		if err != nil {
			t.Errorf("%s: %v", op, err)
		}
		if attempts != maxAttempts {
			t.Errorf("%s: the proxy saw %d attempts, want %d (3 faults, then success)", op, attempts, maxAttempts)
		}
	})
	d := be.Stats().Snapshot().Sub(before)
	if d.Requests() != int64(nops) {
		t.Errorf("Stats counted %d requests for %d operations (%+v): want logical operations, not attempts", d.Requests(), nops, d)
	}
	if d.BytesOut != 1<<20+1+2 || d.BytesIn != 1<<20 {
		t.Errorf("Stats bytes out %d in %d, want %d and %d (bodies once, not per attempt)", d.BytesOut, d.BytesIn, 1<<20+3, 1<<20)
	}
	t.Logf("%d operations, %d attempts at the proxy, %d forwarded", nops, p.Requests.Load(), p.Forwarded.Load())
}

// TestRetryRandomFaults: a third of the requests fail at random (503,
// reset); operations run concurrently, and every one succeeds within
// MaxAttempts. The random faults may in rare cases fail one request
// MaxAttempts times in a row, so the budget is generous.
func TestRetryRandomFaults(t *testing.T) {
	const maxAttempts = 10
	var faults atomic.Int64
	be, p := proxied(t, fastRetries(maxAttempts), func(n int64, w http.ResponseWriter, r *http.Request) bool {
		switch (n * 7919) % 6 { // scrambled but deterministic per arrival
		case 1:
			faults.Add(1)
			slowDown(w)
			return true
		case 4:
			faults.Add(1)
			s3test.ResetConnection(w)
			return true
		}
		return false
	})
	ctx := t.Context()
	const n = 24
	errc := make(chan error, n)
	for i := range n {
		go func() {
			key := fmt.Sprintf("k/%02d", i)
			data := remotetest.Content(uint64(i), 1000*i)
			etag, err := be.PutIfAbsent(ctx, key, data)
			if err == nil {
				var obj remote.Object
				obj, err = be.Get(ctx, key)
				if err == nil && (obj.ETag != etag || !bytes.Equal(obj.Data, data)) {
					err = fmt.Errorf("%s: read back different content", key)
				}
			}
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			// An ambiguous PutIfAbsent (first attempt landed, answer lost)
			// cannot happen here: faults are injected before forwarding.
			t.Error(err)
		}
	}
	if faults.Load() == 0 {
		t.Fatal("no fault injected")
	}
	if got := be.Stats().Snapshot(); got.Put != n || got.Get != n {
		t.Errorf("Stats = %+v, want %d puts and gets", got, n)
	}
	t.Logf("%d operations, %d requests at the proxy, %d faults", 2*n, p.Requests.Load(), faults.Load())
}

// TestRetryExhausted: when every request fails, each operation makes exactly
// MaxAttempts attempts and returns an error wrapping remote.ErrTransient.
func TestRetryExhausted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(w http.ResponseWriter)
		want  string
	}{
		{"SlowDown", slowDown, "SlowDown"},
		{"InternalError", func(w http.ResponseWriter) {
			s3test.WriteError(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error.")
		}, "InternalError"},
		{"reset", s3test.ResetConnection, "connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxAttempts = 3
			be, p := proxied(t, fastRetries(maxAttempts), func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
				tc.fault(w)
				return true
			})
			ops(t, be, p, func(op string, attempts int64, err error) {
				if !errors.Is(err, remote.ErrTransient) {
					t.Errorf("%s = %v, want ErrTransient", op, err)
					return
				}
				if attempts != maxAttempts {
					t.Errorf("%s: %d attempts, want exactly %d", op, attempts, maxAttempts)
				}
				msg := err.Error()
				want := tc.want
				if tc.name == "reset" && strings.Contains(msg, "broken pipe") {
					// The reset can reach the client while it still sends
					// the body (a loaded machine): a write fails first.
					want = "broken pipe"
				}
				if !strings.HasPrefix(msg, "s3remote: ") || !strings.Contains(msg, want) ||
					!strings.Contains(msg, fmt.Sprintf("maximum number of attempts, %d", maxAttempts)) {
					t.Errorf("%s: unclear message %q", op, msg)
				}
			})
			if got := p.Forwarded.Load(); got != 0 {
				t.Errorf("%d requests forwarded, want 0", got)
			}
		})
	}
}

// TestNoRetryOn4xx: client errors are answered at once, never retried, and
// map to clear errors: a refused object name to ErrInvalidKey, any other
// refusal to ErrRefused with the code, the status and the server's message.
func TestNoRetryOn4xx(t *testing.T) {
	for _, tc := range []struct {
		status   int
		code     string
		sentinel error
		say      string // in every message
	}{
		{400, "InvalidRequest", s3remote.ErrRefused, "InvalidRequest, HTTP 400: injected InvalidRequest"},
		{400, "KeyTooLongError", remote.ErrInvalidKey, "refuses the object name (KeyTooLongError, HTTP 400"},
		{400, "XMinioInvalidObjectName", remote.ErrInvalidKey, "at most 1024, the store prefix included"},
		{400, "BadDigest", s3remote.ErrRefused, "BadDigest, HTTP 400"},
		{403, "AccessDenied", remote.ErrAccessDenied, "credentials"},
		{403, "SignatureDoesNotMatch", remote.ErrAccessDenied, "credentials"},
		{404, "NoSuchBucket", remote.ErrBucketNotFound, "does not exist"},
		{405, "MethodNotAllowed", s3remote.ErrRefused, "MethodNotAllowed, HTTP 405"},
		{409, "OperationAborted", s3remote.ErrRefused, "OperationAborted, HTTP 409"},
		{413, "EntityTooLarge", s3remote.ErrRefused, "EntityTooLarge, HTTP 413"},
		{501, "NotImplemented", s3remote.ErrRefused, "NotImplemented, HTTP 501"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			be, p := proxied(t, fastRetries(5), func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
				s3test.WriteError(w, tc.status, tc.code, "injected "+tc.code+".")
				return true
			})
			ops(t, be, p, func(op string, attempts int64, err error) {
				if err == nil || errors.Is(err, remote.ErrTransient) {
					t.Errorf("%s = %v, want a permanent error", op, err)
				}
				if !errors.Is(err, tc.sentinel) {
					t.Errorf("%s = %v, want %v", op, err, tc.sentinel)
				}
				if err != nil && !strings.Contains(err.Error(), tc.say) {
					t.Errorf("%s: message %q does not say %q", op, err, tc.say)
				}
				// A conditional put the server does not implement says so.
				cond := op == "PutIfAbsent" || op == "PutIfMatch"
				if cond && tc.code == "NotImplemented" && !errors.Is(err, remote.ErrNoConditionalWrites) {
					t.Errorf("%s = %v, want ErrNoConditionalWrites too", op, err)
				}
				if attempts != 1 {
					t.Errorf("%s: %d attempts on HTTP %d, want 1", op, attempts, tc.status)
				}
			})
		})
	}
}

// TestConditionalPutAmbiguous documents the ambiguity of a retried
// conditional put: the first attempt lands but its answer is lost (the proxy
// forwards the request, then answers 503); the retry then loses against the
// object its own first attempt wrote. The sync layer resolves this by
// reading the object back.
func TestConditionalPutAmbiguous(t *testing.T) {
	var p *s3test.Proxy
	var drop atomic.Bool
	be, p := proxied(t, fastRetries(3), func(_ int64, w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && drop.CompareAndSwap(true, false) {
			p.Forward(httptest.NewRecorder(), r) // lands, answer lost
			slowDown(w)
			return true
		}
		return false
	})
	ctx := t.Context()

	drop.Store(true)
	_, err := be.PutIfAbsent(ctx, "k", []byte("mine"))
	if !errors.Is(err, remote.ErrExists) {
		t.Fatalf("PutIfAbsent whose first attempt landed = %v, want ErrExists (ambiguous)", err)
	}
	obj, err := be.Get(ctx, "k")
	if err != nil || string(obj.Data) != "mine" {
		t.Fatalf("Get = %q, %v; want our own data", obj.Data, err)
	}

	drop.Store(true)
	_, err = be.PutIfMatch(ctx, "k", []byte("mine, v2"), obj.ETag)
	if !errors.Is(err, remote.ErrPrecondition) {
		t.Fatalf("PutIfMatch whose first attempt landed = %v, want ErrPrecondition (ambiguous)", err)
	}
	obj, err = be.Get(ctx, "k")
	if err != nil || string(obj.Data) != "mine, v2" {
		t.Fatalf("Get = %q, %v; want our own data", obj.Data, err)
	}
}

// TestRetryExistingObjectIsDirectory: versitygw's POSIX backend answers a
// put 409 ExistingObjectIsDirectory when it races a delete that removes
// empty parent directories (seen in the chaos test on a fresh prefix).
// Once, and every put (plain, PutIfAbsent, PutIfMatch) succeeds on its
// second attempt; always, and each is refused (not transient) after
// MaxAttempts, saying so. Other operations never see it.
func TestRetryExistingObjectIsDirectory(t *testing.T) {
	const maxAttempts = 3
	for _, always := range []bool{false, true} {
		t.Run(map[bool]string{false: "once", true: "always"}[always], func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]int{}
			be, p := proxied(t, fastRetries(maxAttempts), func(_ int64, w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodPut {
					return false
				}
				mu.Lock()
				seen[r.URL.Path]++
				first := seen[r.URL.Path]%2 == 1
				mu.Unlock()
				if always || first {
					s3test.WriteError(w, http.StatusConflict, "ExistingObjectIsDirectory", "Existing Object is a directory.")
					return true
				}
				return false
			})
			ops(t, be, p, func(op string, attempts int64, err error) {
				put := op == "Put" || op == "PutIfAbsent" || op == "PutIfMatch"
				switch {
				case !put:
					if !always && err != nil {
						t.Errorf("%s: %v", op, err)
					}
				case !always:
					if err != nil || attempts != 2 {
						t.Errorf("%s: %v after %d attempts; want success on the 2nd", op, err, attempts)
					}
				default:
					if !errors.Is(err, s3remote.ErrRefused) || errors.Is(err, remote.ErrTransient) || attempts != maxAttempts ||
						!strings.Contains(err.Error(), "ExistingObjectIsDirectory") || !strings.Contains(err.Error(), fmt.Sprintf("tried %d times", maxAttempts)) {
						t.Errorf("%s: %v after %d attempts; want refused (ExistingObjectIsDirectory) after %d", op, err, attempts, maxAttempts)
					}
				}
			})
		})
	}
}
