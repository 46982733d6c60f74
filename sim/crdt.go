package sim

import (
	"context"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// crdtWrite runs a counter or set update through the replica's CRDT API.
// A SetRemove of members not in the set here writes nothing (the caller
// sees the record unchanged).
func crdtWrite(ctx context.Context, r *engine.Engine, op Op) error {
	switch op.Kind {
	case OpAdd:
		_, err := r.CounterAdd(ctx, op.Key, op.Delta)
		return err
	case OpSetAdd:
		return r.SetAdd(ctx, op.Key, op.Elem)
	default:
		return r.SetRemove(ctx, op.Key, op.Elem)
	}
}
