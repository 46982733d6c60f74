// Package fileremote is a [remote.Backend] on a directory: a local disk or
// a network share that several replicas, possibly in several processes or
// on several machines, use as their shared remote.
//
// # Layout
//
// The object "a/b/c" is the file <root>/a/b/c. Directories are created as
// needed and removed again (best effort, never the root) when a Delete
// empties them. The backend keeps its own files under names starting with
// ".ebreplica-" directly under the root: ".ebreplica-tmp" holds files being
// written and ".ebreplica-lock" the lock files. List never shows them and
// keys whose first segment starts with ".ebreplica-" are rejected with
// remote.ErrInvalidKey. Files in the tree that cannot be objects (symbolic
// links, special files, names that fail remote.ValidateKey) are ignored.
//
// # Symbolic links
//
// The backend never follows a symbolic link inside the root, wherever it
// points, even to another file of the store: anyone who can plant a link
// could otherwise make it read, overwrite or remove files outside the
// root, or redirect one object onto another. On Unix every path is opened
// one component at a time from the root directory with openat(2) and
// O_NOFOLLOW, and the writes use renameat, linkat and unlinkat on those
// open directories, so a link at any component (of an object, a
// temporary file or a lock file) fails the operation with an error
// wrapping ErrSymlink and changes nothing; List neither lists links nor
// walks into linked directories. (os.Root was not enough: it follows links
// that stay inside the root.) The root itself may be reached through
// links: New resolves them once. On other systems each component is
// checked with Lstat before use, which a concurrent swap can defeat.
//
// # Writes
//
// Every write first goes to a new temporary file, which is written in full
// and fsynced; it then takes the object's name in one atomic step, and the
// directory is fsynced (set Options.NoSync to skip the fsyncs, for tests),
// so a reader or a crash never sees a partial object. A crash can leave a
// temporary file behind; it is never listed, and New removes those older
// than Options.StaleTempAge.
//
//   - Put renames the temporary file over the object.
//   - PutIfAbsent hard-links the temporary file to the object's name with
//     link(2), which fails if the name exists, so exactly one of any number
//     of racing writers wins, in any number of processes. (If link reports
//     EEXIST but the name is our own file, as after a retransmitted NFS
//     request, the write counts as won.)
//   - PutIfMatch takes the object's lock, reads the current content,
//     compares its ETag, renames the temporary file over the object and
//     releases the lock. Put and Delete take the same lock, so all four
//     writes are linearizable (PutIfAbsent needs no lock: link cannot
//     succeed while the object exists, and only a Delete, which holds the
//     lock, removes it). Locks are flock(2) locks on one of 256 lock files chosen
//     by a hash of the key (lock striping: two keys may share a lock, which
//     costs a little concurrency but keeps the number of lock files fixed).
//     Within a process a mutex per stripe is taken first, so goroutines do
//     not pile up in flock.
//
// # Where it is correct
//
// Create-only and compare-and-swap are correct across processes on local
// POSIX filesystems with hard links and flock(2): ext4, XFS, Btrfs, ZFS,
// tmpfs, APFS, and the like. On NFS they are correct only where link(2) is
// atomic on the server and flock(2) works across clients: Linux clients
// emulate flock with NFS byte-range locks, which needs NFSv4 or a working
// lockd on NFSv3; with "nolock" or "local_lock" mount options, or on other
// network filesystems (SMB/CIFS, FUSE mounts of object stores, and so on),
// several machines writing the same key concurrently can both win. FAT and
// exFAT have no hard links, so PutIfAbsent fails there. On case-insensitive
// filesystems, keys differing only in case name the same object. On
// non-Unix systems there is no flock: the lock is only process-local, so
// only one process may write a directory.
//
// ETags are the quoted hex of the first 16 bytes of the SHA-256 of the
// content, so writing the same bytes again gives the same ETag. LastModified
// is the file's modification time. List computes each ETag by reading the
// file, so listing costs reading every listed object.
package fileremote

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/remote"
)

// Names of the backend's own files under the root.
const (
	// ReservedPrefix starts every name the backend keeps for itself; keys
	// whose first segment starts with it are invalid.
	ReservedPrefix = ".ebreplica-"
	tmpDirName     = ReservedPrefix + "tmp"
	lockDirName    = ReservedPrefix + "lock"
	lockStripes    = 256
)

