// Package azremote implements remote.Backend on Azure Blob Storage, with the
// official Azure SDK for Go (github.com/Azure/azure-sdk-for-go/sdk/storage/azblob).
//
// Objects are block blobs in one container under an optional prefix: key k
// is stored as prefix + "/" + k (or k itself when the prefix is empty). Each
// put is a single Put Blob request.
//
// # ETags
//
// Azure gives every write of a blob a new ETag and takes HTTP conditions on
// it, so the ETag this backend returns is Azure's own, exactly as the service
// sends it (quotes included, e.g. "\"0x8DD1A2B3C4D5E6F\""), and the two
// conditional writes map directly:
//
//	PutIfAbsent(k)         If-None-Match: *      (409 BlobAlreadyExists when the blob exists)
//	PutIfMatch(k, etag)    If-Match: <etag>      (412 ConditionNotMet; 404 BlobNotFound when missing)
//
// The service checks the condition and writes atomically, so of racing
// writers exactly one wins; the losers' answers map to remote.ErrExists and
// remote.ErrPrecondition. An ETag changes on every write, even of the same
// content. List returns the same quoted form (the listing's XML holds the
// tag unquoted; List adds the quotes). An etag that is not a quoted entity
// tag matches nothing: no request is sent (If-Match: * would match any
// blob, and Azurite takes an unquoted tag for the quoted one).
//
// # Retries, errors, limits
//
// Retries are the client's pipeline policy (azcore): exponential backoff with
// jitter on 408, 429, 500, 502, 503, 504 and connection errors, for every
// request, conditional puts included. Open builds the client with
// [ClientOptions] from [Options]; a client given to New keeps its own policy.
// A Get whose body breaks off is resumed from where it stopped (a ranged
// read conditioned on the same ETag) up to the same number of times. A
// retried conditional put can be ambiguous; see PutIfAbsent. SDK errors are
// folded into remote's sentinels in one function (see errors.go), and no
// message shows a secret (a shared access signature in a URL is redacted).
//
// Object names keep to Azure's limits and to the strictest limit of the
// other drivers: at most MaxNameLen (1,024) bytes, the prefix included (Azure
// counts characters; bytes are stricter), at most MaxSegmentLen (255) bytes
// between two slashes, at most MaxSegments (254) parts, and no part ending
// in "." (Azure drops trailing dots of path segments, which would store the
// object under another name). A key beyond them fails with an error wrapping
// remote.ErrInvalidKey before any request is sent; Backend.MaxKeyLen tells
// the room a prefix leaves. ebreplica's own names never come near.
//
// List: Azure's List Blobs has no "start after"; this backend sends
// startFrom (inclusive; service version 2026-12-06 and later) and also skips
// names up to startAfter itself, so a server that ignores startFrom (Azurite
// 3.35) lists correctly, at the cost of listing the skipped names.
//
// Counters ([remote.Stats]) count logical operations as issued, successful or
// not: one per Get, Put, PutIfAbsent, PutIfMatch and Delete call and one per
// List page, never one per retry attempt. BytesOut adds the body size of every
// put issued, BytesIn the size of every Get body received.
package azremote

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

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
	initialBackoff       = 100 * time.Millisecond
)

// ErrTooLarge: Get found an object larger than Options.MaxObjectSize. It is
// not transient: retrying reads the same object.
var ErrTooLarge = errors.New("azremote: object too large")

// ErrRefused: the service refused the request for good (a 4xx answer other
// than the ones remote's sentinels cover). It is not transient.
var ErrRefused = errors.New("azremote: the service refused the request")

// Limits of object names, checked before a request is sent.
const (
	// MaxNameLen is the longest blob name, in bytes, the store prefix and
	// its "/" included (Azure allows 1,024 characters).
	MaxNameLen = 1024
	// MaxSegmentLen is the longest "/"-separated part, in bytes: the
	// strictest of the other drivers' limits, so that a store can move.
	MaxSegmentLen = 255
	// MaxSegments is the most "/"-separated parts a blob name may have.
	MaxSegments = 254
)

// MaxKeyLenUnder returns the longest key a Backend under prefix accepts.
func MaxKeyLenUnder(prefix string) int { return names.KeyLenUnder(prefix) }

