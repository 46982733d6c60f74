//go:build !unix

package fileremote

import (
	"errors"
	"io/fs"
	"os"
)

// The directory walk of dir.go, on paths: each name is checked with Lstat
// before it is used, so a symbolic link is refused, but a component
// swapped for a link between the check and the use is not (there is no
// openat here). As the package documentation says, only one process may
// write a directory on these systems anyway.

// errNotDir: a path component that must be a directory is not one.
var errNotDir = errors.New("not a directory")

func sysOpenRoot(root string) (*os.File, error) { return os.Open(root) }

// checkName returns the Lstat type bits of name in d, refusing a link.
func checkName(d *dirHandle, name string) (fs.FileMode, error) {
	mode, err := sysLstat(d, name)
	if err != nil {
		return 0, err
	}
	if mode&fs.ModeSymlink != 0 {
		return 0, symlinkError(d.relJoin(name))
	}
	return mode, nil
}

func sysOpenDir(d *dirHandle, name string) (*os.File, error) {
	mode, err := checkName(d, name)
	if err != nil {
		return nil, err
	}
	if !mode.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: errNotDir}
	}
	return os.Open(d.join(name))
}

func sysOpenFile(d *dirHandle, name string, flag int, perm fs.FileMode) (*os.File, error) {
	if _, err := checkName(d, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(d.join(name), flag, perm)
}

func sysMkdir(d *dirHandle, name string) error { return os.Mkdir(d.join(name), 0o777) }

func sysLstat(d *dirHandle, name string) (fs.FileMode, error) {
	fi, err := os.Lstat(d.join(name))
	if err != nil {
		return 0, err
	}
	return fi.Mode().Type(), nil
}

func sysSameFile(d1 *dirHandle, name1 string, d2 *dirHandle, name2 string) bool {
	f1, err := os.Lstat(d1.join(name1))
	if err != nil {
		return false
	}
	f2, err := os.Lstat(d2.join(name2))
	return err == nil && os.SameFile(f1, f2)
}

func sysRename(fromDir *dirHandle, from string, toDir *dirHandle, to string) error {
	return os.Rename(fromDir.join(from), toDir.join(to))
}

func sysLink(fromDir *dirHandle, from string, toDir *dirHandle, to string) error {
	return os.Link(fromDir.join(from), toDir.join(to))
}

func sysUnlink(d *dirHandle, name string) error {
	mode, err := sysLstat(d, name)
	if err != nil {
		return err
	}
	if mode.IsDir() {
		return &fs.PathError{Op: "remove", Path: d.join(name), Err: errors.New("is a directory")}
	}
	return os.Remove(d.join(name))
}

func sysRmdir(d *dirHandle, name string) error {
	mode, err := sysLstat(d, name)
	if err != nil {
		return err
	}
	if !mode.IsDir() {
		return &fs.PathError{Op: "rmdir", Path: d.join(name), Err: errNotDir}
	}
	return os.Remove(d.join(name))
}

// lockFile has no cross-process lock on this platform: the per-stripe
// mutex taken by Backend.lock is the only lock, so only one process may
// write a directory (see the package documentation).
func lockFile(d *dirHandle, name string) (release func(), err error) { return func() {}, nil }

func isNameTooLong(error) bool { return false }

func isNotDir(err error) bool { return errors.Is(err, errNotDir) }

func syncUnsupported(error) bool { return true }

func linkUnsupported(error) bool { return false }
