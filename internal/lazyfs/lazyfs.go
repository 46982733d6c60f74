// Package lazyfs is a test-only FUSE file system that forgets what was not
// synced: a pass-through over a backing directory that remembers what each
// file and each directory held when it was last made durable, and on
// PowerCut rolls the backing directory back to exactly that. It plays, for
// a real process on real files, the part of a machine that loses power
// (Jepsen's LazyFS, in Go on github.com/hanwen/go-fuse/v2). It needs root
// (it mounts with mount(2) itself; no fusermount) and /dev/fuse.
//
// # What it models
//
// Mount is a boot: everything in the backing directory at that moment is
// durable. From then on:
//
//   - File contents. A file's durable contents are what it held at its last
//     fsync or fdatasync (the two are the same here), or at boot. A write
//     or truncate (ftruncate, O_TRUNC, fallocate) is volatile until the
//     next fsync of that file, through any of its descriptors. A file
//     created after boot has empty durable contents until synced.
//   - Directory entries. A directory's durable entries (names and the
//     files or directories they name) are those it held at its last fsync
//     (FSYNCDIR), or at boot; a directory created after boot has none. So a
//     create, unlink, rename, mkdir or rmdir is durable only once the
//     directory it changed is fsynced (both directories, for a rename
//     between two); a file's fsync does not make its name durable
//     (POSIX's rule, stricter than ext4's, whose journal often does).
//   - Memory-mapped files. msync cannot be seen by a FUSE server; what
//     the server sees is the kernel's FUSE protocol: pages dirtied through
//     a shared mapping reach it as writes when the kernel writes them back
//     (msync, fsync, memory pressure, the flusher, or the unmount that
//     PowerCut starts with), and msync(MS_SYNC) reaches it as an fsync of
//     the file after those writes. So msync is modelled as fsync, and a
//     mapped page written but not msynced is lost at a power cut, like any
//     unsynced write.
//   - Names made durable by a file's fsync, with Options.FsyncPersistsName:
//     a file's fsync also makes durable the entry that names it and those
//     naming each directory above it (as the file is now named: a rename
//     of it, or over it, is made durable too). Linux's ext4, XFS and btrfs
//     behave so (the fsync commits the journal transaction, or logs the
//     new name, that created or renamed the file); POSIX does not promise
//     it, and without the option a name is durable only by its
//     directory's fsync.
//
// PowerCut unmounts (the kernel hands over every dirty page it still
// holds: they are writes that no fsync covered), then rebuilds the backing
// directory from the durable state: the durable entries of every directory
// reachable from the root, each file with its durable contents. An entry
// whose file has since been unlinked or replaced by a rename gets the
// contents that file had at its last sync (a copy is kept at the unlink).
//
// It models the pessimistic outcome only: every unsynced change is lost,
// none survives, and nothing is torn below a write. A real disk may also
// keep some unsynced writes and not others (in any order, in pieces of a
// sector); those outcomes are not generated. Not modelled either: file
// attributes other than size (mode, owner, times, extended attributes:
// kept as they are), and hard links and symbolic links, which the file
// system refuses (ENOTSUP). A power cut during an fsync is not modelled:
// PowerCut runs after the writers are gone.
//
// File contents are tracked by copy on write: the first change to a file
// since boot (or since its last sync) copies its durable contents aside,
// skipping holes, and each fsync copies the ranges written since the last
// one. The copies live in a work directory beside the backing directory,
// on the same file system, and are removed by Unmount and PowerCut.
package lazyfs

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// ErrUnavailable: FUSE cannot be used here (no /dev/fuse, not root, or the
// mount failed).
var ErrUnavailable = errors.New("lazyfs: FUSE is not available")

// Stats counts what the file system saw since Mount.
type Stats struct {
	Writes   int64 // write requests (including the kernel's write-back of mapped pages)
	Fsyncs   int64 // file fsyncs and fdatasyncs (msync arrives as one)
	DirSyncs int64 // directory fsyncs
	Copied   int64 // bytes copied to keep durable contents (copy on write and syncs)
}

