// Package gcsremote implements remote.Backend on Google Cloud Storage's JSON
// API, over plain net/http: a multipart upload per write, a media download
// per read, an objects listing per List page and an object delete per
// Delete. It does not use the Google Cloud client library, whose gRPC,
// OpenTelemetry and protocol-buffer dependencies would cost every process
// that links this package (every ebreplica binary) tens of MiB of resident
// memory; credentials come from golang.org/x/oauth2/google (see Open).
//
// Objects live in one bucket under an optional prefix: key k is stored as
// prefix + "/" + k (or k itself when the prefix is empty).
//
// # Generations are the ETags
//
// GCS gives every write of an object a new generation number, and takes
// preconditions on it. The ETag this backend returns (from Put, PutIfAbsent,
// PutIfMatch and Get, and in List) is the object's generation in decimal,
// e.g. "1733489012345678", and the two conditional writes map as:
//
//	PutIfAbsent(k)         ifGenerationMatch=0   (the object must not exist)
//	PutIfMatch(k, etag)    ifGenerationMatch=N   (N parsed from etag)
//
// GCS checks the precondition and writes atomically, so of racing writers
// exactly one wins; the losers get 412 Precondition Failed, mapped to
// remote.ErrExists and remote.ErrPrecondition. A generation belongs to
// one write of one object: it changes on every overwrite, even with the same
// content, and a deleted and re-created object never gets its old one back.
// An etag that is not a generation this backend could have returned (not a
// positive decimal number) matches nothing: an empty one sends no request,
// any other is sent as generation math.MaxInt64, which no object has, so
// that the server answers it as it answers a stale one (this is what lets
// remote.ProbeConditional test the server's preconditions with an ETag of
// its own making).
//
// # Retries, errors, limits
//
// Every request goes through one retry loop, configured by [Options]:
// exponential backoff with full jitter, at most Options.MaxAttempts attempts,
// retrying 408, 429, 5xx and connection errors (a Get body cut short or
// failing its checksum included), never other answers, and applied to every
// call, conditional and unconditional writes included (our writes are
// idempotent: a retried put sends the same bytes). Every attempt and every
// pause between two takes the caller's context. A retried conditional put
// can be ambiguous; see PutIfAbsent. Errors are folded into remote's
// sentinels in one function (see errors.go).
//
// Every write is a single request (a multipart upload, not a resumable one)
// carrying the CRC32C of its data, which the server checks; Get checks the
// CRC32C the server returns (the x-goog-hash header).
//
// Object names keep to the GCS limit and to the strictest limit of the other
// drivers: at most MaxNameLen (1,024) bytes, the prefix included, and at most
// MaxSegmentLen (255) bytes between two slashes (GCS itself has no such limit;
// a store must be movable between drivers). A key beyond them fails with an
// error wrapping remote.ErrInvalidKey before any request is sent;
// Backend.MaxKeyLen tells the room a prefix leaves.
//
// Counters ([remote.Stats]) count logical operations as issued, successful or
// not: one per Get, Put, PutIfAbsent, PutIfMatch and Delete call and one per
// List page, never one per retry attempt. BytesOut adds the body size of every
// put issued, BytesIn the size of every Get body received.
package gcsremote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/remote"
)

var _ remote.Backend = (*Backend)(nil)

// Defaults of Options.
const (
	DefaultPageSize      = 1000
	DefaultMaxAttempts   = 5
	DefaultMaxBackoff    = 5 * time.Second
	DefaultMaxObjectSize = 1 << 30
	// DefaultEndpoint is the base URL of the GCS JSON API.
	DefaultEndpoint  = "https://storage.googleapis.com"
	maxMaxObjectSize = 1 << 40
	// initialBackoff is the first delay between two attempts.
	initialBackoff = 100 * time.Millisecond
)

// ErrTooLarge: Get found an object larger than Options.MaxObjectSize. It is
// not transient: retrying reads the same object.
var ErrTooLarge = errors.New("gcsremote: object too large")

// ErrRefused: the server refused the request for good (a 4xx answer other
// than the ones remote's sentinels cover). It is not transient: retrying
// sends the same request.
var ErrRefused = errors.New("gcsremote: the server refused the request")

