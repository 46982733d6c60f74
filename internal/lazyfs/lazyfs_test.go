package lazyfs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ebreplica/ebreplica/internal/lazyfs"
	"golang.org/x/sys/unix"
)

// mount mounts a lazy file system over a fresh backing directory holding
// files (name -> contents), and returns it with its mount point. FUSE that
// cannot be used skips the test, or fails it under CI=true.
func mount(t *testing.T, files map[string]string) (*lazyfs.FS, string, string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range files {
		p := filepath.Join(backing, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := Mount(t, mnt, backing)
	return l, backing, mnt
}

// Mount mounts backing at mnt, unmounting at the end of the test if still
// mounted; it skips (or fails under CI=true) when FUSE is unusable.
func Mount(t *testing.T, mnt, backing string, o ...*lazyfs.Options) *lazyfs.FS {
	t.Helper()
	err := lazyfs.Usable()
	var l *lazyfs.FS
	var opts *lazyfs.Options
	if len(o) > 0 {
		opts = o[0]
	}
	if err == nil {
		l, err = lazyfs.Mount(mnt, backing, opts)
	}
	if err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, lazyfs.ErrUnavailable) {
			t.Fatalf("lazyfs: %v (CI=true: FUSE must work here)", err)
		}
		t.Skipf("lazyfs: %v", err)
	}
	t.Cleanup(func() { l.Unmount() })
	return l
}

