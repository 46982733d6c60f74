package s3remote_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
	"github.com/ebreplica/ebreplica/remote/s3remote"
)

// newReal returns a backend on a fresh bucket of the default real test
// server (versitygw).
func newReal(t testing.TB, prefix string, opts *s3remote.Options) *s3remote.Backend {
	t.Helper()
	return newOn(t, s3test.Config(t), prefix, opts)
}

// newOn returns a backend on a fresh bucket of srv.
func newOn(t testing.TB, srv s3test.Server, prefix string, opts *s3remote.Options) *s3remote.Backend {
	t.Helper()
	client, bucket := srv.NewBucket(t)
	be, err := s3remote.New(client, bucket, prefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// TestConformance runs the suite against both real servers (versitygw and
// MinIO), under a prefix, with the default options (SDK checksums off). The
// suite includes the conditional-write probe (ProbeConditional).
func TestConformance(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, srv s3test.Server) {
		remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
			return newOn(t, srv, "replicas/r1", nil)
		})
	})
}

// TestNameLimits: under a prefix of 600 bytes the longest key the backend
// states makes an object name of exactly 1,024 bytes, which both servers
// store; one byte more, or a part of 256 bytes between slashes, fails with
// ErrInvalidKey before anything is sent, whatever the server would say
// (versitygw stores names longer than 1,024 bytes, MinIO and AWS S3 refuse
// them).
func TestNameLimits(t *testing.T) {
	prefix := remotetest.LongKey("stores", 600)
	s3test.ForEach(t, func(t *testing.T, srv s3test.Server) {
		be := newOn(t, srv, prefix, nil)
		ctx := t.Context()
		if got, want := be.MaxKeyLen(), s3remote.MaxNameLen-601; got != want {
			t.Fatalf("MaxKeyLen() = %d under a prefix of 600 bytes, want %d", got, want)
		}
		longest := remotetest.LongKey("k", be.MaxKeyLen())
		// Not as the last part: versitygw (v1.8.0) fails an overwrite of
		// an object whose last part is over 227 bytes (409
		// ExistingObjectIsDirectory: its temporary file name adds 28).
		part := "p/" + strings.Repeat("s", s3remote.MaxSegmentLen) + "/x"
		for _, key := range []string{longest, part} {
			etag, err := be.PutIfAbsent(ctx, key, []byte("v"))
			if err != nil {
				t.Fatalf("PutIfAbsent of a %d-byte key: %v", len(key), err)
			}
			if _, err := be.PutIfMatch(ctx, key, []byte("w"), etag); err != nil {
				t.Fatalf("PutIfMatch of a %d-byte key: %v", len(key), err)
			}
			if obj, err := be.Get(ctx, key); err != nil || string(obj.Data) != "w" {
				t.Fatalf("Get of a %d-byte key: %q, %v", len(key), obj.Data, err)
			}
			if err := be.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct{ name, key, want string }{
			{"name", longest + "x", "1025 bytes"},
			{"part", "p/" + strings.Repeat("s", s3remote.MaxSegmentLen+1), "256 bytes between slashes"},
		} {
			before := be.Stats().Snapshot()
			_, err := be.Put(ctx, tc.key, []byte("v"))
			if !errors.Is(err, remote.ErrInvalidKey) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Put of a too long %s = %v, want ErrInvalidKey saying %q", tc.name, err, tc.want)
			}
			for _, err := range be.List(ctx, tc.key, "") {
				if !errors.Is(err, remote.ErrInvalidKey) {
					t.Errorf("List of a too long %s = %v, want ErrInvalidKey", tc.name, err)
				}
			}
			if d := be.Stats().Snapshot().Sub(before); d.Requests() != 0 {
				t.Errorf("a too long %s sent %+v", tc.name, d)
			}
		}
	})
}

// TestConformanceSDKChecksums runs the parts of the suite that move data
// with the SDK's default checksums (CRC32 trailers, response validation),
// to show the servers accept them too.
func TestConformanceSDKChecksums(t *testing.T) {
	s3test.ForEach(t, testSDKChecksums)
}

