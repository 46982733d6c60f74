package cli

import (
	"context"
	"errors"

	"github.com/ebreplica/ebreplica/replica"
)

var revertCmd = &command{
	name:    "revert",
	args:    "--to TIME (--prefix P | KEY...)",
	summary: "write back, as new local writes, the values keys had at TIME",
	help: `Pulls, then writes as new local writes (causally after everything seen) the
values the keys under --prefix P, or the KEYs named, had at TIME (RFC 3339, as
restore reads it), and deletes those that did not exist then; keys that read
the same are left alone. The next push brings every replica back to them. One
local batch: on any error nothing is written. Counter and set keys are refused.
--dry-run lists what would change and writes nothing (it does not pull).
--json: {"reverted":n}; with --dry-run one line per key that would change:
{"key","op":"put"|"delete","value"/"value_b64"}.`,
	flags: []flagDef{
		{name: "to", value: true, arg: "TIME", usage: "the RFC 3339 time to revert to"},
		{name: "prefix", value: true, arg: "P", usage: "revert every key under P"},
		{name: "dry-run", usage: "list what would change; write nothing"},
	},
	minArgs: 0,
	maxArgs: -1,
	run:     runRevert,
}

type revertLine struct {
	Key string `json:"key"`
	Op  string `json:"op"`
	jsonValue
}

func runRevert(ctx context.Context, e *env) error {
	to, hasTo := e.flags.value("to")
	prefix, hasPrefix := e.flags.value("prefix")
	switch {
	case !hasTo:
		return usageErrorf("give --to TIME")
	case hasPrefix && len(e.args) > 0:
		return usageErrorf("give --prefix P or KEYs, not both")
	case !hasPrefix && len(e.args) == 0:
		return usageErrorf("give --prefix P or one or more KEYs")
	}
	t, err := parseTime(to)
	if err != nil {
		return usageErrorf("--to %q: %v", to, err)
	}
	for _, k := range e.args {
		if err := replica.ValidateKey(k); err != nil {
			return errorf(err, "%s", trimLib(err))
		}
	}
	o := replica.RevertOptions{To: t, Prefix: prefix, All: hasPrefix && prefix == "", Keys: e.args, DryRun: e.flags.bool("dry-run")}
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	changes, err := r.Revert(ctx, o)
	if err != nil {
		if errors.Is(err, replica.ErrBeforeHistory) || errors.Is(err, replica.ErrFutureTime) || errors.Is(err, replica.ErrWrongPolicy) {
			return errorf(err, "%s", trimLib(err))
		}
		return syncError("revert", err)
	}
	out := newOutput(e.stdout)
	if !o.DryRun {
		if e.json {
			out.json(struct {
				Reverted int `json:"reverted"`
			}{len(changes)})
		} else {
			out.printf("reverted %d keys to %s (push or sync to send them)\n", len(changes), to)
		}
		return out.flush()
	}
	for _, c := range changes {
		l := revertLine{Key: c.Key, Op: "put"}
		if c.Deleted {
			l.Op = "delete"
		} else {
			l.jsonValue = encodeValue(c.Value)
		}
		if e.json {
			out.json(l)
		} else {
			out.printf("%s %s\n", l.Op, c.Key)
		}
	}
	return out.flush()
}