// Options tunes a Backend. A nil *Options and zero fields mean the defaults.
type Options struct {
	// PageSize is the number of blobs List requests per page. Default
	// 1000; allowed 1..5000.
	PageSize int
	// MaxAttempts is the number of attempts per request, the first one
	// included, for a client Open builds (ClientOptions) and for resuming
	// a Get's body. Default 5; 1 disables retries.
	MaxAttempts int
	// MaxBackoff caps the delay between two attempts of a client Open
	// builds; the delay starts at 100ms and doubles, with jitter. Default 5s.
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
	case v.PageSize < 0 || v.PageSize > 5000:
		return v, fmt.Errorf("azremote: Options.PageSize %d out of range 1..5000", v.PageSize)
	case v.MaxAttempts < 0:
		return v, fmt.Errorf("azremote: Options.MaxAttempts %d is negative", v.MaxAttempts)
	case v.MaxBackoff < 0:
		return v, fmt.Errorf("azremote: Options.MaxBackoff %v is negative", v.MaxBackoff)
	case v.MaxObjectSize < 0 || v.MaxObjectSize > maxMaxObjectSize:
		return v, fmt.Errorf("azremote: Options.MaxObjectSize %d out of range 1..%d", v.MaxObjectSize, int64(maxMaxObjectSize))
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

// ClientOptions returns the client options of opts: the retry policy of
// Options.MaxAttempts and Options.MaxBackoff. Open uses them; pass them to
// azblob.NewClient* to get the same policy on a client of your own.
func ClientOptions(opts *Options) (*azblob.ClientOptions, error) {
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	retries := int32(o.MaxAttempts - 1)
	if retries == 0 {
		retries = -1 // azcore: 0 means its default (3), -1 none
	}
	return &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    retries,
			RetryDelay:    min(initialBackoff, o.MaxBackoff),
			MaxRetryDelay: o.MaxBackoff,
		},
		// No telemetry header naming this program.
		Telemetry: policy.TelemetryOptions{Disabled: true},
	}}, nil
}

// Backend stores objects in an Azure Blob Storage container. It is safe
// for concurrent use.
type Backend struct {
	client    *azblob.Client
	container *container.Client
	name      string // container name
	prefix    string // without leading or trailing "/"; "" = container root
	opts      Options
	stats     remote.Stats
}

// New returns a Backend storing objects in container under prefix through
// client (whose retry policy is kept; see ClientOptions). Leading and
// trailing slashes of prefix are ignored. New sends no request: a missing
// container or refused credentials show on the first operation.
func New(client *azblob.Client, containerName, prefix string, opts *Options) (*Backend, error) {
	o, err := opts.validate()
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("azremote: nil *azblob.Client")
	}
	if err := checkContainer(containerName); err != nil {
		return nil, err
	}
	prefix = strings.Trim(prefix, "/")
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	return &Backend{
		client:    client,
		container: client.ServiceClient().NewContainerClient(containerName),
		name:      containerName,
		prefix:    prefix,
		opts:      o,
	}, nil
}

// checkContainer checks a container name as Azure has them: 3 to 63
// lower-case letters, digits and single dashes, starting and ending with a
// letter or digit ("$root" too).
func checkContainer(name string) error {
	ok := len(name) >= 3 && len(name) <= 63 && !strings.Contains(name, "--")
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
		case r == '-' && i > 0 && i < len(name)-1:
		default:
			ok = false
		}
	}
	if !ok && name != "$root" {
		return fmt.Errorf("azremote: invalid container name %q: want 3 to 63 lower-case letters, digits and single dashes", name)
	}
	return nil
}

// CheckPrefix checks a store prefix as New does (leading and trailing
// slashes ignored). The error wraps remote.ErrInvalidKey.
func CheckPrefix(prefix string) error {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return nil
	}
	if err := remote.ValidateKey(prefix); err != nil {
		return fmt.Errorf("azremote: prefix: %w", err)
	}
	if err := checkName(prefix, ""); err != nil {
		return fmt.Errorf("azremote: prefix: %w", err)
	}
	if MaxKeyLenUnder(prefix) < 1 {
		return fmt.Errorf("azremote: prefix: %w: %d bytes leave no room for blob names; Azure allows at most %d, the prefix and its \"/\" included",
			remote.ErrInvalidKey, len(prefix), MaxNameLen)
	}
	return nil
}

// Container returns the container name.
func (b *Backend) Container() string { return b.name }

// Prefix returns the key prefix, without leading or trailing slash.
func (b *Backend) Prefix() string { return b.prefix }

// MaxKeyLen returns the longest key b accepts, MaxKeyLenUnder(b.Prefix()).
func (b *Backend) MaxKeyLen() int { return MaxKeyLenUnder(b.prefix) }

// Client returns the Azure client.
func (b *Backend) Client() *azblob.Client { return b.client }

// Stats returns the request counters.
func (b *Backend) Stats() *remote.Stats { return &b.stats }

// String returns "az://container/prefix" (the account is not shown: it is
// the client's).
func (b *Backend) String() string {
	if b.prefix == "" {
		return "az://" + b.name
	}
	return "az://" + b.name + "/" + b.prefix
}

// full maps a key (or list prefix) to its blob name.
func (b *Backend) full(key string) string {
	if b.prefix == "" {
		return key
	}
	return b.prefix + "/" + key
}