// CutReport says what a PowerCut discarded.
type CutReport struct {
	// UnsyncedFiles: files with writes or truncates not covered by a sync.
	UnsyncedFiles int
	// UnsyncedBytes: bytes written since the last sync of those files
	// (an upper bound: overlapping writes count twice).
	UnsyncedBytes int64
	// UndoneEntries: directory entries that differed from the durable ones
	// (added, removed, or naming another file), in the live tree.
	UndoneEntries int
}

// Options configure a mount; nil means the zero value: strict POSIX.
type Options struct {
	// FsyncPersistsName: a file's fsync also makes durable the directory
	// entries naming it and its directories, as Linux's ext4, XFS and btrfs
	// do (see the package doc). False: only a directory's fsync does.
	FsyncPersistsName bool
}

// FS is a mounted lazy file system.
type FS struct {
	opts               Options
	backing, mnt, work string
	server             *fuse.Server

	mu      sync.Mutex
	closed  bool
	nextID  uint64
	inoID   map[uint64]uint64            // backing inode -> id, for live files and directories
	isDir   map[uint64]bool              // id -> directory
	durable map[uint64]map[string]uint64 // directory id -> its durable entries
	files   map[uint64]*file             // file id -> durable state, for files changed since boot
	stats   Stats
}

// rootID is the id of the backing directory itself.
const rootID = 0

// file is the durable state of a file changed since boot.
type file struct {
	shadow  string // path of the copy holding its durable contents
	dirty   []span // ranges written since the last sync
	minSize int64  // smallest size since the last sync
	written int64  // bytes written since the last sync
	placed  string // PowerCut: where its durable contents went
}

type span struct{ off, end int64 }

// Usable reports why FUSE cannot be mounted here, or nil when it can be
// tried: /dev/fuse opens read-write and the process is root.
func Usable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root (uid %d)", ErrUnavailable, os.Geteuid())
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return f.Close()
}

// Mount serves backing (an existing directory) at mountpoint (an existing
// empty directory). Everything backing holds now is durable. The work
// directory for durable copies is created beside backing.
func Mount(mountpoint, backing string, o *Options) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: backing directory: %w", err)
	}
	work, err := os.MkdirTemp(filepath.Dir(backing), ".lazyfs-work-")
	if err != nil {
		return nil, fmt.Errorf("lazyfs: work directory: %w", err)
	}
	var opts Options
	if o != nil {
		opts = *o
	}
	l := &FS{
		opts:    opts,
		backing: backing, mnt: mountpoint, work: work,
		nextID:  rootID + 1,
		inoID:   map[uint64]uint64{st.Ino: rootID},
		isDir:   map[uint64]bool{rootID: true},
		durable: map[uint64]map[string]uint64{},
		files:   map[uint64]*file{},
	}
	if err := l.boot(backing, rootID); err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, l: l, id: l.idOf(st)}
	}
	rn := &node{LoopbackNode: fs.LoopbackNode{RootData: root}, l: l, id: rootID}
	root.RootNode = rn
	sec := time.Second
	server, err := fs.Mount(mountpoint, rn, &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			FsName:            "lazyfs",
			Name:              "lazyfs",
			MaxBackground:     16,
			// The read loop's "connection abort" at each unmount is noise.
			Logger: log.New(io.Discard, "", 0),
		},
	})
	if err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("%w: mount %s: %v", ErrUnavailable, mountpoint, err)
	}
	l.server = server
	return l, nil
}

