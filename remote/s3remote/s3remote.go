// Package s3remote implements remote.Backend on Amazon S3 and S3-compatible
// servers, with the AWS SDK for Go v2.
//
// Objects live in one bucket under an optional prefix: key k is stored as
// prefix + "/" + k (or k itself when the prefix is empty). Create-only and
// compare-and-swap writes use S3 conditional writes (If-None-Match: * and
// If-Match on PutObject), which the server must support.
//
// Every request goes through the SDK's standard retryer, configured by
// [Options]: exponential backoff with jitter, retrying throttling (503
// SlowDown, 429), 5xx, timeouts and connection errors, never other 4xx
// answers. A Get whose body breaks off after the answer's headers is not
// retried; it fails with an error wrapping remote.ErrTransient. SDK errors
// are folded into remote's sentinel errors in one function (see errors.go).
// A retried conditional put can be ambiguous; see PutIfAbsent.
//
// Object names keep to the strictest limits S3 services put on them: at
// most MaxNameLen (1,024) bytes, the prefix included, and at most
// MaxSegmentLen (255) bytes between two slashes. A key beyond them fails
// with an error wrapping remote.ErrInvalidKey before any request is sent,
// whatever the server would have said; Backend.MaxKeyLen tells the room a
// prefix leaves.
//
// Get reads an object whole into memory, up to Options.MaxObjectSize: a
// larger object fails with an error wrapping ErrTooLarge. The buffer grows
// as bytes arrive; a Content-Length header (chosen by whoever wrote the
// object) sizes at most the first MiB of it in advance.
//
// Counters ([remote.Stats]) count logical operations as issued, successful or
// not: one per Get, Put, PutIfAbsent, PutIfMatch and Delete call and one per
// List page, never one per retry attempt. BytesOut adds the body size of every
// put issued, BytesIn the size of every Get body received.
package s3remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ebreplica/ebreplica/remote"
)

var _ remote.Backend = (*Backend)(nil)

// Defaults of Options.
const (
	DefaultPageSize    = 1000
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 5 * time.Second

	// DefaultMaxObjectSize is the largest object Get reads by default.
	DefaultMaxObjectSize = 1 << 30
	// maxMaxObjectSize bounds Options.MaxObjectSize (Get holds an object
	// in memory).
	maxMaxObjectSize = 1 << 40
)

// ErrTooLarge: Get found an object larger than Options.MaxObjectSize. It is
// not transient: retrying reads the same object.
var ErrTooLarge = errors.New("s3remote: object too large")

// ErrRefused: the server refused the request for good (a 4xx answer other
// than the ones remote's sentinels cover, or 501 Not Implemented). It is not
// transient: retrying sends the same request.
var ErrRefused = errors.New("s3remote: the server refused the request")

// Limits of S3 object names, which the backend checks before sending a
// request (a key beyond them fails with remote.ErrInvalidKey and sends
// nothing), so that every server behaves as the strictest would.
const (
	// MaxNameLen is the longest object name, in bytes, the store prefix
	// and its "/" included: AWS S3 and MinIO refuse longer names
	// (KeyTooLongError); some servers accept them.
	MaxNameLen = 1024
	// MaxSegmentLen is the longest "/"-separated part of an object name,
	// in bytes: servers that keep objects as files (MinIO, versitygw)
	// refuse longer ones (a file name); AWS S3 does not.
	MaxSegmentLen = 255
)

// MaxKeyLenUnder returns the longest key a Backend under prefix accepts:
// key k is stored as prefix/k, and the whole name may have MaxNameLen
// bytes. It is MaxNameLen for the bucket root, and less than 1 for a prefix
// that leaves no room.
func MaxKeyLenUnder(prefix string) int { return names.KeyLenUnder(prefix) }

// maxPrealloc is the most Get allocates before the bytes arrive, whatever
// the answer's Content-Length says.
const maxPrealloc = 1 << 20