// Get reads an object. It returns an error wrapping remote.ErrNotExist when
// the key is missing, and one wrapping ErrTooLarge when the object is
// larger than Options.MaxObjectSize.
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := b.check(ctx, opGet, key); err != nil {
		return remote.Object{}, err
	}
	b.stats.Gets.Add(1)
	resp, err := b.container.NewBlobClient(b.full(key)).DownloadStream(ctx, nil)
	if err != nil {
		return remote.Object{}, b.mapError(ctx, opGet, key, err)
	}
	size := int64(-1)
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: int32(b.opts.MaxAttempts - 1)})
	defer body.Close()
	if size > b.opts.MaxObjectSize {
		return remote.Object{}, fmt.Errorf("azremote: %s %q in %s: %w: %d bytes, more than Options.MaxObjectSize (%d)",
			opGet, key, b, ErrTooLarge, size, b.opts.MaxObjectSize)
	}
	data, err := readBody(body, size, b.opts.MaxObjectSize)
	b.stats.BytesIn.Add(int64(len(data)))
	if errors.Is(err, ErrTooLarge) {
		return remote.Object{}, fmt.Errorf("azremote: %s %q in %s: %w", opGet, key, b, err)
	}
	if err != nil {
		return remote.Object{}, b.mapError(ctx, opGet, key, &bodyError{err})
	}
	obj := remote.Object{Data: data}
	if resp.ETag != nil {
		obj.ETag = string(*resp.ETag)
	}
	if resp.LastModified != nil {
		obj.LastModified = *resp.LastModified
	}
	return obj, nil
}

// Put stores data under key unconditionally and returns the new ETag.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, opPut, key, data, nil)
}

// PutIfAbsent stores data under key only if no blob has that key
// (If-None-Match: *). It returns an error wrapping remote.ErrExists when the
// key exists.
//
// Ambiguity: if an attempt stores the blob but its answer is lost (timeout,
// reset, 5xx), the retry gets 409 and PutIfAbsent reports ErrExists although
// this call created the blob. The sync layer resolves that by reading the
// object back and comparing the content.
func (b *Backend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	return b.put(ctx, opPutIfAbsent, key, data, &blob.ModifiedAccessConditions{IfNoneMatch: new(azcore.ETagAny)})
}

// PutIfMatch replaces the blob under key only if its current ETag equals
// etag (If-Match, sent exactly as given). It returns an error wrapping
// remote.ErrPrecondition when the ETag differs (412) or the blob is missing
// (404). An etag that is not a quoted entity tag ("..." with no quote
// inside: "", "*", W/"...", an unquoted one) matches nothing; no request is
// sent.
//
// Ambiguity: as for PutIfAbsent, a retry after a lost answer reports
// ErrPrecondition although this call's write landed.
func (b *Backend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if !strongETag(etag) {
		// Never send it: "*" would match any blob, and Azure (Azurite at
		// least) takes an unquoted tag for the quoted one.
		if err := b.check(ctx, opPutIfMatch, key); err != nil {
			return "", err
		}
		return "", fmt.Errorf("azremote: %s %q in %s: etag %q is not one this backend returns (a quoted entity tag): %w",
			opPutIfMatch, key, b, etag, remote.ErrPrecondition)
	}
	return b.put(ctx, opPutIfMatch, key, data, &blob.ModifiedAccessConditions{IfMatch: new(azcore.ETag(etag))})
}

func (b *Backend) put(ctx context.Context, o op, key string, data []byte, cond *blob.ModifiedAccessConditions) (string, error) {
	if err := b.check(ctx, o, key); err != nil {
		return "", err
	}
	b.stats.Puts.Add(1)
	b.stats.BytesOut.Add(int64(len(data)))
	sum := md5.Sum(data)
	opts := &blockblob.UploadOptions{
		// The service checks the body against its MD5 (Content-MD5).
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
		HTTPHeaders:             &blob.HTTPHeaders{BlobContentType: new("application/octet-stream")},
	}
	if cond != nil {
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: cond}
	}
	resp, err := b.container.NewBlockBlobClient(b.full(key)).Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), opts)
	if err != nil {
		return "", b.mapError(ctx, o, key, err)
	}
	if resp.ETag == nil || *resp.ETag == "" {
		return "", fmt.Errorf("azremote: %s %q in %s: the service returned no ETag", o, key, b)
	}
	return string(*resp.ETag), nil
}

// Delete removes the blob under key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, opDelete, key); err != nil {
		return err
	}
	b.stats.Deletes.Add(1)
	_, err := b.container.NewBlobClient(b.full(key)).Delete(ctx, nil)
	if err = b.mapError(ctx, opDelete, key, err); errors.Is(err, remote.ErrNotExist) {
		return nil
	}
	return err
}

