package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// TestProgressPushPull: a push reports the bytes of its staged segments
// as it commits them, ending at their total, and a pull the log segments
// it applies of those it listed (issue 15: progress with an ETA).
func TestProgressPushPull(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("progress")
	type call struct {
		stage       string
		done, total int64
	}
	var calls []call
	record := func(stage string, done, total int64) { calls = append(calls, call{stage, done, total}) }
	a := newReplicaOpts(t, b, engine.Options{SegmentCap: 4 << 10, Progress: record})
	c := newReplicaOpts(t, b, engine.Options{Progress: record})
	for i := range 200 {
		if err := a.Put(ctx, fmt.Sprintf("k%03d", i), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	calls = nil
	ps, err := a.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Segments < 3 || len(calls) != ps.Segments {
		t.Fatalf("push of %d segments reported %d times: %v", ps.Segments, len(calls), calls)
	}
	for i, c := range calls {
		if c.stage != "push" || c.total != ps.Bytes || (i > 0 && c.done <= calls[i-1].done) {
			t.Fatalf("push progress %v (pushed %d bytes)", calls, ps.Bytes)
		}
	}
	if last := calls[len(calls)-1]; last.done != last.total {
		t.Fatalf("push progress ends at %d of %d", last.done, last.total)
	}
	calls = nil
	pl, err := c.Pull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pulls []call
	for _, x := range calls {
		if x.stage == "pull" {
			pulls = append(pulls, x)
		}
	}
	if len(pulls) == 0 || pulls[len(pulls)-1].done != pulls[len(pulls)-1].total || int(pulls[len(pulls)-1].total) != pl.Segments+pl.Skipped {
		t.Fatalf("pull of %d segments reported %v", pl.Segments, pulls)
	}
}

// TestPullStatsBytes: a pull counts the bytes of the segments it applied
// (it counted 0: the size was read after the window dropped the data).
func TestPullStatsBytes(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("bytes")
	a := newReplicaOpts(t, b, engine.Options{})
	c := newReplicaOpts(t, b, engine.Options{})
	if err := a.Put(ctx, "k", make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	ps, err := a.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := c.Pull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Segments != 1 || pl.Bytes != ps.Bytes || pl.Bytes == 0 {
		t.Fatalf("pulled %d segments, %d bytes; pushed %d bytes", pl.Segments, pl.Bytes, ps.Bytes)
	}
}
