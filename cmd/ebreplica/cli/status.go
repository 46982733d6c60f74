package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/replica"
)

var statusCmd = &command{
	name:    "status",
	summary: "show the replica id, remote, key count, pending changes, cursor, last push/pull, clock skew seen",
	help: `--json prints one object: replica_id, remote, dir, keys, pending, cursor,
last_push and last_pull (RFC 3339, null when never), counter, hlc,
skew_capped (remote timestamps too far ahead, capped), max_skew_ns (the
furthest ahead a remote timestamp was), durability, commits, profile (the
local store's sizing: "default", or "small" with --low-memory,
$EBREPLICA_LOW_MEMORY=1 or on a 32-bit build), retention (as last read from
the store, when it sets one: {"keep_snapshots","keep_age","keep_age_seconds"})
and, in a copy made by restore, restored ({"remote","position","at"}).`,
	maxArgs: 0,
	run:     runStatus,
}

func runStatus(ctx context.Context, e *env) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	s, err := r.Status()
	if err != nil {
		return errorf(err, "reading status: %s", trimLib(err))
	}
	// A remote recorded by an older build may hold a password: never print it.
	s.RemoteURL = remoteurl.Redact(s.RemoteURL)
	s.Dir = e.dir                 // as given (through the server too, whose replica names its own path)
	hist, err := historyStatus(r) // retention.go
	if err != nil {
		return errorf(err, "reading status: %s", trimLib(err))
	}
	if e.json {
		return writeJSON(e.stdout, struct {
			replica.Status
			historyStatusJSON
		}{s, hist})
	}
	o := newOutput(e.stdout)
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	when := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	skew := "none seen"
	if s.MaxSkew > 0 || s.SkewCapped > 0 {
		skew = fmt.Sprintf("a remote clock up to %s ahead; %d timestamps capped", s.MaxSkew.Round(time.Millisecond), s.SkewCapped)
	}
	remote := s.RemoteURL
	if remote == "" {
		remote = "(none)"
	}
	for _, row := range [][2]string{
		{"replica", s.ReplicaID},
		{"remote", remote},
		{"dir", s.Dir},
		{"keys", fmt.Sprint(s.Keys)},
		{"pending", fmt.Sprint(s.Pending)},
		{"cursor", fmt.Sprint(s.Cursor)},
		{"last push", when(s.LastPush)},
		{"last pull", when(s.LastPull)},
		{"clock", s.HLC},
		{"skew", skew},
		{"durability", s.Durability},
		{"profile", s.Profile},
		{"retention", hist.describe()},
	} {
		if row[0] == "retention" && row[1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		o.err = err
	}
	return o.flush()
}
