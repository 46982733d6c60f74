//go:build unix

package fileremote

import (
	"errors"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// The directory walk of dir.go, on file descriptors: every name is looked
// up relative to an open directory with O_NOFOLLOW, so a symbolic link at
// any component fails the call instead of being followed, and a component
// swapped for a link after it was opened cannot redirect the operation.

// sysOpenRoot opens the root directory (its path was resolved by New; a
// link put in its place later is refused).
func sysOpenRoot(root string) (*os.File, error) {
	return openFD(unix.AT_FDCWD, root, root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// sysOpenDir opens the directory name in d.
func sysOpenDir(d *dirHandle, name string) (*os.File, error) {
	return openFD(fd(d), name, d.join(name), unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// sysOpenFile opens the file name in d. O_NONBLOCK keeps a FIFO planted in
// the tree from blocking the open; it changes nothing for regular files.
func sysOpenFile(d *dirHandle, name string, flag int, perm fs.FileMode) (*os.File, error) {
	return openFD(fd(d), name, d.join(name), flag|unix.O_NONBLOCK, uint32(perm.Perm()))
}

func openFD(dirfd int, name, abs string, flag int, perm uint32) (*os.File, error) {
	var nfd int
	var err error
	for {
		nfd, err = unix.Openat(dirfd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	return os.NewFile(uintptr(nfd), abs), nil
}

// fd returns d's descriptor; d must stay referenced while it is used.
func fd(d *dirHandle) int { return int(d.f.Fd()) }

// sysMkdir makes the directory name in d.
func sysMkdir(d *dirHandle, name string) error {
	err := unix.Mkdirat(fd(d), name, 0o777)
	runtime.KeepAlive(d)
	return pathErr("mkdir", d, name, err)
}

// sysLstat returns the type bits of name in d, not following a link.
func sysLstat(d *dirHandle, name string) (fs.FileMode, error) {
	var st unix.Stat_t
	err := unix.Fstatat(fd(d), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	runtime.KeepAlive(d)
	if err != nil {
		return 0, pathErr("lstat", d, name, err)
	}
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFREG:
		return 0, nil
	case unix.S_IFDIR:
		return fs.ModeDir, nil
	case unix.S_IFLNK:
		return fs.ModeSymlink, nil
	}
	return fs.ModeIrregular, nil
}

// sysSameFile reports whether name1 in d1 and name2 in d2 are the same
// file (not following links).
func sysSameFile(d1 *dirHandle, name1 string, d2 *dirHandle, name2 string) bool {
	var s1, s2 unix.Stat_t
	if unix.Fstatat(fd(d1), name1, &s1, unix.AT_SYMLINK_NOFOLLOW) != nil ||
		unix.Fstatat(fd(d2), name2, &s2, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	runtime.KeepAlive(d1)
	runtime.KeepAlive(d2)
	return uint64(s1.Dev) == uint64(s2.Dev) && uint64(s1.Ino) == uint64(s2.Ino)
}

// sysRename renames from in fromDir to to in toDir, replacing it (a link
// at to is replaced, never followed).
func sysRename(fromDir *dirHandle, from string, toDir *dirHandle, to string) error {
	err := unix.Renameat(fd(fromDir), from, fd(toDir), to)
	runtime.KeepAlive(fromDir)
	runtime.KeepAlive(toDir)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: fromDir.join(from), New: toDir.join(to), Err: err}
	}
	return nil
}

// sysUnlink removes the non-directory name in d (a link itself, never its
// target).
func sysUnlink(d *dirHandle, name string) error {
	err := unix.Unlinkat(fd(d), name, 0)
	runtime.KeepAlive(d)
	return pathErr("remove", d, name, err)
}

// sysRmdir removes the empty directory name in d; never a file or a link.
func sysRmdir(d *dirHandle, name string) error {
	err := unix.Unlinkat(fd(d), name, unix.AT_REMOVEDIR)
	runtime.KeepAlive(d)
	return pathErr("rmdir", d, name, err)
}

func pathErr(op string, d *dirHandle, name string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: d.join(name), Err: err}
}

// lockFile takes an exclusive flock(2) lock on the file name in d,
// creating it if needed, and returns the function that releases it. flock
// locks belong to the open file description, so they exclude other
// descriptions in the same process too.
func lockFile(d *dirHandle, name string) (release func(), err error) {
	f, err := openFile(d, name, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	lfd := int(f.Fd())
	for {
		err = unix.Flock(lfd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: d.join(name), Err: err}
	}
	return func() {
		_ = unix.Flock(lfd, unix.LOCK_UN)
		f.Close()
	}, nil
}

func isNameTooLong(err error) bool { return errors.Is(err, unix.ENAMETOOLONG) }

func isNotDir(err error) bool { return errors.Is(err, unix.ENOTDIR) }

// syncUnsupported reports an fsync error meaning the filesystem cannot
// fsync this kind of file (some cannot fsync directories).
func syncUnsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

// linkUnsupported reports a link(2) error meaning the filesystem has no
// hard links.
func linkUnsupported(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}
