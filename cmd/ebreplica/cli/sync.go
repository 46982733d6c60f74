package cli

import (
	"context"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

var syncCmd = &command{
	name:    "sync",
	summary: "pull, then push",
	help: `--json: {"pull":{...},"push":{...}} as pull and push print them.
--watch stays running: it pushes soon after each local write, pulls every
--interval (default 5s, jittered), backs off on errors (doubling, capped at
1m), until SIGINT or SIGTERM (exit 0); one line per round (--json:
{"time","pull","push","error","backoff_ns"}, pull and push null when not
done, error null on success).`,
	flags: []flagDef{
		{name: "watch", usage: "stay running and sync live until interrupted"},
		{name: "interval", value: true, arg: "D", usage: "with --watch: pull every D (default 5s, jittered)"},
	},
	maxArgs: 0,
	run:     runSync,
}

func runSync(ctx context.Context, e *env) error {
	var interval time.Duration
	if s, ok := e.flags.value("interval"); ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return usageErrorf("--interval %q is not a positive Go duration (such as 5s, 1m)", s)
		}
		if !e.flags.bool("watch") {
			return usageErrorf("--interval goes with --watch")
		}
		interval = d
	}
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	if e.flags.bool("watch") {
		if e.held != nil && e.held.rounds != nil {
			return followRounds(ctx, e, e.held.rounds) // the server syncs live
		}
		return syncWatch(ctx, e, r, interval)
	}
	s, err := r.Sync(ctx)
	if err != nil {
		return syncError("sync", pendingError(err, s.Push.Pending))
	}
	if e.json {
		return writeJSON(e.stdout, s)
	}
	o := newOutput(e.stdout)
	o.printf("%spulled %d records in %d segments; pushed %d records in %d segments; cursor %d\n",
		e.bootstrapNote(), s.Pull.Records, s.Pull.Segments, s.Push.Records, s.Push.Segments, s.Pull.Cursor)
	return o.flush()
}

// syncWatch runs the replica live (replica.Run) until ctx ends, printing
// one line per round; an interrupt ends it with success.
func syncWatch(ctx context.Context, e *env, r *replica.Replica, interval time.Duration) error {
	var werr error
	err := r.Run(ctx, replica.LiveOptions{Interval: interval, OnRound: func(rd replica.Round) {
		if werr != nil {
			return
		}
		if rd.Err == nil {
			e.releaseStartupPages()
		}
		werr = printRound(e, rd)
	}})
	if werr != nil {
		return werr
	}
	return err
}

// printRound prints one round of sync --watch.
func printRound(e *env, rd replica.Round) error {
	if e.json {
		var msg *string
		if rd.Err != nil {
			m := trimLib(rd.Err)
			msg = &m
		}
		return writeJSON(e.stdout, struct {
			Time    time.Time          `json:"time"`
			Pull    *replica.PullStats `json:"pull"`
			Push    *replica.PushStats `json:"push"`
			Error   *string            `json:"error"`
			Backoff time.Duration      `json:"backoff_ns"`
		}{rd.At.UTC(), rd.Pull, rd.Push, msg, rd.Backoff})
	}
	o := newOutput(e.stdout)
	o.printf("%s", rd.At.Format("15:04:05"))
	if rd.Pull != nil {
		o.printf(" pulled %d records in %d segments (cursor %d);", rd.Pull.Records, rd.Pull.Segments, rd.Pull.Cursor)
	}
	if rd.Push != nil {
		o.printf(" pushed %d records in %d segments;", rd.Push.Records, rd.Push.Segments)
	}
	if rd.Err != nil {
		o.printf(" error: %s; next try in %v", trimLib(rd.Err), rd.Backoff.Round(time.Millisecond))
	}
	o.printf("\n")
	return o.flush()
}
