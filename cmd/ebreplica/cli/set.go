package cli

import (
	"context"

	"github.com/ebreplica/ebreplica/replica"
)

var saddCmd = &command{
	name:    "sadd",
	args:    "KEY MEMBER...",
	summary: "add members to a set key (add-wins)",
	help:    `The key's policy must be set. Prints the members here after the change, one per line; --json: {"members":[..]}.`,
	minArgs: 2,
	maxArgs: -1,
	run:     func(ctx context.Context, e *env) error { return runSetChange(ctx, e, true) },
}

var sremCmd = &command{
	name:    "srem",
	args:    "KEY MEMBER...",
	summary: "remove members from a set key (an add concurrent with the remove wins)",
	help:    `The key's policy must be set. Prints the members here after the change, one per line; --json: {"members":[..]}.`,
	minArgs: 2,
	maxArgs: -1,
	run:     func(ctx context.Context, e *env) error { return runSetChange(ctx, e, false) },
}

var smembersCmd = &command{
	name:    "smembers",
	args:    "KEY",
	summary: "list the members of a set key",
	help:    `One member per line, sorted; --json: {"members":[..]}. A missing key exits 3.`,
	minArgs: 1,
	maxArgs: 1,
	run:     runSmembers,
}

func runSetChange(ctx context.Context, e *env, add bool) error {
	key, members := e.args[0], e.args[1:]
	r, err := e.open()
	if err != nil {
		return err
	}
	if add {
		err = r.SetAdd(ctx, key, members...)
	} else {
		err = r.SetRemove(ctx, key, members...)
	}
	if err != nil {
		return crdtError(key, err)
	}
	return printMembers(e, r, key, true)
}

func runSmembers(ctx context.Context, e *env) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	return printMembers(e, r, e.args[0], false)
}

func printMembers(e *env, r *replica.Replica, key string, emptyOK bool) error {
	ms, err := r.SetMembers(key)
	if err != nil {
		if emptyOK && isNotFound(err) {
			ms = nil
		} else {
			return crdtError(key, err)
		}
	}
	if ms == nil {
		ms = []string{}
	}
	if e.json {
		return writeJSON(e.stdout, struct {
			Members []string `json:"members"`
		}{ms})
	}
	o := newOutput(e.stdout)
	for _, m := range ms {
		o.printf("%s\n", m)
	}
	return o.flush()
}
