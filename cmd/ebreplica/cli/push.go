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
--json: {"segments","records","bytes","requests":{"put","get","list","delete"}}.`,
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
		return syncError("push", err)
	}
	if e.json {
		return writeJSON(e.stdout, s)
	}
	o := newOutput(e.stdout)
	o.printf("pushed %d records in %d segments (%d bytes); requests: %s\n", s.Records, s.Segments, s.Bytes, requests(s.Requests.Put, s.Requests.Get, s.Requests.List, s.Requests.Delete))
	return o.flush()
}

func requests(put, get, list, del int64) string {
	return fmt.Sprintf("%d put, %d get, %d list, %d delete", put, get, list, del)
}
