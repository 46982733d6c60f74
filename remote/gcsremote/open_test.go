package gcsremote_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ebreplica/ebreplica/internal/cloudtest"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/gcsremote"
)

// roundTrip puts, gets and deletes one object through be.
func roundTrip(t *testing.T, be *gcsremote.Backend) {
	t.Helper()
	ctx := t.Context()
	etag, err := be.PutIfAbsent(ctx, "a/b", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if obj, err := be.Get(ctx, "a/b"); err != nil || string(obj.Data) != "v" || obj.ETag != etag {
		t.Fatalf("Get = %q %q %v, want v %s", obj.Data, obj.ETag, err, etag)
	}
	if err := be.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
}

// TestOpenEmulatorHost: STORAGE_EMULATOR_HOST as host:port (the form the
// client library documents) reaches the emulator; a malformed one is
// refused at Open, naming the variable and quoting nothing.
func TestOpenEmulatorHost(t *testing.T) {
	srv := cloudtest.GCSConfig(t)
	_, bucket := srv.NewBucket(t)
	t.Setenv(gcsremote.EnvEmulatorHost, strings.TrimPrefix(srv.Endpoint, "http://"))
	be, err := gcsremote.Open(t.Context(), "gs://"+bucket+"/p", nil)
	if err != nil {
		t.Fatal(err)
	}
	if be.Endpoint() != srv.Endpoint {
		t.Fatalf("Endpoint() = %q, want %q", be.Endpoint(), srv.Endpoint)
	}
	roundTrip(t, be)

	t.Setenv(gcsremote.EnvEmulatorHost, "http://user:hunter2@host/path")
	_, err = gcsremote.Open(t.Context(), "gs://"+bucket+"/p", nil)
	if err == nil || !strings.Contains(err.Error(), gcsremote.EnvEmulatorHost) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open with a malformed %s = %v, want an error naming it, quoting nothing", gcsremote.EnvEmulatorHost, err)
	}
}

// tokenServer is an OAuth2 token endpoint: it answers every request with
// status, and a token when status is 200.
type tokenServer struct {
	URL   string
	Hits  atomic.Int64
	mu    sync.Mutex
	forms []string // the grant types asked for
}

func newTokenServer(t *testing.T, status int) *tokenServer {
	ts := &tokenServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.Hits.Add(1)
		_ = r.ParseForm()
		ts.mu.Lock()
		ts.forms = append(ts.forms, r.PostForm.Get("grant_type"))
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = w.Write([]byte(`{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`))
		} else {
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"refused by the test"}`))
		}
	}))
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

// serviceAccountFile writes a service account key file whose token
// endpoint is tokenURL and points GOOGLE_APPLICATION_CREDENTIALS at it.
func serviceAccountFile(t *testing.T, tokenURL string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})
	data, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "ebreplica-test",
		"private_key_id": "k1",
		"private_key":    string(pemKey),
		"client_email":   "replica@ebreplica-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	t.Setenv(gcsremote.EnvEmulatorHost, "")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOpenCredentials: without an emulator, Open signs every request with
// a token of Application Default Credentials (here a service account key
// file whose token endpoint is a local server), fetched once; a refused
// token is ErrAccessDenied and is not retried; missing credentials fail
// Open.
func TestOpenCredentials(t *testing.T) {
	srv := cloudtest.GCSConfig(t)
	_, bucket := srv.NewBucket(t)
	t.Run("token", func(t *testing.T) {
		tokens := newTokenServer(t, http.StatusOK)
		serviceAccountFile(t, tokens.URL)
		var mu sync.Mutex
		auth := map[string]int{}
		p := cloudtest.NewProxy(t, srv.Endpoint, func(_ int64, _ http.ResponseWriter, r *http.Request) bool {
			mu.Lock()
			auth[r.Header.Get("Authorization")]++
			mu.Unlock()
			return false
		})
		be, err := gcsremote.Open(t.Context(), "gs://"+bucket+"/p", &gcsremote.Options{Endpoint: p.URL})
		if err != nil {
			t.Fatal(err)
		}
		if n := tokens.Hits.Load(); n != 0 {
			t.Fatalf("Open fetched %d tokens, want none before a request", n)
		}
		roundTrip(t, be)
		if len(auth) != 1 || auth["Bearer tok-1"] != 3 {
			t.Errorf("Authorization headers seen: %v, want the token on all 3 requests", auth)
		}
		tokens.mu.Lock()
		defer tokens.mu.Unlock()
		if n := tokens.Hits.Load(); n != 1 || tokens.forms[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			t.Errorf("token server: %d hits, grants %q; want one JWT bearer grant", n, tokens.forms)
		}
	})
	t.Run("refused", func(t *testing.T) {
		tokens := newTokenServer(t, http.StatusBadRequest)
		serviceAccountFile(t, tokens.URL)
		p := cloudtest.NewProxy(t, srv.Endpoint, nil)
		be, err := gcsremote.Open(t.Context(), "gs://"+bucket+"/p", &gcsremote.Options{Endpoint: p.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = be.Put(t.Context(), "k", []byte("v"))
		if !errors.Is(err, remote.ErrAccessDenied) || errors.Is(err, remote.ErrTransient) {
			t.Fatalf("Put with a refused token = %v, want ErrAccessDenied", err)
		}
		if n, m := tokens.Hits.Load(), p.Requests.Load(); n != 1 || m != 0 {
			t.Errorf("%d token requests and %d to the bucket, want 1 and 0 (a refused token is not retried)", n, m)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json"))
		t.Setenv(gcsremote.EnvEmulatorHost, "")
		if _, err := gcsremote.Open(t.Context(), "gs://"+bucket+"/p", nil); err == nil || !strings.Contains(err.Error(), "credentials") {
			t.Fatalf("Open without credentials = %v, want an error about them", err)
		}
	})
	t.Run("endpoint in the URL wins", func(t *testing.T) {
		// No credentials are looked for: the file named does not exist.
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json"))
		be, err := gcsremote.Open(t.Context(), srv.URL(bucket, "p"), &gcsremote.Options{Endpoint: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, be)
	})
}
