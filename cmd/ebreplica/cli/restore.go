package cli

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

var restoreCmd = &command{
	name:    "restore",
	args:    "(--at TIME | --position N) --into DIR",
	summary: "build a new read-only replica directory with the store as it was then",
	help: `Builds, in DIR (which must not exist, or be empty), a new read-only replica
holding the store exactly as it was at TIME (RFC 3339; the store at the newest
log position the server had written by then) or at log position N: the newest
retained snapshot at or below it, plus the log up to it. The live replica and
the remote are not changed. Read the copy with --dir DIR (get, ls, export);
writes to it are refused. A time before the retained history is an error
naming the oldest restorable time; see ` + "`ebreplica retention`" + ` to keep more.
--json: {"position","keys","base","segments","requests"}.`,
	flags: []flagDef{
		{name: "at", value: true, arg: "TIME", usage: "the store as of this RFC 3339 time"},
		{name: "position", value: true, arg: "N", usage: "the store as of log position N"},
		{name: "into", value: true, arg: "DIR", usage: "the new replica directory (absent or empty)"},
	},
	maxArgs: 0,
	run:     runRestore,
}

func runRestore(ctx context.Context, e *env) error {
	o := replica.RestoreOptions{}
	at, hasAt := e.flags.value("at")
	pos, hasPos := e.flags.value("position")
	into, hasInto := e.flags.value("into")
	switch {
	case hasAt && hasPos:
		return usageErrorf("give --at or --position, not both")
	case !hasAt && !hasPos:
		return usageErrorf("give --at TIME or --position N")
	case !hasInto || into == "":
		return usageErrorf("give --into DIR, the directory of the restored replica")
	}
	o.Into = e.path(into) // relative to the client's directory through serve
	if hasAt {
		t, err := parseTime(at)
		if err != nil {
			return usageErrorf("--at %q: %v", at, err)
		}
		o.At = t
	} else {
		n, err := strconv.ParseUint(pos, 10, 64)
		if err != nil {
			return usageErrorf("--position %q: not a log position", pos)
		}
		o.Position, o.ByPosition = n, true
	}
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	s, err := r.Restore(ctx, o)
	if err != nil {
		if errors.Is(err, replica.ErrBeforeHistory) || errors.Is(err, replica.ErrFutureTime) {
			return errorf(err, "%s", trimLib(err))
		}
		return syncError("restore", err)
	}
	if e.json {
		return writeJSON(e.stdout, s)
	}
	out := newOutput(e.stdout)
	out.printf("restored position %d (%d keys) into %s, read-only\n", s.Position, s.Keys, into)
	return out.flush()
}

// parseTime parses an RFC 3339 time (fractional seconds allowed).
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, errors.New("not an RFC 3339 time (like 2026-03-01T12:00:00Z)")
	}
	return t, nil
}
