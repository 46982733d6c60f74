package format_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote/format"
)

// TestRegistrySum: a body round-trips through its sum; every single bit
// flipped in it, and every truncation, either fails to decode or decodes
// to the very same body (a flip inside the name "sum" drops the sum and
// leaves the rest intact) — never to another seq, nonce or ack, which
// fencing would read as another writer's. A body without a sum (an older
// writer's) decodes as it is.
func TestRegistrySum(t *testing.T) {
	body := format.RegistryBody{Format: 1, ReplicaID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Seq: 7,
		Nonce: "9a8b7c6d5e4f", Ack: 41, SkewCapped: 2, Wall: time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)}
	data := format.EncodeRegistry(body)
	got, err := format.DecodeRegistry(data)
	if err != nil {
		t.Fatal(err)
	}
	want := got // with its sum
	want.Sum = ""
	if want != body || got.Sum == "" {
		t.Fatalf("round trip: %+v, want %+v with a sum", got, body)
	}
	same := func(b format.RegistryBody) bool { b.Sum = ""; return b == body }
	for i := range data {
		for bit := range 8 {
			d := bytes.Clone(data)
			d[i] ^= 1 << bit
			if b, err := format.DecodeRegistry(d); err == nil && !same(b) {
				t.Fatalf("bit %d of byte %d (%q) flipped: decoded %+v", bit, i, data[i], b)
			}
		}
		if b, err := format.DecodeRegistry(data[:i]); err == nil && !same(b) {
			t.Fatalf("torn at %d: decoded %+v", i, b)
		}
	}
	// A flipped digit of the seq is caught by the sum.
	d := bytes.Replace(data, []byte(`"seq": 7`), []byte(`"seq": 3`), 1)
	if _, err := format.DecodeRegistry(d); !errors.Is(err, format.ErrRegistrySum) {
		t.Fatalf("changed seq: %v", err)
	}
	// An older writer's body, without a sum.
	old, _ := json.Marshal(body)
	if b, err := format.DecodeRegistry(old); err != nil || b != body {
		t.Fatalf("a body without a sum: %+v, %v", b, err)
	}
	// Spacing does not matter: the same body compacted keeps its sum.
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		t.Fatal(err)
	}
	if b, err := format.DecodeRegistry(buf.Bytes()); err == nil {
		t.Fatalf("compacted bytes must fail the sum of the spaced ones: %+v", b)
	}
}
