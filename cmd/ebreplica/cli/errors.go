package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
