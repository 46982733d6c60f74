package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

// Error codes (the "code" of an error answer).
const (
	codeNotFound     = "not_found"
	codeConflict     = "conflict"
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeTooLarge     = "too_large"
	codeUnavailable  = "unavailable"
)

// apiError is an error answer: the status, and the JSON object's fields.
type apiError struct {
	status int
	code   string
	msg    string
	extra  map[string]any // more fields of the object (additive)
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// libMessage is err's message without the library's package prefix.
func libMessage(err error) string {
	s := err.Error()
	for _, p := range []string{"replica: ", "store: "} {
		s = strings.TrimPrefix(s, p)
	}
	return oneLine(s)
}

func oneLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// libError maps an error of the replica to its answer.
func libError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	msg := libMessage(err)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge, msg: fmt.Sprintf("request body over the limit of %d bytes; nothing written", mbe.Limit)}
	case errors.Is(err, replica.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: codeNotFound, msg: msg}
	case errors.Is(err, replica.ErrConflict):
		return &apiError{status: http.StatusConflict, code: codeConflict, msg: msg}
	case errors.Is(err, replica.ErrValueTooLarge):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge, msg: msg + "; nothing written"}
	case errors.Is(err, replica.ErrInvalidKey), errors.Is(err, replica.ErrWrongPolicy), errors.Is(err, replica.ErrBadPatch),
		errors.Is(err, replica.ErrBadContext), errors.Is(err, replica.ErrFieldKind):
		return &apiError{status: http.StatusBadRequest, code: codeBadRequest, msg: msg}
	default:
		// The replica is closing, a local store failure, the remote
		// failing a sync: nothing the request can change.
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: msg}
	}
}

// fail answers an error.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.failWith(w, r, &apiError{status: status, code: code, msg: msg})
}

func (s *Server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	s.failWith(w, r, libError(err))
}

func (s *Server) failWith(w http.ResponseWriter, r *http.Request, e *apiError) {
	obj := map[string]any{}
	for k, v := range e.extra {
		obj[k] = v
	}
	obj["error"] = oneLine(e.msg)
	obj["code"] = e.code
	s.writeJSON(w, r, e.status, orderedError{obj})
}

// orderedError marshals an error object with "error" and "code" first.
type orderedError struct{ m map[string]any }

func (o orderedError) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	write := func(k string, v any) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := marshal(v)
		if err != nil {
			return err
		}
		b.Write(bytes.TrimRight(vb, "\n"))
		return nil
	}
	if err := write("error", o.m["error"]); err != nil {
		return nil, err
	}
	if err := write("code", o.m["code"]); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		if k != "error" && k != "code" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := write(k, o.m[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal encodes v as the command line does (no HTML escaping), with a
// trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeDeadline bounds the writing of the response that follows: a client
// that does not read it is dropped after WriteTimeout.
func (s *Server) writeDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.o.WriteTimeout))
}

// writeJSON answers status with v as one JSON line.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encoding the answer failed","code":"unavailable"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	s.writeDeadline(w)
	_, _ = w.Write(b)
}

// readBody reads r's body, refusing one over limit bytes (413) without
// reading more than limit+1 of it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge,
			msg: fmt.Sprintf("request body of %d bytes is over the limit of %d; nothing written", r.ContentLength, limit)}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: codeTooLarge,
				msg: fmt.Sprintf("request body is over the limit of %d bytes; nothing written", limit)}
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return buf.Bytes(), nil
}

// decodeJSON decodes the JSON object body into v; an error names the field
// or the byte offset at fault. Unknown fields are ignored (clients may be
// newer than the server).
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON: more data after the object at byte %d", dec.InputOffset())
	}
	return nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("malformed JSON: the body is empty, a JSON object was expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends inside the object")
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		if te.Field == "" {
			return badRequest("malformed JSON: the body is a JSON %s, an object was expected", te.Value)
		}
		return &apiError{status: http.StatusBadRequest, code: codeBadRequest,
			msg:   fmt.Sprintf("field %q: a JSON %s where %s was expected", te.Field, te.Value, jsonKind(te.Type.String())),
			extra: map[string]any{"field": te.Field}}
	}
	return badRequest("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a Go type as JSON would: "a string", "a number".
func jsonKind(goType string) string {
	t := strings.TrimLeft(goType, "*")
	switch {
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	}
	return "an object"
}
