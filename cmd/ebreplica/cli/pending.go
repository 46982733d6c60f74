package cli

import "context"

var pendingCmd = &command{
	name:    "pending",
	summary: "list the keys changed here and not yet pushed, one per line",
	help:    `--json prints {"key","deleted"} per line; deleted: the key reads as deleted here.`,
	maxArgs: 0,
	run:     runPending,
}

type pendingOutput struct {
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
}

func runPending(ctx context.Context, e *env) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	o := newOutput(e.stdout)
	for pk, err := range r.Pending() {
		if err != nil {
			return errorf(err, "listing pending keys: %s", trimLib(err))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.json {
			o.json(pendingOutput{Key: pk.Key, Deleted: pk.Deleted})
		} else {
			o.printf("%s\n", pk.Key)
		}
		if o.err != nil {
			break
		}
	}
	return o.flush()
}
