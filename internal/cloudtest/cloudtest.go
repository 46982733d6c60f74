// Package cloudtest connects tests to the local emulators of Google Cloud
// Storage and Azure Blob Storage that scripts/gcsserver.sh and
// scripts/azserver.sh start (`make test` starts both), one fresh bucket or
// container per test:
//
//	fake-gcs-server  GCS JSON API, in memory, no credentials
//	Azurite          Azure Blob service, in memory, one account with a shared key
//
// They are found through environment variables:
//
//	EBREPLICA_TEST_GCS_ENDPOINT     http://127.0.0.1:PORT
//	EBREPLICA_TEST_GCS_REQUIRED     1: a missing emulator fails the test
//	EBREPLICA_TEST_AZURE_ENDPOINT   http://127.0.0.1:PORT/ACCOUNT (blob service URL)
//	EBREPLICA_TEST_AZURE_ACCOUNT    account name
//	EBREPLICA_TEST_AZURE_KEY        account key
//	EBREPLICA_TEST_AZURE_REQUIRED   1: a missing emulator fails the test
//
// Without them a test is skipped, unless its _REQUIRED=1 or CI=true, where
// it fails: CI must never skip the emulator tests silently.
//
// Proxy puts an in-process reverse proxy in front of an emulator to inject
// faults (5xx, lost answers, connection resets) and count attempts.
package cloudtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Environment variables naming the emulators.
const (
	EnvGCSEndpoint   = "EBREPLICA_TEST_GCS_ENDPOINT"
	EnvGCSRequired   = "EBREPLICA_TEST_GCS_REQUIRED"
	EnvAzureEndpoint = "EBREPLICA_TEST_AZURE_ENDPOINT"
	EnvAzureAccount  = "EBREPLICA_TEST_AZURE_ACCOUNT"
	EnvAzureKey      = "EBREPLICA_TEST_AZURE_KEY"
	EnvAzureRequired = "EBREPLICA_TEST_AZURE_REQUIRED"
)

// GCSProject is the project buckets are created in (the emulator takes any).
const GCSProject = "ebreplica-test"

// missing skips t, or fails it when required or CI=true.
func missing(t testing.TB, what, required, start string, unset []string) {
	t.Helper()
	msg := fmt.Sprintf("cloudtest: no %s emulator (%s unset); run `make test`, which starts one, "+
		"or `eval \"$(%s start)\"` before go test and `%s stop` after",
		what, strings.Join(unset, ", "), start, start)
	if os.Getenv(required) == "1" || os.Getenv("CI") == "true" {
		t.Fatal(msg + " (required: " + required + "=1 or CI=true)")
	}
	t.Skip(msg)
}

// GCS is the fake-gcs-server emulator's address.
type GCS struct {
	Endpoint string // http://127.0.0.1:PORT
}

// GCSConfig returns the GCS emulator's settings from the environment. When
// they are missing it skips t, or fails it when EBREPLICA_TEST_GCS_REQUIRED=1
// or CI=true.
func GCSConfig(t testing.TB) GCS {
	t.Helper()
	s := GCS{Endpoint: os.Getenv(EnvGCSEndpoint)}
	if s.Endpoint == "" {
		missing(t, "GCS", EnvGCSRequired, "scripts/gcsserver.sh", []string{EnvGCSEndpoint})
	}
	return s
}

