package cli

import (
	"context"

	"github.com/ebreplica/ebreplica/replica"
)

var patchCmd = &command{
	name:    "patch",
	args:    "KEY JSON",
	summary: "apply a JSON Merge Patch (RFC 7396) to a json document key",
	help: `The key's policy must be json or json-mv (init --policy PREFIX=json). JSON
must be an object: each field it names is written, a null removes the
field, a nested object is merged into an object field. Only the named
fields are stamped, so patches of other fields made concurrently on other
replicas all survive the sync. get prints the merged document; under
json-mv, concurrent assignments of one field make get exit 4 until a patch
of the field settles them (get --all shows each version's document).

Counters and sets: a field's value that is an object with one member whose
name starts with "$" is an operation on the field:
  {"visits":{"$inc":1}}        add 1 (an integer; negative subtracts)
  {"visits":{"$counter":10}}   make the field a counter reading 10
  {"tags":{"$add":["a","b"]}}  add members (strings)
  {"tags":{"$remove":["b"]}}   remove members
  {"tags":{"$set":["a"]}}      make the field a set of exactly these
$inc and $add create the field when it is absent. Increments made
concurrently on other replicas all count; a member added concurrently with
its removal stays. get prints a counter as a number and a set as a sorted
array. Write a field whose name starts with "$" doubled: {"$$ref":1} writes
"$ref" (put takes names as they are: its JSON is data).

A patch that is not a JSON object, a malformed or unknown operation, an
operation on a field of another kind ($inc on a field that is not a
counter), or a patch over the value limit is an error that writes nothing.
Prints nothing.`,
	minArgs: 2,
	maxArgs: 2,
	run:     runPatch,
}

func runPatch(ctx context.Context, e *env) error {
	key := e.args[0]
	if err := replica.ValidateKey(key); err != nil {
		return errorf(err, "%s", trimLib(err))
	}
	r, err := e.open()
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, key, []byte(e.args[1])); err != nil {
		return errorf(err, "%s", trimLib(err))
	}
	return nil
}
