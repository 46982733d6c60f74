package cli

import "context"

var pullCmd = &command{
	name:    "pull",
	summary: "receive changes from the remote and merge them",
	help: `Lists the log after this replica's cursor and merges every new segment.
An idle pull is one request.
--json: {"segments","records","conflicts","bytes","requests":{...}}.`,
	maxArgs: 0,
	run:     runPull,
}

func runPull(ctx context.Context, e *env) error {
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	s, err := r.Pull(ctx)
	if err != nil {
		return syncError("pull", err)
	}
	if e.json {
		return writeJSON(e.stdout, s)
	}
	o := newOutput(e.stdout)
	o.printf("%spulled %d records in %d segments (%d bytes, %d keys changed, %d with concurrent versions); cursor %d; requests: %s\n",
		e.bootstrapNote(), s.Records, s.Segments, s.Bytes, s.Changed, s.Conflicts, s.Cursor, requests(s.Requests.Put, s.Requests.Get, s.Requests.List, s.Requests.Delete))
	return o.flush()
}