func cut(t *testing.T, l *lazyfs.FS) lazyfs.CutReport {
	t.Helper()
	rep, err := l.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func write(t *testing.T, p, data string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// want checks the backing directory's files (name -> contents; a missing
// name must not exist).
func want(t *testing.T, backing string, files map[string]*string) {
	t.Helper()
	for name, w := range files {
		got, err := os.ReadFile(filepath.Join(backing, name))
		switch {
		case w == nil && !errors.Is(err, os.ErrNotExist):
			t.Errorf("%s: want no file, got %q %v", name, got, err)
		case w != nil && err != nil:
			t.Errorf("%s: want %q, got %v", name, *w, err)
		case w != nil && string(got) != *w:
			t.Errorf("%s: want %q, got %q", name, *w, got)
		}
	}
}

func s(v string) *string { return &v }

func TestSyncedWriteSurvivesUnsyncedDoesNot(t *testing.T) {
	l, backing, mnt := mount(t, map[string]string{"a": "boot-a", "b": "boot-b", "c": "boot-c"})
	write(t, filepath.Join(mnt, "a"), "synced", true)
	write(t, filepath.Join(mnt, "b"), "not synced", false)
	// c: synced, then more written and not synced
	write(t, filepath.Join(mnt, "c"), "synced-c", true)
	f, err := os.OpenFile(filepath.Join(mnt, "c"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" and a tail")
	f.Close()
	rep := cut(t, l)
	want(t, backing, map[string]*string{"a": s("synced"), "b": s("boot-b"), "c": s("synced-c")})
	if rep.UnsyncedFiles != 2 {
		t.Errorf("report %+v: want 2 unsynced files", rep)
	}
}

func TestNewFileDurableOnlyAfterDirSync(t *testing.T) {
	l, backing, mnt := mount(t, map[string]string{"sub/keep": "k"})
	write(t, filepath.Join(mnt, "new-synced-file"), "x", true) // file synced, directory not
	write(t, filepath.Join(mnt, "sub", "new"), "y", true)
	syncDir(t, filepath.Join(mnt, "sub"))
	write(t, filepath.Join(mnt, "sub", "new-unsynced-data"), "z", false)
	syncDir(t, filepath.Join(mnt, "sub"))
	if err := os.Mkdir(filepath.Join(mnt, "newdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "newdir", "f"), "in a new directory", true)
	syncDir(t, filepath.Join(mnt, "newdir")) // but not the root: newdir is not durable
	cut(t, l)
	want(t, backing, map[string]*string{
		"new-synced-file":       nil,
		"sub/keep":              s("k"),
		"sub/new":               s("y"),
		"sub/new-unsynced-data": s(""), // the name is durable, its contents are not
		"newdir":                nil,
	})
}

func TestRenameDurableOnlyAfterDirSync(t *testing.T) {
	l, backing, mnt := mount(t, map[string]string{"a": "A", "b": "B", "old": "O"})
	if err := os.Rename(filepath.Join(mnt, "a"), filepath.Join(mnt, "a2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mnt, "b"), filepath.Join(mnt, "old")); err != nil { // replaces old
		t.Fatal(err)
	}
	l = remountAfterCut(t, l, backing, mnt)
	want(t, backing, map[string]*string{"a": s("A"), "a2": nil, "b": s("B"), "old": s("O")})

	// The same, with the directory synced: the renames are durable.
	if err := os.Rename(filepath.Join(mnt, "a"), filepath.Join(mnt, "a2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mnt, "b"), filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	// The classic pattern: write a temporary file, sync it, rename it over,
	// then crash before the directory sync: the old contents stay.
	write(t, filepath.Join(mnt, "tmp"), "new O", true)
	if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	cut(t, l)
	want(t, backing, map[string]*string{"a": nil, "a2": s("A"), "b": nil, "old": s("B"), "tmp": nil})
}

func remountAfterCut(t *testing.T, l *lazyfs.FS, backing, mnt string) *lazyfs.FS {
	t.Helper()
	cut(t, l)
	return Mount(t, mnt, backing)
}

func TestUnlinkAndTruncateUndone(t *testing.T) {
	l, backing, mnt := mount(t, map[string]string{"gone": "G", "short": "long contents", "gone-synced": "S"})
	if err := os.Remove(filepath.Join(mnt, "gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(mnt, "short"), 4); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "gone-synced")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	if err := os.Remove(filepath.Join(mnt, "gone")); err == nil {
		t.Fatal("removed twice")
	}
	cut(t, l)
	// gone-synced's removal was synced with the directory, and gone's too:
	// the directory sync made both durable.
	want(t, backing, map[string]*string{"gone": nil, "gone-synced": nil, "short": s("long contents")})
}

func TestUnlinkUndoneWithoutDirSync(t *testing.T) {
	l, backing, mnt := mount(t, map[string]string{"f": "durable"})
	write(t, filepath.Join(mnt, "f"), "synced then unlinked", true)
	if err := os.Remove(filepath.Join(mnt, "f")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "f"), "a new file under the old name", true)
	cut(t, l)
	want(t, backing, map[string]*string{"f": s("synced then unlinked")})
}

// TestMmapMsync maps a file of the mount in a child process (this test
// binary again): a page fault on a mount served by the faulting process
// itself can deadlock it.
func TestMmapMsync(t *testing.T) {
	if p := os.Getenv("LAZYFS_MMAP_CHILD"); p != "" {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		m, err := unix.Mmap(int(f.Fd()), 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		copy(m, "msynced")
		if err := unix.Msync(m[:4096], unix.MS_SYNC); err != nil {
			t.Fatal(err)
		}
		copy(m[4096:], "not msynced")
		copy(m[8:], "also not")
		unix.Munmap(m)
		f.Close()
		return
	}
	l, backing, mnt := mount(t, map[string]string{"m": string(make([]byte, 8192))})
	cmd := exec.Command(os.Args[0], "-test.run=^TestMmapMsync$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LAZYFS_MMAP_CHILD="+filepath.Join(mnt, "m"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	st := l.Stats()
	if st.Fsyncs == 0 {
		t.Errorf("msync reached the file system as no fsync: %+v", st)
	}
	cut(t, l)
	got, err := os.ReadFile(filepath.Join(backing, "m"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8192 || string(got[:7]) != "msynced" || got[8] != 0 || got[4096] != 0 {
		t.Errorf("after the cut: %q ... %q", got[:16], got[4096:4112])
	}
}

func TestUnmountRemountKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	os.Mkdir(backing, 0o755)
	os.Mkdir(mnt, 0o755)
	l := Mount(t, mnt, backing)
	write(t, filepath.Join(mnt, "unsynced"), "kept by a clean unmount", false)
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	l = Mount(t, mnt, backing)
	got, err := os.ReadFile(filepath.Join(mnt, "unsynced"))
	if err != nil || string(got) != "kept by a clean unmount" {
		t.Fatalf("after remount: %q %v", got, err)
	}
	// A boot makes it durable: a cut right after keeps it.
	cut(t, l)
	want(t, backing, map[string]*string{"unsynced": s("kept by a clean unmount")})
	// Large sparse files survive a round trip with their holes.
	l = Mount(t, mnt, backing)
	f, err := os.Create(filepath.Join(mnt, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("end"), 1<<30-3)
	f.Sync()
	f.Close()
	syncDir(t, mnt)
	cut(t, l)
	g, err := os.Open(filepath.Join(backing, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	buf := make([]byte, 3)
	g.ReadAt(buf, 1<<30-3)
	var st syscall.Stat_t
	syscall.Fstat(int(g.Fd()), &st)
	if !bytes.Equal(buf, []byte("end")) || st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
		t.Errorf("sparse file: tail %q, size %d, %d bytes allocated", buf, st.Size, st.Blocks*512)
	}
}

func TestLinksRefused(t *testing.T) {
	_, _, mnt := mount(t, map[string]string{"f": "x"})
	if err := os.Link(filepath.Join(mnt, "f"), filepath.Join(mnt, "g")); err == nil {
		t.Error("hard link made")
	}
	if err := os.Symlink("f", filepath.Join(mnt, "s")); err == nil {
		t.Error("symbolic link made")
	}
}

func TestFsyncPersistsName(t *testing.T) {
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	os.Mkdir(backing, 0o755)
	os.Mkdir(mnt, 0o755)
	os.WriteFile(filepath.Join(backing, "old"), []byte("O"), 0o644)
	l := Mount(t, mnt, backing, &lazyfs.Options{FsyncPersistsName: true})
	if err := os.MkdirAll(filepath.Join(mnt, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "d", "e", "f"), "synced", true) // names d, e, f durable
	write(t, filepath.Join(mnt, "d", "g"), "not synced", false) // neither name nor contents
	write(t, filepath.Join(mnt, "tmp"), "new O", false)
	if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "old"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Sync() // the rename over old is durable, with its contents
	f.Close()
	cut(t, l)
	want(t, backing, map[string]*string{"d/e/f": s("synced"), "d/g": nil, "old": s("new O"), "tmp": nil})
}
