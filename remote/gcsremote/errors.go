package gcsremote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/storage"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/ebreplica/ebreplica/remote"
)

// op names an operation in error messages and selects its error mapping.
type op string

const (
	opGet         op = "get"
	opPut         op = "put"
	opPutIfAbsent op = "put-if-absent"
	opPutIfMatch  op = "put-if-match"
	opDelete      op = "delete"
	opList        op = "list"
)

// mapError folds an error of the client into remote's sentinels; it is the
// one place that knows GCS errors. key is the object key (the list prefix for
// List). The returned error wraps both the sentinel and the original error,
// and its message never carries credentials (the client's errors carry none:
// tokens travel in headers, which messages do not show):
//
//   - ctx cancelled or past its deadline: wraps context.Canceled or
//     context.DeadlineExceeded.
//   - storage.ErrBucketNotExist, a 404 on List, a 404 on a put that does
//     not say the object is missing (a missing object fails a conditional
//     put with 412), or a 404 whose message names the bucket:
//     remote.ErrBucketNotFound. Get and Delete cannot tell a missing bucket
//     from a missing object (the client reports both as
//     storage.ErrObjectNotExist): they report remote.ErrNotExist, and the
//     missing bucket shows on the first put or List.
//   - 401, 403, or a token the credentials could not get:
//     remote.ErrAccessDenied.
//   - 412 on a conditional put (the generation precondition failed):
//     remote.ErrExists for PutIfAbsent, remote.ErrPrecondition for
//     PutIfMatch; a 404 on PutIfMatch (the object is missing) too.
//   - storage.ErrObjectNotExist or a 404 on Get and Delete:
//     remote.ErrNotExist.
//   - 408, 429, 5xx, connection errors and a Get body cut short, after the
//     retries: remote.ErrTransient.
//   - any other 4xx: ErrRefused, with the status and the server's message.
//   - anything else is wrapped as is.
func (b *Backend) mapError(ctx context.Context, o op, key string, err error) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("gcsremote: %s %q in %s", o, key, b)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if ctx.Err() != nil {
		// The client reports a cancelled request in its own words.
		return fmt.Errorf("%s: %w (%v)", what, ctx.Err(), err)
	}
	status, message := 0, ""
	var apiErr *googleapi.Error
	if errors.As(err, &apiErr) {
		status, message = apiErr.Code, apiErr.Message
	}
	conditional := o == opPutIfAbsent || o == opPutIfMatch
	missing := errors.Is(err, storage.ErrObjectNotExist) || status == 404
	var retrieveErr *oauth2.RetrieveError
	var authErr *auth.Error
	switch {
	case errors.Is(err, storage.ErrBucketNotExist) || (o == opList && status == 404) ||
		(status == 404 && strings.Contains(strings.ToLower(message), "bucket")) ||
		(o != opGet && o != opDelete && status == 404 && !strings.Contains(strings.ToLower(message), "object")):
		return &mappedError{
			msg:  fmt.Sprintf("%s: bucket %q does not exist", what, b.name),
			errs: []error{remote.ErrBucketNotFound, err},
		}
	case status == 401 || status == 403 || errors.As(err, &retrieveErr) || errors.As(err, &authErr):
		return &mappedError{
			msg: fmt.Sprintf("%s: access denied (%s): check the credentials (Application Default Credentials, GOOGLE_APPLICATION_CREDENTIALS) and their permissions on bucket %q",
				what, statusText(status), b.name),
			errs: []error{remote.ErrAccessDenied, err},
		}
	case conditional && (status == 412 || (o == opPutIfMatch && missing)):
		// (A 404 that reaches here said the object is missing.)
		sentinel, why := remote.ErrPrecondition, "the object's generation does not match"
		if o == opPutIfAbsent {
			sentinel, why = remote.ErrExists, "the object already exists"
		}
		if missing {
			why = "the object does not exist"
		}
		return &mappedError{
			msg:  fmt.Sprintf("%s: %s (%s): %v", what, why, statusText(status), sentinel),
			errs: []error{sentinel, err},
		}
	case (o == opGet || o == opDelete) && missing:
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v", what, remote.ErrNotExist),
			errs: []error{remote.ErrNotExist, err},
		}
	case isTransient(err, status):
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v: %v", what, remote.ErrTransient, err),
			errs: []error{remote.ErrTransient, err},
		}
	case status >= 400 && status < 500:
		if message != "" {
			message = ": " + message
		}
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v (%s%s); not retried", what, ErrRefused, statusText(status), message),
			errs: []error{ErrRefused, err},
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func statusText(status int) string {
	if status == 0 {
		return "no HTTP status"
	}
	return fmt.Sprintf("HTTP %d", status)
}

// isTransient reports whether err is a failure worth retrying that outlived
// the retries: 408, 429, 5xx, a connection error, or a body cut short.
func isTransient(err error, status int) bool {
	var bodyErr *bodyError
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case status == 408 || status == 429 || status >= 500:
		return true
	case errors.As(err, &bodyErr), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &netErr), errors.As(err, &urlErr):
		return true
	}
	return storage.ShouldRetry(err)
}

// mappedError is an error with a message of our own that wraps a sentinel
// and the client's error.
type mappedError struct {
	msg  string
	errs []error
}

func (e *mappedError) Error() string   { return e.msg }
func (e *mappedError) Unwrap() []error { return e.errs }
