// Package gcsremote implements remote.Backend on Google Cloud Storage, with
// the official client (cloud.google.com/go/storage) over HTTP: the JSON API
// for writes, listings and deletes, and the client's default (the XML API)
// for reads.
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
// Every request goes through the client's retryer, configured by [Options]:
// exponential backoff with full jitter, at most Options.MaxAttempts attempts,
// retrying 408, 429, 5xx and connection errors, never other answers, and
// applied to every call, conditional and unconditional writes included (our writes are idempotent: a retried put
// sends the same bytes). A retried conditional put can be ambiguous; see
// PutIfAbsent. SDK errors are folded into remote's sentinels in one
// function (see errors.go).
//
// Every write is a single request (a multipart upload, not a resumable one)
// carrying the CRC32C of its data, which the server checks; Get checks the
// CRC32C the server returns.
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
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"

	"github.com/ebreplica/ebreplica/remote"
)

var _ remote.Backend = (*Backend)(nil)

// Defaults of Options.
const (
	DefaultPageSize      = 1000
	DefaultMaxAttempts   = 5
	DefaultMaxBackoff    = 5 * time.Second
	DefaultMaxObjectSize = 1 << 30
	maxMaxObjectSize     = 1 << 40
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

// Backend stores objects in a GCS bucket. It is safe for concurrent use.
type Backend struct {
	client *storage.Client
	bucket *storage.BucketHandle
	name   string // bucket name
	prefix string // without leading or trailing "/"; "" = bucket root
	opts   Options
	retry  []storage.RetryOption
	stats  remote.Stats
}

// New returns a Backend storing objects in bucket under prefix through
// client, with the retry policy of opts on every request (nil opts means
// the defaults). Leading and trailing slashes of prefix are ignored. New
// sends no request: a missing bucket or refused credentials show on the
// first operation.
func New(client *storage.Client, bucket, prefix string, opts *Options) (*Backend, error) {
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("gcsremote: nil *storage.Client")
	}
	if err := checkBucket(bucket); err != nil {
		return nil, err
	}
	prefix = strings.Trim(prefix, "/")
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	b := &Backend{client: client, name: bucket, prefix: prefix, opts: o}
	b.retry = []storage.RetryOption{
		storage.WithPolicy(storage.RetryAlways),
		storage.WithMaxAttempts(o.MaxAttempts),
		// gax.Backoff draws each delay at random up to the current cap
		// (full jitter).
		storage.WithBackoff(gax.Backoff{Initial: min(initialBackoff, o.MaxBackoff), Max: o.MaxBackoff, Multiplier: 2}),
	}
	b.bucket = client.Bucket(bucket)
	return b, nil
}

// retryer returns the retry options of one call: the Backend's, with an
// error function that stops after Options.MaxAttempts attempts. The client
// bounds most calls by WithMaxAttempts, but a single-request upload is
// retried by the transport layer (gensupport) until ctx ends, whatever
// WithMaxAttempts says; the error function, called once per failed
// attempt, bounds it too, counting attempts itself when the client does not
// say which attempt it is.
func (b *Backend) retryer() []storage.RetryOption {
	var failed atomic.Int32
	limit := b.opts.MaxAttempts
	return append(slices.Clip(b.retry), storage.WithErrorFuncWithContext(func(err error, rc *storage.RetryContext) bool {
		if !storage.ShouldRetry(err) {
			return false
		}
		if rc != nil {
			return rc.Attempt < limit
		}
		return int(failed.Add(1)) < limit
	}))
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

// MaxKeyLen returns the longest key b accepts, MaxKeyLenUnder(b.Prefix()).
func (b *Backend) MaxKeyLen() int { return MaxKeyLenUnder(b.prefix) }

// Client returns the GCS client.
func (b *Backend) Client() *storage.Client { return b.client }

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

func (b *Backend) object(key string) *storage.ObjectHandle {
	return b.bucket.Object(b.full(key)).Retryer(b.retryer()...)
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

// Get reads an object. It returns an error wrapping remote.ErrNotExist when
// the key is missing, and one wrapping ErrTooLarge when the object is
// larger than Options.MaxObjectSize. The ETag is the generation read.
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := b.check(ctx, opGet, key); err != nil {
		return remote.Object{}, err
	}
	b.stats.Gets.Add(1)
	r, err := b.object(key).NewReader(ctx)
	if err != nil {
		return remote.Object{}, b.mapError(ctx, opGet, key, err)
	}
	defer r.Close()
	if r.Attrs.Size > b.opts.MaxObjectSize {
		return remote.Object{}, fmt.Errorf("gcsremote: %s %q in %s: %w: %d bytes, more than Options.MaxObjectSize (%d)",
			opGet, key, b, ErrTooLarge, r.Attrs.Size, b.opts.MaxObjectSize)
	}
	data, err := readBody(r, r.Attrs.Size, b.opts.MaxObjectSize)
	b.stats.BytesIn.Add(int64(len(data)))
	if errors.Is(err, ErrTooLarge) {
		return remote.Object{}, fmt.Errorf("gcsremote: %s %q in %s: %w", opGet, key, b, err)
	}
	if err != nil {
		return remote.Object{}, b.mapError(ctx, opGet, key, &bodyError{err})
	}
	return remote.Object{
		Data:         data,
		ETag:         FormatETag(r.Attrs.Generation),
		LastModified: r.Attrs.LastModified,
	}, nil
}

// Put stores data under key unconditionally and returns the new ETag.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, opPut, key, data, nil)
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
	return b.put(ctx, opPutIfAbsent, key, data, &storage.Conditions{DoesNotExist: true})
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
	return b.put(ctx, opPutIfMatch, key, data, &storage.Conditions{GenerationMatch: gen})
}

