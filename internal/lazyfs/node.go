package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory of the mount: a loopback node whose changes
// are recorded. id names its backing inode for the life of the mount, also
// after an unlink (an inode number can be reused; an id is not).
type node struct {
	fs.LoopbackNode
	l  *FS
	id uint64
}

var (
	_ fs.NodeWriter          = (*node)(nil)
	_ fs.NodeWritever        = (*node)(nil)
	_ fs.NodeFsyncer         = (*node)(nil)
	_ fs.NodeSetattrer       = (*node)(nil)
	_ fs.NodeAllocater       = (*node)(nil)
	_ fs.NodeOpener          = (*node)(nil)
	_ fs.NodeCreater         = (*node)(nil)
	_ fs.NodeUnlinker        = (*node)(nil)
	_ fs.NodeRmdirer         = (*node)(nil)
	_ fs.NodeRenamer         = (*node)(nil)
	_ fs.NodeLinker          = (*node)(nil)
	_ fs.NodeSymlinker       = (*node)(nil)
	_ fs.NodeMknoder         = (*node)(nil)
	_ fs.NodeCopyFileRanger  = (*node)(nil)
	_ fs.NodeOpendirHandler  = (*node)(nil)
	_ fs.FileReaddirenter    = (*dirHandle)(nil)
	_ fs.FileSeekdirer       = (*dirHandle)(nil)
	_ fs.FileReleasedirer    = (*dirHandle)(nil)
	_ fs.FilePassthroughFder = (*fs.LoopbackFile)(nil)
	_ fs.FileWriter          = (*handle)(nil)
)

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// handle is an open file: a loopback file that does not offer its
// descriptor for FUSE passthrough (with passthrough, the kernel would read
// and write the backing file itself, and no write would be seen here).
type handle struct {
	*fs.LoopbackFile
	// PassthroughFd hides LoopbackFile's method of that name, so that
	// handle is not an fs.FilePassthroughFder.
	PassthroughFd struct{}
	fd            int
}

// wrap makes a loopback file handle a handle.
func wrap(fh fs.FileHandle) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	fd, ok := lf.PassthroughFd()
	if !ok {
		return fh
	}
	return &handle{LoopbackFile: lf, fd: fd}
}

func fdOf(fh fs.FileHandle) (int, bool) {
	if h, ok := fh.(*handle); ok {
		return h.fd, true
	}
	return -1, false
}

