package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

var exportCmd = &command{
	name:    "export",
	summary: `write the live keys as JSON lines {"key","value"/"value_b64"}, sorted`,
	help: `The format import reads: one {"key":"..","value":".."} object per line,
"value_b64" (standard base64) for a value that is not UTF-8, in key order,
so import(export(x)) gives x back exactly. A counter key is written as
{"key":"..","counter":N} and a set key as {"key":"..","members":[".."]}
(sorted), the forms import takes for them. A json or json-mv document key
is written as {"key":"..","doc":{..}}: the document in operation form,
which keeps each field's kind, a counter field as {"$counter":N}, a set
field as {"$set":[".."]} (sorted), a field whose name starts with "$" with
the "$" doubled ("$ref" as "$$ref"), nested objects as objects, any other
value as it is, e.g.
  {"key":"docs/a","doc":{"$$id":1,"n":{"$counter":5},"t":{"$set":["x"]}}}
The output is JSON lines with or without --json.

A key whose concurrent versions the mv policy (or json-mv) surfaces has no
one value to export: it is left out, and export exits 4 after writing the
others, naming the first such key (see its versions with get --all).`,
	flags: []flagDef{
		{name: "prefix", value: true, arg: "P", usage: "only keys starting with P"},
	},
	maxArgs: 0,
	run:     runExport,
}

type exportRecord struct {
	Key string `json:"key"`
	jsonValue
	Counter *int64   `json:"counter,omitempty"` // a counter key's value
	Members []string `json:"members,omitempty"` // a set key's members
	// Doc is a json key's document in operation form
	// (merge.DocState.Operations), the form import writes back with every
	// field's kind.
	Doc json.RawMessage `json:"doc,omitempty"`
}

func runExport(ctx context.Context, e *env) error {
	prefix, _ := e.flags.value("prefix")
	r, err := e.open()
	if err != nil {
		return err
	}
	bar := e.newBar("export", "keys", r.Len(), true)
	defer bar.finish()
	o := newOutput(e.stdout)
	skipped, first := 0, ""
	libSkipped, libFirst := 0, ""
	for it, err := range r.Scan(prefix) {
		if err != nil {
			return errorf(err, "reading keys: %s", trimLib(err))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if it.Conflict {
			if skipped == 0 {
				first = it.Key
			}
			skipped++
			continue
		}
		if _, lib := e.libraryPolicy(r, it.Key); lib {
			if libSkipped == 0 {
				libFirst = it.Key
			}
			libSkipped++
			continue
		}
		rec := exportRecord{Key: it.Key}
		switch r.Policies().For(it.Key).Name() {
		case merge.NameCounter:
			n, err := r.CounterValue(it.Key)
			if err != nil {
				return errorf(err, "reading counter %q: %s", it.Key, trimLib(err))
			}
			rec.Counter = &n
		case merge.NameSet:
			ms, err := r.SetMembers(it.Key)
			if err != nil {
				return errorf(err, "reading set %q: %s", it.Key, trimLib(err))
			}
			rec.Members = ms
		case merge.NameJSON, merge.NameJSONMV:
			doc, err := r.DocOperations(it.Key)
			if errors.Is(err, replica.ErrNotFound) {
				continue // deleted since the scan saw it
			}
			if errors.Is(err, replica.ErrConflict) {
				// Concurrent versions since the scan saw it.
				if skipped == 0 {
					first = it.Key
				}
				skipped++
				continue
			}
			if err != nil {
				return errorf(err, "reading json document %q: %s", it.Key, trimLib(err))
			}
			rec.Doc = doc
		default:
			rec.jsonValue = encodeValue(it.Value)
		}
		o.json(rec)
		bar.add(1)
		if o.err != nil {
			break
		}
	}
	if err := o.flush(); err != nil {
		return err
	}
	if libSkipped > 0 {
		name, _ := e.libraryPolicy(r, libFirst)
		return errorf(nil, "left out %d keys under library policies the command line does not have, the first %q (policy %q): export them from the program that defines it", libSkipped, libFirst, name)
	}
	if skipped > 0 {
		return &cliError{code: ExitConflict, msg: fmt.Sprintf(
			"left out %d keys with concurrent versions, the first %q: see them with `ebreplica get --all %s`, resolve with put",
			skipped, first, shellQuote(first))}
	}
	return nil
}
