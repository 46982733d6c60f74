//go:build !unix

package fileremote

import (
	"errors"
	"os"
)

// lockFile has no cross-process lock on this platform: the per-stripe
// mutex taken by Backend.lock is the only lock, so only one process may
// write a directory (see the package documentation).
func lockFile(path string) (release func(), err error) { return func() {}, nil }

// rmdir removes the directory dir if it is empty.
func rmdir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("fileremote: not a directory")
	}
	return os.Remove(dir)
}

func isNameTooLong(error) bool { return false }

func isNotDir(error) bool { return false }

func syncUnsupported(error) bool { return true }

func linkUnsupported(error) bool { return false }