// Options tunes a Backend. A nil *Options and zero fields mean the defaults.
type Options struct {
	// PageSize is the number of keys List requests per page (S3 MaxKeys).
	// Default 1000, which is also the S3 maximum; allowed 1..1000.
	PageSize int

	// MaxAttempts is the number of attempts per request, the first one
	// included. Default 5; 1 disables retries. Retries apply to throttling,
	// 5xx, timeouts and connection errors only.
	MaxAttempts int

	// MaxBackoff caps the delay between two attempts. The delay grows
	// exponentially with full jitter up to this cap. Default 5s.
	MaxBackoff time.Duration

	// SDKChecksums turns on the SDK's flexible integrity checksums, the
	// default of a client from config.LoadDefaultConfig ("when supported"):
	// a CRC32 of every upload (a header over HTTP, an aws-chunked trailer
	// over HTTPS) and validation of the checksum a server returns on
	// download. Default false: checksums only where an operation requires
	// them (RequestChecksumCalculation and ResponseChecksumValidation "when
	// required"), whatever the client says, which every S3-compatible server
	// accepts (several reject the aws-chunked trailers
	// of the SDK's default). Uploads stay protected: the SigV4 signature
	// covers the payload's SHA-256 over plain HTTP, TLS over HTTPS.
	SDKChecksums bool

	// MaxObjectSize caps the size of an object Get reads, in bytes. A
	// larger object fails with an error wrapping ErrTooLarge, before its
	// body is read when its Content-Length says so, else as soon as the
	// body passes the cap (Get never holds more than MaxObjectSize+1 bytes
	// of it). Set it to what the caller can expect, e.g. the store's
	// segment cap plus a value for log segments. Default
	// DefaultMaxObjectSize (1 GiB); allowed 1..1 TiB.
	MaxObjectSize int64

	// Timeout bounds each HTTP attempt of a client that Open builds: the
	// whole exchange (http.Client.Timeout) and the wait for the response
	// headers (http.Transport.ResponseHeaderTimeout), so that a server
	// that accepts the connection and never answers fails the attempt
	// (retried as a timeout, up to MaxAttempts). Default
	// remote.DefaultTimeout (30s); negative: no bound. New leaves an
	// injected client's HTTP settings alone.
	Timeout time.Duration
}

// validate checks o and returns a copy with the defaults filled in.
func (o *Options) validate() (Options, error) {
	var v Options
	if o != nil {
		v = *o
	}
	switch {
	case v.PageSize < 0 || v.PageSize > 1000:
		return v, fmt.Errorf("s3remote: Options.PageSize %d out of range 1..1000", v.PageSize)
	case v.MaxAttempts < 0:
		return v, fmt.Errorf("s3remote: Options.MaxAttempts %d is negative", v.MaxAttempts)
	case v.MaxBackoff < 0:
		return v, fmt.Errorf("s3remote: Options.MaxBackoff %v is negative", v.MaxBackoff)
	case v.MaxObjectSize < 0 || v.MaxObjectSize > maxMaxObjectSize:
		return v, fmt.Errorf("s3remote: Options.MaxObjectSize %d out of range 1..%d", v.MaxObjectSize, int64(maxMaxObjectSize))
	}
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

// Backend stores objects in an S3 bucket. It is safe for concurrent use.
type Backend struct {
	client *s3.Client
	bucket string
	prefix string // without leading or trailing "/"; "" = bucket root
	opts   Options
	apiOpt func(*s3.Options) // applied to every call: retryer, checksums
	stats  remote.Stats
}

// New returns a Backend storing objects in bucket under prefix through
// client. The client is used as configured (endpoint, credentials, HTTP
// transport), except that every request uses the retry policy and checksum
// setting of opts, overriding the client's; nil opts means the defaults.
// Leading and trailing slashes of prefix are ignored. New sends no request:
// a missing bucket or bad credentials show on the first operation.
func New(client *s3.Client, bucket, prefix string, opts *Options) (*Backend, error) {
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("s3remote: nil *s3.Client")
	}
	if bucket == "" || strings.ContainsAny(bucket, "/\\") {
		return nil, fmt.Errorf("s3remote: invalid bucket name %q", bucket)
	}
	prefix = strings.Trim(prefix, "/")
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	retryer := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.MaxAttempts
		so.MaxBackoff = o.MaxBackoff
		// No client-wide retry token bucket: every request gets its full
		// MaxAttempts, so the bound is exact and predictable. Backoff with
		// jitter already spreads the load.
		so.RateLimiter = ratelimit.None
		so.Retryables = append(slices.Clone(so.Retryables), retry.IsErrorRetryableFunc(racedDirectory))
	})
	b := &Backend{client: client, bucket: bucket, prefix: prefix, opts: o}
	b.apiOpt = func(so *s3.Options) {
		so.Retryer = retryer
		so.RetryMaxAttempts = 0 // keep the client's own setting from wrapping ours
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		if o.SDKChecksums {
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
		}
	}
	return b, nil
}

