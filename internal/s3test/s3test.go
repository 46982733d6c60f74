// Package s3test connects tests to the local S3 servers that
// scripts/s3server.sh starts (`make test` starts both), one fresh bucket per
// test. Two implementations run, so that what one tolerates and real S3
// refuses shows up:
//
//	versitygw  the Versity S3 gateway on a POSIX directory: the default
//	           server (Config, NewBucket, NewProxy), every S3 test uses it
//	minio      MinIO, single drive: tests that run on every server use
//	           ForEach (the conformance suite, the probe, init over s3://)
//
// Each server is found through its own set of environment variables:
//
//	EBREPLICA_TEST_S3_ENDPOINT       EBREPLICA_TEST_MINIO_ENDPOINT     http://127.0.0.1:PORT
//	EBREPLICA_TEST_S3_ACCESS_KEY     EBREPLICA_TEST_MINIO_ACCESS_KEY   access key id
//	EBREPLICA_TEST_S3_SECRET_KEY     EBREPLICA_TEST_MINIO_SECRET_KEY   secret key
//	EBREPLICA_TEST_S3_REQUIRED       EBREPLICA_TEST_MINIO_REQUIRED     1: a missing server fails the test
//
// Without them a test (or a ForEach subtest) is skipped, unless its
// _REQUIRED=1 or CI=true, where it fails: CI must never skip the
// real-server tests silently.
//
// Proxy puts an in-process reverse proxy in front of a server to inject
// faults (throttling, 5xx, connection resets) and count attempts.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Environment variables naming the default server (versitygw).
const (
	EnvEndpoint  = "EBREPLICA_TEST_S3_ENDPOINT"
	EnvAccessKey = "EBREPLICA_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "EBREPLICA_TEST_S3_SECRET_KEY"
	EnvRequired  = "EBREPLICA_TEST_S3_REQUIRED"
)

// Environment variables naming the MinIO server.
const (
	EnvMinIOEndpoint  = "EBREPLICA_TEST_MINIO_ENDPOINT"
	EnvMinIOAccessKey = "EBREPLICA_TEST_MINIO_ACCESS_KEY"
	EnvMinIOSecretKey = "EBREPLICA_TEST_MINIO_SECRET_KEY"
	EnvMinIORequired  = "EBREPLICA_TEST_MINIO_REQUIRED"
)

// Names of the test servers, as Server.Name and ForEach's subtests say them.
const (
	VersityGW = "versitygw"
	MinIO     = "minio"
)

// Names lists the test servers, the default one first.
var Names = []string{VersityGW, MinIO}

// env is the set of variables of one server, and how to start it.
type env struct{ endpoint, access, secret, required, start string }

var envs = map[string]env{
	VersityGW: {EnvEndpoint, EnvAccessKey, EnvSecretKey, EnvRequired, "scripts/s3server.sh start"},
	MinIO:     {EnvMinIOEndpoint, EnvMinIOAccessKey, EnvMinIOSecretKey, EnvMinIORequired, "scripts/s3server.sh start minio"},
}

// Region is the region the test servers answer to.
const Region = "us-east-1"

// Server is a test server's name, address and credentials, for tests that
// build their own client or an s3:// URL.
type Server struct {
	Name      string // VersityGW or MinIO
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
}

// Config returns the default server's (versitygw's) settings from the
// environment. When they are missing it skips t, or fails it when
// EBREPLICA_TEST_S3_REQUIRED=1 or CI=true.
func Config(t testing.TB) Server {
	t.Helper()
	return ConfigOf(t, VersityGW)
}

// ConfigOf returns the settings of the server called name (VersityGW or
// MinIO) from the environment. When they are missing it skips t, or fails
// it when the server's _REQUIRED variable is 1 or CI=true.
func ConfigOf(t testing.TB, name string) Server {
	t.Helper()
	e, ok := envs[name]
	if !ok {
		t.Fatalf("s3test: no test server called %q (want one of %q)", name, Names)
	}
	s := Server{
		Name:      name,
		Endpoint:  os.Getenv(e.endpoint),
		AccessKey: os.Getenv(e.access),
		SecretKey: os.Getenv(e.secret),
		Region:    Region,
	}
	if s.Endpoint != "" && s.AccessKey != "" && s.SecretKey != "" {
		return s
	}
	var missing []string
	for _, v := range [][2]string{{e.endpoint, s.Endpoint}, {e.access, s.AccessKey}, {e.secret, s.SecretKey}} {
		if v[1] == "" {
			missing = append(missing, v[0])
		}
	}
	msg := fmt.Sprintf("s3test: no %s test server (%s unset); run `make test`, which starts one, "+
		"or `eval \"$(%s)\"` before go test and `scripts/s3server.sh stop` after",
		name, strings.Join(missing, ", "), e.start)
	if os.Getenv(e.required) == "1" || os.Getenv("CI") == "true" {
		t.Fatal(msg + " (required: " + e.required + "=1 or CI=true)")
	}
	t.Skip(msg)
	return Server{}
}

// ForEach runs fn as a subtest of t per test server, named after it
// (versitygw, minio). A server whose settings are missing skips its
// subtest, or fails it when required (see ConfigOf).
func ForEach(t *testing.T, fn func(t *testing.T, srv Server)) {
	t.Helper()
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			fn(t, ConfigOf(t, name))
		})
	}
}

