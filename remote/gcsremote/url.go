package gcsremote

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// EnvEmulatorHost is the variable the GCS client library reads to talk to an
// emulator (host:port or http://host:port) without credentials; Open honours
// it as the client does.
const EnvEmulatorHost = "STORAGE_EMULATOR_HOST"

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

// Open returns a Backend for a gs:// URL (see ParseURL). Without an
// endpoint, the client finds credentials through Application Default
// Credentials: GOOGLE_APPLICATION_CREDENTIALS (a service account or other
// credentials file), then gcloud's application-default file, then the
// metadata server of a Google Cloud machine; or, when
// STORAGE_EMULATOR_HOST is set, it talks to that emulator without
// credentials. With ?endpoint=, it talks to that emulator without
// credentials, whatever the environment says. ctx bounds the client's
// set-up only; Open sends no request.
func Open(ctx context.Context, rawURL string, opts *Options) (*Backend, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if _, err := opts.validate(); err != nil {
		return nil, err
	}
	copts := []option.ClientOption{storage.WithDisabledClientMetrics()}
	if u.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(u.Endpoint+"/storage/v1/"), option.WithoutAuthentication())
	}
	client, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcsremote: open %s: %w", u, err)
	}
	b, err := New(client, u.Bucket, u.Prefix, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return b, nil
}
