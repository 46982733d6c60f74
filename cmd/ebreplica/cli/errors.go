package cli

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/replica"
)

// cliError carries an exit code and the message to print for it.
type cliError struct {
	code int
	msg  string
	err  error // the cause, for errors.Is; may be nil
	// reported: stdout already carries the outcome (verify's report), so
	// --json adds no error object after it.
	reported bool
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// usageErrorf is a usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return &cliError{code: ExitUsage, msg: fmt.Sprintf(format, args...)}
}

// errorf is a plain error (exit 1) wrapping err (which may be nil).
func errorf(err error, format string, args ...any) error {
	return &cliError{code: ExitError, msg: fmt.Sprintf(format, args...), err: err}
}

// notFound is a key-not-found error (exit 3).
func notFound(key string) error {
	return &cliError{code: ExitNotFound, msg: fmt.Sprintf("key %q not found", key), err: replica.ErrNotFound}
}

// keyError maps an error of a single-key operation to its exit code and a
// clear message: not found -> 3, concurrent versions -> 4.
func keyError(key string, err error) error {
	var ce *replica.ConflictError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replica.ErrNotFound):
		return notFound(key)
	case errors.As(err, &ce):
		return &cliError{code: ExitConflict, err: err,
			msg: fmt.Sprintf("key %q has %d concurrent versions: see them with `ebreplica get --all %s`, resolve with put", key, len(ce.Versions), shellQuote(key))}
	case errors.Is(err, replica.ErrConflict):
		return &cliError{code: ExitConflict, err: err,
			msg: fmt.Sprintf("key %q has concurrent versions: see them with `ebreplica get --all %s`, resolve with put", key, shellQuote(key))}
	}
	return err
}

// openError gives the errors of opening (or creating) the replica in dir
// their messages.
func openError(dir string, err error) error {
	switch {
	case errors.Is(err, replica.ErrNotInitialized):
		return errorf(err, "no replica in %s: create one with `ebreplica init --remote URL`, or point --dir or $EBREPLICA_DIR at one", dir)
	case errors.Is(err, replica.ErrAlreadyInitialized):
		return errorf(err, "%s already holds a replica", dir)
	case errors.Is(err, replica.ErrLocked):
		return errorf(err, "replica directory %s is in use by another process", dir)
	}
	return errorf(err, "opening replica in %s: %s", dir, trimLib(err))
}

// outputError reports a failed write to stdout.
func outputError(err error) error {
	if err == nil {
		return nil
	}
	return errorf(err, "writing output: %v", err)
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ce *cliError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, replica.ErrNotFound):
		return ExitNotFound
	case errors.Is(err, replica.ErrConflict):
		return ExitConflict
	}
	return ExitError
}

// errorLine is the one line printed on stderr for err: "ebreplica: ",
// the command, and what failed. Usage errors add where to get help.
// Whatever the error, the line shows no password, user-info secret or
// secret query value of a URL it quotes (remoteurl.Redact): messages
// quote the user's --remote as given.
func errorLine(cmd string, err error) string {
	var msg string
	var ce *cliError
	switch {
	case errors.As(err, &ce):
		msg = ce.msg
	case errors.Is(err, context.Canceled):
		msg = "interrupted"
	default:
		msg = trimLib(err)
	}
	var b strings.Builder
	b.WriteString("ebreplica: ")
	if cmd != "" {
		b.WriteString(cmd + ": ")
	}
	b.WriteString(msg)
	if exitCode(err) == ExitUsage {
		if cmd != "" {
			b.WriteString("; run `ebreplica help " + cmd + "` for usage")
		} else {
			b.WriteString("; run `ebreplica help` for usage")
		}
	}
	return remoteurl.Redact(oneLine(b.String()))
}

// trimLib drops the library's package prefix ("replica: invalid key: ...").
func trimLib(err error) string {
	s := err.Error()
	for _, p := range []string{"replica: ", "store: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// shellQuote quotes s for a POSIX shell when it needs it, with "-- "
// before a key that starts with a dash.
func shellQuote(s string) string {
	q := s
	if s == "" || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) >= 0 {
		q = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	if strings.HasPrefix(s, "-") {
		q = "-- " + q
	}
	return q
}

var dialRE = regexp.MustCompile(`dial tcp ([^:]+(?::\d+)?|\[[^\]]+\]:\d+): connect: connection refused`)

// remoteProblem is the message for an error that reaching the remote at
// url (may be "") gave: one line that says what to do, instead of what the
// SDK says (issue 15: a refused connection printed a very long line of SDK
// internals, a missing directory was called a "bucket", a permission error
// said "check credentials").
func remoteProblem(url string, err error) string {
	dirRemote := url == "" && strings.Contains(err.Error(), "fileremote:") || strings.HasPrefix(url, "file:")
	msg := err.Error()
	switch {
	case errors.Is(err, remote.ErrBucketNotFound) && dirRemote:
		if d := fileRemoteDir(url); d != "" {
			return fmt.Sprintf("directory %s does not exist: create it (mkdir -p %s), or fix the path", d, shellQuote(d))
		}
		return "the remote's directory does not exist: create it, or fix the path"
	case errors.Is(err, remote.ErrAccessDenied) && dirRemote:
		return "permission denied on the remote's directory: check its owner and mode (the user running ebreplica must be able to read and write it)"
	case errors.Is(err, remote.ErrBucketNotFound):
		return "the bucket does not exist: check its name, and the region or endpoint (AWS_REGION, AWS_ENDPOINT_URL_S3 or ?endpoint=)"
	case errors.Is(err, remote.ErrAccessDenied):
		return "access denied: check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and what they are allowed on the bucket"
	case strings.Contains(msg, "no EC2 IMDS role found") || strings.Contains(msg, "failed to refresh cached credentials"):
		return "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or run where an instance role provides them)"
	}
	if m := dialRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("cannot connect to %s: connection refused (check the endpoint, and that the server runs)", m[1])
	}
	if i := strings.Index(msg, "dial tcp: lookup "); i >= 0 && strings.Contains(msg, "no such host") {
		host, _, _ := strings.Cut(msg[i+len("dial tcp: lookup "):], " ")
		return fmt.Sprintf("cannot connect: no such host %s (check the endpoint or the bucket name)", strings.TrimSuffix(host, ":"))
	}
	return trimLib(err)
}

// fileRemoteDir is the directory a file: remote URL names, "" when it
// cannot tell.
func fileRemoteDir(url string) string {
	u, err := neturl.Parse(url)
	if err != nil || u.Scheme != "file" {
		return ""
	}
	return filepath.FromSlash(u.Path)
}

// s3CredentialsProblem checks the AWS credentials in the environment for an
// s3:// remote before the SDK runs: an access key without its secret (or
// the other way round) made the SDK print a warning and an EC2
// metadata-service error. "" when there is nothing to say.
func s3CredentialsProblem(url string) string {
	if !strings.HasPrefix(url, "s3:") {
		return ""
	}
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID") != "", os.Getenv("AWS_SECRET_ACCESS_KEY") != ""
	switch {
	case id && !secret:
		return "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither (to use AWS_PROFILE)"
	case secret && !id:
		return "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither (to use AWS_PROFILE)"
	}
	return ""
}