func testSDKChecksums(t *testing.T, srv s3test.Server) {
	be := newOn(t, srv, "", &s3remote.Options{SDKChecksums: true})
	ctx := t.Context()
	for _, n := range []int{0, 1, 1 << 10, 3<<20 + 5} {
		data := remotetest.Content(uint64(n), n)
		key := fmt.Sprintf("sum/%d", n)
		etag, err := be.Put(ctx, key, data)
		if err != nil {
			t.Fatalf("Put %d bytes: %v", n, err)
		}
		obj, err := be.Get(ctx, key)
		if err != nil || obj.ETag != etag || string(obj.Data) != string(data) {
			t.Fatalf("Get %d bytes: %v (etag %s, want %s)", n, err, obj.ETag, etag)
		}
		if _, err := be.PutIfMatch(ctx, key, data[:n/2], etag); err != nil {
			t.Fatalf("PutIfMatch: %v", err)
		}
		if _, err := be.PutIfAbsent(ctx, key+"-new", data); err != nil {
			t.Fatalf("PutIfAbsent: %v", err)
		}
	}
}

// newFake returns a client of an in-process gofakes3 server with one bucket.
// gofakes3 ignores credentials: use it for logic only.
func newFake(t testing.TB) (*s3.Client, string) {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	client := s3test.NewClient(srv.URL, "fake", "fake")
	bucket := "fake"
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return client, bucket
}

// TestFakeConformance runs the suite against gofakes3 in-process too, so the
// driver's logic is covered by a plain `go test` without a server;
// TestConformance covers the same ground against the real server.
func TestFakeConformance(t *testing.T) {
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		client, bucket := newFake(t)
		be, err := s3remote.New(client, bucket, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return be
	})
}

