// Package remoteurl opens a remote.Backend from the URL forms of the
// command line:
//
//	file:///abs/path   (or a bare path)  a directory: local disk or network share
//	s3://bucket/prefix                   S3 or any S3-compatible service (see s3remote.Open)
//	gs://bucket/prefix                   Google Cloud Storage (see gcsremote.Open)
//	az://container/prefix                Azure Blob Storage (see azremote.Open)
//	mem://name                           in-process memory, shared by name within the process
//
// Each cloud scheme finds credentials through its platform's standard chain
// (the AWS configuration; Application Default Credentials; a storage
// connection string, an account key or the Azure identity chain) and takes
// an endpoint override for emulators and compatible services
// (?endpoint=URL), never credentials in the URL.
package remoteurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/azremote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/gcsremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/s3remote"
)

// ErrUnsupported: a URL scheme no driver handles.
var ErrUnsupported = errors.New("remoteurl: unsupported remote URL (use file://, s3://, gs://, az:// or mem://)")

// Normalize returns the canonical form of a remote URL: a bare path becomes
// an absolute file:// URL. It checks the scheme and does no I/O. User info
// ("user:password@") is refused for every scheme, and no error message
// shows a secret: the URL is quoted as s3remote.RedactURL shows it.
func Normalize(raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("%w: empty", ErrUnsupported)
	}
	if !strings.Contains(raw, "://") {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return "", fmt.Errorf("remoteurl: %w", err)
		}
		return (&url.URL{Scheme: "file", Path: abs}).String(), nil
	}
	shown := s3remote.RedactURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's message quotes the URL, or a part of it.
		return "", fmt.Errorf("remoteurl: %q: not a URL", shown)
	}
	if u.Scheme != "s3" && u.User != nil {
		return "", fmt.Errorf("remoteurl: %q: credentials do not belong in the URL", shown)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return "", fmt.Errorf("remoteurl: %q: file URLs must be file:///absolute/path", shown)
		}
		if !filepath.IsAbs(u.Path) {
			return "", fmt.Errorf("remoteurl: %q: file URLs need an absolute path", shown)
		}
		return raw, nil
	case "s3":
		if _, err := s3remote.ParseURL(raw); err != nil {
			return "", err
		}
		return raw, nil
	case "gs":
		if _, err := gcsremote.ParseURL(raw); err != nil {
			return "", err
		}
		return raw, nil
	case "az":
		if _, err := azremote.ParseURL(raw); err != nil {
			return "", err
		}
		return raw, nil
	case "mem":
		if u.Host == "" && u.Opaque == "" {
			return "", fmt.Errorf("remoteurl: %q: mem URLs need a name (mem://name)", shown)
		}
		return raw, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupported, shown)
}

// Redact returns s, a URL or a message that quotes URLs, with the
// passwords and secret query values in it replaced by "REDACTED" (see
// s3remote.Redact). The command line passes every error message through
// it.
func Redact(s string) string { return s3remote.Redact(s) }

var (
	memMu sync.Mutex
	mems  = map[string]*memremote.Backend{}
)

// Options adjust OpenOptions.
type Options struct {
	// Timeout bounds every request of the backend (remote.DefaultTimeout,
	// 30s, when 0; negative: no bound): the S3 driver's HTTP client
	// (s3remote.Options.Timeout) and, for every backend but mem://,
	// remote.WithTimeout, whose error names the backend.
	Timeout time.Duration
}

// OpenOptions opens the backend a URL names, as Open, with every request
// bounded by o.Timeout.
func OpenOptions(ctx context.Context, raw string, o *Options) (remote.Backend, error) {
	var d time.Duration
	if o != nil {
		d = o.Timeout
	}
	n, err := Normalize(raw)
	if err != nil {
		return nil, err
	}
	var b remote.Backend
	if strings.HasPrefix(n, "s3:") {
		b, err = s3remote.Open(ctx, n, &s3remote.Options{Timeout: d})
	} else {
		b, err = Open(ctx, n)
	}
	if err != nil || strings.HasPrefix(n, "mem:") {
		return b, err
	}
	return remote.WithTimeout(b, d), nil
}

// Open opens the backend a URL names. Nothing is created: a missing
// directory or bucket is an error wrapping remote.ErrBucketNotFound.
func Open(ctx context.Context, raw string) (remote.Backend, error) {
	n, err := Normalize(raw)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(n)
	switch u.Scheme {
	case "file":
		return fileremote.New(u.Path, nil)
	case "s3":
		return s3remote.Open(ctx, n, nil)
	case "gs":
		return gcsremote.Open(ctx, n, nil)
	case "az":
		return azremote.Open(ctx, n, nil)
	case "mem":
		name := u.Host + u.Path
		memMu.Lock()
		defer memMu.Unlock()
		b, ok := mems[name]
		if !ok {
			b = memremote.New(name)
			mems[name] = b
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupported, s3remote.RedactURL(raw))
}
