package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// TestWatchCommand: watch --json prints every change as one JSON line
// (seq, key, op, origin, conflict), merges another replica's push while
// it syncs live, exits 0 when interrupted, and --since resumes after a
// printed number without repeating it. Under the small profile (the
// second run) it gives its start-up pages back once its syncer has had a
// good round; under the default (the first) it keeps them.
func TestWatchCommand(t *testing.T) {
	t.Setenv(store.LowMemoryEnv, "")
	released := countReleases(t)
	remote := "file://" + t.TempDir()
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", remote)
	ok(t, nil, "init", "--dir", b, "--remote", remote)
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "put", "--dir", a, "k1", "local")
	ok(t, nil, "put", "--dir", b, "k2", "remote")
	ok(t, nil, "push", "--dir", b)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, []string{"watch", "--since", "0", "--interval", "20ms", "--json", "--dir", a}, nil, &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), `"key":"k2"`) {
		if time.Now().After(deadline) {
			t.Fatalf("watch never showed b's write; output:\n%s\nstderr: %s", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond) // polling a live command's output, not timing it
	}
	cancel()
	if c := <-code; c != ExitOK || errb.String() != "" {
		t.Fatalf("watch after an interrupt: exit %d, stderr %q", c, errb.String())
	}
	if n := released.Load(); n != 0 && !store.Is32Bit {
		t.Fatalf("watch under the default profile released its start-up pages (%d times)", n)
	}
	lines := decodeLines(t, []byte(out.String()))
	if len(lines) != 2 {
		t.Fatalf("lines: %v", lines)
	}
	first, second := lines[0], lines[1]
	if first["key"] != "k1" || first["op"] != "put" || first["origin"] != "local" || first["conflict"] != false || fmt.Sprint(first["seq"]) != "1" {
		t.Fatalf("first change: %v", first)
	}
	if second["key"] != "k2" || second["origin"] != "remote" || fmt.Sprint(second["seq"]) != "2" {
		t.Fatalf("second change: %v", second)
	}
	for _, l := range lines {
		keys := make([]string, 0, len(l))
		for k := range l {
			keys = append(keys, k)
		}
		if len(keys) != 5 {
			t.Fatalf("fields %v", keys)
		}
	}
	// Resume after 1: only k2, and an interrupt again.
	ctx2, cancel2 := context.WithCancel(context.Background())
	var out2 lockedBuffer
	go func() {
		code <- Run(ctx2, []string{"--low-memory", "watch", "--since", "1", "--json", "--dir", a}, nil, &out2, &errb)
	}()
	for !strings.Contains(out2.String(), "\n") || released.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("watch --since 1 printed %q and released its start-up pages %d times", out2.String(), released.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel2()
	<-code
	if n := released.Load(); n != 1 {
		t.Fatalf("watch under the small profile released its start-up pages %d times, want once", n)
	}
	var m map[string]any
	first2, _, _ := strings.Cut(out2.String(), "\n")
	if err := json.Unmarshal([]byte(first2), &m); err != nil || m["key"] != "k2" || fmt.Sprint(m["seq"]) != "2" {
		t.Fatalf("watch --since 1: %q %v", out2.String(), err)
	}
	failsWith(t, ExitUsage, nil, []string{"watch", "--dir", a, "--since", "x"}, "--since")
}

// TestWatchNoRemoteSmallProfile: watch of a replica without a remote (made
// by the library) has no syncer; under the small profile it gives its
// start-up pages back once the replica is open, and goes on watching.
func TestWatchNoRemoteSmallProfile(t *testing.T) {
	t.Setenv(store.LowMemoryEnv, "")
	released := countReleases(t)
	dir := filepath.Join(t.TempDir(), "local")
	r, err := replica.Init(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, []string{"--low-memory", "watch", "--since", "0", "--json", "--dir", dir}, nil, &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), `"key":"k"`) || released.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("watch printed %q (stderr %q) and released its start-up pages %d times", out.String(), errb.String(), released.Load())
		}
		time.Sleep(5 * time.Millisecond) // polling a live command, not timing it
	}
	cancel()
	if c := <-code; c != ExitOK || released.Load() != 1 {
		t.Fatalf("exit %d, released %d times; want 0 and once", c, released.Load())
	}
}
