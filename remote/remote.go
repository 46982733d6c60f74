// Package remote defines the object-store interface that ebreplica replicas
// share, and the rules every implementation follows.
//
// The shared remote is a dumb object store: everything the sync protocol
// needs fits the small [Backend] interface below. Drivers live in
// subpackages named <thing>remote (s3remote, fileremote, memremote,
// faultremote) so they never clash with an SDK's package names, and every
// driver passes the one conformance suite in remote/remotetest.
//
// Object names ("keys") are slash-separated paths validated by [ValidateKey]
// in one place. No object name of ebreplica is ever the "folder" of another
// (a and a/b never both exist), because some S3-compatible servers built on a
// filesystem cannot store both.
package remote

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync/atomic"
	"time"
)

// Sentinel errors. Drivers fold their SDK's errors into these in one place;
// callers branch with errors.Is.
var (
	// ErrNotExist: the object is not there (Get, PutIfMatch on a missing key).
	ErrNotExist = errors.New("remote: object does not exist")
	// ErrExists: a create-only put lost, the key already exists.
	ErrExists = errors.New("remote: object already exists")
	// ErrPrecondition: a compare-and-swap put lost, the object's ETag changed
	// (S3 answers 412, 404 on If-Match of a missing key, or 409
	// ConditionalRequestConflict under concurrency: all map here).
	ErrPrecondition = errors.New("remote: precondition failed")
	// ErrInvalidKey: an object name failed ValidateKey.
	ErrInvalidKey = errors.New("remote: invalid object key")
	// ErrBucketNotFound: the bucket (or root directory) does not exist.
	ErrBucketNotFound = errors.New("remote: bucket does not exist")
	// ErrAccessDenied: credentials were refused or lack permission.
	ErrAccessDenied = errors.New("remote: access denied (check credentials)")
	// ErrTransient: a retryable failure (throttling, 5xx, timeout) that
	// outlived the retries. Faults injected by faultremote wrap it too.
	ErrTransient = errors.New("remote: transient failure")
)

// MaxKeyLen is the longest object name accepted (S3 allows 1024 bytes).
const MaxKeyLen = 1024

// Object is the result of a Get.
type Object struct {
	Data []byte // owned by the caller
	// ETag identifies this content; pass it back exactly as received
	// (quotes included) to PutIfMatch.
	ETag string
	// LastModified is the server's time of the last write (zero if unknown).
	LastModified time.Time
}

// Info describes one listed object.
type Info struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
}

// Backend is the object store a replica syncs through.
//
// Contract, which remotetest.RunConformance checks for every driver:
//   - Every method honours ctx: a cancelled ctx returns an error wrapping
//     ctx.Err() and starts no new request.
//   - Every key is checked by ValidateKey first; a bad key returns
//     ErrInvalidKey and touches nothing.
//   - Get returns ErrNotExist for a missing key.
//   - Put stores data unconditionally and returns the new ETag.
//   - PutIfAbsent (create-only; S3 If-None-Match: *) returns ErrExists when
//     the key already exists; of any number of racing callers exactly one
//     wins.
//   - PutIfMatch (compare-and-swap; S3 If-Match) replaces the object only if
//     its current ETag equals etag, and returns ErrPrecondition otherwise
//     (including when the object is missing); of racing callers with the
//     same etag exactly one wins.
//   - Delete of a missing key is not an error.
//   - List yields the objects whose names start with prefix and sort after
//     startAfter ("" = from the start), in ascending byte order, fetching
//     pages as the caller consumes them; an error ends the sequence as the
//     final (Info{}, err) pair.
//   - Data slices passed in are not retained; slices returned are the
//     caller's.
//   - All methods are safe for concurrent use.
type Backend interface {
	Get(ctx context.Context, key string) (Object, error)
	Put(ctx context.Context, key string, data []byte) (etag string, err error)
	PutIfAbsent(ctx context.Context, key string, data []byte) (etag string, err error)
	PutIfMatch(ctx context.Context, key string, data []byte, etag string) (newETag string, err error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix, startAfter string) iter.Seq2[Info, error]
	// Stats returns the request counters of this backend.
	Stats() *Stats
	// String names the backend for messages, e.g. "s3://bucket/prefix";
	// it never includes credentials.
	String() string
}

// Stats counts requests by verb and bytes moved. The sync layer and the
// benchmarks read it; drivers update it with the Add methods. A List call
// counts one request per page fetched.
type Stats struct {
	Puts     atomic.Int64
	Gets     atomic.Int64
	Lists    atomic.Int64
	Deletes  atomic.Int64
	BytesIn  atomic.Int64 // bytes received (Get bodies)
	BytesOut atomic.Int64 // bytes sent (Put bodies)
}

// Counts is a plain copy of Stats.
type Counts struct {
	Put      int64 `json:"put"`
	Get      int64 `json:"get"`
	List     int64 `json:"list"`
	Delete   int64 `json:"delete"`
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

// Snapshot returns the current counts.
func (s *Stats) Snapshot() Counts {
	return Counts{
		Put: s.Puts.Load(), Get: s.Gets.Load(), List: s.Lists.Load(),
		Delete: s.Deletes.Load(), BytesIn: s.BytesIn.Load(), BytesOut: s.BytesOut.Load(),
	}
}

// Sub returns c - o, the requests made between two snapshots.
func (c Counts) Sub(o Counts) Counts {
	return Counts{
		Put: c.Put - o.Put, Get: c.Get - o.Get, List: c.List - o.List,
		Delete: c.Delete - o.Delete, BytesIn: c.BytesIn - o.BytesIn, BytesOut: c.BytesOut - o.BytesOut,
	}
}

// Requests is the total number of requests.
func (c Counts) Requests() int64 { return c.Put + c.Get + c.List + c.Delete }

// ValidateKey checks an object name: not empty, at most MaxKeyLen bytes,
// valid UTF-8 without NUL or control characters, no leading or trailing
// "/", no empty, "." or ".." segments, no backslash.
func ValidateKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case strings.HasPrefix(key, "/"):
		return bad("leading slash")
	case strings.HasSuffix(key, "/"):
		return bad("trailing slash")
	case strings.ContainsRune(key, '\\'):
		return bad("backslash")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return bad("control or invalid character")
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("dot segment")
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: empty, or a key-like string that may
// end with "/".
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}
