package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// jsonValue is a value as the JSON forms carry it: "value" holds it as text
// when it is valid UTF-8, else "value_b64" holds it in standard base64.
// Exactly one of the two is set. Embedded in an output struct, its fields
// appear at that struct's level.
type jsonValue struct {
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
}

func encodeValue(v []byte) jsonValue {
	if utf8.Valid(v) {
		s := string(v)
		return jsonValue{Value: &s}
	}
	s := base64.StdEncoding.EncodeToString(v)
	return jsonValue{ValueB64: &s}
}

// bytes decodes the value; an error names what is wrong with it.
func (j jsonValue) bytes() ([]byte, error) {
	switch {
	case j.Value != nil && j.ValueB64 != nil:
		return nil, fmt.Errorf(`has both "value" and "value_b64"`)
	case j.Value != nil:
		return []byte(*j.Value), nil
	case j.ValueB64 != nil:
		b, err := base64.StdEncoding.DecodeString(*j.ValueB64)
		if err != nil {
			return nil, fmt.Errorf(`"value_b64" is not standard base64: %v`, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf(`has neither "value" nor "value_b64"`)
}

// output buffers a command's stdout. Call flush at the end; write errors
// are kept and reported by flush.
type output struct {
	w   *bufio.Writer
	enc *json.Encoder
	err error
}

func newOutput(w io.Writer) *output {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &output{w: bw, enc: enc}
}

// json writes v as one JSON object on one line.
func (o *output) json(v any) {
	if o.err == nil {
		o.err = o.enc.Encode(v)
	}
}

func (o *output) printf(format string, args ...any) {
	if o.err == nil {
		_, o.err = fmt.Fprintf(o.w, format, args...)
	}
}

func (o *output) write(b []byte) {
	if o.err == nil {
		_, o.err = o.w.Write(b)
	}
}

func (o *output) flush() error {
	if o.err == nil {
		o.err = o.w.Flush()
	}
	return outputError(o.err)
}

// writeJSON writes v as one JSON line to w.
func writeJSON(w io.Writer, v any) error {
	o := newOutput(w)
	o.json(v)
	return o.flush()
}