// withFd runs fn on the backing descriptor of fh, or of the node's backing
// file opened for the call when there is no handle.
func (n *node) withFd(fh fs.FileHandle, fn func(fd int) syscall.Errno) syscall.Errno {
	if fd, ok := fdOf(fh); ok {
		return fn(fd)
	}
	fd, err := unix.Open(n.backingPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer unix.Close(fd)
	return fn(fd)
}

// cow returns the durable state of file id, copying its contents aside
// first when it is unchanged since boot (fd reads the live file). l.mu is
// held.
func (l *FS) cow(id uint64, fd int) (*file, error) {
	if f := l.files[id]; f != nil {
		return f, nil
	}
	shadow := filepath.Join(l.work, fmt.Sprintf("f%d", id))
	out, err := os.OpenFile(shadow, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	if err := copySparse(int(out.Fd()), fd, &l.stats.Copied); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if err := out.Chmod(os.FileMode(st.Mode & 0o777)); err != nil {
		return nil, err
	}
	f := &file{shadow: shadow, minSize: st.Size}
	l.files[id] = f
	return f, nil
}

// cowPath is cow for the file at path p (by its inode), returning its
// inode number; l.mu is held. A path that is not a regular file is left.
func (l *FS) cowPath(p string) (ino uint64, isFile bool, errno syscall.Errno) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, false, fs.ToErrno(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, fs.ToErrno(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st.Ino, false, 0
	}
	id, ok := l.inoID[st.Ino]
	if !ok {
		id = l.idLocked(st.Ino, st.Mode)
	}
	if _, err := l.cow(id, fd); err != nil {
		return 0, true, syscall.EIO
	}
	return st.Ino, true, 0
}

// add records that [off, end) was written.
func (f *file) add(off, end int64) {
	f.written += end - off
	if k := len(f.dirty); k > 0 {
		last := &f.dirty[k-1]
		if off <= last.end && end >= last.off {
			last.off, last.end = min(last.off, off), max(last.end, end)
			return
		}
	}
	f.dirty = append(f.dirty, span{off, end})
	if len(f.dirty) > 4096 {
		lo, hi := f.dirty[0].off, f.dirty[0].end
		for _, s := range f.dirty {
			lo, hi = min(lo, s.off), max(hi, s.end)
		}
		f.dirty = append(f.dirty[:0], span{lo, hi})
	}
}

// syncFile makes file id's live contents (read through fd) durable. l.mu
// is held.
func (l *FS) syncFile(id uint64, fd int) error {
	l.stats.Fsyncs++
	f := l.files[id]
	if f == nil {
		return nil // unchanged since boot
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	out, err := os.OpenFile(f.shadow, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	// Past minSize the live file holds only what was written since (in
	// dirty) and zeros: cut the copy there, extend it, copy the writes.
	if err := out.Truncate(f.minSize); err != nil {
		return err
	}
	if err := out.Truncate(st.Size); err != nil {
		return err
	}
	for _, s := range f.dirty {
		if err := copyRange(int(out.Fd()), fd, s.off, min(s.end, st.Size), &l.stats.Copied); err != nil {
			return err
		}
	}
	f.dirty, f.minSize, f.written = nil, st.Size, 0
	return nil
}

// syncDir makes the live entries of directory n durable. l.mu is held.
func (l *FS) syncDir(id uint64, dir string) error {
	l.stats.DirSyncs++
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	m := make(map[string]uint64, len(ents))
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Name()), &st); err != nil {
			return err
		}
		cid, ok := l.inoID[st.Ino]
		if !ok {
			cid = l.idLocked(st.Ino, st.Mode) // created an instant ago, not yet given an id
		}
		m[e.Name()] = cid
	}
	l.durable[id] = m
	return nil
}

// persistNames makes durable the entries naming the file at rel (relative
// to the root) and each directory above it, as they are now; any other
// durable entry naming one of them goes (a rename made durable). l.mu is
// held.
func (l *FS) persistNames(rel string) error {
	parent, cur := uint64(rootID), l.backing
	for _, name := range strings.Split(rel, "/") {
		if name == "" {
			continue
		}
		cur = filepath.Join(cur, name)
		var st unix.Stat_t
		if err := unix.Lstat(cur, &st); errors.Is(err, unix.ENOENT) {
			return nil // unlinked (or moved) meanwhile: no name to keep
		} else if err != nil {
			return err
		}
		id, ok := l.inoID[st.Ino]
		if !ok {
			id = l.idLocked(st.Ino, st.Mode)
		}
		for dir, ents := range l.durable {
			for nm, cid := range ents {
				if cid == id && (dir != parent || nm != name) {
					delete(ents, nm)
				}
			}
		}
		if l.durable[parent] == nil {
			l.durable[parent] = map[string]uint64{}
		}
		l.durable[parent][name] = id
		parent = id
	}
	return nil
}

// Write implements fs.NodeWriter.
func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	fd, ok := fdOf(fh)
	if !ok {
		return 0, syscall.EBADF
	}
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	n.l.stats.Writes++
	f, err := n.l.cow(n.id, fd)
	if err != nil {
		return 0, syscall.EIO
	}
	w, err := unix.Pwrite(fd, data, off)
	if w > 0 {
		f.add(off, off+int64(w))
	}
	return uint32(max(w, 0)), fs.ToErrno(err)
}

// Writev implements fs.NodeWritever.
func (n *node) Writev(ctx context.Context, fh fs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	return n.Write(ctx, fh, all, off)
}

// Fsync implements fs.NodeFsyncer: a file's fsync or fdatasync (and so
// msync), or a directory's (the directory handle does not implement
// FileFsyncdirer, so FSYNCDIR comes here).
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if n.IsDir() {
		n.l.mu.Lock()
		defer n.l.mu.Unlock()
		if err := n.l.syncDir(n.id, n.backingPath()); err != nil {
			return fs.ToErrno(err)
		}
		return 0
	}
	return n.withFd(fh, func(fd int) syscall.Errno {
		// The live file is synced too: the kernel's writeback of the
		// backing file is not ours to model, but an error is reported.
		if err := unix.Fdatasync(fd); err != nil {
			return fs.ToErrno(err)
		}
		n.l.mu.Lock()
		defer n.l.mu.Unlock()
		if err := n.l.syncFile(n.id, fd); err != nil {
			return syscall.EIO
		}
		if n.l.opts.FsyncPersistsName {
			if err := n.l.persistNames(n.Path(n.Root())); err != nil {
				return fs.ToErrno(err)
			}
		}
		return 0
	})
}

// Setattr implements fs.NodeSetattrer: a size change is recorded.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	size, ok := in.GetSize()
	if !ok {
		return n.LoopbackNode.Setattr(ctx, fh, in, out)
	}
	return n.withFd(fh, func(fd int) syscall.Errno {
		n.l.mu.Lock()
		defer n.l.mu.Unlock()
		f, err := n.l.cow(n.id, fd)
		if err != nil {
			return syscall.EIO
		}
		if errno := n.LoopbackNode.Setattr(ctx, fh, in, out); errno != 0 {
			return errno
		}
		f.minSize = min(f.minSize, int64(size))
		return 0
	})
}