// Defaults of Options.
const (
	DefaultPageSize     = 1000
	DefaultStaleTempAge = time.Hour
)

// Options configures a Backend. The zero value (or a nil *Options) gives
// the defaults.
type Options struct {
	// PageSize is the number of objects List reads per page; each page
	// counts one Stats.Lists. Default DefaultPageSize; must not be negative.
	PageSize int
	// NoSync skips fsync of files and directories: faster, but a machine
	// crash can lose or tear recent writes. For tests and scratch stores.
	NoSync bool
	// StaleTempAge: New removes temporary files left by crashed writers
	// that are older than this. Default DefaultStaleTempAge; negative
	// disables the clean-up. It must be far longer than any write takes.
	StaleTempAge time.Duration
}

// validate fills in the defaults and checks the options; the one place
// that does so.
func (o Options) validate() (Options, error) {
	if o.PageSize < 0 {
		return o, fmt.Errorf("fileremote: negative PageSize %d", o.PageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.StaleTempAge == 0 {
		o.StaleTempAge = DefaultStaleTempAge
	}
	return o, nil
}

// Backend stores objects as files under a root directory. All methods are
// safe for concurrent use, and several Backends (in one or several
// processes) may share a root; see the package documentation for where
// that is correct.
type Backend struct {
	root     string // absolute, cleaned, symbolic links resolved
	pageSize int
	noSync   bool
	stats    remote.Stats
	stripes  [lockStripes]sync.Mutex
}

var _ remote.Backend = (*Backend)(nil)

// New returns a Backend on the existing directory root. A missing root is
// an error wrapping remote.ErrBucketNotFound; New does not create it. opts
// may be nil.
func New(root string, opts *Options) (*Backend, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o, err := o.validate()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fileremote: root %q: %w", root, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("fileremote: root directory %s: %w", abs, remote.ErrBucketNotFound)
	case err != nil:
		return nil, wrapErr(fmt.Sprintf("root directory %s", abs), err)
	case !fi.IsDir():
		return nil, fmt.Errorf("fileremote: root %s is not a directory", abs)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, wrapErr(fmt.Sprintf("root directory %s", root), err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, wrapErr(fmt.Sprintf("root directory %s", abs), err)
	}
	f.Close()
	b := &Backend{
		root:     abs,
		pageSize: o.PageSize,
		noSync:   o.NoSync,
	}
	if o.StaleTempAge > 0 {
		b.removeStaleTemp(time.Now().Add(-o.StaleTempAge))
	}
	return b, nil
}

// Root returns the absolute path of the root directory.
func (b *Backend) Root() string { return b.root }

// String returns "file://" and the root's path.
func (b *Backend) String() string { return "file://" + filepath.ToSlash(b.root) }

// Stats returns the request counters.
func (b *Backend) Stats() *remote.Stats { return &b.stats }

// wrapErr prefixes err with the package and what, and adds
// remote.ErrAccessDenied to permission errors and remote.ErrInvalidKey to
// names too long for the filesystem.
func wrapErr(what string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("fileremote: %s: %w: %w", what, err, remote.ErrAccessDenied)
	case isNameTooLong(err):
		return fmt.Errorf("fileremote: %s: %w: %w", what, err, remote.ErrInvalidKey)
	}
	return fmt.Errorf("fileremote: %s: %w", what, err)
}

// opErr is wrapErr for an operation on a key.
func opErr(op, key string, err error) error {
	return wrapErr(fmt.Sprintf("%s %q", op, key), err)
}

// begin checks ctx and key, the preamble of every request.
func (b *Backend) begin(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fileremote: %s %q: %w", op, key, err)
	}
	if err := b.checkKey(key); err != nil {
		return fmt.Errorf("fileremote: %s: %w", op, err)
	}
	return nil
}

