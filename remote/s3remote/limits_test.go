package s3remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
	"github.com/ebreplica/ebreplica/remote/s3remote"
)

// answering returns a backend on an in-process server whose every GET is
// answered by get (no S3 server needed).
func answering(t *testing.T, opts *s3remote.Options, get http.HandlerFunc) *s3remote.Backend {
	t.Helper()
	srv := httptest.NewServer(get)
	t.Cleanup(srv.Close)
	if opts == nil {
		opts = &s3remote.Options{}
	}
	opts.MaxAttempts = 1
	be, err := s3remote.New(s3test.NewClient(srv.URL, "a", "b"), "bucket", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// allocBytes returns the bytes f allocates (the TotalAlloc delta; the
// in-process server's allocations count too).
func allocBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestGetDoesNotTrustContentLength: an answer declaring 256 MiB and
// sending 1 KiB fails as a cut-short body (transient) having allocated
// about what arrived, not what was declared.
func TestGetDoesNotTrustContentLength(t *testing.T) {
	const declared = 256 << 20
	be := answering(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(declared))
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bytes.Repeat([]byte{'x'}, 1<<10))
		// The handler returns short: the server closes the connection.
	})
	var err error
	n := allocBytes(func() { _, err = be.Get(t.Context(), "log/00000000000000000001") })
	if !errors.Is(err, remote.ErrTransient) || errors.Is(err, s3remote.ErrTooLarge) {
		t.Fatalf("Get = %v, want a transient error (body cut short)", err)
	}
	if n > 16<<20 {
		t.Fatalf("a Get of 1 KiB declaring %d bytes allocated %d MiB", declared, n>>20)
	}
}

// TestGetMaxObjectSize: an object above Options.MaxObjectSize fails with
// ErrTooLarge (not transient) whether its Content-Length says so or it is
// streamed without one, never holding much more than the cap; one at the
// cap reads whole.
func TestGetMaxObjectSize(t *testing.T) {
	const limit = 1 << 20
	const streamed = 64 << 20
	chunk := bytes.Repeat([]byte{'y'}, 64<<10)
	be := answering(t, &s3remote.Options{MaxObjectSize: limit}, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bucket/at-limit", "/bucket/over-limit":
			n := limit
			if strings.HasSuffix(r.URL.Path, "over-limit") {
				n++
			}
			w.Header().Set("Content-Length", fmt.Sprint(n))
			_, _ = w.Write(bytes.Repeat([]byte{'z'}, n))
		case "/bucket/streamed":
			// No Content-Length: chunked, as a proxy may send it.
			rc := http.NewResponseController(w)
			for sent := 0; sent < streamed; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return // the client gave up
				}
				_ = rc.Flush()
			}
		default:
			s3test.WriteError(w, http.StatusNotFound, "NoSuchKey", "no such key")
		}
	})
	ctx := t.Context()
	obj, err := be.Get(ctx, "at-limit")
	if err != nil || len(obj.Data) != limit {
		t.Fatalf("Get at the limit: %d bytes, %v", len(obj.Data), err)
	}
	for _, key := range []string{"over-limit", "streamed"} {
		var err error
		n := allocBytes(func() { _, err = be.Get(ctx, key) })
		if !errors.Is(err, s3remote.ErrTooLarge) || errors.Is(err, remote.ErrTransient) ||
			!strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "MaxObjectSize") {
			t.Fatalf("Get %s = %v, want ErrTooLarge naming the key and the option", key, err)
		}
		if n > 8*limit {
			t.Fatalf("Get %s allocated %d MiB with a limit of %d MiB", key, n>>20, limit>>20)
		}
	}
}

// TestGetMaxObjectSizeReal: the same against the real servers.
func TestGetMaxObjectSizeReal(t *testing.T) {
	s3test.ForEach(t, testGetMaxObjectSizeReal)
}

func testGetMaxObjectSizeReal(t *testing.T, srv s3test.Server) {
	const limit = 256 << 10
	be := newOn(t, srv, "", &s3remote.Options{MaxObjectSize: limit})
	ctx := t.Context()
	for _, size := range []int{0, 1, limit} {
		data := remotetest.Content(uint64(size), size)
		if _, err := be.Put(ctx, "ok", data); err != nil {
			t.Fatal(err)
		}
		obj, err := be.Get(ctx, "ok")
		if err != nil || !bytes.Equal(obj.Data, data) {
			t.Fatalf("Get of %d bytes: %d bytes, %v", size, len(obj.Data), err)
		}
	}
	if _, err := be.Put(ctx, "big", remotetest.Content(1, limit+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Get(ctx, "big"); !errors.Is(err, s3remote.ErrTooLarge) || errors.Is(err, remote.ErrTransient) {
		t.Fatalf("Get above the limit = %v, want ErrTooLarge", err)
	}
}