// Limits of object names, checked before a request is sent.
const (
	// MaxNameLen is the longest object name, in bytes, the store prefix
	// and its "/" included (the GCS limit).
	MaxNameLen = 1024
	// MaxSegmentLen is the longest "/"-separated part of an object name,
	// in bytes: not a GCS limit, but the strictest of the other drivers'
	// (S3 servers that keep objects as files), so that a store can move.
	MaxSegmentLen = 255
)

// MaxKeyLenUnder returns the longest key a Backend under prefix accepts.
func MaxKeyLenUnder(prefix string) int { return names.KeyLenUnder(prefix) }

// Options tunes a Backend. A nil *Options and zero fields mean the defaults.
type Options struct {
	// Endpoint is the base URL requests go to: DefaultEndpoint (GCS
	// itself) when empty, or an emulator's, e.g. http://127.0.0.1:4443.
	// It takes http:// or https://, a host, an optional port and no path.
	Endpoint string
	// PageSize is the number of objects List requests per page. Default
	// 1000; allowed 1..1000.
	PageSize int
	// MaxAttempts is the number of attempts per request, the first one
	// included. Default 5; 1 disables retries.
	MaxAttempts int
	// MaxBackoff caps the delay between two attempts; the delay starts at
	// 100ms and doubles, with jitter, up to this cap. Default 5s.
	MaxBackoff time.Duration
	// MaxObjectSize caps the size of an object Get reads, in bytes; a
	// larger object fails with an error wrapping ErrTooLarge. Default 1 GiB;
	// allowed 1..1 TiB.
	MaxObjectSize int64
}

// validate checks o and returns a copy with the defaults filled in.
func (o *Options) validate() (Options, error) {
	var v Options
	if o != nil {
		v = *o
	}
	switch {
	case v.PageSize < 0 || v.PageSize > 1000:
		return v, fmt.Errorf("gcsremote: Options.PageSize %d out of range 1..1000", v.PageSize)
	case v.MaxAttempts < 0:
		return v, fmt.Errorf("gcsremote: Options.MaxAttempts %d is negative", v.MaxAttempts)
	case v.MaxBackoff < 0:
		return v, fmt.Errorf("gcsremote: Options.MaxBackoff %v is negative", v.MaxBackoff)
	case v.MaxObjectSize < 0 || v.MaxObjectSize > maxMaxObjectSize:
		return v, fmt.Errorf("gcsremote: Options.MaxObjectSize %d out of range 1..%d", v.MaxObjectSize, int64(maxMaxObjectSize))
	}
	if v.Endpoint == "" {
		v.Endpoint = DefaultEndpoint
	}
	e, err := checkEndpoint(v.Endpoint)
	if err != nil {
		return v, fmt.Errorf("gcsremote: Options.Endpoint: %w", err)
	}
	v.Endpoint = e
	if v.PageSize == 0 {
		v.PageSize = DefaultPageSize
	}
	if v.MaxAttempts == 0 {
		v.MaxAttempts = DefaultMaxAttempts
	}
	if v.MaxBackoff == 0 {
		v.MaxBackoff = DefaultMaxBackoff
	}
	if v.MaxObjectSize == 0 {
		v.MaxObjectSize = DefaultMaxObjectSize
	}
	return v, nil
}

// checkEndpoint checks a base URL (http:// or https://, a host, no user,
// path, query or fragment) and returns it without a trailing slash. Its
// message never quotes the URL, which could carry a secret.
func checkEndpoint(endpoint string) (string, error) {
	e, err := url.Parse(endpoint)
	if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil ||
		strings.Trim(e.Path, "/") != "" || e.RawQuery != "" || e.Fragment != "" {
		return "", errors.New("want http://host[:port] or https://host[:port]")
	}
	return strings.TrimSuffix(endpoint, "/"), nil
}

// Backend stores objects in a GCS bucket. It is safe for concurrent use.
type Backend struct {
	client *http.Client
	name   string // bucket name
	prefix string // without leading or trailing "/"; "" = bucket root
	opts   Options
	stats  remote.Stats
}

