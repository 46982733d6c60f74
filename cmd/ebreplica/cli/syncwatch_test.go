package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/store"
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
// Under the small profile it gives its start-up pages back once, after its
// first good round (really: the release runs in this process), and goes on
// syncing; under the default profile it keeps them.
func TestSyncWatch(t *testing.T) {
	for _, small := range []bool{false, true} {
		name := map[bool]string{false: "default", true: "small"}[small]
		t.Run(name, func(t *testing.T) {
			if !small && store.Is32Bit {
				t.Skip("a 32-bit build always runs the small profile")
			}
			t.Setenv(store.LowMemoryEnv, "")
			syncWatch1(t, small, countReleases(t))
		})
	}
}

// countReleases counts the calls of releaseExecutable (which still
// release) for the rest of the test.
func countReleases(t *testing.T) *atomic.Int32 {
	var released atomic.Int32
	prev := releaseExecutable
	releaseExecutable = func() (int64, error) {
		released.Add(1)
		return prev()
	}
	t.Cleanup(func() { releaseExecutable = prev })
	return &released
}

func syncWatch1(t *testing.T, small bool, released *atomic.Int32) {
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
		args := []string{"sync", "--watch", "--interval", "20ms", "--json", "--dir", a}
		if small {
			args = append([]string{"--low-memory"}, args...)
		}
		code <- Run(ctx, args, nil, &out, &errb)
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
	if want := map[bool]int32{false: 0, true: 1}[small]; released.Load() != want {
		t.Errorf("start-up pages released %d times, want %d", released.Load(), want)
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