// boot records the entries under dir (id) as durable, recursively.
func (l *FS) boot(dir string, id uint64) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lazyfs: boot: %w", err)
	}
	m := map[string]uint64{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fmt.Errorf("lazyfs: boot: %w", err)
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR, syscall.S_IFREG:
		default:
			return fmt.Errorf("lazyfs: boot: %s is neither a file nor a directory", p)
		}
		if st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Nlink > 1 {
			return fmt.Errorf("lazyfs: boot: %s has %d links; hard links are not modelled", p, st.Nlink)
		}
		cid := l.nextID
		l.nextID++
		l.inoID[st.Ino] = cid
		m[e.Name()] = cid
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			l.isDir[cid] = true
			if err := l.boot(p, cid); err != nil {
				return err
			}
		}
	}
	l.durable[id] = m
	return nil
}

// idOf returns the id of a live backing inode, giving one to an inode not
// seen before: a file or directory created since boot, whose durable state
// is empty (a file with no contents, a directory with no entries).
func (l *FS) idOf(st *syscall.Stat_t) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idLocked(uint64(st.Ino), uint32(st.Mode))
}

// idLocked is idOf with l.mu held.
func (l *FS) idLocked(ino uint64, mode uint32) uint64 {
	st := struct {
		Ino  uint64
		Mode uint32
	}{ino, mode}
	if id, ok := l.inoID[st.Ino]; ok {
		return id
	}
	id := l.nextID
	l.nextID++
	l.inoID[st.Ino] = id
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		l.isDir[id] = true
		l.durable[id] = map[string]uint64{}
		return id
	}
	shadow := filepath.Join(l.work, fmt.Sprintf("f%d", id))
	if f, err := os.OpenFile(shadow, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
		f.Chmod(os.FileMode(st.Mode & 0o777)) // the file's permissions, whatever the umask
		f.Close()
	}
	l.files[id] = &file{shadow: shadow}
	return id
}

// Stats returns the counts since Mount.
func (l *FS) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Unmount unmounts cleanly: the backing directory keeps everything, synced
// or not (an orderly shutdown). The file system must not be used after.
func (l *FS) Unmount() error {
	if err := l.unmount(); err != nil {
		return err
	}
	return os.RemoveAll(l.work)
}

func (l *FS) unmount() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("lazyfs: already unmounted")
	}
	l.closed = true
	l.mu.Unlock()
	// A process killed an instant ago may still hold the mount busy while
	// the kernel closes its files.
	var err error
	for i := range 200 {
		if err = l.server.Unmount(); err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(time.Duration(min(i+1, 20)) * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("lazyfs: unmount %s: %w", l.mnt, err)
	}
	l.server.Wait()
	return nil
}

// PowerCut loses power: it unmounts (every writer must be gone: killed or
// done), discards everything that was not durable, and leaves the backing
// directory as a rebooted machine would find it. The file system must not
// be used after; Mount the backing directory again to go on.
func (l *FS) PowerCut() (CutReport, error) {
	if err := l.unmount(); err != nil {
		return CutReport{}, err
	}
	defer os.RemoveAll(l.work)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rebuild()
}

