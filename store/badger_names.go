package store

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// syncNames makes the directory dir durable under its name, with every
// entry in it: it fsyncs dir and then each directory above it, up to the
// root or the first that cannot be opened (no permission: not ours to
// sync, and not created by us).
//
// POSIX makes a new name durable only by an fsync of the directory holding
// it. The replica's directories may have been created just before the
// open (replica.Init makes <dir>/data), and Badger names new files without
// syncing their directory (ristretto's z.OpenMmapFile means to, but its
// check runs after it has set the size it tests for zero), so without this
// a power loss right after Init returned could take the whole replica
// with it. Linux's ext4, XFS and btrfs make a file's name durable with the
// file's fsync, which hides it there; internal/lazyfs in strict mode shows
// it (BENCHMARKS.md, "Power loss"). Once per open: an fsync of a directory
// with no changes costs little.
func syncNames(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // no directory fsync there (Badger skips it too)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		d, err := os.Open(p)
		if err != nil {
			if p == abs {
				return fmt.Errorf("store: sync directory %s: %w", p, err)
			}
			return nil
		}
		err = d.Sync()
		d.Close()
		if err != nil && p == abs {
			return fmt.Errorf("store: sync directory %s: %w", p, err)
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}
