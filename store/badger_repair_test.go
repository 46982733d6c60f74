package store

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
)

// lockedBuffer is an io.Writer safe for Badger's goroutines.
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

// newTestLogger returns a logger at debug level writing text to the
// returned buffer.
func newTestLogger() (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newestFid returns the highest number among the files of dir named
// <number><ext>, and 0 when there is none.
func newestFid(t *testing.T, dir, ext string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	newest := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ext)); err == nil && strings.HasSuffix(e.Name(), ext) {
			newest = max(newest, n)
		}
	}
	return newest
}

// TestBadgerOpensAfterCrashLeftovers: a kill between Badger creating a
// memtable log (.mem) or a value log (.vlog) and its first write leaves an
// empty file, which Badger v4 fails to open once ("Create a new file",
// dgraph-io/badger#2207). A replica directory must open the first time,
// with everything written before.
func TestBadgerOpensAfterCrashLeftovers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mem, vlog bool
	}{
		{"mem", true, false},
		{"vlog", false, true},
		{"both", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := OpenBadger(dir, BadgerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
				t.Fatal(err)
			}
			const n = 50
			for i := range n {
				put(t, s, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
			}
			counter := metaUint(t, s, keyCounter)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			// The files a kill leaves when it lands right after Badger
			// created the next one: names as Badger gives them, 0 bytes.
			var planted []string
			if tc.mem {
				planted = append(planted, fmt.Sprintf("%05d.mem", newestFid(t, dir, ".mem")+1))
			}
			if tc.vlog {
				planted = append(planted, fmt.Sprintf("%06d.vlog", newestFid(t, dir, ".vlog")+1))
			}
			for _, name := range planted {
				if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}

			log, logged := newTestLogger()
			b, err = OpenBadger(dir, BadgerOptions{Logger: log})
			if err != nil {
				t.Fatalf("first open after the crash: %v", err)
			}
			s = openStore(t, b, nil)
			for i := range n {
				k := fmt.Sprintf("k%03d", i)
				if v, ok := value(t, s, k); !ok || v != fmt.Sprint(i) {
					t.Errorf("%s = %q %v after the crash, want %d", k, v, ok, i)
				}
			}
			if live, marks := recount(t, s); live != n || marks != n {
				t.Errorf("live %d marks %d, want %d", live, marks, n)
			}
			if c := metaUint(t, s, keyCounter); c != counter {
				t.Errorf("m/counter = %d, want %d", c, counter)
			}
			if v := put(t, s, "after", "x"); v.Dot.Counter != counter+1 {
				t.Errorf("next write got dot %d, want %d", v.Dot.Counter, counter+1)
			}
			for _, name := range planted {
				if !strings.Contains(logged.String(), name) {
					t.Errorf("the removal of %s is not logged:\n%s", name, logged)
				}
			}
		})
	}
}

// TestBadgerRepairKeepsOtherFiles: only provably empty crash leftovers go:
// an empty value log that is not the newest, an empty file whose name
// Badger does not parse, and a non-empty newest memtable log stay.
func TestBadgerRepairKeepsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"000001.vlog": nil,            // empty, not the newest value log
		"000002.vlog": []byte("data"), // the newest value log, not empty
		"00007.mem":   []byte("data"),
		"x.mem":       nil,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := repairCrashLeftovers(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %q %v, want it untouched", name, got, err)
		}
	}
}

// captureStderr runs fn with os.Stderr redirected to a pipe and returns
// what was written to it.
func captureStderr(t *testing.T, fn func()) (got string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	defer func() { // also when fn fails the test
		os.Stderr = saved
		w.Close()
		got = <-out
		r.Close()
	}()
	fn()
	return ""
}

// TestBadgerLogger: Badger's log lines go to BadgerOptions.Logger at their
// levels, and never to stderr, whose last line is the CLI's error message:
// with a logger, and with none (discarded). The failing open makes Badger
// log an error ("Received err: … Cleaning up"): a value log whose name it
// cannot parse.
func TestBadgerLogger(t *testing.T) {
	failingDir := func(t *testing.T) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "bad.vlog"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("logger", func(t *testing.T) {
		log, logged := newTestLogger()
		stderr := captureStderr(t, func() {
			b, err := OpenBadger(t.TempDir(), BadgerOptions{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenBadger(failingDir(t), BadgerOptions{Logger: log}); err == nil {
				t.Fatal("open with an unparsable value log name succeeded")
			}
		})
		if stderr != "" {
			t.Errorf("stderr got %q", stderr)
		}
		out := logged.String()
		for _, want := range []string{"level=INFO", "level=ERROR", "Received err", "component=badger"} {
			if !strings.Contains(out, want) {
				t.Errorf("the logger did not get %q:\n%s", want, out)
			}
		}
	})
	t.Run("nil", func(t *testing.T) {
		stderr := captureStderr(t, func() {
			if _, err := OpenBadger(failingDir(t), BadgerOptions{}); err == nil {
				t.Fatal("open with an unparsable value log name succeeded")
			}
		})
		if stderr != "" {
			t.Errorf("stderr got %q", stderr)
		}
	})
}
