// Package s3test connects tests to the local S3 server that
// scripts/s3server.sh starts (`make test` does it), one fresh bucket per test.
//
// The server is found through environment variables:
//
//	EBREPLICA_TEST_S3_ENDPOINT    http://127.0.0.1:PORT
//	EBREPLICA_TEST_S3_ACCESS_KEY  access key id
//	EBREPLICA_TEST_S3_SECRET_KEY  secret key
//	EBREPLICA_TEST_S3_REQUIRED    1: a missing server fails the test
//
// Without them a test is skipped, unless EBREPLICA_TEST_S3_REQUIRED=1 or
// CI=true, where it fails: CI must never skip the real-server tests silently.
//
// Proxy puts an in-process reverse proxy in front of the server to inject
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

// Environment variables naming the test server.
const (
	EnvEndpoint  = "EBREPLICA_TEST_S3_ENDPOINT"
	EnvAccessKey = "EBREPLICA_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "EBREPLICA_TEST_S3_SECRET_KEY"
	EnvRequired  = "EBREPLICA_TEST_S3_REQUIRED"
)

// Region is the region the test server answers to.
const Region = "us-east-1"

// Server is the test server's address and credentials, for tests that build
// their own client or an s3:// URL.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
}

// Config returns the test server's settings from the environment. When they
// are missing it skips t, or fails it when EBREPLICA_TEST_S3_REQUIRED=1 or
// CI=true.
func Config(t testing.TB) Server {
	t.Helper()
	s := Server{
		Endpoint:  os.Getenv(EnvEndpoint),
		AccessKey: os.Getenv(EnvAccessKey),
		SecretKey: os.Getenv(EnvSecretKey),
		Region:    Region,
	}
	if s.Endpoint != "" && s.AccessKey != "" && s.SecretKey != "" {
		return s
	}
	var missing []string
	for _, e := range [][2]string{{EnvEndpoint, s.Endpoint}, {EnvAccessKey, s.AccessKey}, {EnvSecretKey, s.SecretKey}} {
		if e[1] == "" {
			missing = append(missing, e[0])
		}
	}
	msg := fmt.Sprintf("s3test: no S3 test server (%s unset); run `make test`, which starts one, "+
		"or `eval \"$(scripts/s3server.sh start)\"` before go test and `scripts/s3server.sh stop` after",
		strings.Join(missing, ", "))
	if os.Getenv(EnvRequired) == "1" || os.Getenv("CI") == "true" {
		t.Fatal(msg + " (required: " + EnvRequired + "=1 or CI=true)")
	}
	t.Skip(msg)
	return Server{}
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

// Client returns a client for the test server.
func Client(t testing.TB) *s3.Client {
	t.Helper()
	s := Config(t)
	return NewClient(s.Endpoint, s.AccessKey, s.SecretKey)
}

// NewBucket creates a fresh, empty bucket on the test server for t and
// returns a client and the bucket's name. The bucket and its objects are
// removed (best effort) when t ends.
func NewBucket(t testing.TB) (client *s3.Client, bucket string) {
	t.Helper()
	client = Client(t)
	return client, CreateBucket(t, client)
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

// Proxy is a reverse proxy in front of the test server that can fail
// requests on purpose. Requests counts every request that reached it
// (attempts, retries included), Forwarded those passed to the server.
type Proxy struct {
	URL       string // endpoint to give the client, http://127.0.0.1:PORT
	Requests  atomic.Int64
	Forwarded atomic.Int64
	rp        *httputil.ReverseProxy
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

// NewProxy starts a Proxy in front of the test server for the duration of t.
// The proxy keeps the client's Host header, so SigV4 signatures made for the
// proxy's address still verify at the server.
func NewProxy(t testing.TB, fault FaultFunc) *Proxy {
	t.Helper()
	s := Config(t)
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatalf("s3test: %s=%q: %v", EnvEndpoint, s.Endpoint, err)
	}
	p := &Proxy{rp: httputil.NewSingleHostReverseProxy(target)} // keeps r.Host
	p.rp.ErrorLog = log.New(io.Discard, "", 0)                  // a cancelled client is no news
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

// Client returns a client for the test server that goes through p.
func (p *Proxy) Client(t testing.TB, optFns ...func(*s3.Options)) *s3.Client {
	t.Helper()
	s := Config(t)
	return NewClient(p.URL, s.AccessKey, s.SecretKey, optFns...)
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
