//go:build unix

package fileremote

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive flock(2) lock on the file at path, creating
// it if needed, and returns the function that releases it. flock locks
// belong to the open file description, so they exclude other descriptions
// in the same process too.
func lockFile(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return func() {
		_ = unix.Flock(fd, unix.LOCK_UN)
		f.Close()
	}, nil
}

// rmdir removes the directory dir if it is empty; unlike os.Remove it never
// removes a file.
func rmdir(dir string) error { return unix.Rmdir(dir) }

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
