package fileremote_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

func newBackend(t testing.TB, root string, opts *fileremote.Options) *fileremote.Backend {
	t.Helper()
	b, err := fileremote.New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	t.Parallel()
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return newBackend(t, t.TempDir(), nil)
	})
}

func TestConformanceSmallPagesNoSync(t *testing.T) {
	t.Parallel()
	remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
		return newBackend(t, t.TempDir(), &fileremote.Options{PageSize: 7, NoSync: true})
	})
}

func BenchmarkFileremote(b *testing.B) {
	remotetest.RunBenchmarks(b, func(b *testing.B) remote.Backend { return newBackend(b, b.TempDir(), nil) })
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	_, err := fileremote.New(missing, nil)
	if !errors.Is(err, remote.ErrBucketNotFound) || !strings.Contains(err.Error(), missing) {
		t.Errorf("New(missing) = %v, want ErrBucketNotFound naming %s", err, missing)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err = fileremote.New(file, nil)
	if err == nil || errors.Is(err, remote.ErrBucketNotFound) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("New(file) = %v, want a not-a-directory error", err)
	}
	if _, err := fileremote.New(dir, &fileremote.Options{PageSize: -1}); err == nil {
		t.Error("negative PageSize accepted")
	}
}

// TestPermissionDenied checks that permission errors map to
// ErrAccessDenied. Root ignores permissions, so as root the test re-runs
// itself as the unprivileged user nobody, in a directory nobody may use.
func TestPermissionDenied(t *testing.T) {
	dir := os.Getenv("EBREPLICA_PERM_DIR")
	if os.Geteuid() == 0 {
		shared, err := os.MkdirTemp("", "perm-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shared) })
		if err := os.Chmod(shared, 0o777); err != nil {
			t.Fatal(err)
		}
		// The test binary sits in a directory only root may enter: copy it.
		bin := filepath.Join(shared, "fileremote.test")
		data, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		work := filepath.Join(shared, "work")
		if err := os.Mkdir(work, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(work, 0o777); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^TestPermissionDenied$", "-test.count=1", "-test.v")
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "EBREPLICA_PERM_DIR="+work, "TMPDIR="+work, "GOCOVERDIR=")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestPermissionDenied") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	if dir == "" {
		dir = t.TempDir()
	}
	b := newBackend(t, dir, nil)
	ctx := context.Background()
	if _, err := b.Put(ctx, "locked/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "locked"), 0o755) })
	if _, err := b.Get(ctx, "locked/x"); !errors.Is(err, remote.ErrAccessDenied) {
		t.Errorf("Get in an unreadable directory = %v, want ErrAccessDenied", err)
	}
	if _, err := b.Put(ctx, "locked/y", []byte("y")); !errors.Is(err, remote.ErrAccessDenied) {
		t.Errorf("Put in an unwritable directory = %v, want ErrAccessDenied", err)
	}
}

func TestLayoutAndHiddenAreas(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root, nil)
	ctx := context.Background()
	etag, err := b.Put(ctx, "a/b/c", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(root, "a", "b", "c")); err != nil || string(got) != "hello" {
		t.Fatalf("file a/b/c = %q, %v", got, err)
	}
	if etag != fileremote.ETag([]byte("hello")) {
		t.Errorf("ETag %s, want %s", etag, fileremote.ETag([]byte("hello")))
	}
	// Use every write path so that the temp and lock areas exist.
	if _, err := b.PutIfMatch(ctx, "a/b/c", []byte("again"), etag); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIfAbsent(ctx, "d", []byte("d")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".ebreplica-tmp", ".ebreplica-lock"} {
		if fi, err := os.Stat(filepath.Join(root, name)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A crashed writer's leftover temporary file, and a foreign file in
	// another reserved name.
	if err := os.WriteFile(filepath.Join(root, ".ebreplica-tmp", "123-leftover"), []byte("partial"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ".ebreplica-other"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	// Files that cannot be objects are ignored.
	if err := os.Symlink(filepath.Join(root, "d"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a", "bad\nname"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", ".e", ".ebreplica-", ".ebreplica-tmp/"} {
		var keys []string
		for info, err := range b.List(ctx, prefix, "") {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, info.Key)
		}
		want := []string{"a/b/c", "d"}
		if prefix != "" {
			want = nil
		}
		if !slices.Equal(keys, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, keys, want)
		}
	}
	for _, key := range []string{".ebreplica-tmp/123-leftover", ".ebreplica-lock", ".ebreplica-x/y", ".ebreplica-"} {
		if _, err := b.Get(ctx, key); !errors.Is(err, remote.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Put(ctx, key, nil); !errors.Is(err, remote.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	// A reserved name deeper down is an ordinary object.
	if _, err := b.Put(ctx, "x/.ebreplica-tmp", []byte("ok")); err != nil {
		t.Errorf("Put(x/.ebreplica-tmp) = %v", err)
	}
}

func TestStaleTempRemoved(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, ".ebreplica-tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(tmp, "1-old"), filepath.Join(tmp, "1-fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	newBackend(t, root, &fileremote.Options{StaleTempAge: -1})
	if _, err := os.Stat(old); err != nil {
		t.Errorf("clean-up disabled, but the old temp file is gone: %v", err)
	}
	newBackend(t, root, nil)
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old temp file survived New: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file removed: %v", err)
	}
}

func TestDeletePrunesDirectories(t *testing.T) {
	root := t.TempDir()
	b := newBackend(t, root, nil)
	ctx := context.Background()
	for _, k := range []string{"p/q/r/s", "p/keep"} {
		if _, err := b.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(ctx, "p/q/r/s"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "p", "q")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory p/q left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "p", "keep")); err != nil {
		t.Errorf("p/keep: %v", err)
	}
	if err := b.Delete(ctx, "p/keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "p")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory p left behind: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("root removed: %v", err)
	}
	// Delete of a "folder" is a no-op, not a recursive delete.
	if _, err := b.Put(ctx, "f/x", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "f/x"); err != nil {
		t.Errorf("Delete(f) touched f/x: %v", err)
	}
}

func TestConcurrentPutDeleteSameDirectory(t *testing.T) {
	t.Parallel()
	// Deletes prune directories that concurrent writes are about to use.
	b := newBackend(t, t.TempDir(), &fileremote.Options{NoSync: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				key := fmt.Sprintf("shared/dir/%d-%d", g, i)
				var err error
				switch i % 3 {
				case 0:
					_, err = b.Put(ctx, key, []byte("x"))
				case 1:
					_, err = b.PutIfAbsent(ctx, key, []byte("x"))
				case 2:
					_, err = b.Put(ctx, key, []byte("x"))
					if err == nil {
						var etag string
						etag, err = b.Put(ctx, key, []byte("y"))
						if err == nil {
							_, err = b.PutIfMatch(ctx, key, []byte("z"), etag)
						}
					}
				}
				if err != nil {
					t.Errorf("write %s: %v", key, err)
					return
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Errorf("delete %s: %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNameTooLong(t *testing.T) {
	b := newBackend(t, t.TempDir(), nil)
	key := strings.Repeat("n", 300) // one segment longer than NAME_MAX
	if _, err := b.Put(context.Background(), key, nil); !errors.Is(err, remote.ErrInvalidKey) {
		t.Errorf("Put of a 300-byte segment = %v, want ErrInvalidKey", err)
	}
}

// --- several processes on one directory ---

const helperEnv = "FILEREMOTE_HELPER_ROOT"

// TestHelperProcess is a racer child of TestMultiProcessRace. It reads
// commands on stdin, one per round:
//
//	absent <key>          race PutIfAbsent on key
//	match <key> <etag>    race PutIfMatch on key with etag
//
// runs helperGoroutines racers for it, prints one "result" line per racer
// and then "done".
func TestHelperProcess(t *testing.T) {
	root := os.Getenv(helperEnv)
	if root == "" {
		t.Skip("helper process for TestMultiProcessRace")
	}
	id := os.Getenv("FILEREMOTE_HELPER_ID")
	b, err := fileremote.New(root, nil)
	if err != nil {
		fmt.Printf("fatal %v\n", err)
		os.Exit(1)
	}
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		f := strings.Fields(in.Text())
		results := make([]string, helperGoroutines)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range helperGoroutines {
			wg.Go(func() {
				name := fmt.Sprintf("%s/%d", id, g)
				data := []byte(strings.Join(f, " ") + " by " + name)
				<-start
				var etag string
				var err error
				var lose error
				if f[0] == "absent" {
					etag, err = b.PutIfAbsent(ctx, f[1], data)
					lose = remote.ErrExists
				} else {
					etag, err = b.PutIfMatch(ctx, f[1], data, f[2])
					lose = remote.ErrPrecondition
				}
				switch {
				case err == nil:
					results[g] = fmt.Sprintf("result %s won %s", name, etag)
				case errors.Is(err, lose):
					results[g] = fmt.Sprintf("result %s lost", name)
				default:
					results[g] = fmt.Sprintf("result %s error %q", name, err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, r := range results {
			fmt.Fprintln(out, r)
		}
		fmt.Fprintln(out, "done")
		out.Flush()
	}
	os.Exit(0)
}

const (
	helperProcesses  = 3
	helperGoroutines = 4
	helperRounds     = 10
)

type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func TestMultiProcessRace(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts processes")
	}
	root := t.TempDir()
	var children []*child
	for i := range helperProcesses {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"="+root, "FILEREMOTE_HELPER_ID=p"+strconv.Itoa(i))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
		children = append(children, c)
		t.Cleanup(func() {
			c.in.Close()
			if err := c.cmd.Wait(); err != nil {
				t.Errorf("child: %v", err)
			}
		})
	}

	b := newBackend(t, root, nil)
	ctx := context.Background()
	// round sends cmd to every child at once and returns the winner's name
	// and ETag, failing unless exactly one racer in all processes won.
	round := func(cmd string) (winner, etag string) {
		t.Helper()
		for _, c := range children {
			if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		wins := 0
		for _, c := range children {
			for c.out.Scan() {
				line := c.out.Text()
				if line == "done" {
					break
				}
				f := strings.Fields(line)
				switch {
				case len(f) < 3 || f[0] != "result":
					continue // test framework output
				case f[2] == "won":
					wins++
					winner, etag = f[1], f[3]
				case f[2] != "lost":
					t.Fatalf("%s: %s", cmd, line)
				}
			}
			if err := c.out.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if wins != 1 {
			t.Fatalf("%s: %d winners across %d processes, want 1", cmd, wins, helperProcesses)
		}
		return winner, etag
	}
	check := func(key, cmd, winner, etag string) {
		t.Helper()
		obj, err := b.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if want := cmd + " by " + winner; string(obj.Data) != want || obj.ETag != etag {
			t.Fatalf("%s = %q %s, want the winner's %q %s", key, obj.Data, obj.ETag, want, etag)
		}
	}

	for r := range helperRounds {
		key := fmt.Sprintf("absent/%d", r)
		cmd := "absent " + key
		winner, etag := round(cmd)
		check(key, cmd, winner, etag)
	}
	etag, err := b.Put(ctx, "match", []byte("start"))
	if err != nil {
		t.Fatal(err)
	}
	for range helperRounds {
		var winner string
		cmd := "match match " + etag
		winner, etag = round(cmd)
		check("match", cmd, winner, etag)
	}
}
