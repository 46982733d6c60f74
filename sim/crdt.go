package sim

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/ebreplica/ebreplica/internal/engine"
)

// crdtWrite runs a counter, set or json update through the replica's CRDT API.
// A SetRemove of members not in the set here writes nothing (the caller
// sees the record unchanged).
func crdtWrite(ctx context.Context, r *engine.Engine, op Op) error {
	switch op.Kind {
	case OpAdd:
		_, err := r.CounterAdd(ctx, op.Key, op.Delta)
		return err
	case OpSetAdd:
		return r.SetAdd(ctx, op.Key, op.Elem)
	case OpPatch:
		return r.Patch(ctx, op.Key, docPatch(op.Elem, op.Value))
	default:
		return r.SetRemove(ctx, op.Key, op.Elem)
	}
}

// The json workload: patches of one field of a profile-like document,
// "name" and "email" at the top, "city" and "zip" in the nested "addr";
// removals of a top field or of the whole "addr".
var (
	docLeaves    = []string{"name", "email", "addr.city", "addr.zip"}
	docRemovable = []string{"name", "email", "addr"}
)

// docPatch is the merge patch that sets field (dotted for nested) to
// value, or removes it when value is "".
func docPatch(field, value string) []byte {
	v := "null"
	if value != "" {
		b, _ := json.Marshal(value)
		v = string(b)
	}
	keys := strings.Split(field, ".")
	for i := len(keys) - 1; i >= 0; i-- {
		k, _ := json.Marshal(keys[i])
		v = "{" + string(k) + ":" + v + "}"
	}
	return []byte(v)
}