func (b *Backend) put(ctx context.Context, o op, key string, data []byte, cond *storage.Conditions) (string, error) {
	if err := b.check(ctx, o, key); err != nil {
		return "", err
	}
	b.stats.Puts.Add(1)
	b.stats.BytesOut.Add(int64(len(data)))
	obj := b.object(key)
	if cond != nil {
		obj = obj.If(*cond)
	}
	// The writer's context bounds the upload; cancelling it aborts it.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	// One request: a chunk larger than the object (the client rounds it up
	// to a multiple of 256 KiB) makes a multipart upload, retried whole.
	w.ChunkSize = len(data) + 1
	w.ContentType = "application/octet-stream"
	w.CRC32C = crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	w.SendCRC32C = true
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return "", b.mapError(ctx, o, key, err)
	}
	if err := w.Close(); err != nil {
		return "", b.mapError(ctx, o, key, err)
	}
	attrs := w.Attrs()
	if attrs == nil || attrs.Generation <= 0 {
		return "", fmt.Errorf("gcsremote: %s %q in %s: the server returned no generation", o, key, b)
	}
	return FormatETag(attrs.Generation), nil
}

// Delete removes the object under key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, opDelete, key); err != nil {
		return err
	}
	b.stats.Deletes.Add(1)
	err := b.object(key).Delete(ctx)
	if err = b.mapError(ctx, opDelete, key, err); errors.Is(err, remote.ErrNotExist) {
		return nil
	}
	return err
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
		if err := ctx.Err(); err != nil {
			yield(remote.Info{}, b.mapError(ctx, opList, prefix, err))
			return
		}
		q := &storage.Query{Prefix: b.full(prefix), Projection: storage.ProjectionNoACL}
		if startAfter != "" {
			q.StartOffset = b.full(startAfter)
		}
		if err := q.SetAttrSelection([]string{"Name", "Size", "Generation", "Updated"}); err != nil {
			yield(remote.Info{}, fmt.Errorf("gcsremote: %s %q in %s: %w", opList, prefix, b, err))
			return
		}
		root := b.full("") // "" or "prefix/", cut from returned names
		after := b.full(startAfter)
		pager := iterator.NewPager(b.bucket.Retryer(b.retryer()...).Objects(ctx, q), b.opts.PageSize, "")
		for {
			if err := ctx.Err(); err != nil {
				yield(remote.Info{}, b.mapError(ctx, opList, prefix, err))
				return
			}
			b.stats.Lists.Add(1)
			var page []*storage.ObjectAttrs
			token, err := pager.NextPage(&page)
			if err != nil {
				yield(remote.Info{}, b.mapError(ctx, opList, prefix, err))
				return
			}
			for _, a := range page {
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
			if token == "" {
				return
			}
		}
	}
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

// bodyError marks a failure while reading an object's body, after the
// client's retries: it counts as transient.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }
