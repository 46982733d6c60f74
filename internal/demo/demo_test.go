package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDemoConverges runs the demonstration: the replicas converge, and the
// two devices' edits of different fields of doc/carol both survive.
func TestDemoConverges(t *testing.T) {
	var out bytes.Buffer
	ok, err := Run(context.Background(), &out)
	if err != nil || !ok {
		t.Fatalf("demo: converged %v, %v\n%s", ok, err, out.String())
	}
	if n := strings.Count(out.String(), `doc/carol       = {"email":"carol@new","name":"Carol Ann"}`); n != 3 {
		t.Fatalf("the merged document shows on %d replicas, want 3:\n%s", n, out.String())
	}
}