// CheckPrefix checks a store prefix as New does (leading and trailing
// slashes ignored): "" or a valid key (remote.ValidateKey) whose parts
// between slashes have at most MaxSegmentLen bytes and that leaves room for
// a key below it within MaxNameLen. The error wraps remote.ErrInvalidKey.
func CheckPrefix(prefix string) error {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return nil
	}
	if err := remote.ValidateKey(prefix); err != nil {
		return fmt.Errorf("s3remote: prefix: %w", err)
	}
	if err := checkName(prefix, ""); err != nil {
		return fmt.Errorf("s3remote: prefix: %w", err)
	}
	if MaxKeyLenUnder(prefix) < 1 {
		return fmt.Errorf("s3remote: prefix: %w: %d bytes leave no room for object names; S3 allows at most %d bytes, the prefix and its \"/\" included",
			remote.ErrInvalidKey, len(prefix), MaxNameLen)
	}
	return nil
}

// Bucket returns the bucket name.
func (b *Backend) Bucket() string { return b.bucket }

// Prefix returns the key prefix, without leading or trailing slash.
func (b *Backend) Prefix() string { return b.prefix }

// MaxKeyLen returns the longest key b accepts, MaxKeyLenUnder(b.Prefix()):
// remote.MaxKeyLen at the bucket root, less under a prefix.
func (b *Backend) MaxKeyLen() int { return MaxKeyLenUnder(b.prefix) }

// Client returns the S3 client.
func (b *Backend) Client() *s3.Client { return b.client }

// Stats returns the request counters.
func (b *Backend) Stats() *remote.Stats { return &b.stats }

// String returns "s3://bucket/prefix".
func (b *Backend) String() string {
	if b.prefix == "" {
		return "s3://" + b.bucket
	}
	return "s3://" + b.bucket + "/" + b.prefix
}

// full maps a key (or list prefix) to its S3 object name.
func (b *Backend) full(key string) string {
	if b.prefix == "" {
		return key
	}
	return b.prefix + "/" + key
}

// Get reads an object. It returns an error wrapping remote.ErrNotExist when
// the key is missing, and one wrapping ErrTooLarge when the object is
// larger than Options.MaxObjectSize. The ETag is returned exactly as the
// server sent it (quotes included).
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := b.check(ctx, opGet, key); err != nil {
		return remote.Object{}, err
	}
	b.stats.Gets.Add(1)
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(b.bucket),
		Key:    aws.String(b.full(key)),
	}, b.apiOpt)
	if err != nil {
		return remote.Object{}, b.mapError(opGet, key, err)
	}
	defer out.Body.Close()
	data, err := readBody(out.Body, out.ContentLength, b.opts.MaxObjectSize)
	b.stats.BytesIn.Add(int64(len(data)))
	if errors.Is(err, ErrTooLarge) {
		return remote.Object{}, fmt.Errorf("s3remote: %s %q in %s: %w", opGet, key, b, err)
	}
	if err != nil {
		return remote.Object{}, b.mapError(opGet, key, &bodyError{err})
	}
	return remote.Object{
		Data:         data,
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// Put stores data under key unconditionally and returns the new ETag.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, opPut, key, data, nil, nil)
}

