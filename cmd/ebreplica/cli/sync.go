package cli

import "context"

var syncCmd = &command{
	name:    "sync",
	summary: "pull, then push",
	help:    `--json: {"pull":{...},"push":{...}} as pull and push print them.`,
	maxArgs: 0,
	run:     runSync,
}

func runSync(ctx context.Context, e *env) error {
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	s, err := r.Sync(ctx)
	if err != nil {
		return syncError("sync", err)
	}
	if e.json {
		return writeJSON(e.stdout, s)
	}
	o := newOutput(e.stdout)
	o.printf("%spulled %d records in %d segments; pushed %d records in %d segments; cursor %d\n",
		e.bootstrapNote(), s.Pull.Records, s.Pull.Segments, s.Push.Records, s.Push.Segments, s.Pull.Cursor)
	return o.flush()
}
