package azremote_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/cloudtest"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/azremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// newBackend returns a backend under prefix on a fresh container of the
// emulator.
func newBackend(t testing.TB, prefix string, opts *azremote.Options) *azremote.Backend {
	t.Helper()
	srv := cloudtest.AzureConfig(t)
	client, name := srv.NewContainer(t)
	be, err := azremote.New(client, name, prefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// TestConformance runs the whole suite, races and the conditional-write
// probe included, against Azurite, under a prefix.
func TestConformance(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return newBackend(t, "replicas/r1", nil)
	})
}

// TestConformanceRoot runs the suite at the container root.
func TestConformanceRoot(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return newBackend(t, "", &azremote.Options{PageSize: 300})
	})
}

// TestProbe: the capability probe accepts Azure's ETag conditions.
func TestProbe(t *testing.T) {
	be := newBackend(t, "p", nil)
	if err := remote.ProbeConditional(t.Context(), be); err != nil {
		t.Fatal(err)
	}
}

// TestETags: the ETag is Azure's, quotes included, and a changed one (or a
// stale one) is refused by the service.
func TestETags(t *testing.T) {
	be := newBackend(t, "", nil)
	ctx := t.Context()
	etag, err := be.PutIfAbsent(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Fatalf("ETag %q is not a quoted string", etag)
	}
	for _, tc := range []struct {
		etag string
		sent int64
	}{
		{`"x"`, 1}, {`"0x8DD0000000000000"`, 1},
		// Not quoted entity tags: never sent (Azurite matches an unquoted
		// tag to the quoted one, and * matches any blob).
		{strings.Trim(etag, `"`), 0}, {"*", 0}, {`W/` + etag, 0}, {`""`, 0}, {`"a"b"`, 0},
	} {
		before := be.Stats().Snapshot()
		if _, err := be.PutIfMatch(ctx, "k", []byte("w"), tc.etag); !errors.Is(err, remote.ErrPrecondition) {
			t.Errorf("PutIfMatch(%q) = %v, want ErrPrecondition", tc.etag, err)
		}
		if d := be.Stats().Snapshot().Sub(before); d.Put != tc.sent {
			t.Errorf("PutIfMatch(%q) counted %+v, want %d puts", tc.etag, d, tc.sent)
		}
	}
	for info, err := range be.List(ctx, "", "") {
		if err != nil || info.ETag != etag {
			t.Errorf("List: %+v %v, want ETag %s", info, err, etag)
		}
	}
	if obj, err := be.Get(ctx, "k"); err != nil || string(obj.Data) != "v" || obj.ETag != etag {
		t.Fatalf("Get = %q %q %v, want the first write", obj.Data, obj.ETag, err)
	}
}

// TestTrailingDot: a part ending in "." is refused before sending (Azure
// would drop the dot).
func TestTrailingDot(t *testing.T) {
	be := newBackend(t, "", nil)
	for _, key := range []string{"a.", "a./b", "x/y.."} {
		if _, err := be.Put(t.Context(), key, nil); !errors.Is(err, remote.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if n := be.Stats().Snapshot().Requests(); n != 0 {
		t.Errorf("sent %d requests", n)
	}
}

// TestNameLimits: under a prefix of 600 bytes, the longest key makes a name
// of 1,024 bytes; one more byte, or a part of 256 bytes, fails before
// sending.
func TestNameLimits(t *testing.T) {
	prefix := remotetest.LongKey("stores", 600)
	be := newBackend(t, prefix, nil)
	ctx := t.Context()
	if got, want := be.MaxKeyLen(), azremote.MaxNameLen-601; got != want {
		t.Fatalf("MaxKeyLen() = %d, want %d", got, want)
	}
	longest := remotetest.LongKey("k", be.MaxKeyLen())
	if _, err := be.PutIfAbsent(ctx, longest, []byte("v")); err != nil {
		t.Fatalf("PutIfAbsent of the longest key: %v", err)
	}
	for _, key := range []string{longest + "x", "p/" + strings.Repeat("s", azremote.MaxSegmentLen+1)} {
		before := be.Stats().Snapshot()
		if _, err := be.Put(ctx, key, []byte("v")); !errors.Is(err, remote.ErrInvalidKey) {
			t.Errorf("Put of a %d-byte key = %v, want ErrInvalidKey", len(key), err)
		}
		if d := be.Stats().Snapshot().Sub(before); d.Requests() != 0 {
			t.Errorf("a too long key sent %+v", d)
		}
	}
}

// TestMissingContainer: a missing container is ErrBucketNotFound, naming
// it.
func TestMissingContainer(t *testing.T) {
	srv := cloudtest.AzureConfig(t)
	be, err := azremote.New(srv.Client(t), "no-such-container-ebr", "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, err := range []error{
		func() error { _, err := be.Get(ctx, "k"); return err }(),
		func() error { _, err := be.Put(ctx, "k", nil); return err }(),
		func() error { _, err := be.PutIfAbsent(ctx, "k", nil); return err }(),
		func() error { _, err := be.PutIfMatch(ctx, "k", nil, `"0x1"`); return err }(),
		func() error {
			for _, err := range be.List(ctx, "", "") {
				return err
			}
			return nil
		}(),
	} {
		if !errors.Is(err, remote.ErrBucketNotFound) || !strings.Contains(err.Error(), "no-such-container-ebr") {
			t.Errorf("got %v, want ErrBucketNotFound naming the container", err)
		}
	}
}

// TestWrongKey: a wrong account key is ErrAccessDenied, and no message
// shows the key.
func TestWrongKey(t *testing.T) {
	srv := cloudtest.AzureConfig(t)
	_, name := srv.NewContainer(t)
	wrong := cloudtest.Azure{Endpoint: srv.Endpoint, Account: srv.Account, Key: "d3JvbmcgYnV0IHZhbGlkIGJhc2U2NCBrZXkgZm9yIHRlc3Rpbmc="}
	be, err := azremote.New(wrong.Client(t), name, "p", &azremote.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = be.Put(t.Context(), "k", []byte("v"))
	if !errors.Is(err, remote.ErrAccessDenied) {
		t.Fatalf("Put with a wrong key = %v, want ErrAccessDenied", err)
	}
	if strings.Contains(err.Error(), wrong.Key) || strings.Contains(err.Error(), srv.Key) {
		t.Fatalf("the message shows the key: %v", err)
	}
}

func TestOptions(t *testing.T) {
	srv := cloudtest.AzureConfig(t)
	c := srv.Client(t)
	for _, o := range []azremote.Options{{PageSize: 5001}, {PageSize: -1}, {MaxAttempts: -1}, {MaxBackoff: -1}, {MaxObjectSize: -1}} {
		if _, err := azremote.New(c, "container", "", &o); err == nil {
			t.Errorf("New with %+v accepted", o)
		}
	}
	for _, b := range []string{"", "ab", "UPPER", "-dash", "a--b", "a_b", "a/b", strings.Repeat("a", 64)} {
		if _, err := azremote.New(c, b, "", nil); err == nil {
			t.Errorf("New with container %q accepted", b)
		}
	}
}

// TestGetTooLarge: an object over MaxObjectSize fails with ErrTooLarge.
func TestGetTooLarge(t *testing.T) {
	be := newBackend(t, "", &azremote.Options{MaxObjectSize: 10})
	if _, err := be.Put(t.Context(), "big", make([]byte, 11)); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Get(t.Context(), "big"); !errors.Is(err, azremote.ErrTooLarge) {
		t.Fatalf("Get = %v, want ErrTooLarge", err)
	}
}
