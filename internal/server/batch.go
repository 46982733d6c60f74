package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

// batchOp is one operation of POST /v1/batch.
type batchOp struct {
	Op       string  `json:"op"`
	Key      *string `json:"key"`
	Value    *string `json:"value"`
	ValueB64 *string `json:"value_b64"`
}

// opError is the 400 (or 413) answer naming op i's field.
func opError(status int, i int, field, format string, args ...any) *apiError {
	code := codeBadRequest
	if status == http.StatusRequestEntityTooLarge {
		code = codeTooLarge
	}
	return &apiError{status: status, code: code,
		msg:   fmt.Sprintf("ops[%d].%s: ", i, field) + fmt.Sprintf(format, args...) + "; nothing written",
		extra: map[string]any{"op": i, "field": field}}
}

// batch answers POST /v1/batch: every operation is checked first (a bad
// one is a 400 naming its index and field, and nothing is written), then
// all are applied in one transaction.
//
// At most batchReaders batches are read and applied at once (the others
// wait their turn, or give up with their request), so that the memory of
// batch bodies stays bounded however many clients send them: each body is
// at most MaxBatchSize.
func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	select {
	case s.batchSlots <- struct{}{}:
		defer func() { <-s.batchSlots }()
	case <-r.Context().Done():
		s.failErr(w, r, &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
			msg: "request ended while waiting for another batch to finish"})
		return
	}
	body, err := readBody(w, r, s.o.MaxBatchSize)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	var req struct {
		Ops *[]json.RawMessage `json:"ops"`
	}
	if err := decodeJSON(body, &req); err != nil {
		s.failErr(w, r, err)
		return
	}
	if req.Ops == nil {
		s.failErr(w, r, &apiError{status: http.StatusBadRequest, code: codeBadRequest,
			msg: `field "ops" is missing: {"ops":[{"op":"put","key":..,"value":..},{"op":"delete","key":..}]}`, extra: map[string]any{"field": "ops"}})
		return
	}
	type checked struct {
		key   string
		value []byte
		del   bool
	}
	ops := make([]checked, 0, len(*req.Ops))
	for i, raw := range *req.Ops {
		var op batchOp
		if err := json.Unmarshal(raw, &op); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				s.failErr(w, r, opError(http.StatusBadRequest, i, te.Field, "a JSON %s where %s was expected", te.Value, jsonKind(te.Type.String())))
			} else {
				s.failErr(w, r, &apiError{status: http.StatusBadRequest, code: codeBadRequest,
					msg: fmt.Sprintf("ops[%d]: not an object {\"op\",\"key\",...}; nothing written", i), extra: map[string]any{"op": i}})
			}
			return
		}
		if op.Key == nil {
			s.failErr(w, r, opError(http.StatusBadRequest, i, "key", "missing"))
			return
		}
		key := *op.Key
		if err := replica.ValidateKey(key); err != nil {
			s.failErr(w, r, opError(http.StatusBadRequest, i, "key", "%s", libMessage(err)))
			return
		}
		switch op.Op {
		case "delete":
			if op.Value != nil || op.ValueB64 != nil {
				s.failErr(w, r, opError(http.StatusBadRequest, i, "value", "a delete takes no value"))
				return
			}
			ops = append(ops, checked{key: key, del: true})
			continue
		case "put":
		case "":
			s.failErr(w, r, opError(http.StatusBadRequest, i, "op", `missing: "put" or "delete"`))
			return
		default:
			s.failErr(w, r, opError(http.StatusBadRequest, i, "op", `%q is not "put" or "delete"`, op.Op))
			return
		}
		var value []byte
		switch {
		case op.Value != nil && op.ValueB64 != nil:
			s.failErr(w, r, opError(http.StatusBadRequest, i, "value", `both "value" and "value_b64" given`))
			return
		case op.Value != nil:
			value = []byte(*op.Value)
		case op.ValueB64 != nil:
			b, err := base64.StdEncoding.DecodeString(*op.ValueB64)
			if err != nil {
				s.failErr(w, r, opError(http.StatusBadRequest, i, "value_b64", "not standard base64: %v", err))
				return
			}
			value = b
		default:
			s.failErr(w, r, opError(http.StatusBadRequest, i, "value", `missing: a put takes "value" (text) or "value_b64"`))
			return
		}
		if len(value) > s.o.MaxValueSize {
			s.failErr(w, r, opError(http.StatusRequestEntityTooLarge, i, "value", "%d bytes, over the limit of %d", len(value), s.o.MaxValueSize))
			return
		}
		switch pol := s.r.Policies().For(key).Name(); pol {
		case merge.NameCounter, merge.NameSet:
			s.failErr(w, r, opError(http.StatusBadRequest, i, "key", "%q is a %s key: write it through /v1/%s/", key, pol, pol))
			return
		case merge.NameJSON, merge.NameJSONMV:
			var obj map[string]json.RawMessage
			if json.Unmarshal(value, &obj) != nil || obj == nil {
				s.failErr(w, r, opError(http.StatusBadRequest, i, "value", "%q is a %s document key: the value must be a JSON object", key, pol))
				return
			}
		}
		ops = append(ops, checked{key: key, value: value})
	}
	err = s.r.Batch(r.Context(), func(b *replica.Batch) error {
		for _, op := range ops {
			if op.del {
				b.Delete(op.key)
			} else {
				b.Put(op.key, op.value)
			}
		}
		return nil
	})
	if err != nil {
		// Checked above; what the library still refuses is named by its
		// message (which quotes the key).
		ae := libError(err)
		if ae.status != http.StatusServiceUnavailable {
			ae.msg = "ops: " + ae.msg + "; nothing written"
		}
		s.failWith(w, r, ae)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
