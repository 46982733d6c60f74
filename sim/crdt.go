package sim

import (
	"context"
	"errors"

	"github.com/ebreplica/ebreplica/replica"
)

// crdtWrite runs a counter or set update.
func crdtWrite(ctx context.Context, r *replica.Replica, op Op) error {
	return errors.New("sim: CRDT updates not available yet")
}