// PutIfAbsent stores data under key only if no object has that key (S3
// If-None-Match: *). It returns an error wrapping remote.ErrExists when the
// key exists (412 PreconditionFailed, or 409 ConditionalRequestConflict when
// a concurrent conditional write is in flight).
//
// Ambiguity: if an attempt reaches the server and stores the object but its
// answer is lost (timeout, reset, 5xx), the retry gets 412 and PutIfAbsent
// reports ErrExists although this call created the object. The sync layer
// resolves that by reading the object back and comparing the content.
func (b *Backend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, opPutIfAbsent, key, data, aws.String("*"), nil)
}

// PutIfMatch replaces the object under key only if its current ETag equals
// etag (S3 If-Match; etag is sent exactly as given, pass it as received). It
// returns an error wrapping remote.ErrPrecondition when the ETag differs
// (412), when the object is missing (404), or when a concurrent conditional
// write is in flight (409 ConditionalRequestConflict). An empty etag matches
// nothing; no request is sent.
//
// Ambiguity: if an attempt stores the object but its answer is lost, the
// retry carries the old ETag and gets 412, so PutIfMatch reports
// ErrPrecondition although this call's write landed. The sync layer resolves
// that by reading the object back and comparing the content.
func (b *Backend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if etag == "" {
		// Never send an empty If-Match: it could be dropped and make the
		// put unconditional. An empty etag matches nothing.
		if err := b.check(ctx, opPutIfMatch, key); err != nil {
			return "", err
		}
		return "", fmt.Errorf("s3remote: %s %q in %s: empty etag: %w", opPutIfMatch, key, b, remote.ErrPrecondition)
	}
	return b.put(ctx, opPutIfMatch, key, data, nil, aws.String(etag))
}

func (b *Backend) put(ctx context.Context, o op, key string, data []byte, ifNoneMatch, ifMatch *string) (string, error) {
	if err := b.check(ctx, o, key); err != nil {
		return "", err
	}
	b.stats.Puts.Add(1)
	b.stats.BytesOut.Add(int64(len(data)))
	out, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(b.full(key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		IfNoneMatch:   ifNoneMatch,
		IfMatch:       ifMatch,
	}, b.apiOpt)
	if err != nil {
		return "", b.mapError(o, key, err)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return "", fmt.Errorf("s3remote: %s %q in %s: the server returned no ETag", o, key, b)
	}
	return etag, nil
}

// Delete removes the object under key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, opDelete, key); err != nil {
		return err
	}
	b.stats.Deletes.Add(1)
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(b.bucket),
		Key:    aws.String(b.full(key)),
	}, b.apiOpt)
	if err = b.mapError(opDelete, key, err); errors.Is(err, remote.ErrNotExist) {
		return nil
	}
	return err
}

// List yields the objects whose keys start with prefix and sort after
// startAfter, in ascending byte order, fetching one page (ListObjectsV2,
// Options.PageSize keys) at a time as the caller consumes them. An error ends
// the sequence as the final (Info{}, err) pair.
func (b *Backend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		if err := remote.ValidatePrefix(prefix); err != nil {
			yield(remote.Info{}, fmt.Errorf("s3remote: %s %q: %w", opList, prefix, err))
			return
		}
		if p := strings.TrimSuffix(prefix, "/"); p != "" {
			if err := checkName(b.full(p), b.prefix); err != nil {
				yield(remote.Info{}, fmt.Errorf("s3remote: %s %q in %s: %w", opList, prefix, b, err))
				return
			}
		}
		in := &s3.ListObjectsV2Input{
			Bucket:  aws.String(b.bucket),
			MaxKeys: aws.Int32(int32(b.opts.PageSize)),
		}
		if p := b.full(prefix); p != "" {
			in.Prefix = aws.String(p)
		}
		if startAfter != "" {
			in.StartAfter = aws.String(b.full(startAfter))
		}
		root := b.full("") // "" or "prefix/", cut from returned names
		for {
			if err := ctx.Err(); err != nil {
				yield(remote.Info{}, b.mapError(opList, prefix, err))
				return
			}
			b.stats.Lists.Add(1)
			out, err := b.client.ListObjectsV2(ctx, in, b.apiOpt)
			if err != nil {
				yield(remote.Info{}, b.mapError(opList, prefix, err))
				return
			}
			var last string
			for _, obj := range out.Contents {
				name := aws.ToString(obj.Key)
				last = name
				key, ok := strings.CutPrefix(name, root)
				if !ok || key == "" {
					continue // not ours (a server ignoring Prefix)
				}
				if !yield(info(key, obj), nil) {
					return
				}
			}
			if !aws.ToBool(out.IsTruncated) {
				return
			}
			if tok := aws.ToString(out.NextContinuationToken); tok != "" {
				in.ContinuationToken = aws.String(tok)
			} else if last != "" {
				// A server that pages without a token: go on after the last key.
				in.ContinuationToken = nil
				in.StartAfter = aws.String(last)
			} else {
				yield(remote.Info{}, fmt.Errorf("s3remote: %s %q in %s: truncated page without continuation token", opList, prefix, b))
				return
			}
		}
	}
}