// List yields the objects whose keys start with prefix and sort after
// startAfter, in ascending byte order, fetching one page of
// Options.PageSize blobs at a time as the caller consumes them (see the
// package doc for startAfter). An error ends the sequence as the final
// (Info{}, err) pair.
func (b *Backend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		if err := remote.ValidatePrefix(prefix); err != nil {
			yield(remote.Info{}, fmt.Errorf("azremote: %s %q: %w", opList, prefix, err))
			return
		}
		if p := strings.TrimSuffix(prefix, "/"); p != "" {
			// A list prefix is a query parameter: it may end in ".".
			if err := checkLength(b.full(p), b.prefix); err != nil {
				yield(remote.Info{}, fmt.Errorf("azremote: %s %q in %s: %w", opList, prefix, b, err))
				return
			}
		}
		lo := &container.ListBlobsFlatOptions{MaxResults: new(int32(b.opts.PageSize))}
		if p := b.full(prefix); p != "" {
			lo.Prefix = new(p)
		}
		after := ""
		if startAfter != "" {
			after = b.full(startAfter)
			lo.StartFrom = new(after)
		}
		root := b.full("")
		pager := b.container.NewListBlobsFlatPager(lo)
		for pager.More() {
			if err := ctx.Err(); err != nil {
				yield(remote.Info{}, b.mapError(ctx, opList, prefix, err))
				return
			}
			b.stats.Lists.Add(1)
			page, err := pager.NextPage(ctx)
			if err != nil {
				yield(remote.Info{}, b.mapError(ctx, opList, prefix, err))
				return
			}
			for _, item := range page.Segment.BlobItems {
				if item == nil || item.Name == nil {
					continue
				}
				name := *item.Name
				if after != "" && name <= after {
					continue // startFrom is inclusive, or ignored
				}
				key, ok := strings.CutPrefix(name, root)
				if !ok || key == "" {
					continue
				}
				info := remote.Info{Key: key}
				if p := item.Properties; p != nil {
					if p.ContentLength != nil {
						info.Size = *p.ContentLength
					}
					if p.ETag != nil {
						info.ETag = quoteETag(string(*p.ETag))
					}
					if p.LastModified != nil {
						info.LastModified = *p.LastModified
					}
				}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// strongETag reports whether etag is a quoted entity tag, "..." with no
// quote inside, the form the service's headers carry.
func strongETag(etag string) bool {
	return len(etag) >= 3 && etag[0] == '"' && etag[len(etag)-1] == '"' && !strings.Contains(etag[1:len(etag)-1], `"`)
}

// quoteETag returns an entity tag of a listing (XML, unquoted) in the
// quoted form of the headers.
func quoteETag(etag string) string {
	if etag == "" || strongETag(etag) {
		return etag
	}
	return `"` + etag + `"`
}

// readBody reads a whole body, growing the buffer as bytes arrive (size,
// the stated length, sizes at most 1 MiB in advance); a body longer than
// limit fails with ErrTooLarge.
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
		return buf.Bytes(), fmt.Errorf("%d bytes of a Content-Length of %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}

// check runs the checks every operation starts with: a live ctx and a valid
// key whose blob name keeps to the limits.
func (b *Backend) check(ctx context.Context, o op, key string) error {
	if err := ctx.Err(); err != nil {
		return b.mapError(ctx, o, key, err)
	}
	if err := remote.ValidateKey(key); err != nil {
		return fmt.Errorf("azremote: %s: %w", o, err)
	}
	if err := checkName(b.full(key), b.prefix); err != nil {
		return fmt.Errorf("azremote: %s %q in %s: %w", o, key, b, err)
	}
	return nil
}

// checkName checks a blob name against the limits of the package doc;
// prefix is the store prefix it holds, for the message.
func checkName(name, prefix string) error {
	if err := checkLength(name, prefix); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasSuffix(seg, ".") {
			return fmt.Errorf("%w: the blob name has a part ending in \".\" (%.32q), which Azure would drop",
				remote.ErrInvalidKey, seg)
		}
	}
	return nil
}

// checkLength checks a blob name's length, the length of its parts and
// their number.
func checkLength(name, prefix string) error {
	if err := names.Check(name, prefix); err != nil {
		return err
	}
	if n := strings.Count(name, "/") + 1; n > MaxSegments {
		return fmt.Errorf("%w: the blob name has %d parts between slashes; Azure allows at most %d", remote.ErrInvalidKey, n, MaxSegments)
	}
	return nil
}

// names are Azure's limits as this driver checks them.
var names = remote.NameLimits{Object: "blob", MaxName: MaxNameLen, TooLong: "at most %d are allowed",
	MaxSegment: MaxSegmentLen, SegmentTooLong: "ebreplica allows at most %d on every store"}

// bodyError marks a failure while reading a blob's body, after the
// resumptions: it counts as transient.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }
