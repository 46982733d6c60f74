package cli

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

var watchCmd = &command{
	name:    "watch",
	summary: "print every change to a key, local or merged from the remote, as it happens",
	help: `Prints one line per change to what get returns (a put, or a delete of
a live key), in order, each with its local sequence number, until SIGINT or
SIGTERM (exit 0). While watching it syncs live (as sync --watch: pushes soon
after local writes, pulls every --interval, default 5s), its round errors on
stderr. --since SEQ resumes after a sequence number printed earlier: nothing
up to it is repeated; a number older than the kept window (the last 100,000
changes) is an error. Without --since, changes from now on.
--json: {"seq","key","op":"put"/"delete","origin":"local"/"remote","conflict"} per line.`,
	flags: []flagDef{
		{name: "prefix", value: true, arg: "P", usage: "only keys that start with P"},
		{name: "since", value: true, arg: "SEQ", usage: "resume after sequence number SEQ"},
		{name: "interval", value: true, arg: "D", usage: "pull every D while watching (default 5s, jittered)"},
	},
	maxArgs: 0,
	run:     runWatch,
}

func runWatch(ctx context.Context, e *env) error {
	prefix, _ := e.flags.value("prefix")
	since := replica.WatchFromNow
	if s, ok := e.flags.value("since"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return usageErrorf("--since %q is not a sequence number", s)
		}
		since = n
	}
	var interval time.Duration
	if s, ok := e.flags.value("interval"); ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return usageErrorf("--interval %q is not a positive Go duration (such as 5s, 1m)", s)
		}
		interval = d
	}
	r, err := e.open()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // stop the syncer, then return
	if r.RemoteURL() != "" {
		if r, err = e.openSynced(ctx); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Run(ctx, replica.LiveOptions{Interval: interval, OnRound: func(rd replica.Round) {
				if rd.Err != nil {
					fmt.Fprintf(e.stderr, "ebreplica: watch: sync: %s; next try in %v\n", trimLib(rd.Err), rd.Backoff.Round(time.Millisecond))
				} else {
					e.releaseStartupPages()
				}
			}})
		}()
	} else {
		e.releaseStartupPages() // no syncer: open is the last of start-up
	}
	for c, err := range r.Watch(ctx, prefix, since) {
		if err != nil {
			return errorf(err, "watch: %s", trimLib(err))
		}
		o := newOutput(e.stdout)
		if e.json {
			o.json(c)
		} else {
			extra := ""
			if c.Conflict {
				extra = " (concurrent versions)"
			}
			o.printf("%d %s %s %s%s\n", c.Seq, c.Op, c.Key, c.Origin, extra)
		}
		if err := o.flush(); err != nil {
			return err
		}
	}
	return nil
}