// Allocate implements fs.NodeAllocater: the range is recorded as written.
func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	a, ok := fh.(fs.FileAllocater)
	fd, ok2 := fdOf(fh)
	if !ok || !ok2 {
		return syscall.ENOTSUP
	}
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	f, err := n.l.cow(n.id, fd)
	if err != nil {
		return syscall.EIO
	}
	if errno := a.Allocate(ctx, off, size, mode); errno != 0 {
		return errno
	}
	f.add(int64(off), int64(off+size))
	return 0
}

// rdwr opens write-only files read-write: a sync reads what was written.
func rdwr(flags uint32) uint32 {
	if flags&syscall.O_ACCMODE == syscall.O_WRONLY {
		flags = flags&^syscall.O_ACCMODE | syscall.O_RDWR
	}
	return flags
}

// Open implements fs.NodeOpener: O_TRUNC is recorded.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	flags = rdwr(flags)
	if flags&syscall.O_TRUNC == 0 {
		fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
		return wrap(fh), fl, errno
	}
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	var f *file
	errno := n.withFd(nil, func(fd int) syscall.Errno {
		var err error
		f, err = n.l.cow(n.id, fd)
		return fs.ToErrno(err)
	})
	if errno != 0 {
		return nil, 0, errno
	}
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno == 0 {
		f.minSize = 0
	}
	return wrap(fh), fl, errno
}

// Create implements fs.NodeCreater. The new file's durable contents are
// empty, and its name is not durable until the directory is synced.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	flags = rdwr(flags)
	p := filepath.Join(n.backingPath(), name)
	truncated := false
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_EXCL == 0 {
		// Creating over an existing file truncates it.
		n.l.mu.Lock()
		_, isFile, errno := n.l.cowPath(p)
		n.l.mu.Unlock()
		truncated = errno == 0 && isFile
	}
	ch, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno == 0 && truncated {
		if c, ok := ch.Operations().(*node); ok {
			n.l.mu.Lock()
			if f := n.l.files[c.id]; f != nil {
				f.minSize = 0
			}
			n.l.mu.Unlock()
		}
	}
	return ch, wrap(fh), fl, errno
}

// Unlink implements fs.NodeUnlinker: the file's durable contents are kept
// for the entries that still name it durably.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	p := filepath.Join(n.backingPath(), name)
	ino, _, errno := n.l.cowPath(p)
	if errno != 0 {
		return errno
	}
	if err := unix.Unlink(p); err != nil {
		return fs.ToErrno(err)
	}
	delete(n.l.inoID, ino)
	return 0
}

// Rmdir implements fs.NodeRmdirer.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	p := filepath.Join(n.backingPath(), name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	if err := unix.Rmdir(p); err != nil {
		return fs.ToErrno(err)
	}
	delete(n.l.inoID, st.Ino)
	return 0
}

// Rename implements fs.NodeRenamer: a file replaced by the rename keeps
// its durable contents, like an unlinked one.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	target := filepath.Join(n.RootData.Path, newParent.EmbeddedInode().Path(n.Root()), newName)
	var replaced uint64
	var st unix.Stat_t
	if flags&fs.RENAME_EXCHANGE == 0 && unix.Lstat(target, &st) == nil {
		ino, _, errno := n.l.cowPath(target)
		if errno != 0 {
			return errno
		}
		replaced = ino
	}
	if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
		return errno
	}
	if replaced != 0 {
		delete(n.l.inoID, replaced)
	}
	return 0
}

// Link implements fs.NodeLinker: hard links are not modelled.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

// Symlink implements fs.NodeSymlinker: symbolic links are not modelled.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

// Mknod implements fs.NodeMknoder: regular files only.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if mode&syscall.S_IFMT != syscall.S_IFREG && mode&syscall.S_IFMT != 0 {
		return nil, syscall.ENOTSUP
	}
	return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
}

// CopyFileRange implements fs.NodeCopyFileRanger: not offered (the kernel
// falls back to reads and writes, which are recorded).
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// OpendirHandle implements fs.NodeOpendirHandler, with a handle that
// leaves FSYNCDIR to the node's Fsync.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	ds, errno := fs.NewLoopbackDirStream(n.backingPath())
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{ds}, 0, 0
}

// dirHandle is a directory stream without Fsyncdir.
type dirHandle struct{ ds fs.DirStream }

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.ds.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.ds.(fs.FileSeekdirer).Seekdir(ctx, off)
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	d.ds.(fs.FileReleasedirer).Releasedir(ctx, flags)
}
