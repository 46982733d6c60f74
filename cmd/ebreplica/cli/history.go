package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

var historyCmd = &command{
	name:    "history",
	args:    "KEY",
	summary: "every version KEY held in the retained snapshots and log, oldest first",
	help: `Reads the store's retained history on the remote (the oldest snapshot kept by
the retention, see ` + "`ebreplica retention`" + `, and every log segment above it) and
prints each version KEY held there, oldest first: the log position where it was
published, its HLC, the replica that wrote it, and its value or "(deleted)".
The first line says where the retained history starts. Writes not yet pushed
are not part of it. A key with no version there exits 3, naming the start.
--json: one line per version {"position","hlc","time","replica_id","deleted",
"value"/"value_b64","history_start"} (hlc as a string; history_start is the
position the retained history starts at).`,
	minArgs: 1,
	maxArgs: 1,
	run:     runHistory,
}

type historyLine struct {
	Position  uint64 `json:"position"`
	HLC       uint64 `json:"hlc,string"`
	Time      string `json:"time"`
	ReplicaID string `json:"replica_id"`
	Deleted   bool   `json:"deleted"`
	jsonValue
	HistoryStart uint64 `json:"history_start"`
}

func runHistory(ctx context.Context, e *env) error {
	key := e.args[0]
	if err := replica.ValidateKey(key); err != nil {
		return errorf(err, "%s", trimLib(err))
	}
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	vs, start, err := r.History(ctx, key)
	if err != nil {
		return syncError("history", err)
	}
	if len(vs) == 0 {
		return &cliError{code: ExitNotFound, err: replica.ErrNotFound,
			msg: fmt.Sprintf("key %q has no version in the retained history (it starts at position %d, %s)", key, start.Position, startTime(start))}
	}
	o := newOutput(e.stdout)
	if !e.json {
		o.printf("history of %s from position %d (%s)\n", strconv.Quote(key), start.Position, startTime(start))
	}
	for _, v := range vs {
		if e.json {
			l := historyLine{Position: v.Position, HLC: uint64(v.Time), Time: v.Time.String(), ReplicaID: v.Replica.String(),
				Deleted: v.Deleted, HistoryStart: start.Position}
			if !v.Deleted {
				l.jsonValue = encodeValue(v.Value)
			}
			o.json(l)
			continue
		}
		val := "(deleted)"
		if !v.Deleted {
			val = strconv.Quote(string(v.Value))
		}
		o.printf("%d  %s  %s  %s\n", v.Position, v.Time, v.Replica.Short(), val)
	}
	return o.flush()
}

// startTime is the time of the start of the retained history, for messages.
func startTime(s replica.HistoryStart) string {
	if s.Time.IsZero() {
		return "the store's creation"
	}
	return s.Time.UTC().Format(time.RFC3339)
}