func info(key string, obj types.Object) remote.Info {
	return remote.Info{
		Key:          key,
		Size:         aws.ToInt64(obj.Size),
		ETag:         aws.ToString(obj.ETag),
		LastModified: aws.ToTime(obj.LastModified),
	}
}

// readBody reads a whole response body, on to EOF so that the SDK's
// checksum validation (which runs at EOF) reports a mismatch. It allocates
// as the bytes arrive: contentLength sizes at most maxPrealloc bytes in
// advance (an object's writer chooses its length, and eight Gets of a
// 1 GiB object in flight would otherwise reserve 8 GiB before a byte
// arrived). A body longer than limit fails with ErrTooLarge, at once when
// contentLength says so, else after reading limit+1 bytes.
func readBody(body io.Reader, contentLength *int64, limit int64) ([]byte, error) {
	n := int64(-1)
	if contentLength != nil && *contentLength >= 0 {
		n = *contentLength
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes, more than Options.MaxObjectSize (%d)", ErrTooLarge, n, limit)
	}
	first := int64(512)
	if n >= 0 {
		first = n + 1 // the +1 sees EOF without growing
	}
	data := make([]byte, 0, min(first, maxPrealloc, limit+1))
	for {
		if len(data) == cap(data) {
			// Double, up to one byte past the limit.
			data = slices.Grow(data, int(min(int64(cap(data)), limit+1-int64(len(data)))))
		}
		m, err := body.Read(data[len(data):cap(data)])
		data = data[:len(data)+m]
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("%w: more than Options.MaxObjectSize (%d bytes)", ErrTooLarge, limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return data, err
		}
	}
	switch {
	case n >= 0 && int64(len(data)) < n:
		return data, fmt.Errorf("%d bytes of a Content-Length of %d: %w", len(data), n, io.ErrUnexpectedEOF)
	case n >= 0 && int64(len(data)) > n:
		return data, fmt.Errorf("body longer than its Content-Length %d", n)
	}
	return data, nil
}

// check runs the checks every operation starts with: a live ctx and a valid
// key, whose object name keeps to the limits of S3 names.
func (b *Backend) check(ctx context.Context, o op, key string) error {
	if err := ctx.Err(); err != nil {
		return b.mapError(o, key, err)
	}
	if err := remote.ValidateKey(key); err != nil {
		return fmt.Errorf("s3remote: %s: %w", o, err)
	}
	if err := checkName(b.full(key), b.prefix); err != nil {
		return fmt.Errorf("s3remote: %s %q in %s: %w", o, key, b, err)
	}
	return nil
}

// checkName checks an object name against MaxNameLen and MaxSegmentLen;
// prefix is the store prefix it holds, for the message.
func checkName(name, prefix string) error { return names.Check(name, prefix) }

// names are S3's limits as this driver checks them.
var names = remote.NameLimits{Object: "object", MaxName: MaxNameLen, TooLong: "S3 allows at most %d",
	MaxSegment: MaxSegmentLen, SegmentTooLong: "S3 servers that keep objects as files (MinIO, versitygw) allow at most %d"}

// bodyError marks a failure while reading a GetObject body, after the SDK's
// retries are over: the read is not retried and counts as transient.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }
