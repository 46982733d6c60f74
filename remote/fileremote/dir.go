package fileremote

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrSymlink: a path component of an object, or of the backend's own
// temporary or lock files, is a symbolic link. The backend never follows
// links inside the root, not even links that stay inside it, so a planted
// link cannot make it read, write or remove anything it does not own; the
// operation fails and changes nothing.
var ErrSymlink = errors.New("fileremote: symbolic link in the store refused")

// symlinkError reports that rel (relative to the root) is a link.
func symlinkError(rel string) error {
	return fmt.Errorf("%q is a symbolic link: %w", rel, ErrSymlink)
}

// errNotObject reports that an object's path is a directory or a special
// file: not an object.
var errNotObject = errors.New("not a regular file")

// dirHandle is an open directory under the root. The operations of
// sys_*.go act on names inside it, never on paths, so that no component
// of an object's path is looked up twice (on Unix: openat(2) and friends
// with O_NOFOLLOW).
type dirHandle struct {
	f   *os.File
	abs string // absolute path, for messages (and path-based systems)
	rel string // slash-separated path under the root, "" for the root
}

func (d *dirHandle) close() { d.f.Close() }

// join returns the absolute path of name in d, for messages.
func (d *dirHandle) join(name string) string { return filepath.Join(d.abs, name) }

// relJoin returns the path of name in d relative to the root.
func (d *dirHandle) relJoin(name string) string { return path.Join(d.rel, name) }

// splitKey splits a key (or a directory path under the root) into its
// directory ("" for the root) and last segment.
func splitKey(key string) (dir, base string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", key
	}
	return key[:i], key[i+1:]
}

// maxMkdirAttempts bounds the retries of a directory that a concurrent
// Delete keeps pruning.
const maxMkdirAttempts = 10

// openDir opens the directory rel (slash-separated under the root, "" for
// the root) one component at a time, refusing symbolic links; with create
// it makes missing directories, fsyncing each parent that gained one.
func (b *Backend) openDir(rel string, create bool) (*dirHandle, error) {
	f, err := sysOpenRoot(b.root)
	if err != nil {
		return nil, err
	}
	d := &dirHandle{f: f, abs: b.root}
	if rel == "" {
		return d, nil
	}
	for name := range strings.SplitSeq(rel, "/") {
		child, err := b.openChild(d, name, create)
		d.close()
		if err != nil {
			return nil, err
		}
		d = child
	}
	return d, nil
}

// openChild opens the directory name in d, refusing a symbolic link; with
// create it makes the directory if missing.
func (b *Backend) openChild(d *dirHandle, name string, create bool) (*dirHandle, error) {
	for attempt := 0; ; attempt++ {
		f, err := sysOpenDir(d, name)
		if err == nil {
			return &dirHandle{f: f, abs: d.join(name), rel: d.relJoin(name)}, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			err = classify(d, name, err)
			if create && isNotDir(err) {
				return nil, &fs.PathError{Op: "mkdir", Path: d.join(name), Err: errors.New("a parent of the object is an object")}
			}
			return nil, err
		}
		if !create || attempt >= maxMkdirAttempts {
			return nil, err
		}
		// Someone may make it (or remove it) meanwhile: open again either way.
		switch err := sysMkdir(d, name); {
		case err == nil:
			if err := b.syncDir(d); err != nil {
				return nil, err
			}
		case !errors.Is(err, fs.ErrExist):
			return nil, err
		}
	}
}

// classify turns the error of opening name in d into a symlinkError if
// name is a symbolic link (open with O_NOFOLLOW reports that as ELOOP,
// EMLINK or EFTYPE depending on the system, or ENOTDIR with O_DIRECTORY).
func classify(d *dirHandle, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrSymlink) {
		return err
	}
	if mode, lerr := sysLstat(d, name); lerr == nil && mode&fs.ModeSymlink != 0 {
		return symlinkError(d.relJoin(name))
	}
	return err
}

// openFile opens the file name in d with flag, refusing a symbolic link.
func openFile(d *dirHandle, name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := sysOpenFile(d, name, flag, perm)
	if err != nil {
		return nil, classify(d, name, err)
	}
	return f, nil
}

// refuseLink returns a symlinkError if name in d is a symbolic link.
func refuseLink(d *dirHandle, name string) error {
	if mode, err := sysLstat(d, name); err == nil && mode&fs.ModeSymlink != 0 {
		return symlinkError(d.relJoin(name))
	}
	return nil
}

// syncDir fsyncs a directory so that changes to its entries are durable.
// Filesystems that cannot fsync a directory are tolerated.
func (b *Backend) syncDir(d *dirHandle) error {
	if b.noSync {
		return nil
	}
	if err := d.f.Sync(); err != nil && !syncUnsupported(err) {
		return err
	}
	return nil
}
