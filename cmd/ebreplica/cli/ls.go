package cli

import (
	"context"
	"strconv"

	"github.com/ebreplica/ebreplica/merge"
)

var lsCmd = &command{
	name:    "ls",
	summary: "list the live keys, sorted, one per line",
	help: `Keys are printed as they are, one per line; a key holding a newline is
unambiguous only in the --json form.

--json prints {"key","size","versions"} per line: the value's size in
bytes and the number of concurrent versions stored; a key whose versions
the mv policy surfaces also has "conflict":true (and size 0).

--conflicts lists only the keys that hold concurrent versions: more than
one stored version, whether the policy surfaces them (mv) or picks one
(lww, a library policy); counter, set and json keys, whose versions merge
into one value by design, are left out. See them with get --all.`,
	flags: []flagDef{
		{name: "prefix", value: true, arg: "P", usage: "only keys starting with P"},
		{name: "conflicts", usage: "only keys that hold concurrent versions"},
		{name: "limit", value: true, arg: "N", usage: "at most N keys (0: no limit)"},
	},
	maxArgs: 0,
	run:     runLs,
}

type lsOutput struct {
	Key      string `json:"key"`
	Size     int    `json:"size"`
	Versions int    `json:"versions"`
	Conflict bool   `json:"conflict,omitempty"`
}

func runLs(ctx context.Context, e *env) error {
	prefix, _ := e.flags.value("prefix")
	limit := 0
	if s, ok := e.flags.value("limit"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return usageErrorf("--limit %q: expected a number of keys, 0 or more", s)
		}
		limit = n
	}
	conflicts := e.flags.bool("conflicts")
	r, err := e.open()
	if err != nil {
		return err
	}
	o := newOutput(e.stdout)
	n := 0
	for it, err := range r.Scan(prefix) {
		if err != nil {
			return errorf(err, "listing keys: %s", trimLib(err))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if conflicts && !it.Conflict && (it.NumVersions < 2 || mergesVersions(r.Policies().For(it.Key).Name())) {
			continue
		}
		if e.json {
			o.json(lsOutput{Key: it.Key, Size: len(it.Value), Versions: it.NumVersions, Conflict: it.Conflict})
		} else {
			o.printf("%s\n", it.Key)
		}
		if o.err != nil {
			break
		}
		if n++; limit > 0 && n >= limit {
			break
		}
	}
	return o.flush()
}

// mergesVersions reports whether the policy called name merges concurrent
// versions into one value by design (the CRDTs), so that several stored
// versions are no conflict.
func mergesVersions(name string) bool {
	switch name {
	case merge.NameCounter, merge.NameSet, merge.NameJSON:
		return true
	}
	return false
}
