package gcsremote_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/cloudtest"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/gcsremote"
)

// writeError answers as GCS's JSON API does.
func writeError(w http.ResponseWriter, r *http.Request, status int, message string) {
	// Read the request first, as a server would: answering before the
	// body is read makes the client wait for the connection to close.
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"errors":[{"message":%q,"reason":"test"}]}}`, status, message, message)
}

// newProxied returns a backend on a fresh bucket whose requests go through
// a fault-injecting proxy in front of the emulator.
func newProxied(t *testing.T, fault cloudtest.FaultFunc, opts *gcsremote.Options) (*gcsremote.Backend, *cloudtest.Proxy) {
	t.Helper()
	srv := cloudtest.GCSConfig(t)
	_, bucket := srv.NewBucket(t)
	p := cloudtest.NewProxy(t, srv.Endpoint, fault)
	if opts == nil {
		opts = &gcsremote.Options{}
	}
	opts.MaxBackoff = 20 * time.Millisecond
	opts.Endpoint = p.URL
	be, err := gcsremote.New(srv.Client(t), bucket, "r", opts)
	if err != nil {
		t.Fatal(err)
	}
	return be, p
}

// failFirst fails the first n requests with status.
func failFirst(n int64, status int) cloudtest.FaultFunc {
	return func(i int64, w http.ResponseWriter, r *http.Request) bool {
		if i <= n {
			writeError(w, r, status, "injected")
			return true
		}
		return false
	}
}

// TestRetries: 5xx and connection resets are retried with backoff, within
// MaxAttempts, on every kind of call, and count one request in Stats; 4xx
// answers are not retried.
func TestRetries(t *testing.T) {
	ctx := t.Context()
	t.Run("503 then success", func(t *testing.T) {
		for _, call := range []string{"Put", "PutIfAbsent", "PutIfMatch", "Get", "Delete", "List"} {
			t.Run(call, func(t *testing.T) {
				armed := false
				var failed int64
				be, p := newProxied(t, func(n int64, w http.ResponseWriter, r *http.Request) bool {
					if armed && failed < 2 {
						failed++
						writeError(w, r, 503, "injected")
						return true
					}
					return false
				}, nil)
				etag, err := be.Put(ctx, "k", []byte("v1"))
				if err != nil {
					t.Fatal(err)
				}
				armed = true
				before, reqs := be.Stats().Snapshot(), p.Requests.Load()
				switch call {
				case "Put":
					_, err = be.Put(ctx, "k", []byte("v2"))
				case "PutIfAbsent":
					_, err = be.PutIfAbsent(ctx, "new", []byte("v2"))
				case "PutIfMatch":
					_, err = be.PutIfMatch(ctx, "k", []byte("v2"), etag)
				case "Get":
					_, err = be.Get(ctx, "k")
				case "Delete":
					err = be.Delete(ctx, "k")
				case "List":
					for _, e := range be.List(ctx, "", "") {
						err = e
					}
				}
				if err != nil {
					t.Fatalf("%s after two 503s: %v", call, err)
				}
				if d := be.Stats().Snapshot().Sub(before); d.Requests() != 1 {
					t.Errorf("%s counted %+v, want one request", call, d)
				}
				if n := p.Requests.Load() - reqs; n != 3 {
					t.Errorf("%s made %d attempts, want 3", call, n)
				}
			})
		}
	})
	t.Run("gives up", func(t *testing.T) {
		be, p := newProxied(t, failFirst(1<<40, 503), &gcsremote.Options{MaxAttempts: 3})
		_, err := be.Put(ctx, "k", []byte("v"))
		if !errors.Is(err, remote.ErrTransient) {
			t.Fatalf("Put against a failing server = %v, want ErrTransient", err)
		}
		if n := p.Requests.Load(); n != 3 {
			t.Errorf("%d attempts, want MaxAttempts = 3", n)
		}
		if _, err := be.Get(ctx, "k"); !errors.Is(err, remote.ErrTransient) {
			t.Fatalf("Get against a failing server = %v, want ErrTransient", err)
		}
	})
	t.Run("connection reset", func(t *testing.T) {
		be, p := newProxied(t, func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				cloudtest.ResetConnection(w)
				return true
			}
			return false
		}, nil)
		if _, err := be.PutIfAbsent(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("PutIfAbsent after a reset: %v", err)
		}
		if n := p.Requests.Load(); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
	})
	t.Run("4xx not retried", func(t *testing.T) {
		be, p := newProxied(t, failFirst(1, 400), nil)
		_, err := be.Put(ctx, "k", []byte("v"))
		if !errors.Is(err, gcsremote.ErrRefused) || errors.Is(err, remote.ErrTransient) {
			t.Fatalf("Put answered 400 = %v, want ErrRefused", err)
		}
		if n := p.Requests.Load(); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
	t.Run("429 retried", func(t *testing.T) {
		be, p := newProxied(t, failFirst(1, 429), nil)
		if _, err := be.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if n := p.Requests.Load(); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
	})
	t.Run("lost answer of a create", func(t *testing.T) {
		// The create lands, its answer is lost; the retry finds the object:
		// ErrExists, although this call wrote it (see PutIfAbsent).
		var p *cloudtest.Proxy
		be, p := newProxied(t, func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodPost && p.Forwarded.Load() == 0 {
				p.Forward(httptest.NewRecorder(), r)
				writeError(w, r, 503, "answer lost")
				return true
			}
			return false
		}, nil)
		_, err := be.PutIfAbsent(ctx, "k", []byte("mine"))
		if !errors.Is(err, remote.ErrExists) {
			t.Fatalf("PutIfAbsent whose answer was lost = %v, want ErrExists", err)
		}
		if obj, err := be.Get(ctx, "k"); err != nil || string(obj.Data) != "mine" {
			t.Fatalf("Get = %q, %v; want this call's data", obj.Data, err)
		}
	})
}
