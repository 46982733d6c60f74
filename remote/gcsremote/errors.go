package gcsremote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

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

// mapError folds an error of a request into remote's sentinels; it is the
// one place that knows GCS errors. key is the object key (the list prefix for
// List). The returned error wraps both the sentinel and the original error,
// and its message never carries credentials (tokens travel in headers,
// which messages do not show):
//
//   - ctx cancelled or past its deadline: wraps context.Canceled or
//     context.DeadlineExceeded.
//   - a 404 on List, a 404 on a put that does not say the object is
//     missing (a missing object fails a conditional put with 412), or a 404
//     whose message names the bucket: remote.ErrBucketNotFound. Get and
//     Delete cannot tell a missing bucket from a missing object (GCS
//     answers both with a bare 404 there): they report remote.ErrNotExist,
//     and the missing bucket shows on the first put or List.
//   - 401, 403, or a token the credentials could not get:
//     remote.ErrAccessDenied.
//   - 412 on a conditional put (the generation precondition failed):
//     remote.ErrExists for PutIfAbsent, remote.ErrPrecondition for
//     PutIfMatch; a 404 on PutIfMatch (the object is missing) too.
//   - a 404 on Get and Delete: remote.ErrNotExist.
//   - 408, 429, 5xx, connection errors and a Get body cut short or failing
//     its checksum, after the retries: remote.ErrTransient.
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
		// A request cut by ctx can fail in other words.
		return fmt.Errorf("%s: %w (%v)", what, ctx.Err(), err)
	}
	status, message := 0, ""
	var apiErr *apiError
	if errors.As(err, &apiErr) {
		status, message = apiErr.Status, apiErr.Message
	}
	conditional := o == opPutIfAbsent || o == opPutIfMatch
	missing := status == 404
	var retrieveErr *oauth2.RetrieveError
	switch {
	case (o == opList && status == 404) ||
		(status == 404 && strings.Contains(strings.ToLower(message), "bucket")) ||
		(o != opGet && o != opDelete && status == 404 && !strings.Contains(strings.ToLower(message), "object")):
		return &mappedError{
			msg:  fmt.Sprintf("%s: bucket %q does not exist", what, b.name),
			errs: []error{remote.ErrBucketNotFound, err},
		}
	case status == 401 || status == 403 || errors.As(err, &retrieveErr):
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
	return false
}

// retryable reports whether a failed attempt is worth another: an answer
// of 408, 429 or 5xx, a body cut short or garbled, or a connection error
// other than a refused token or an untrusted certificate (which would
// fail the same way again).
func retryable(err error) bool {
	var apiErr *apiError
	var bodyErr *bodyError
	var connErr *connError
	switch {
	case errors.As(err, &apiErr):
		return apiErr.Status == 408 || apiErr.Status == 429 || apiErr.Status >= 500
	case errors.As(err, &bodyErr):
		return true
	case errors.As(err, &connErr):
		var retrieveErr *oauth2.RetrieveError
		if errors.As(err, &retrieveErr) {
			return retrieveErr.Response != nil && retrieveErr.Response.StatusCode >= 500
		}
		var certErr *tls.CertificateVerificationError
		var authorityErr x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		var invalidErr x509.CertificateInvalidError
		return !errors.As(err, &certErr) && !errors.As(err, &authorityErr) &&
			!errors.As(err, &hostErr) && !errors.As(err, &invalidErr)
	}
	return false
}

// apiError is an answer of a status other than 2xx.
type apiError struct {
	Status  int
	Message string // the server's message, if it gave one
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
}

// readAPIError reads an error answer: the JSON API's
// {"error":{"code":...,"message":...}}, or a text (the first 200 bytes).
func readAPIError(resp *http.Response) *apiError {
	e := &apiError{Status: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var j struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error.Message != "" {
		e.Message = j.Error.Message
	} else {
		text := strings.TrimSpace(strings.ToValidUTF8(string(body), ""))
		if len(text) > 200 {
			text = text[:200] + "..."
		}
		e.Message = text
	}
	return e
}

// connError is a request that got no answer (the client's error).
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// bodyError marks a failure while reading an answer's body (cut short,
// garbled, or failing its checksum): it is transient.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// mappedError is an error with a message of our own that wraps a sentinel
// and the original error.
type mappedError struct {
	msg  string
	errs []error
}

func (e *mappedError) Error() string   { return e.msg }
func (e *mappedError) Unwrap() []error { return e.errs }