// checkKey validates key as an object's name under the root.
func (b *Backend) checkKey(key string) error {
	if err := remote.ValidateKey(key); err != nil {
		return err
	}
	if first, _, _ := strings.Cut(key, "/"); strings.HasPrefix(first, ReservedPrefix) {
		return fmt.Errorf("%w %q: names starting with %q are reserved", remote.ErrInvalidKey, key, ReservedPrefix)
	}
	p := filepath.Join(b.root, filepath.FromSlash(key))
	// ValidateKey already rules out escaping the root; check anyway.
	rel, err := filepath.Rel(b.root, p)
	if err != nil || !filepath.IsLocal(rel) || filepath.ToSlash(rel) != key {
		return fmt.Errorf("%w %q: not a path inside the root", remote.ErrInvalidKey, key)
	}
	return nil
}

// ETag returns the ETag of content, as this backend computes it.
func ETag(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// Get returns the object stored under key.
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := b.begin(ctx, "get", key); err != nil {
		return remote.Object{}, err
	}
	b.stats.Gets.Add(1)
	data, mod, err := b.readObject(key)
	if err != nil {
		if missing(err) {
			return remote.Object{}, fmt.Errorf("fileremote: get %q: %w", key, remote.ErrNotExist)
		}
		return remote.Object{}, opErr("get", key, err)
	}
	b.stats.BytesIn.Add(int64(len(data)))
	return remote.Object{Data: data, ETag: ETag(data), LastModified: mod}, nil
}

// readObject returns the content and modification time of the object
// key; a directory or special file is errNotObject.
func (b *Backend) readObject(key string) ([]byte, time.Time, error) {
	dir, base := splitKey(key)
	d, err := b.openDir(dir, false)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer d.close()
	f, err := openFile(d, base, os.O_RDONLY, 0)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, errNotObject
	}
	data := make([]byte, 0, fi.Size()+1) // +1: see EOF without growing
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, fi.ModTime(), nil
		}
		if err != nil {
			return nil, time.Time{}, err
		}
		if len(data) == cap(data) {
			data = slices.Grow(data, 4096)
		}
	}
}

// missing reports whether err means "no object at this path".
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotObject) || isNotDir(err)
}

// Put stores data under key unconditionally.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	if err := b.begin(ctx, "put", key); err != nil {
		return "", err
	}
	b.countPut(data)
	tmp, err := b.writeTemp(ctx, data)
	if err != nil {
		return "", opErr("put", key, err)
	}
	defer tmp.remove()
	unlock, err := b.lock(key)
	if err != nil {
		return "", opErr("put", key, err)
	}
	defer unlock()
	if err := b.install(tmp, key, renameOver); err != nil {
		return "", opErr("put", key, err)
	}
	return ETag(data), nil
}

// renameOver renames the temporary file over the object base in d,
// refusing a symbolic link there (rename would replace the link, not
// follow it, but a link in the store is refused everywhere).
func renameOver(tmp *tempFile, d *dirHandle, base string) error {
	if err := refuseLink(d, base); err != nil {
		return err
	}
	return sysRename(tmp.dir, tmp.name, d, base)
}

// PutIfAbsent stores data under key unless the key exists (ErrExists).
func (b *Backend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	if err := b.begin(ctx, "put-if-absent", key); err != nil {
		return "", err
	}
	b.countPut(data)
	tmp, err := b.writeTemp(ctx, data)
	if err != nil {
		return "", opErr("put-if-absent", key, err)
	}
	defer tmp.remove() // after a link the object keeps the inode
	err = b.install(tmp, key, func(tmp *tempFile, d *dirHandle, base string) error {
		err := sysLink(tmp.dir, tmp.name, d, base)
		switch {
		case errors.Is(err, fs.ErrExist):
			if lerr := refuseLink(d, base); lerr != nil {
				return lerr
			}
			if sysSameFile(tmp.dir, tmp.name, d, base) {
				return nil // our own link, reported as existing after a retry
			}
		case linkUnsupported(err):
			return fmt.Errorf("%w (create-only writes need hard links: does this filesystem support them?)", err)
		}
		return err
	})
	switch {
	case errors.Is(err, fs.ErrExist):
		return "", fmt.Errorf("fileremote: put-if-absent %q: %w", key, remote.ErrExists)
	case err != nil:
		return "", opErr("put-if-absent", key, err)
	}
	return ETag(data), nil
}

