package cli

import (
	"context"
	"errors"
	"strconv"

	"github.com/ebreplica/ebreplica/replica"
)

var incrCmd = &command{
	name:    "incr",
	args:    "KEY [DELTA]",
	summary: "add DELTA (default 1, may be negative) to a counter key",
	help: `The key's policy must be counter (init --policy PREFIX=counter). Prints the
counter's new value here. --json: {"key","value"}. Concurrent increments on
other replicas all count once they sync.`,
	minArgs: 1,
	maxArgs: 2,
	run:     runIncr,
}

func runIncr(ctx context.Context, e *env) error {
	key := e.args[0]
	delta := int64(1)
	if len(e.args) == 2 {
		d, err := strconv.ParseInt(e.args[1], 10, 64)
		if err != nil {
			return usageErrorf("DELTA %q is not an integer", e.args[1])
		}
		delta = d
	}
	r, err := e.open()
	if err != nil {
		return err
	}
	v, err := r.CounterAdd(ctx, key, delta)
	if err != nil {
		return crdtError(key, err)
	}
	if e.json {
		return writeJSON(e.stdout, struct {
			Key   string `json:"key"`
			Value int64  `json:"value"`
		}{key, v})
	}
	o := newOutput(e.stdout)
	o.printf("%d\n", v)
	return o.flush()
}

func crdtError(key string, err error) error {
	if errors.Is(err, replica.ErrWrongPolicy) {
		return errorf(err, "%s", trimLib(err))
	}
	if errors.Is(err, replica.ErrInvalidKey) || errors.Is(err, replica.ErrValueTooLarge) {
		return errorf(err, "%s", trimLib(err))
	}
	return keyError(key, err)
}