// New returns a Backend storing objects in bucket under prefix, sending its
// requests through client to opts.Endpoint (GCS itself by default), with
// the retry policy of opts on every request (nil opts means the defaults).
// client must authenticate the requests as GCS wants them (Open makes one
// that does, from Application Default Credentials), or need not for an
// emulator. Leading and trailing slashes of prefix are ignored. New sends
// no request: a missing bucket or refused credentials show on the first
// operation.
func New(client *http.Client, bucket, prefix string, opts *Options) (*Backend, error) {
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("gcsremote: nil *http.Client")
	}
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	prefix = strings.Trim(prefix, "/")
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	return &Backend{client: client, name: bucket, prefix: prefix, opts: o}, nil
}

// checkBucket checks a bucket name as GCS has them: 3 to 222 characters of
// lower-case letters, digits, '-', '_' and '.', starting and ending with a
// letter or digit.
func checkBucket(bucket string) error {
	ok := len(bucket) >= 3 && len(bucket) <= 222
	for i, r := range bucket {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		switch {
		case alnum:
		case (r == '-' || r == '_' || r == '.') && i > 0 && i < len(bucket)-1:
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("gcsremote: invalid bucket name %q: want 3 to 222 lower-case letters, digits, '-', '_' or '.'", bucket)
	}
	return nil
}

// CheckPrefix checks a store prefix as New does (leading and trailing
// slashes ignored): "" or a valid key whose parts have at most
// MaxSegmentLen bytes and that leaves room for a key below it. The error
// wraps remote.ErrInvalidKey.
func CheckPrefix(prefix string) error {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return nil
	}
	if err := remote.ValidateKey(prefix); err != nil {
		return fmt.Errorf("gcsremote: prefix: %w", err)
	}
	if err := checkName(prefix, ""); err != nil {
		return fmt.Errorf("gcsremote: prefix: %w", err)
	}
	if MaxKeyLenUnder(prefix) < 1 {
		return fmt.Errorf("gcsremote: prefix: %w: %d bytes leave no room for object names; GCS allows at most %d bytes, the prefix and its \"/\" included",
			remote.ErrInvalidKey, len(prefix), MaxNameLen)
	}
	return nil
}

// Bucket returns the bucket name.
func (b *Backend) Bucket() string { return b.name }

// Prefix returns the key prefix, without leading or trailing slash.
func (b *Backend) Prefix() string { return b.prefix }

// Endpoint returns the base URL requests go to.
func (b *Backend) Endpoint() string { return b.opts.Endpoint }

// MaxKeyLen returns the longest key b accepts, MaxKeyLenUnder(b.Prefix()).
func (b *Backend) MaxKeyLen() int { return MaxKeyLenUnder(b.prefix) }

// Stats returns the request counters.
func (b *Backend) Stats() *remote.Stats { return &b.stats }

// String returns "gs://bucket/prefix".
func (b *Backend) String() string {
	if b.prefix == "" {
		return "gs://" + b.name
	}
	return "gs://" + b.name + "/" + b.prefix
}

// full maps a key (or list prefix) to its object name.
func (b *Backend) full(key string) string {
	if b.prefix == "" {
		return key
	}
	return b.prefix + "/" + key
}

// objectURL returns the JSON API URL of an object (path is "storage" for
// metadata and deletes, "download/storage" for media), the name escaped as
// one path segment, its slashes included.
func (b *Backend) objectURL(path, name string) string {
	return b.opts.Endpoint + "/" + path + "/v1/b/" + url.PathEscape(b.name) + "/o/" + url.PathEscape(name)
}

// FormatETag returns the ETag of a generation: its decimal digits.
func FormatETag(generation int64) string { return strconv.FormatInt(generation, 10) }

// ParseETag returns the generation an ETag of this backend names, and false
// for a string that is not one (not a positive decimal number).
func ParseETag(etag string) (int64, bool) {
	if etag == "" || etag[0] < '0' || etag[0] > '9' {
		return 0, false
	}
	g, err := strconv.ParseInt(etag, 10, 64)
	return g, err == nil && g > 0
}

// castagnoli is the CRC32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeCRC32C returns a CRC32C as GCS writes it: the base64 of its four
// big-endian bytes.
func encodeCRC32C(sum uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
}

