package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe to read while the command writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSyncWatch: sync --watch --json prints one JSON line per round with
// "pull", "push" and "error", picks up another replica's push, and exits 0
// when interrupted (its context cancelled, as SIGINT and SIGTERM do).
func TestSyncWatch(t *testing.T) {
	remote := "file://" + t.TempDir()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", remote)
	ok(t, nil, "init", "--dir", b, "--remote", remote)
	ok(t, nil, "sync", "--dir", a)
	failsWith(t, ExitUsage, nil, []string{"sync", "--dir", a, "--interval", "1s"}, "--interval goes with --watch")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, []string{"sync", "--watch", "--interval", "20ms", "--json", "--dir", a}, nil, &out, &errb)
	}()
	ok(t, nil, "put", "--dir", b, "k", "from-b")
	ok(t, nil, "push", "--dir", b)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), `"records":1`) {
		if time.Now().After(deadline) {
			t.Fatalf("sync --watch never pulled b's write; output:\n%s\nstderr: %s", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the output of a real process-like run, not timing it
	}
	cancel()
	if c := <-code; c != ExitOK || errb.String() != "" {
		t.Fatalf("sync --watch after an interrupt: exit %d, stderr %q", c, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, l := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for _, k := range []string{"pull", "push", "error"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line %q has no %q", l, k)
			}
		}
	}
	if v := string(ok(t, nil, "get", "--dir", a, "k").stdout); v != "from-b" {
		t.Fatalf("get k on a = %q", v)
	}
}
