package cli

import (
	"context"
	"fmt"

	"github.com/ebreplica/ebreplica/replica"
)

var pushCmd = &command{
	name:    "push",
	summary: "send local changes to the remote",
	help: `Uploads the keys changed here since the last push as delta segments
(one PUT per segment, plus one registry write). --all re-sends every record
this replica holds (to republish the contents of a lost segment).
A push interrupted earlier finishes its staged segments, then stages and
sends the rest: push returns with nothing pending, or exits 1 saying how
many keys are still pending.
--json: {"segments","records","bytes","pending",
"requests":{"put","get","list","delete"}}.`,
	flags:   []flagDef{{name: "all", usage: "re-send every record this replica holds"}},
	maxArgs: 0,
	run:     runPush,
}

func runPush(ctx context.Context, e *env) error {
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	var s replica.PushStats
	if e.flags.bool("all") {
		s, err = r.PushAll(ctx)
	} else {
		s, err = r.Push(ctx)
	}
	if err != nil {
		return syncError("push", pendingError(err, s.Pending))
	}
	if e.json {
		return writeJSON(e.stdout, s)
	}
	o := newOutput(e.stdout)
	o.printf("pushed %d records in %d segments (%d bytes); requests: %s", s.Records, s.Segments, s.Bytes, requests(s.Requests.Put, s.Requests.Get, s.Requests.List, s.Requests.Delete))
	if s.Pending > 0 {
		o.printf("; %d keys written meanwhile still pending", s.Pending)
	}
	o.printf("\n")
	return o.flush()
}

func requests(put, get, list, del int64) string {
	return fmt.Sprintf("%d put, %d get, %d list, %d delete", put, get, list, del)
}

// pendingError adds to a push's error how many keys are still pending.
func pendingError(err error, pending int64) error {
	if pending <= 0 {
		return err
	}
	return fmt.Errorf("%w (%d keys still pending)", err, pending)
}