// PutIfMatch replaces the object under key if its ETag is etag; otherwise,
// or if the key is missing, it returns ErrPrecondition (for a missing key
// the error also wraps ErrNotExist).
func (b *Backend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if err := b.begin(ctx, "put-if-match", key); err != nil {
		return "", err
	}
	b.countPut(data)
	tmp, err := b.writeTemp(ctx, data)
	if err != nil {
		return "", opErr("put-if-match", key, err)
	}
	defer tmp.remove()
	unlock, err := b.lock(key)
	if err != nil {
		return "", opErr("put-if-match", key, err)
	}
	defer unlock()
	cur, _, err := b.readObject(key)
	switch {
	case err != nil && missing(err):
		return "", fmt.Errorf("fileremote: put-if-match %q: %w: %w", key, remote.ErrPrecondition, remote.ErrNotExist)
	case err != nil:
		return "", opErr("put-if-match", key, err)
	}
	if got := ETag(cur); got != etag {
		return "", fmt.Errorf("fileremote: put-if-match %q: etag is %s, not %s: %w", key, got, etag, remote.ErrPrecondition)
	}
	if err := b.install(tmp, key, renameOver); err != nil {
		return "", opErr("put-if-match", key, err)
	}
	return ETag(data), nil
}

// Delete removes key; a missing key is not an error. Directories it
// leaves empty are removed, best effort.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.begin(ctx, "delete", key); err != nil {
		return err
	}
	b.stats.Deletes.Add(1)
	if err := b.remove(key); err != nil {
		return opErr("delete", key, err)
	}
	dir, _ := splitKey(key)
	b.pruneDirs(dir)
	return nil
}

// remove deletes the regular file of key under the key's lock.
func (b *Backend) remove(key string) error {
	unlock, err := b.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	dir, base := splitKey(key)
	d, err := b.openDir(dir, false)
	if err != nil {
		if missing(err) {
			return nil
		}
		return err
	}
	defer d.close()
	mode, err := sysLstat(d, base)
	switch {
	case err != nil && missing(err):
		return nil
	case err != nil:
		return err
	case mode&fs.ModeSymlink != 0:
		return symlinkError(key)
	case mode.IsDir():
		return nil // not an object
	}
	if err := sysUnlink(d, base); err != nil {
		if missing(err) {
			return nil
		}
		return err
	}
	return b.syncDir(d)
}

// pruneDirs removes the directory dir (slash-separated under the root) and
// its parents up to (not including) the root while they are empty. Errors
// only stop it: a concurrent write may have put something in, and installs
// retry if a directory vanishes under them.
func (b *Backend) pruneDirs(dir string) {
	for dir != "" {
		parent, name := splitKey(dir)
		d, err := b.openDir(parent, false)
		if err != nil {
			return
		}
		err = sysRmdir(d, name)
		if err == nil {
			_ = b.syncDir(d)
		}
		d.close()
		if err != nil {
			return
		}
		dir = parent
	}
}

func (b *Backend) countPut(data []byte) {
	b.stats.Puts.Add(1)
	b.stats.BytesOut.Add(int64(len(data)))
}

// tempFile is a temporary file being written, in the temporary directory.
type tempFile struct {
	dir  *dirHandle
	name string
}

// remove removes the temporary file, if it is still there, and closes its
// directory.
func (t *tempFile) remove() {
	_ = sysUnlink(t.dir, t.name)
	t.dir.close()
}

// writeTemp writes data to a new, fsynced temporary file. It checks ctx
// once more at the end, so that a write cancelled while the data was being
// written stores nothing.
func (b *Backend) writeTemp(ctx context.Context, data []byte) (*tempFile, error) {
	d, err := b.openDir(tmpDirName, true)
	if err != nil {
		return nil, err
	}
	var name string
	var f *os.File
	for {
		name = fmt.Sprintf("%d-%s", os.Getpid(), rand.Text())
		f, err = openFile(d, name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		d.close()
		return nil, err
	}
	tmp := &tempFile{dir: d, name: name}
	_, err = f.Write(data)
	if err == nil && !b.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		tmp.remove()
		return nil, err
	}
	return tmp, nil
}

