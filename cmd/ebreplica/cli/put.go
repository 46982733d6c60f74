package cli

import (
	"context"
	"io"

	"github.com/ebreplica/ebreplica/replica"
)

var putCmd = &command{
	name:    "put",
	args:    "KEY [VALUE]",
	summary: "write KEY; VALUE is read from stdin when omitted (binary-safe)",
	minArgs: 1,
	maxArgs: 2,
	run:     runPut,
}

func runPut(ctx context.Context, e *env) error {
	key := e.args[0]
	if err := replica.ValidateKey(key); err != nil {
		return errorf(err, "%s", trimLib(err))
	}
	var value []byte
	if len(e.args) == 2 {
		value = []byte(e.args[1])
	} else {
		// Read one byte past the limit, so an oversized value is refused
		// without reading all of it.
		b, err := io.ReadAll(io.LimitReader(e.stdin, replica.DefaultMaxValueSize+1))
		if err != nil {
			return errorf(err, "reading the value from stdin: %v", err)
		}
		if len(b) > replica.DefaultMaxValueSize {
			return errorf(replica.ErrValueTooLarge, "value too large: the value of %q on stdin is over the limit of %d bytes", key, replica.DefaultMaxValueSize)
		}
		value = b
	}
	r, err := e.open()
	if err != nil {
		return err
	}
	if name, ok := e.libraryPolicy(r, key); ok {
		return refuseLibraryWrite(key, name)
	}
	if err := r.Put(ctx, key, value); err != nil {
		return errorf(err, "writing %q: %s", key, trimLib(err))
	}
	return nil
}