// rebuild replaces the backing directory's contents with the durable state.
func (l *FS) rebuild() (CutReport, error) {
	var rep CutReport
	for _, f := range l.files {
		if len(f.dirty) > 0 || f.written > 0 {
			rep.UnsyncedFiles++
			rep.UnsyncedBytes += f.written
		}
	}
	// The live tree: where each live file is now, and the live entries.
	livePath := map[uint64]string{}
	var walk func(dir string, id uint64) error
	walk = func(dir string, id uint64) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		dur := l.durable[id]
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				return err
			}
			cid, ok := l.inoID[st.Ino]
			if !ok {
				return fmt.Errorf("lazyfs: power cut: %s was never seen through the mount", p)
			}
			if did, ok := dur[e.Name()]; !ok || did != cid {
				rep.UndoneEntries++
			}
			livePath[cid] = p
			if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				if err := walk(p, cid); err != nil {
					return err
				}
			}
		}
		for name := range dur {
			if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
				rep.UndoneEntries++
			}
		}
		return nil
	}
	if err := walk(l.backing, rootID); err != nil {
		return rep, fmt.Errorf("lazyfs: power cut: %w", err)
	}
	// The durable tree, built in the work directory.
	newRoot := filepath.Join(l.work, "root")
	if err := os.Mkdir(newRoot, 0o755); err != nil {
		return rep, err
	}
	onPath := map[uint64]bool{}
	var build func(id uint64, dst string) error
	build = func(id uint64, dst string) error {
		onPath[id] = true
		defer delete(onPath, id)
		names := make([]string, 0, len(l.durable[id]))
		for name := range l.durable[id] {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			cid := l.durable[id][name]
			p := filepath.Join(dst, name)
			if l.isDir[cid] {
				if onPath[cid] {
					continue // a directory renamed into itself by unsynced halves: drop the loop
				}
				mode := os.FileMode(0o755)
				if lp, ok := livePath[cid]; ok {
					if fi, err := os.Stat(lp); err == nil {
						mode = fi.Mode().Perm()
					}
				}
				if err := os.Mkdir(p, mode); err != nil {
					return err
				}
				if err := build(cid, p); err != nil {
					return err
				}
				continue
			}
			if err := l.place(cid, livePath, p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := build(rootID, newRoot); err != nil {
		return rep, fmt.Errorf("lazyfs: power cut: %w", err)
	}
	// Swap: empty the backing directory, move the durable tree in.
	ents, err := os.ReadDir(l.backing)
	if err != nil {
		return rep, err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(l.backing, e.Name())); err != nil {
			return rep, fmt.Errorf("lazyfs: power cut: %w", err)
		}
	}
	ents, err = os.ReadDir(newRoot)
	if err != nil {
		return rep, err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(newRoot, e.Name()), filepath.Join(l.backing, e.Name())); err != nil {
			return rep, fmt.Errorf("lazyfs: power cut: %w", err)
		}
	}
	return rep, nil
}

// place puts the durable contents of file id at dst.
func (l *FS) place(id uint64, livePath map[uint64]string, dst string) error {
	f := l.files[id]
	var src string
	switch {
	case f != nil && f.placed != "":
		// Named twice in the durable tree (a rename between two
		// directories, synced on one side only): a second copy.
		return copyPath(f.placed, dst, nil)
	case f != nil:
		src = f.shadow
	default:
		// Unchanged since boot: the live file is its durable self.
		p, ok := livePath[id]
		if !ok {
			return fmt.Errorf("file %d of %s: unchanged since boot but not live", id, dst)
		}
		src = p
		f = &file{}
		l.files[id] = f
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	f.placed = dst
	return nil
}

// copyPath copies the file src to a new file dst, skipping holes.
func copyPath(src, dst string, copied *int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := copySparse(int(out.Fd()), int(in.Fd()), copied); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copySparse makes the file dst (empty) a copy of src: same size, data
// extents copied, holes left as holes.
func copySparse(dst, src int, copied *int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	size := st.Size
	if err := unix.Ftruncate(dst, size); err != nil {
		return err
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(src, off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			// No SEEK_DATA: copy everything.
			return copyRange(dst, src, 0, size, copied)
		}
		hole, err := unix.Seek(src, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if err := copyRange(dst, src, data, min(hole, size), copied); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// copyRange copies bytes [off, end) of the file src to the same place in
// dst, stopping at src's end.
func copyRange(dst, src int, off, end int64, copied *int64) error {
	if end <= off {
		return nil
	}
	buf := make([]byte, min(end-off, 1<<20))
	for off < end {
		n, err := unix.Pread(src, buf[:min(int64(len(buf)), end-off)], off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil // past src's end
		}
		for w := 0; w < n; {
			m, err := unix.Pwrite(dst, buf[w:n], off+int64(w))
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			w += m
		}
		if copied != nil {
			*copied += int64(n)
		}
		off += int64(n)
	}
	return nil
}