// install gives the temporary file tmp the object's name with place
// (rename or link), creating the object's directory first, and fsyncs the
// directory. A concurrent Delete can remove a directory it just created,
// so it retries a few times if the directory vanished.
func (b *Backend) install(tmp *tempFile, key string, place func(tmp *tempFile, d *dirHandle, base string) error) error {
	dir, base := splitKey(key)
	for attempt := 0; ; attempt++ {
		d, err := b.openDir(dir, true)
		if err == nil {
			err = place(tmp, d, base)
			if err == nil {
				err = b.syncDir(d)
				d.close()
				return err
			}
			d.close()
		}
		if attempt >= maxMkdirAttempts || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if _, serr := sysLstat(tmp.dir, tmp.name); serr != nil {
			return err // the temporary file itself is gone
		}
	}
}

// lock takes the lock stripe of key, within this process and across
// processes, and returns the function that releases it.
func (b *Backend) lock(key string) (unlock func(), err error) {
	// The stripe must be the same in every process: a fixed hash, never a
	// seeded one.
	h := fnv.New32a()
	h.Write([]byte(key))
	s := h.Sum32() % lockStripes
	b.stripes[s].Lock()
	d, err := b.openDir(lockDirName, true)
	if err != nil {
		b.stripes[s].Unlock()
		return nil, err
	}
	release, err := lockFile(d, fmt.Sprintf("%02x", s))
	d.close()
	if err != nil {
		b.stripes[s].Unlock()
		return nil, err
	}
	return func() {
		release()
		b.stripes[s].Unlock()
	}, nil
}

// removeStaleTemp removes temporary files last modified before cutoff.
func (b *Backend) removeStaleTemp(cutoff time.Time) {
	d, err := b.openDir(tmpDirName, false)
	if err != nil {
		return
	}
	defer d.close()
	entries, err := d.f.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := openFile(d, e.Name(), os.O_RDONLY, 0)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		f.Close()
		if err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff) {
			_ = sysUnlink(d, e.Name())
		}
	}
}

// List yields the objects under prefix after startAfter in byte order,
// reading Options.PageSize objects per page.
//
// It walks the directory tree depth first, reading each directory when
// the walk reaches it, and visits each directory's entries in the byte
// order of the keys they hold (a subdirectory "a" sorts as "a/", so "a.b"
// comes before the objects under "a/"); the walk starts at the deepest
// directory the prefix implies and skips subtrees outside the prefix or
// before startAfter. Symbolic links are neither listed nor followed: a
// link where the prefix implies a directory lists nothing. The listing is
// not a snapshot: objects written or deleted meanwhile may or may not
// appear.
func (b *Backend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		if err := remote.ValidatePrefix(prefix); err != nil {
			yield(remote.Info{}, fmt.Errorf("fileremote: list: %w", err))
			return
		}
		w := &walker{b: b, prefix: prefix, startAfter: startAfter}
		defer w.close()
		start := prefix[:strings.LastIndexByte(prefix, '/')+1]
		if err := w.push(nil, start); err != nil {
			// Reported with the first page, below.
			w.err = err
		}
		for {
			if err := ctx.Err(); err != nil {
				yield(remote.Info{}, fmt.Errorf("fileremote: list %q: %w", prefix, err))
				return
			}
			b.stats.Lists.Add(1)
			page, more, err := w.page(b.pageSize)
			for _, info := range page {
				if !yield(info, nil) {
					return
				}
			}
			if err != nil {
				yield(remote.Info{}, wrapErr(fmt.Sprintf("list %q", prefix), err))
				return
			}
			if !more {
				return
			}
		}
	}
}

// walker is the state of one listing.
type walker struct {
	b                  *Backend
	prefix, startAfter string
	stack              []frame
	next               string     // the next object's key, found ahead; "" if none
	nextDir            *dirHandle // the directory holding next (owned by a frame)
	err                error      // an error to report with the next page
}

// frame is a directory being walked, open, and the keys (directories end
// in "/") still to visit, in byte order.
type frame struct {
	dir  *dirHandle
	keys []string
}

// close closes the directories of the frames left.
func (w *walker) close() {
	for _, f := range w.stack {
		f.dir.close()
	}
	w.stack = nil
}