// Get reads an object. It returns an error wrapping remote.ErrNotExist when
// the key is missing, and one wrapping ErrTooLarge when the object is
// larger than Options.MaxObjectSize. The ETag is the generation read.
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := b.check(ctx, opGet, key); err != nil {
		return remote.Object{}, err
	}
	b.stats.Gets.Add(1)
	var obj remote.Object
	var received int64
	err := b.do(ctx, http.MethodGet, b.objectURL("download/storage", b.full(key))+"?alt=media", nil, nil, func(resp *http.Response) error {
		obj = remote.Object{}
		gen, ok := ParseETag(resp.Header.Get("X-Goog-Generation"))
		if !ok {
			return errors.New("the server returned no generation (x-goog-generation)")
		}
		size := resp.ContentLength
		if size < 0 {
			if n, err := strconv.ParseInt(resp.Header.Get("X-Goog-Stored-Content-Length"), 10, 64); err == nil {
				size = n
			}
		}
		if size > b.opts.MaxObjectSize {
			return fmt.Errorf("%w: %d bytes, more than Options.MaxObjectSize (%d)", ErrTooLarge, size, b.opts.MaxObjectSize)
		}
		data, err := readBody(resp.Body, size, b.opts.MaxObjectSize)
		received = int64(len(data))
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return &bodyError{err}
		}
		if want, ok := hashHeader(resp.Header, "crc32c"); ok {
			if got := encodeCRC32C(crc32.Checksum(data, castagnoli)); got != want {
				return &bodyError{fmt.Errorf("CRC32C %s of the %d bytes received, the server stated %s", got, len(data), want)}
			}
		}
		obj.Data, obj.ETag = data, FormatETag(gen)
		if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
			obj.LastModified = t
		}
		return nil
	})
	b.stats.BytesIn.Add(received)
	if errors.Is(err, ErrTooLarge) {
		return remote.Object{}, fmt.Errorf("gcsremote: %s %q in %s: %w", opGet, key, b, err)
	}
	if err != nil {
		return remote.Object{}, b.mapError(ctx, opGet, key, err)
	}
	return obj, nil
}

// hashHeader returns the value of one hash (e.g. "crc32c") of the
// x-goog-hash headers ("crc32c=...,md5=...", possibly repeated).
func hashHeader(h http.Header, name string) (string, bool) {
	for _, v := range h.Values("X-Goog-Hash") {
		for part := range strings.SplitSeq(v, ",") {
			if k, val, ok := strings.Cut(strings.TrimSpace(part), "="); ok && k == name {
				return val, true
			}
		}
	}
	return "", false
}

// Put stores data under key unconditionally and returns the new ETag.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, opPut, key, data, -1)
}

// PutIfAbsent stores data under key only if no object has that key
// (ifGenerationMatch=0). It returns an error wrapping remote.ErrExists when
// the key exists.
//
// Ambiguity: if an attempt stores the object but its answer is lost
// (timeout, reset, 5xx), the retry gets 412 and PutIfAbsent reports
// ErrExists although this call created the object. The sync layer resolves
// that by reading the object back and comparing the content.
func (b *Backend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, opPutIfAbsent, key, data, 0)
}

// PutIfMatch replaces the object under key only if its current generation
// is the one etag names (ifGenerationMatch). It returns an error wrapping
// remote.ErrPrecondition when the generation differs or the object is
// missing. An empty etag matches nothing and sends no request; an etag that
// is not a generation is sent as one that no object has (see the package
// doc).
//
// Ambiguity: as for PutIfAbsent, a retry after a lost answer reports
// ErrPrecondition although this call's write landed.
func (b *Backend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if etag == "" {
		if err := b.check(ctx, opPutIfMatch, key); err != nil {
			return "", err
		}
		return "", fmt.Errorf("gcsremote: %s %q in %s: empty etag: %w", opPutIfMatch, key, b, remote.ErrPrecondition)
	}
	gen, ok := ParseETag(etag)
	if !ok {
		gen = math.MaxInt64
	}
	return b.put(ctx, opPutIfMatch, key, data, gen)
}

