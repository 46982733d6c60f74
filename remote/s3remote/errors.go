package s3remote

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

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
// place that knows S3 error codes. key is the object key (the list prefix for
// List). The returned error wraps both the sentinel and the original error
// (errors.As still finds smithy.APIError), and its message never carries
// credentials:
//
//   - ctx cancelled or past its deadline: wraps context.Canceled or
//     context.DeadlineExceeded.
//   - NoSuchBucket: remote.ErrBucketNotFound, naming the bucket.
//   - 403, AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, and
//     versitygw's XAdminUserNotFound (a 404 for an unknown access key):
//     remote.ErrAccessDenied; the server's message is left out, it may echo
//     signing material.
//   - conditional puts, on 412 PreconditionFailed, 409
//     ConditionalRequestConflict, or NoSuchKey (If-Match of a missing key):
//     remote.ErrExists for PutIfAbsent, remote.ErrPrecondition for
//     PutIfMatch. Other 409s (versitygw's ObjectParentIsFile: a key below
//     an existing object) are not a lost race: ErrRefused, below.
//   - NoSuchKey (or a 404 without code) on Get and Delete:
//     remote.ErrNotExist.
//   - retries exhausted on throttling, 5xx, timeouts or connection errors,
//     or a Get body cut short: remote.ErrTransient.
//   - the object name refused (KeyTooLongError from AWS S3, MinIO and
//     versitygw; MinIO's XMinioInvalidObjectName; InvalidObjectName):
//     remote.ErrInvalidKey and ErrRefused. check refuses the names these
//     servers are known to refuse before sending them, so this is for
//     stricter servers.
//   - 501 NotImplemented on a conditional put: remote.ErrNoConditionalWrites
//     and ErrRefused (the server does not implement If-None-Match or
//     If-Match).
//   - any other 4xx, and 501: ErrRefused, with the code, status and the
//     server's message (redacted).
//   - anything else is wrapped as is.
func (b *Backend) mapError(o op, key string, err error) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("s3remote: %s %q in %s", o, key, b)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	code, status := errorCode(err), statusCode(err)
	conditional := o == opPutIfAbsent || o == opPutIfMatch
	// A 404 means "no such key" only with that code (or none, as HEAD
	// answers): servers answer 404 for other things too (versitygw: an
	// unknown access key).
	noKey := code == "NoSuchKey" || code == "NotFound" || (status == 404 && code == "")
	switch {
	case code == "NoSuchBucket":
		return &mappedError{
			msg:  fmt.Sprintf("%s: bucket %q does not exist", what, b.bucket),
			errs: []error{remote.ErrBucketNotFound, err},
		}
	case status == 403 || code == "AccessDenied" || code == "InvalidAccessKeyId" ||
		code == "SignatureDoesNotMatch" || code == "XAdminUserNotFound":
		if code == "" {
			code = "no error code"
		}
		return &mappedError{
			msg: fmt.Sprintf("%s: access denied (%s, HTTP %d): check the credentials (access key id and secret key) and their permissions on bucket %q",
				what, code, status, b.bucket),
			errs: []error{remote.ErrAccessDenied, err},
		}
	case conditional && (noKey || code == "PreconditionFailed" || code == "ConditionalRequestConflict" ||
		(code == "" && (status == 412 || status == 409))):
		sentinel, why := remote.ErrPrecondition, "the object's ETag does not match"
		if o == opPutIfAbsent {
			sentinel, why = remote.ErrExists, "the object already exists"
		}
		if noKey {
			why = "the object does not exist"
		}
		return &mappedError{
			msg:  fmt.Sprintf("%s: %s (%s, HTTP %d): %v", what, why, code, status, sentinel),
			errs: []error{sentinel, err},
		}
	case (o == opGet || o == opDelete) && noKey:
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v", what, remote.ErrNotExist),
			errs: []error{remote.ErrNotExist, err},
		}
	case code == "ExistingObjectIsDirectory": // retried (racedDirectory), and still so
		tried := ""
		if maxErr := (*retry.MaxAttemptsError)(nil); errors.As(err, &maxErr) {
			tried = fmt.Sprintf("; tried %d times", maxErr.Attempt)
		}
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v (%s)%s", what, ErrRefused, serverSaid(err, code, status), tried),
			errs: []error{ErrRefused, err},
		}
	case isTransient(err):
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v: %v", what, remote.ErrTransient, err),
			errs: []error{remote.ErrTransient, err},
		}
	case code == "KeyTooLongError" || code == "XMinioInvalidObjectName" || code == "InvalidObjectName":
		return &mappedError{
			msg: fmt.Sprintf("%s: the server refuses the object name (%s): it is %d bytes; S3 allows at most %d, the store prefix included, and servers that keep objects as files at most %d between two slashes: %v",
				what, serverSaid(err, code, status), len(b.full(key)), MaxNameLen, MaxSegmentLen, remote.ErrInvalidKey),
			errs: []error{remote.ErrInvalidKey, ErrRefused, err},
		}
	case conditional && (code == "NotImplemented" || status == 501):
		header := "If-None-Match"
		if o == opPutIfMatch {
			header = "If-Match"
		}
		return &mappedError{
			msg: fmt.Sprintf("%s: the server does not implement conditional writes (%s: %s): %v",
				what, header, serverSaid(err, code, status), remote.ErrNoConditionalWrites),
			errs: []error{remote.ErrNoConditionalWrites, ErrRefused, err},
		}
	case status >= 400 && status < 500 || status == 501:
		return &mappedError{
			msg:  fmt.Sprintf("%s: %v (%s); not retried", what, ErrRefused, serverSaid(err, code, status)),
			errs: []error{ErrRefused, err},
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// serverSaid formats a refusal for a message: "CODE, HTTP STATUS: the
// server's message", redacted (a message may quote a header).
func serverSaid(err error, code string, status int) string {
	if code == "" {
		code = "no error code"
	}
	s := fmt.Sprintf("%s, HTTP %d", code, status)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorMessage() != "" {
		s += ": " + Redact(strings.TrimSuffix(apiErr.ErrorMessage(), "."))
	}
	return s
}

// racedDirectory makes the retryer try again a put that versitygw's POSIX
// backend answered 409 ExistingObjectIsDirectory. It says so when a put
// races a delete that removes the parent directories the delete left empty
// (its MkdirAll of a/b fails if a goes between its steps), which the
// chaos test's processes hit on a fresh prefix. The code's other meaning,
// an object name that is also the "directory" of other objects, cannot
// arise from ebreplica's own names; when it persists the put is refused
// after its attempts, as before (mapError).
func racedDirectory(err error) aws.Ternary {
	if errorCode(err) == "ExistingObjectIsDirectory" {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}

// isTransient reports whether err is a failure worth retrying that outlived
// the retries: the retryer gave up (MaxAttemptsError), or the error is one
// the retryer classifies as retryable (throttling, 5xx, timeouts, connection
// errors), or a Get body read failed.
func isTransient(err error) bool {
	var maxErr *retry.MaxAttemptsError
	var quotaErr *ratelimit.QuotaExceededError
	var bodyErr *bodyError
	switch {
	case errors.As(err, &maxErr), errors.As(err, &quotaErr), errors.As(err, &bodyErr):
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func statusCode(err error) int {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}

// mappedError is an error with a message of our own that wraps a sentinel
// and the SDK's error.
type mappedError struct {
	msg  string
	errs []error
}

func (e *mappedError) Error() string   { return e.msg }
func (e *mappedError) Unwrap() []error { return e.errs }