// TestFakePrefixAndPaging checks key prefixing and list paging with a small
// page size: keys outside the prefix stay invisible, startAfter is mapped
// into the prefix, pages are fetched lazily.
func TestFakePrefixAndPaging(t *testing.T) {
	client, bucket := newFake(t)
	ctx := t.Context()
	be, err := s3remote.New(client, bucket, "/team/r1/", &s3remote.Options{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := be.String(); got != "s3://"+bucket+"/team/r1" {
		t.Errorf("String() = %q", got)
	}
	other, err := s3remote.New(client, bucket, "team/r10", nil)
	if err != nil {
		t.Fatal(err)
	}
	root, err := s3remote.New(client, bucket, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 10 {
		k := fmt.Sprintf("k/%02d", i)
		keys = append(keys, k)
		if _, err := be.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Put(ctx, k, []byte("other")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.Put(ctx, "team/r1x", []byte("neighbour")); err != nil {
		t.Fatal(err)
	}
	// The objects are stored under the prefix.
	if _, err := root.Get(ctx, "team/r1/k/03"); err != nil {
		t.Fatalf("object not under the prefix: %v", err)
	}
	list := func(prefix, startAfter string) []string {
		var out []string
		for info, err := range be.List(ctx, prefix, startAfter) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, info.Key)
		}
		return out
	}
	before := be.Stats().Snapshot()
	if got := list("", ""); !slices.Equal(got, keys) {
		t.Fatalf("List = %q, want %q", got, keys)
	}
	if d := be.Stats().Snapshot().Sub(before); d.List != 4 {
		t.Errorf("10 keys in pages of 3 took %d List requests, want 4", d.List)
	}
	if got := list("k/0", "k/06"); !slices.Equal(got, keys[7:]) {
		t.Errorf("List after k/06 = %q", got)
	}
	before = be.Stats().Snapshot()
	for _, err := range be.List(ctx, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if d := be.Stats().Snapshot().Sub(before); d.List != 1 {
		t.Errorf("stopping after one key took %d List requests, want 1", d.List)
	}
	// Conditional writes through the prefix.
	if _, err := be.PutIfAbsent(ctx, "k/00", []byte("x")); !errors.Is(err, remote.ErrExists) {
		t.Errorf("PutIfAbsent on an existing key = %v, want ErrExists", err)
	}
	obj, err := be.Get(ctx, "k/00")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(obj.ETag, `"`) {
		t.Errorf("ETag %s lost its quotes", obj.ETag)
	}
	if _, err := be.PutIfMatch(ctx, "k/00", []byte("y"), obj.ETag); err != nil {
		t.Errorf("PutIfMatch: %v", err)
	}
	if _, err := be.PutIfMatch(ctx, "k/00", []byte("z"), obj.ETag); !errors.Is(err, remote.ErrPrecondition) {
		t.Errorf("stale PutIfMatch = %v, want ErrPrecondition", err)
	}
	if _, err := be.PutIfMatch(ctx, "k/missing", []byte("z"), obj.ETag); !errors.Is(err, remote.ErrPrecondition) {
		t.Errorf("PutIfMatch on a missing key = %v, want ErrPrecondition", err)
	}
}

func TestNewOptions(t *testing.T) {
	client := s3test.NewClient("http://127.0.0.1:1", "a", "b")
	for _, tc := range []struct {
		name   string
		client *s3.Client
		bucket string
		prefix string
		opts   *s3remote.Options
		ok     bool
	}{
		{"defaults", client, "b", "", nil, true},
		{"prefix", client, "b", "a/b/", &s3remote.Options{}, true},
		{"nil client", nil, "b", "", nil, false},
		{"no bucket", client, "", "", nil, false},
		{"slash bucket", client, "a/b", "", nil, false},
		{"bad prefix", client, "b", "a//b", nil, false},
		{"dot prefix", client, "b", "a/../b", nil, false},
		{"page size", client, "b", "", &s3remote.Options{PageSize: 1001}, false},
		{"negative page size", client, "b", "", &s3remote.Options{PageSize: -1}, false},
		{"negative attempts", client, "b", "", &s3remote.Options{MaxAttempts: -1}, false},
		{"negative backoff", client, "b", "", &s3remote.Options{MaxBackoff: -1}, false},
		{"max page size", client, "b", "", &s3remote.Options{PageSize: 1000, MaxAttempts: 1}, true},
		{"negative max object size", client, "b", "", &s3remote.Options{MaxObjectSize: -1}, false},
		{"max object size above 1 TiB", client, "b", "", &s3remote.Options{MaxObjectSize: 1<<40 + 1}, false},
		{"max object size", client, "b", "", &s3remote.Options{MaxObjectSize: 1}, true},
		{"prefix with room for a key", client, "b", strings.Repeat("p/", 510) + "pp", nil, true},
		{"prefix of parts of 255 bytes", client, "b", strings.Repeat(strings.Repeat("p", 255)+"/", 3) + "p", nil, true},
		{"prefix without room", client, "b", strings.Repeat("p/", 511) + "p", nil, false},
		{"prefix with a part of 256 bytes", client, "b", "a/" + strings.Repeat("p", 256), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, err := s3remote.New(tc.client, tc.bucket, tc.prefix, tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("New = %v, %v; want ok=%v", be, err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "s3remote: ") {
				t.Errorf("error %q lacks the s3remote: prefix", err)
			}
		})
	}
}

// TestMissingBucket: a bucket that does not exist maps to ErrBucketNotFound
// and the message names it.
func TestMissingBucket(t *testing.T) {
	s3test.ForEach(t, testMissingBucket)
}

func testMissingBucket(t *testing.T, srv s3test.Server) {
	client := srv.Client()
	bucket := s3test.BucketName(t)
	be, err := s3remote.New(client, bucket, "p", &s3remote.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, remote.ErrBucketNotFound) {
			t.Errorf("%s on a missing bucket = %v, want ErrBucketNotFound", what, err)
			return
		}
		if !strings.Contains(err.Error(), bucket) || !strings.HasPrefix(err.Error(), "s3remote: ") {
			t.Errorf("%s: message %q does not name bucket %s", what, err, bucket)
		}
	}
	_, err = be.Get(ctx, "k")
	check("Get", err)
	_, err = be.Put(ctx, "k", []byte("x"))
	check("Put", err)
	_, err = be.PutIfAbsent(ctx, "k", []byte("x"))
	check("PutIfAbsent", err)
	_, err = be.PutIfMatch(ctx, "k", []byte("x"), `"abc"`)
	check("PutIfMatch", err)
	check("Delete", be.Delete(ctx, "k"))
	for _, err := range be.List(ctx, "", "") {
		check("List", err)
	}
}

// TestWrongCredentials: a wrong secret or an unknown access key maps to
// ErrAccessDenied; the message says "credentials" and never shows a secret.
func TestWrongCredentials(t *testing.T) {
	s3test.ForEach(t, testWrongCredentials)
}

func testWrongCredentials(t *testing.T, srv s3test.Server) {
	_, bucket := srv.NewBucket(t)
	const wrongSecret = "WRONGsecretWRONGsecretWRONGsecret0123456"
	for _, tc := range []struct{ name, access, secret string }{
		{"wrong secret", srv.AccessKey, wrongSecret},
		{"unknown access key", "EBRUNKNOWNKEY0000000", srv.SecretKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := s3test.NewClient(srv.Endpoint, tc.access, tc.secret)
			be, err := s3remote.New(client, bucket, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, remote.ErrAccessDenied) {
					t.Errorf("%s = %v, want ErrAccessDenied", what, err)
					return
				}
				msg := err.Error()
				if !strings.Contains(msg, "credentials") {
					t.Errorf("%s: message %q does not mention credentials", what, msg)
				}
				for _, secret := range []string{wrongSecret, srv.SecretKey} {
					if strings.Contains(msg, secret) {
						t.Errorf("%s: message %q shows a secret key", what, msg)
					}
				}
			}
			before := be.Stats().Snapshot()
			_, err = be.Get(ctx, "k")
			check("Get", err)
			_, err = be.Put(ctx, "k", []byte("x"))
			check("Put", err)
			_, err = be.PutIfAbsent(ctx, "k", []byte("x"))
			check("PutIfAbsent", err)
			_, err = be.PutIfMatch(ctx, "k", []byte("x"), `"abc"`)
			check("PutIfMatch", err)
			check("Delete", be.Delete(ctx, "k"))
			for _, err := range be.List(ctx, "", "") {
				check("List", err)
			}
			if d := be.Stats().Snapshot().Sub(before); d.Requests() != 6 {
				t.Errorf("counted %+v, want 6 requests", d)
			}
		})
	}
}

// TestGetDetails: ETag exactly as the server sent it, LastModified set.
func TestGetDetails(t *testing.T) {
	s3test.ForEach(t, testGetDetails)
}

func testGetDetails(t *testing.T, srv s3test.Server) {
	be := newOn(t, srv, "", nil)
	ctx := t.Context()
	etag, err := be.Put(ctx, "a/b", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		t.Errorf("ETag %s: want the quoted form the server sends", etag)
	}
	obj, err := be.Get(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if obj.ETag != etag || obj.LastModified.IsZero() {
		t.Errorf("Get = etag %s, modified %v; want %s and a time", obj.ETag, obj.LastModified, etag)
	}
	// PutIfMatch with the quotes stripped does not match (sent as given).
	_, err = be.PutIfMatch(ctx, "a/b", []byte("x"), strings.Trim(etag, `"`))
	t.Logf("PutIfMatch with an unquoted ETag: %v", err)
}

// TestCancelledDuringRequest: a ctx that expires while the request is in
// flight yields an error wrapping the ctx's error, not ErrTransient.
func TestCancelledDuringRequest(t *testing.T) {
	block := make(chan struct{})
	arrived := make(chan struct{}, 1)
	p := s3test.NewProxy(t, func(_ int64, _ http.ResponseWriter, r *http.Request) bool {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-block:
		case <-r.Context().Done():
		}
		return false
	})
	defer close(block)
	_, bucket := s3test.NewBucket(t)
	be, err := s3remote.New(p.Client(t), bucket, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := be.Get(ctx, "k")
		errc <- err
	}()
	<-arrived
	cancel()
	err = <-errc
	if !errors.Is(err, context.Canceled) || errors.Is(err, remote.ErrTransient) {
		t.Fatalf("Get cancelled in flight = %v, want context.Canceled", err)
	}
}

// TestChecksumSetting: by default no flexible checksum goes with a PUT nor
// is asked for on a GET; with SDKChecksums the SDK's CRC32 does.
func TestChecksumSetting(t *testing.T) {
	for _, sdk := range []bool{false, true} {
		t.Run(fmt.Sprintf("SDKChecksums=%v", sdk), func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			be, _ := proxied(t, &s3remote.Options{SDKChecksums: sdk}, func(_ int64, _ http.ResponseWriter, r *http.Request) bool {
				mu.Lock()
				defer mu.Unlock()
				for name := range r.Header {
					if n := strings.ToLower(name); strings.HasPrefix(n, "x-amz-checksum") || n == "x-amz-trailer" ||
						n == "x-amz-sdk-checksum-algorithm" {
						seen = append(seen, r.Method+" "+n)
					}
				}
				return false
			})
			etag, err := be.Put(t.Context(), "k", []byte("payload"))
			if err != nil {
				t.Fatal(err)
			}
			if obj, err := be.Get(t.Context(), "k"); err != nil || obj.ETag != etag {
				t.Fatalf("Get = %v, %v", obj.ETag, err)
			}
			mu.Lock()
			defer mu.Unlock()
			t.Logf("checksum headers: %q", seen)
			if sdk != (len(seen) > 0) {
				t.Errorf("SDKChecksums=%v: checksum headers %q", sdk, seen)
			}
		})
	}
}
