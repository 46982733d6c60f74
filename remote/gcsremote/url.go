package gcsremote

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// EnvEmulatorHost is the variable the GCS client library reads to talk to an
// emulator (host:port or http://host:port) without credentials; Open honours
// it as the client library does.
const EnvEmulatorHost = "STORAGE_EMULATOR_HOST"

// Scope is the OAuth2 scope Open asks Application Default Credentials for.
const Scope = "https://www.googleapis.com/auth/devstorage.read_write"

// URL is a parsed remote URL:
//
//	gs://bucket[/prefix][?endpoint=http://host:port]
type URL struct {
	Bucket string
	Prefix string // without leading or trailing "/"; "" = bucket root
	// Endpoint is an emulator's base URL (http:// or https://, e.g.
	// fake-gcs-server's), reached without credentials; "" for GCS itself,
	// or the emulator STORAGE_EMULATOR_HOST names.
	Endpoint string
}

// String formats u back as a gs:// URL.
func (u URL) String() string {
	s := "gs://" + u.Bucket
	if u.Prefix != "" {
		s += "/" + u.Prefix
	}
	if u.Endpoint != "" {
		s += "?" + url.Values{"endpoint": {u.Endpoint}}.Encode()
	}
	return s
}

// ParseURL parses gs://bucket/prefix?endpoint=URL. Credentials in the URL
// and unknown query parameters are refused (credentials come from the
// environment, never from the URL), and no message quotes what may be one:
// a refused URL is shown as gs://bucket/prefix at most.
func ParseURL(rawURL string) (URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return URL{}, fmt.Errorf("gcsremote: not a URL (want gs://bucket/prefix)")
	}
	shown := "gs://" + u.Host + u.EscapedPath()
	bad := func(format string, args ...any) (URL, error) {
		return URL{}, fmt.Errorf("gcsremote: URL %q: %s", shown, fmt.Sprintf(format, args...))
	}
	switch {
	case u.Scheme != "gs":
		return URL{}, fmt.Errorf("gcsremote: URL scheme must be gs:// (gs://bucket/prefix)")
	case u.User != nil:
		return bad("credentials do not belong in the URL; use Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)")
	case u.Opaque != "":
		return bad("expected gs://bucket/prefix")
	case u.Host == "":
		return bad("missing bucket name (gs://bucket/prefix)")
	case u.Fragment != "":
		return bad("unexpected fragment")
	}
	if err := checkBucket(u.Host); err != nil {
		return bad("%v", err)
	}
	p := URL{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if err := CheckPrefix(p.Prefix); err != nil {
		return bad("%v", err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("malformed query")
	}
	for name, vals := range q {
		if name != "endpoint" {
			return bad("unknown query parameter (known: endpoint)")
		}
		if len(vals) != 1 {
			return bad("endpoint given %d times", len(vals))
		}
		e, err := url.Parse(vals[0])
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil ||
			e.RawQuery != "" || e.Fragment != "" {
			return bad("endpoint: want http://host[:port] or https://host[:port]")
		}
		p.Endpoint = strings.TrimSuffix(vals[0], "/")
	}
	return p, nil
}

// Open returns a Backend for a gs:// URL (see ParseURL). With ?endpoint=,
// it talks to that emulator without credentials, whatever the environment
// and opts.Endpoint say; else, when STORAGE_EMULATOR_HOST is set (host:port, or a URL), to
// that emulator without credentials, as the client library did; else to
// opts.Endpoint (GCS itself by default) with a token of Application Default
// Credentials (golang.org/x/oauth2/google, scope Scope):
// GOOGLE_APPLICATION_CREDENTIALS (a service account or other credentials
// file), then gcloud's application-default file, then the metadata server
// of a Google Cloud machine. Open sends no request to the bucket; finding
// the credentials may probe the metadata server (under the library's own
// short timeouts: it takes no context), and tokens are fetched on the
// requests that need them. ctx's values reach the credentials, not its
// cancellation, which would break every later token refresh.
func Open(ctx context.Context, rawURL string, opts *Options) (*Backend, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	endpoint := u.Endpoint
	if endpoint == "" {
		if host := os.Getenv(EnvEmulatorHost); host != "" {
			if !strings.Contains(host, "://") {
				host = "http://" + host
			}
			if endpoint, err = checkEndpoint(host); err != nil {
				return nil, fmt.Errorf("gcsremote: open %s: %s: %w", u, EnvEmulatorHost, err)
			}
		}
	}
	client := &http.Client{}
	if endpoint != "" {
		o.Endpoint = endpoint
	} else {
		// The token source keeps the context it is made with for its
		// own requests: it must outlive ctx.
		creds, err := google.FindDefaultCredentials(context.WithoutCancel(ctx), Scope)
		if err != nil {
			return nil, fmt.Errorf("gcsremote: open %s: credentials: %w", u, err)
		}
		client = oauth2.NewClient(context.WithoutCancel(ctx), creds.TokenSource)
	}
	return New(client, u.Bucket, u.Prefix, &o)
}
