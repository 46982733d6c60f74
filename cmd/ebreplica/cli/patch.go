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
of the field settles them (get --all shows each version's document). A
patch that is not a JSON object, or is over the value limit, is an error
that writes nothing. Prints nothing.`,
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
		return errorf(err, "patch: %s", trimLib(err))
	}
	return nil
}
