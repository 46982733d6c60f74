package cli

import (
	"context"

	"github.com/ebreplica/ebreplica/replica"
)

var delCmd = &command{
	name:    "del",
	args:    "KEY",
	summary: "delete KEY; a key that is not live here exits 3 and writes nothing",
	minArgs: 1,
	maxArgs: 1,
	run:     runDel,
}

func runDel(ctx context.Context, e *env) error {
	key := e.args[0]
	if err := replica.ValidateKey(key); err != nil {
		return errorf(err, "%s", trimLib(err))
	}
	r, err := e.open()
	if err != nil {
		return err
	}
	if name, ok := e.libraryPolicy(r, key); ok {
		return refuseLibraryWrite(key, name)
	}
	if err := r.Delete(ctx, key); err != nil {
		if err := keyError(key, err); exitCode(err) != ExitError {
			return err
		}
		return errorf(err, "deleting %q: %s", key, trimLib(err))
	}
	return nil
}
