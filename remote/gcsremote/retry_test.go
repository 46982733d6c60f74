package gcsremote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestNotRetried: answers other than 408, 429 and 5xx are final: one
// attempt each, folded into their sentinel.
func TestNotRetried(t *testing.T) {
	ctx := t.Context()
	t.Run("emulator answers", func(t *testing.T) {
		be, p := newProxied(t, nil, nil)
		stale, err := be.Put(ctx, "k", []byte("v1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := be.Put(ctx, "k", []byte("v2")); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			call func() error
			want error
		}{
			{"PutIfAbsent of an existing key (412)", func() error { _, err := be.PutIfAbsent(ctx, "k", []byte("x")); return err }, remote.ErrExists},
			{"PutIfMatch with a stale generation (412)", func() error { _, err := be.PutIfMatch(ctx, "k", []byte("x"), stale); return err }, remote.ErrPrecondition},
			{"PutIfMatch of a missing key", func() error { _, err := be.PutIfMatch(ctx, "nope", []byte("x"), stale); return err }, remote.ErrPrecondition},
			{"Get of a missing key (404)", func() error { _, err := be.Get(ctx, "nope"); return err }, remote.ErrNotExist},
			{"Delete of a missing key (404)", func() error { return be.Delete(ctx, "nope") }, nil},
		} {
			before := p.Requests.Load()
			if err := c.call(); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) || errors.Is(err, remote.ErrTransient) {
				t.Errorf("%s = %v, want %v", c.name, err, c.want)
			}
			if n := p.Requests.Load() - before; n != 1 {
				t.Errorf("%s: %d attempts, want 1", c.name, n)
			}
		}
		if obj, err := be.Get(ctx, "k"); err != nil || string(obj.Data) != "v2" {
			t.Fatalf("Get = %q, %v; want v2 (no refused write landed)", obj.Data, err)
		}
	})
	for _, c := range []struct {
		status int
		want   error
	}{{400, gcsremote.ErrRefused}, {401, remote.ErrAccessDenied}, {403, remote.ErrAccessDenied}, {409, gcsremote.ErrRefused}} {
		t.Run(fmt.Sprintf("injected %d", c.status), func(t *testing.T) {
			be, p := newProxied(t, failFirst(1<<40, c.status), nil)
			_, err := be.Get(ctx, "k")
			if !errors.Is(err, c.want) || errors.Is(err, remote.ErrTransient) || !strings.Contains(err.Error(), fmt.Sprint(c.status)) {
				t.Errorf("Get answered %d = %v, want %v naming the status", c.status, err, c.want)
			}
			for _, err := range be.List(ctx, "", "") {
				if !errors.Is(err, c.want) {
					t.Errorf("List answered %d = %v, want %v", c.status, err, c.want)
				}
			}
			if n := p.Requests.Load(); n != 2 {
				t.Errorf("%d attempts for a Get and a List, want 2", n)
			}
		})
	}
}

// TestGetBody: a download whose body fails its CRC32C or is cut short is
// retried; one that always fails its checksum ends as ErrTransient.
func TestGetBody(t *testing.T) {
	ctx := t.Context()
	// garble answers the download r from the emulator, its body changed
	// by f.
	garble := func(p **cloudtest.Proxy, f func(w http.ResponseWriter, body []byte)) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			(*p).Forward(rec, r)
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			f(w, rec.Body.Bytes())
		}
	}
	flip := func(w http.ResponseWriter, body []byte) {
		body[len(body)/2] ^= 1
		_, _ = w.Write(body)
	}
	cut := func(w http.ResponseWriter, body []byte) {
		_, _ = w.Write(body[:len(body)/2])
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // closes the connection mid-body
	}
	for _, c := range []struct {
		name  string
		body  func(w http.ResponseWriter, body []byte)
		times int64
	}{{"checksum once", flip, 1}, {"cut short twice", cut, 2}, {"checksum always", flip, 1 << 40}} {
		t.Run(c.name, func(t *testing.T) {
			var p *cloudtest.Proxy
			var garbled int64
			var answer func(w http.ResponseWriter, r *http.Request)
			be, p := newProxied(t, func(_ int64, w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodGet && r.URL.Query().Get("alt") == "media" && garbled < c.times {
					garbled++
					answer(w, r)
					return true
				}
				return false
			}, &gcsremote.Options{MaxAttempts: 4})
			answer = garble(&p, c.body)
			data := []byte(strings.Repeat("0123456789", 100))
			etag, err := be.Put(ctx, "k", data)
			if err != nil {
				t.Fatal(err)
			}
			before := p.Requests.Load()
			obj, err := be.Get(ctx, "k")
			attempts := p.Requests.Load() - before
			if c.times > 4 {
				if !errors.Is(err, remote.ErrTransient) || attempts != 4 {
					t.Fatalf("Get of an always garbled body = %v after %d attempts, want ErrTransient after 4", err, attempts)
				}
				return
			}
			if err != nil || !bytes.Equal(obj.Data, data) || obj.ETag != etag {
				t.Fatalf("Get = %d bytes %q %v, want the object", len(obj.Data), obj.ETag, err)
			}
			if attempts != c.times+1 {
				t.Errorf("%d attempts, want %d", attempts, c.times+1)
			}
		})
	}
}

// TestCancelStopsRetries: a cancelled context ends the retries at once.
func TestCancelStopsRetries(t *testing.T) {
	srv := cloudtest.GCSConfig(t)
	_, bucket := srv.NewBucket(t)
	p := cloudtest.NewProxy(t, srv.Endpoint, failFirst(1<<40, 503))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		cancel() // after the first answer
		return resp, err
	})}
	be, err := gcsremote.New(client, bucket, "r", &gcsremote.Options{Endpoint: p.URL, MaxAttempts: 50, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.Put(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	if n := p.Requests.Load(); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
