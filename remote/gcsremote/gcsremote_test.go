package gcsremote_test

import (
	"cmp"
	"errors"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/cloudtest"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/gcsremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// newBackend returns a backend under prefix on a fresh bucket of the
// emulator.
func newBackend(t testing.TB, prefix string, opts *gcsremote.Options) *gcsremote.Backend {
	t.Helper()
	srv := cloudtest.GCSConfig(t)
	client, bucket := srv.NewBucket(t)
	o := gcsremote.Options{}
	if opts != nil {
		o = *opts
	}
	o.Endpoint = srv.Endpoint
	be, err := gcsremote.New(client, bucket, prefix, &o)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// TestConformance runs the whole suite, races and the conditional-write
// probe included, against fake-gcs-server, under a prefix.
func TestConformance(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return newBackend(t, "replicas/r1", nil)
	})
}

// TestConformanceRoot runs the suite at the bucket root.
func TestConformanceRoot(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return newBackend(t, "", &gcsremote.Options{PageSize: 300})
	})
}

// TestProbe: the capability probe accepts GCS's generation preconditions.
func TestProbe(t *testing.T) {
	be := newBackend(t, "p", nil)
	if err := remote.ProbeConditional(t.Context(), be); err != nil {
		t.Fatal(err)
	}
}

// TestETags: the ETag is the generation in decimal, and an ETag that is not
// one is refused by the server (a request is sent) as a stale one is.
func TestETags(t *testing.T) {
	be := newBackend(t, "", nil)
	ctx := t.Context()
	etag, err := be.PutIfAbsent(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := gcsremote.ParseETag(etag); !ok || gcsremote.FormatETag(g) != etag {
		t.Fatalf("ETag %q is not a generation", etag)
	}
	for _, bad := range []string{`"` + etag + `"`, "0", "-1", "x", "W/" + etag, etag + "0"} {
		before := be.Stats().Snapshot()
		if _, err := be.PutIfMatch(ctx, "k", []byte("w"), bad); !errors.Is(err, remote.ErrPrecondition) {
			t.Errorf("PutIfMatch(%q) = %v, want ErrPrecondition", bad, err)
		}
		if d := be.Stats().Snapshot().Sub(before); d.Put != 1 {
			t.Errorf("PutIfMatch(%q) counted %+v, want one put sent", bad, d)
		}
	}
	if obj, err := be.Get(ctx, "k"); err != nil || string(obj.Data) != "v" || obj.ETag != etag {
		t.Fatalf("Get = %q %q %v, want the first write", obj.Data, obj.ETag, err)
	}
}

// TestNameLimits: under a prefix of 600 bytes, the longest key makes a name
// of 1,024 bytes; one more byte, or a part of 256 bytes, fails before
// sending.
func TestNameLimits(t *testing.T) {
	prefix := remotetest.LongKey("stores", 600)
	be := newBackend(t, prefix, nil)
	ctx := t.Context()
	if got, want := be.MaxKeyLen(), gcsremote.MaxNameLen-601; got != want {
		t.Fatalf("MaxKeyLen() = %d, want %d", got, want)
	}
	longest := remotetest.LongKey("k", be.MaxKeyLen())
	if _, err := be.PutIfAbsent(ctx, longest, []byte("v")); err != nil {
		t.Fatalf("PutIfAbsent of the longest key: %v", err)
	}
	for _, key := range []string{longest + "x", "p/" + strings.Repeat("s", gcsremote.MaxSegmentLen+1)} {
		before := be.Stats().Snapshot()
		if _, err := be.Put(ctx, key, []byte("v")); !errors.Is(err, remote.ErrInvalidKey) {
			t.Errorf("Put of a %d-byte key = %v, want ErrInvalidKey", len(key), err)
		}
		if d := be.Stats().Snapshot().Sub(before); d.Requests() != 0 {
			t.Errorf("a too long key sent %+v", d)
		}
	}
}

// TestMissingBucket: a missing bucket is ErrBucketNotFound, naming it.
func TestMissingBucket(t *testing.T) {
	srv := cloudtest.GCSConfig(t)
	be, err := gcsremote.New(srv.Client(t), "no-such-bucket-ebr", "p", &gcsremote.Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Get cannot tell (see mapError): it reports ErrNotExist.
	if _, err := be.Get(ctx, "k"); !errors.Is(err, remote.ErrNotExist) {
		t.Errorf("Get = %v, want ErrNotExist", err)
	}
	for _, err := range []error{
		func() error { _, err := be.Put(ctx, "k", nil); return err }(),
		func() error { _, err := be.PutIfAbsent(ctx, "k", nil); return err }(),
		func() error { _, err := be.PutIfMatch(ctx, "k", nil, "1234"); return err }(),
		func() error {
			for _, err := range be.List(ctx, "", "") {
				return err
			}
			return nil
		}(),
	} {
		if !errors.Is(err, remote.ErrBucketNotFound) || !strings.Contains(err.Error(), "no-such-bucket-ebr") {
			t.Errorf("got %v, want ErrBucketNotFound naming the bucket", err)
		}
	}
}

func TestOptions(t *testing.T) {
	srv := cloudtest.GCSConfig(t)
	c := srv.Client(t)
	for _, o := range []gcsremote.Options{{PageSize: 1001}, {PageSize: -1}, {MaxAttempts: -1}, {MaxBackoff: -1}, {MaxObjectSize: -1},
		{Endpoint: "127.0.0.1:4443"}, {Endpoint: "ftp://host"}, {Endpoint: "http://"}, {Endpoint: "http://host/path"},
		{Endpoint: "http://user:secret@host"}, {Endpoint: "http://host?q=1"}} {
		if _, err := gcsremote.New(c, "bucket", "", &o); err == nil {
			t.Errorf("New with %+v accepted", o)
		}
	}
	for _, b := range []string{"", "ab", "UPPER", "-dash", "a/b", strings.Repeat("a", 223)} {
		if _, err := gcsremote.New(c, b, "", nil); err == nil {
			t.Errorf("New with bucket %q accepted", b)
		}
	}
	if _, err := gcsremote.New(nil, "bucket", "", nil); err == nil {
		t.Error("New with a nil client accepted")
	}
	if _, err := gcsremote.New(c, "bucket", "", &gcsremote.Options{Endpoint: "http://user:secret@host"}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("New with credentials in the endpoint = %v, want an error that does not quote them", err)
	}
	for _, e := range []string{"", "http://127.0.0.1:4443", "https://storage.example.com/"} {
		be, err := gcsremote.New(c, "bucket", "", &gcsremote.Options{Endpoint: e})
		if err != nil {
			t.Errorf("New with endpoint %q: %v", e, err)
			continue
		}
		if want := strings.TrimSuffix(cmp.Or(e, gcsremote.DefaultEndpoint), "/"); be.Endpoint() != want {
			t.Errorf("New with endpoint %q: Endpoint() = %q, want %q", e, be.Endpoint(), want)
		}
	}
}

// TestGetTooLarge: an object over MaxObjectSize fails with ErrTooLarge.
func TestGetTooLarge(t *testing.T) {
	be := newBackend(t, "", &gcsremote.Options{MaxObjectSize: 10})
	if _, err := be.Put(t.Context(), "big", make([]byte, 11)); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Get(t.Context(), "big"); !errors.Is(err, gcsremote.ErrTooLarge) {
		t.Fatalf("Get = %v, want ErrTooLarge", err)
	}
}