// put sends one multipart upload: a JSON part with the object's name and
// CRC32C, then the data. ifGeneration < 0 sends no precondition; 0 means
// the object must not exist; N > 0 that its generation must be N.
func (b *Backend) put(ctx context.Context, o op, key string, data []byte, ifGeneration int64) (string, error) {
	if err := b.check(ctx, o, key); err != nil {
		return "", err
	}
	b.stats.Puts.Add(1)
	b.stats.BytesOut.Add(int64(len(data)))
	body, contentType, err := multipartBody(b.full(key), data)
	if err != nil {
		return "", fmt.Errorf("gcsremote: %s %q in %s: %w", o, key, b, err)
	}
	q := url.Values{"uploadType": {"multipart"}, "fields": {"generation"}}
	if ifGeneration >= 0 {
		q.Set("ifGenerationMatch", strconv.FormatInt(ifGeneration, 10))
	}
	u := b.opts.Endpoint + "/upload/storage/v1/b/" + url.PathEscape(b.name) + "/o?" + q.Encode()
	var gen int64
	err = b.do(ctx, http.MethodPost, u, http.Header{"Content-Type": {contentType}}, body, func(resp *http.Response) error {
		var attrs struct {
			Generation int64 `json:"generation,string"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&attrs); err != nil {
			return &bodyError{fmt.Errorf("decoding the object's metadata: %w", err)}
		}
		gen = attrs.Generation
		return nil
	})
	if err != nil {
		return "", b.mapError(ctx, o, key, err)
	}
	if gen <= 0 {
		return "", fmt.Errorf("gcsremote: %s %q in %s: the server returned no generation", o, key, b)
	}
	return FormatETag(gen), nil
}

// multipartBody returns the body and Content-Type of a multipart upload of
// data as object name.
func multipartBody(name string, data []byte) ([]byte, string, error) {
	meta, err := json.Marshal(struct {
		Name        string `json:"name"`
		ContentType string `json:"contentType"`
		CRC32C      string `json:"crc32c"`
	}{name, "application/octet-stream", encodeCRC32C(crc32.Checksum(data, castagnoli))})
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	buf.Grow(len(data) + len(meta) + 256)
	w := multipart.NewWriter(&buf)
	for _, part := range []struct {
		contentType string
		body        []byte
	}{{"application/json; charset=UTF-8", meta}, {"application/octet-stream", data}} {
		pw, err := w.CreatePart(textproto.MIMEHeader{"Content-Type": {part.contentType}})
		if err != nil {
			return nil, "", err
		}
		if _, err := pw.Write(part.body); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "multipart/related; boundary=" + w.Boundary(), nil
}

// Delete removes the object under key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, opDelete, key); err != nil {
		return err
	}
	b.stats.Deletes.Add(1)
	err := b.do(ctx, http.MethodDelete, b.objectURL("storage", b.full(key)), nil, nil, nil)
	if err = b.mapError(ctx, opDelete, key, err); errors.Is(err, remote.ErrNotExist) {
		return nil
	}
	return err
}

// listPage is one page of an objects listing, the fields List asks for.
type listPage struct {
	Items []struct {
		Name       string    `json:"name"`
		Size       int64     `json:"size,string"`
		Generation int64     `json:"generation,string"`
		Updated    time.Time `json:"updated"`
	} `json:"items"`
	NextPageToken string `json:"nextPageToken"`
}

// List yields the objects whose keys start with prefix and sort after
// startAfter, in ascending byte order (the order GCS lists names in),
// fetching one page of Options.PageSize objects at a time as the caller
// consumes them. startAfter is sent as the query's startOffset (inclusive);
// the object named startAfter itself is skipped. An error ends the sequence
// as the final (Info{}, err) pair.
func (b *Backend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		if err := remote.ValidatePrefix(prefix); err != nil {
			yield(remote.Info{}, fmt.Errorf("gcsremote: %s %q: %w", opList, prefix, err))
			return
		}
		if p := strings.TrimSuffix(prefix, "/"); p != "" {
			if err := checkName(b.full(p), b.prefix); err != nil {
				yield(remote.Info{}, fmt.Errorf("gcsremote: %s %q in %s: %w", opList, prefix, b, err))
				return
			}
		}
		q := url.Values{
			"prefix":     {b.full(prefix)},
			"maxResults": {strconv.Itoa(b.opts.PageSize)},
			"projection": {"noAcl"},
			"fields":     {"items(name,size,generation,updated),nextPageToken"},
		}
		if startAfter != "" {
			q.Set("startOffset", b.full(startAfter))
		}
		root := b.full("") // "" or "prefix/", cut from returned names
		after := b.full(startAfter)
		for {
			if err := ctx.Err(); err != nil {
				yield(remote.Info{}, b.mapError(ctx, opList, prefix, err))
				return
			}
			b.stats.Lists.Add(1)
			var page listPage
			u := b.opts.Endpoint + "/storage/v1/b/" + url.PathEscape(b.name) + "/o?" + q.Encode()
			err := b.do(ctx, http.MethodGet, u, nil, nil, func(resp *http.Response) error {
				page = listPage{}
				if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
					return &bodyError{fmt.Errorf("decoding a listing page: %w", err)}
				}
				return nil
			})
			if err != nil {
				yield(remote.Info{}, b.mapError(ctx, opList, prefix, err))
				return
			}
			for _, a := range page.Items {
				if startAfter != "" && a.Name <= after {
					continue // startOffset is inclusive
				}
				key, ok := strings.CutPrefix(a.Name, root)
				if !ok || key == "" {
					continue // not ours (a server ignoring the prefix)
				}
				if !yield(remote.Info{Key: key, Size: a.Size, ETag: FormatETag(a.Generation), LastModified: a.Updated}, nil) {
					return
				}
			}
			if page.NextPageToken == "" || page.NextPageToken == q.Get("pageToken") {
				return
			}
			q.Set("pageToken", page.NextPageToken)
		}
	}
}

// do sends a request, retrying as the package doc says: it returns nil
// once read (which may be nil) has taken a 2xx answer, the last error
// otherwise: an *apiError for an answer of another status, a *bodyError
// when read failed on a body cut short or garbled, read's other errors as
// they are (not retried), or the client's error. Every attempt and every
// pause between two takes ctx.
func (b *Backend) do(ctx context.Context, method, u string, header http.Header, body []byte, read func(*http.Response) error) error {
	backoff := min(initialBackoff, b.opts.MaxBackoff)
	for attempt := 1; ; attempt++ {
		err := b.attempt(ctx, method, u, header, body, read)
		if err == nil || ctx.Err() != nil || attempt >= b.opts.MaxAttempts || !retryable(err) {
			return err
		}
		// Full jitter: a delay drawn at random up to the current cap.
		t := time.NewTimer(time.Duration(1 + rand.Int64N(int64(max(backoff, 1)))))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, b.opts.MaxBackoff)
	}
}

// attempt sends the request once.
func (b *Backend) attempt(ctx context.Context, method, u string, header http.Header, body []byte, read func(*http.Response) error) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "ebreplica-gcsremote")
	resp, err := b.client.Do(req)
	if err != nil {
		return &connError{err}
	}
	defer func() {
		// Drain a little, so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readAPIError(resp)
	}
	if read == nil {
		return nil
	}
	return read(resp)
}

// readBody reads a whole body, growing the buffer as bytes arrive (size,
// the object's stated size, sizes at most 1 MiB in advance); a body longer
// than limit fails with ErrTooLarge.
func readBody(r io.Reader, size, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(min(max(size, 0)+1, 1<<20, limit+1)))
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if n > limit {
		return nil, fmt.Errorf("%w: more than Options.MaxObjectSize (%d bytes)", ErrTooLarge, limit)
	}
	if err != nil {
		return buf.Bytes(), err
	}
	if size >= 0 && n != size {
		return buf.Bytes(), fmt.Errorf("%d bytes of an object of %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}

// check runs the checks every operation starts with: a live ctx and a valid
// key whose object name keeps to the limits.
func (b *Backend) check(ctx context.Context, o op, key string) error {
	if err := ctx.Err(); err != nil {
		return b.mapError(ctx, o, key, err)
	}
	if err := remote.ValidateKey(key); err != nil {
		return fmt.Errorf("gcsremote: %s: %w", o, err)
	}
	if err := checkName(b.full(key), b.prefix); err != nil {
		return fmt.Errorf("gcsremote: %s %q in %s: %w", o, key, b, err)
	}
	return nil
}

// checkName checks an object name against MaxNameLen and MaxSegmentLen;
// prefix is the store prefix it holds, for the message.
func checkName(name, prefix string) error { return names.Check(name, prefix) }

// names are GCS's limits as this driver checks them.
var names = remote.NameLimits{Object: "object", MaxName: MaxNameLen, TooLong: "GCS allows at most %d",
	MaxSegment: MaxSegmentLen, SegmentTooLong: "ebreplica allows at most %d on every store"}
