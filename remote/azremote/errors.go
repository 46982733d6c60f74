package azremote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

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

// mapError folds an error of the SDK into remote's sentinels; it is the one
// place that knows Azure error codes. key is the object key (the list prefix
// for List). The returned error wraps both the sentinel and the original
// error (errors.As still finds *azcore.ResponseError), and its message is
// our own, with the service's code and status: the SDK's message quotes the
// request URL, which may hold a shared access signature, so it is never
// shown whole, and any other text shown is redacted.
//
//   - ctx cancelled or past its deadline: wraps context.Canceled or
//     context.DeadlineExceeded.
//   - ContainerNotFound: remote.ErrBucketNotFound, naming the container.
//   - 401, 403 (AuthenticationFailed, AuthorizationFailure, ...) or a
//     credential that could not get a token: remote.ErrAccessDenied.
//   - conditional puts, on 412 ConditionNotMet, 409 BlobAlreadyExists, or
//     404 BlobNotFound (If-Match of a missing blob): remote.ErrExists for
//     PutIfAbsent, remote.ErrPrecondition for PutIfMatch.
//   - BlobNotFound (or a 404 without code) on Get and Delete:
//     remote.ErrNotExist.
//   - 408, 429, 5xx, connection errors, a body cut short, after the
//     retries: remote.ErrTransient.
//   - any other 4xx: ErrRefused, with the code and status.
//   - anything else is wrapped, its message redacted.
func (b *Backend) mapError(ctx context.Context, o op, key string, err error) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("azremote: %s %q in %s", o, key, b)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &mappedError{msg: fmt.Sprintf("%s: %v", what, ctxErr(ctx, err)), errs: []error{ctxErr(ctx, err), err}}
	}
	if ctx.Err() != nil {
		return &mappedError{msg: fmt.Sprintf("%s: %v", what, ctx.Err()), errs: []error{ctx.Err(), err}}
	}
	code, status := "", 0
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) {
		code, status = respErr.ErrorCode, respErr.StatusCode
	}
	said := serverSaid(code, status)
	conditional := o == opPutIfAbsent || o == opPutIfMatch
	noBlob := code == string(bloberror.BlobNotFound) || (status == 404 && code == "")
	var authErr *azidentity.AuthenticationFailedError
	var reqErr *azidentity.AuthenticationRequiredError
	var credErr *credentialError
	switch {
	case code == string(bloberror.ContainerNotFound):
		return &mappedError{
			msg:  fmt.Sprintf("%s: container %q does not exist", what, b.name),
			errs: []error{remote.ErrBucketNotFound, err},
		}
	case status == 401 || status == 403 || errors.As(err, &authErr) || errors.As(err, &reqErr) || errors.As(err, &credErr):
		detail := said
		if status == 0 {
			detail = "no token: " + Redact(err.Error())
		}
		return &mappedError{
			msg: fmt.Sprintf("%s: access denied (%s): check the credentials (AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, or the Azure identity chain) and their permissions on container %q",
				what, detail, b.name),
			errs: []error{remote.ErrAccessDenied, err},
		}
	case conditional && (status == 412 || code == string(bloberror.ConditionNotMet) ||
		code == string(bloberror.BlobAlreadyExists) || (o == opPutIfMatch && noBlob)):
		sentinel, why := remote.ErrPrecondition, "the blob's ETag does not match"
		if o == opPutIfAbsent {
			sentinel, why = remote.ErrExists, "the blob already exists"
		}
		if noBlob {
			why = "the blob does not exist"
		}
		return &mappedError{
			msg:  fmt.Sprintf("%s: %s (%s): %v", what, why, said, sentinel),
			errs: []error{sentinel, err},
		}
	case (o == opGet || o == opDelete) && noBlob:
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v", what, remote.ErrNotExist),
			errs: []error{remote.ErrNotExist, err},
		}
	case isTransient(err, status):
		detail := said
		if status == 0 {
			detail = Redact(err.Error())
		}
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v: %s", what, remote.ErrTransient, detail),
			errs: []error{remote.ErrTransient, err},
		}
	case code == string(bloberror.InvalidResourceName) || code == "InvalidUri" || code == "OutOfRangeInput":
		return &mappedError{
			msg:  fmt.Sprintf("%s: the service refuses the name (%s): %v", what, said, remote.ErrInvalidKey),
			errs: []error{remote.ErrInvalidKey, ErrRefused, err},
		}
	case status >= 400 && status < 500:
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v (%s); not retried", what, ErrRefused, said),
			errs: []error{ErrRefused, err},
		}
	case status != 0:
		return &mappedError{msg: fmt.Sprintf("%s: %s", what, said), errs: []error{err}}
	}
	return &mappedError{msg: fmt.Sprintf("%s: %s", what, Redact(err.Error())), errs: []error{err}}
}

// ctxErr returns ctx's error, or err's context error when ctx has none.
func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	if errors.Is(err, context.Canceled) {
		return context.Canceled
	}
	return context.DeadlineExceeded
}

// serverSaid formats a service answer for a message: "CODE, HTTP STATUS".
func serverSaid(code string, status int) string {
	if code == "" {
		code = "no error code"
	}
	if status == 0 {
		return code
	}
	return fmt.Sprintf("%s, HTTP %d", code, status)
}

// isTransient reports whether err is a failure worth retrying that outlived
// the retries.
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

// secretParam matches the value of a query or connection-string parameter
// that may be a secret: a shared access signature's sig (and its other
// fields), a key, a token, a password.
var secretParam = regexp.MustCompile(`(?i)((?:^|[?&;\s"'])(?:sig|se|st|sp|spr|sv|sr|srt|ss|skoid|sktid|skt|ske|sks|skv|saoid|suoid|scid|[a-z]*key|[a-z]*token|[a-z]*secret|[a-z]*password|sharedaccesssignature)=)[^&;\s"']*`)

// Redact returns s with the values of parameters that may be secrets (a
// shared access signature, an account key, a token) replaced by "REDACTED".
func Redact(s string) string { return secretParam.ReplaceAllString(s, "${1}REDACTED") }

// credentialError marks an error of the token credential Open builds: the
// credential chain found no credential, or the one it found was refused.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return "azure credential: " + e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

// mappedError is an error with a message of our own that wraps a sentinel
// and the SDK's error.
type mappedError struct {
	msg  string
	errs []error
}

func (e *mappedError) Error() string   { return e.msg }
func (e *mappedError) Unwrap() []error { return e.errs }
