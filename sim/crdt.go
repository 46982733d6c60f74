package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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
// removals of a top field or of the whole "addr"; increments of the
// counter field "visits" and adds and removes of members of the set field
// "tags" (the pseudo-fields docInc, docAdd and docRemove, whose Value is
// the increment or the member: docOpValue).
var (
	docLeaves    = []string{"name", "email", "addr.city", "addr.zip", docInc, docAdd}
	docRemovable = []string{"name", "email", "addr", docRemove}
)

// The counter and set operations of the json workload, as Op.Elem.
const (
	docInc    = "visits+" // Value: the increment
	docAdd    = "tags+"   // Value: the member added
	docRemove = "tags-"   // Value: the member removed
)

// docOpValue is the Value of the json workload's op on field for op id:
// the increment (-3 to 5) or the member (e0 to e3) of a counter or set
// operation, "" for a field assignment or removal. It is drawn from the id,
// not from the schedule's source, which stays as it was.
func docOpValue(field string, id int) string {
	switch field {
	case docInc:
		return strconv.Itoa(id%9 - 3)
	case docAdd, docRemove:
		return fmt.Sprintf("e%d", id%4)
	}
	return ""
}

// docPatch is the merge patch that sets field (dotted for nested) to
// value, or removes it when value is ""; for docInc, docAdd and docRemove,
// the $inc, $add or $remove of value.
func docPatch(field, value string) []byte {
	switch field {
	case docInc:
		return []byte(`{"visits":{"$inc":` + value + `}}`)
	case docAdd, docRemove:
		m, _ := json.Marshal([]string{value})
		op := "$add"
		if field == docRemove {
			op = "$remove"
		}
		return []byte(`{"tags":{"` + op + `":` + string(m) + `}}`)
	}
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