// push reads the directory holding the keys that start with dirKey ("" for
// the root, else ending in "/") and pushes the entries that can hold
// listed keys. parent is the open directory holding dirKey's directory,
// or nil to walk from the root. A directory that vanished or is a
// symbolic link holds nothing.
func (w *walker) push(parent *dirHandle, dirKey string) error {
	if dirKey != "" && w.b.reserved(dirKey) {
		return nil
	}
	rel := strings.TrimSuffix(dirKey, "/")
	var d *dirHandle
	var err error
	if parent == nil {
		d, err = w.b.openDir(rel, false)
	} else {
		_, name := splitKey(rel)
		d, err = w.b.openChild(parent, name, false)
	}
	if err != nil {
		if missing(err) || errors.Is(err, ErrSymlink) {
			return nil // vanished, nothing under this prefix, or a link
		}
		return err
	}
	entries, err := d.f.ReadDir(-1)
	if err != nil {
		d.close()
		if missing(err) {
			return nil
		}
		return err
	}
	var keys []string
	for _, e := range entries {
		name := e.Name()
		if dirKey == "" && strings.HasPrefix(name, ReservedPrefix) {
			continue
		}
		k := dirKey + name
		if remote.ValidateKey(k) != nil {
			continue // not an object name
		}
		switch t := e.Type(); {
		case t.IsRegular():
			if strings.HasPrefix(k, w.prefix) && k > w.startAfter {
				keys = append(keys, k)
			}
		case t.IsDir():
			k += "/"
			// Every key below starts with k: skip the subtree unless that
			// is compatible with the prefix and some key may sort after
			// startAfter.
			inPrefix := strings.HasPrefix(k, w.prefix) || strings.HasPrefix(w.prefix, k)
			before := k < w.startAfter && !strings.HasPrefix(w.startAfter, k)
			if inPrefix && !before {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		d.close()
		return nil
	}
	slices.Sort(keys)
	w.stack = append(w.stack, frame{dir: d, keys: keys})
	return nil
}

// advance finds the next object's key and its directory, or "" at the end.
func (w *walker) advance() (string, *dirHandle, error) {
	for len(w.stack) > 0 {
		top := &w.stack[len(w.stack)-1]
		if len(top.keys) == 0 {
			top.dir.close()
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		k := top.keys[0]
		top.keys = top.keys[1:]
		if !strings.HasSuffix(k, "/") {
			return k, top.dir, nil
		}
		if err := w.push(top.dir, k); err != nil {
			return "", nil, err
		}
	}
	return "", nil, nil
}

// page returns up to n objects, and whether more may follow.
func (w *walker) page(n int) (page []remote.Info, more bool, err error) {
	if w.err != nil {
		return nil, false, w.err
	}
	if w.next == "" {
		if w.next, w.nextDir, err = w.advance(); err != nil {
			return nil, false, err
		}
	}
	for w.next != "" {
		if len(page) == n {
			return page, true, nil
		}
		info, ok, err := info(w.nextDir, w.next)
		if err != nil {
			return page, false, err
		}
		if ok {
			page = append(page, info)
		}
		if w.next, w.nextDir, err = w.advance(); err != nil {
			return page, false, err
		}
	}
	return page, false, nil
}

// info describes the object key in the directory d; ok is false if it
// vanished or is not an object.
func info(d *dirHandle, key string) (info remote.Info, ok bool, err error) {
	_, base := splitKey(key)
	f, err := openFile(d, base, os.O_RDONLY, 0)
	if err != nil {
		if missing(err) || errors.Is(err, ErrSymlink) {
			return remote.Info{}, false, nil
		}
		return remote.Info{}, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return remote.Info{}, false, err
	}
	if !fi.Mode().IsRegular() {
		return remote.Info{}, false, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return remote.Info{}, false, err
	}
	sum := h.Sum(nil)
	return remote.Info{
		Key:          key,
		Size:         n,
		ETag:         `"` + hex.EncodeToString(sum[:16]) + `"`,
		LastModified: fi.ModTime(),
	}, true, nil
}

// reserved reports whether the key (or directory key) falls in the
// backend's own area.
func (b *Backend) reserved(key string) bool {
	first, _, _ := strings.Cut(key, "/")
	return strings.HasPrefix(first, ReservedPrefix)
}