// Client returns an HTTP client for the emulator, which takes no
// credentials (gcsremote.New takes it, with Options.Endpoint set to
// s.Endpoint).
func (s GCS) Client(t testing.TB) *http.Client {
	t.Helper()
	c := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// URL returns the gs:// URL of prefix in bucket on the emulator.
func (s GCS) URL(bucket, prefix string) string {
	u := "gs://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + s.Endpoint
}

// NewBucket creates a fresh, empty bucket for t and returns an HTTP client
// for the emulator (see Client) and its name; the bucket and its objects
// are removed (best effort) when t ends. It speaks the JSON API directly.
func (s GCS) NewBucket(t testing.TB) (*http.Client, string) {
	t.Helper()
	c := s.Client(t)
	name := Name(t, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"name":%q}`, name)
	if err := s.call(ctx, c, http.MethodPost, "/storage/v1/b?project="+GCSProject, body, nil); err != nil {
		t.Fatalf("cloudtest: create bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bucket := "/storage/v1/b/" + url.PathEscape(name)
		token := ""
		for {
			var page struct {
				Items []struct {
					Name string `json:"name"`
				} `json:"items"`
				NextPageToken string `json:"nextPageToken"`
			}
			if err := s.call(ctx, c, http.MethodGet, bucket+"/o?pageToken="+url.QueryEscape(token), "", &page); err != nil {
				t.Logf("cloudtest: cleanup: list %s: %v", name, err)
				return
			}
			for _, it := range page.Items {
				_ = s.call(ctx, c, http.MethodDelete, bucket+"/o/"+url.PathEscape(it.Name), "", nil)
			}
			if page.NextPageToken == "" || page.NextPageToken == token {
				break
			}
			token = page.NextPageToken
		}
		if err := s.call(ctx, c, http.MethodDelete, bucket, "", nil); err != nil {
			t.Logf("cloudtest: cleanup: delete bucket %s: %v", name, err)
		}
	})
	return c, name
}

// call sends one JSON API request to the emulator (path from /storage/...,
// query included; body JSON or ""), and decodes a 2xx answer into out
// (unless nil).
func (s GCS) call(ctx context.Context, c *http.Client, method, path, body string, out any) error {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Endpoint+path, r)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Azure is the Azurite emulator's address and account.
type Azure struct {
	Endpoint string // http://127.0.0.1:PORT/ACCOUNT
	Account  string
	Key      string
}

// AzureConfig returns the Azure emulator's settings from the environment.
// When they are missing it skips t, or fails it when
// EBREPLICA_TEST_AZURE_REQUIRED=1 or CI=true.
func AzureConfig(t testing.TB) Azure {
	t.Helper()
	s := Azure{Endpoint: os.Getenv(EnvAzureEndpoint), Account: os.Getenv(EnvAzureAccount), Key: os.Getenv(EnvAzureKey)}
	var unset []string
	for _, v := range [][2]string{{EnvAzureEndpoint, s.Endpoint}, {EnvAzureAccount, s.Account}, {EnvAzureKey, s.Key}} {
		if v[1] == "" {
			unset = append(unset, v[0])
		}
	}
	if len(unset) > 0 {
		missing(t, "Azure", EnvAzureRequired, "scripts/azserver.sh", unset)
	}
	return s
}

// ConnectionString returns the account's connection string, as
// AZURE_STORAGE_CONNECTION_STRING holds one.
func (s Azure) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", s.Account, s.Key, s.Endpoint)
}

// Client returns a client for the emulator with the account's shared key.
func (s Azure) Client(t testing.TB) *azblob.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		t.Fatalf("cloudtest: Azure credential: %v", err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(s.Endpoint+"/", cred, nil)
	if err != nil {
		t.Fatalf("cloudtest: Azure client: %v", err)
	}
	return c
}

// URL returns the az:// URL of prefix in container on the emulator (the
// credentials must come from the environment).
func (s Azure) URL(container, prefix string) string {
	u := "az://" + container
	if prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + s.Endpoint
}

// NewContainer creates a fresh, empty container for t and returns a client
// and its name; the container is removed (best effort) when t ends.
func (s Azure) NewContainer(t testing.TB) (*azblob.Client, string) {
	t.Helper()
	c := s.Client(t)
	name := Name(t, 63)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("cloudtest: create container %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.DeleteContainer(ctx, name, nil); err != nil {
			t.Logf("cloudtest: cleanup: delete container %s: %v", name, err)
		}
	})
	return c, name
}

// Name returns a unique bucket or container name of at most n bytes (n at
// least 20) derived from t's name: lower-case letters, digits and single
// dashes, as both services take.
func Name(t testing.TB, n int) string {
	var sb strings.Builder
	sb.WriteString("ebr-")
	dash := true
	for _, r := range strings.ToLower(t.Name()) {
		if sb.Len() >= n-13 {
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

// Proxy is a reverse proxy in front of an emulator that can fail requests
// on purpose. Requests counts every request that reached it (attempts,
// retries included), Forwarded those passed on.
type Proxy struct {
	URL       string // the emulator's endpoint through the proxy
	Requests  atomic.Int64
	Forwarded atomic.Int64
	rp        *httputil.ReverseProxy
}

// FaultFunc decides the fate of request number n (1-based): it returns
// false to forward it, or answers it itself and returns true.
type FaultFunc func(n int64, w http.ResponseWriter, r *http.Request) bool

// NewProxy starts a Proxy in front of endpoint (http://host:port[/path]) for
// the duration of t; its URL keeps endpoint's path.
func NewProxy(t testing.TB, endpoint string, fault FaultFunc) *Proxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("cloudtest: endpoint %q: %v", endpoint, err)
	}
	path := target.Path
	target.Path = ""
	p := &Proxy{rp: httputil.NewSingleHostReverseProxy(target)}
	director := p.rp.Director
	p.rp.Director = func(r *http.Request) {
		director(r)
		r.Host = target.Host // fake-gcs-server routes XML reads by Host
	}
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.Requests.Add(1)
		if fault != nil && fault(n, w, r) {
			_, _ = io.Copy(io.Discard, r.Body)
			return
		}
		p.Forward(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL + path
	return p
}

// Forward passes r on and writes the answer to w; a FaultFunc can let a
// request land and lose the answer: p.Forward(httptest.NewRecorder(), r).
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request) {
	p.Forwarded.Add(1)
	p.rp.ServeHTTP(w, r)
}

// ResetConnection drops the client's connection abruptly (TCP RST).
func ResetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic("cloudtest: cannot hijack the connection: " + err.Error())
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