// Client returns a client for s.
func (s Server) Client(optFns ...func(*s3.Options)) *s3.Client {
	return NewClient(s.Endpoint, s.AccessKey, s.SecretKey, optFns...)
}

// NewBucket creates a fresh, empty bucket on s for t and returns a client
// and the bucket's name. The bucket and its objects are removed (best
// effort) when t ends.
func (s Server) NewBucket(t testing.TB) (client *s3.Client, bucket string) {
	t.Helper()
	client = s.Client()
	return client, CreateBucket(t, client)
}

// NewClient returns a path-style client for an S3 endpoint with static
// credentials; optFns adjust it further. It reads no AWS configuration from
// the environment.
func NewClient(endpoint, accessKey, secretKey string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	}, optFns...)
}

// Client returns a client for the default test server (versitygw).
func Client(t testing.TB) *s3.Client {
	t.Helper()
	return Config(t).Client()
}

// NewBucket creates a fresh, empty bucket on the default test server
// (versitygw) for t and returns a client and the bucket's name. The bucket
// and its objects are removed (best effort) when t ends.
func NewBucket(t testing.TB) (client *s3.Client, bucket string) {
	t.Helper()
	return Config(t).NewBucket(t)
}

// CreateBucket creates a fresh bucket with a unique name through client and
// removes it (best effort) when t ends.
func CreateBucket(t testing.TB, client *s3.Client) string {
	t.Helper()
	bucket := BucketName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() { removeBucket(t, client, bucket) })
	return bucket
}

// BucketName returns a unique, valid bucket name derived from t's name.
func BucketName(t testing.TB) string {
	var sb strings.Builder
	sb.WriteString("ebr-")
	dash := true
	for _, r := range strings.ToLower(t.Name()) {
		if sb.Len() >= 45 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			sb.WriteRune(r)
			dash = false
		case !dash:
			sb.WriteByte('-')
			dash = true
		}
	}
	if !dash {
		sb.WriteByte('-')
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	sb.WriteString(hex.EncodeToString(rnd[:]))
	return sb.String()
}

// removeBucket deletes every object of bucket, then the bucket; failures are
// logged, not fatal (the server's data directory goes away at stop anyway).
func removeBucket(t testing.TB, client *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("s3test: cleanup: list %s: %v", bucket, err)
			return
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		if _, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}); err != nil {
			t.Logf("s3test: cleanup: delete objects of %s: %v", bucket, err)
			return
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Logf("s3test: cleanup: delete bucket %s: %v", bucket, err)
	}
}

// Proxy is a reverse proxy in front of a test server that can fail
// requests on purpose. Requests counts every request that reached it
// (attempts, retries included), Forwarded those passed to the server.
type Proxy struct {
	URL       string // endpoint to give the client, http://127.0.0.1:PORT
	Requests  atomic.Int64
	Forwarded atomic.Int64
	rp        *httputil.ReverseProxy
	srv       Server // the server behind it
}

// Forward passes r to the server and writes the answer to w; a FaultFunc
// can use it to let a request land and then lose the answer, e.g.
// p.Forward(httptest.NewRecorder(), r) followed by WriteError(w, 503, ...).
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request) {
	p.Forwarded.Add(1)
	p.rp.ServeHTTP(w, r)
}

// FaultFunc decides the fate of request number n (1-based) reaching a
// Proxy: it returns false to forward it, or answers it itself (for example
// with WriteError or ResetConnection) and returns true.
type FaultFunc func(n int64, w http.ResponseWriter, r *http.Request) bool

// NewProxy starts a Proxy in front of the default test server (versitygw)
// for the duration of t.
func NewProxy(t testing.TB, fault FaultFunc) *Proxy {
	t.Helper()
	return Config(t).NewProxy(t, fault)
}

// NewProxy starts a Proxy in front of s for the duration of t. The proxy
// keeps the client's Host header, so SigV4 signatures made for the proxy's
// address still verify at the server.
func (s Server) NewProxy(t testing.TB, fault FaultFunc) *Proxy {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatalf("s3test: %s endpoint %q: %v", s.Name, s.Endpoint, err)
	}
	p := &Proxy{rp: httputil.NewSingleHostReverseProxy(target), srv: s} // keeps r.Host
	p.rp.ErrorLog = log.New(io.Discard, "", 0)                          // a cancelled client is no news
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.Requests.Add(1)
		if fault != nil && fault(n, w, r) {
			// Read what the client still sends, as a server would: an
			// unread body makes net/http close the connection with a
			// half-second linger, which Close would then wait for.
			_, _ = io.Copy(io.Discard, r.Body)
			return
		}
		p.Forward(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Client returns a client for the server behind p that goes through p.
func (p *Proxy) Client(t testing.TB, optFns ...func(*s3.Options)) *s3.Client {
	t.Helper()
	return NewClient(p.URL, p.srv.AccessKey, p.srv.SecretKey, optFns...)
}

// WriteError answers with an S3 error document, e.g.
// WriteError(w, 503, "SlowDown", "Please reduce your request rate.").
func WriteError(w http.ResponseWriter, status int, code, message string) {
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		RequestID string `xml:"RequestId"`
	}{Code: code, Message: message, RequestID: "s3test-fault"})
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", fmt.Sprint(len(xml.Header)+len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// ResetConnection drops the client's connection abruptly (TCP RST, no
// answer), as a crashed server or a middlebox would.
func ResetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic("s3test: cannot hijack the connection: " + err.Error())
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // close sends RST
	}
	_ = conn.Close()
}
