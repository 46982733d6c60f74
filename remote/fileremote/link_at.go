//go:build unix && !solaris

package fileremote

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// sysLink hard-links from in fromDir as to in toDir; it fails with EEXIST
// if to exists (a link at to included).
func sysLink(fromDir *dirHandle, from string, toDir *dirHandle, to string) error {
	err := unix.Linkat(fd(fromDir), from, fd(toDir), to, 0)
	runtime.KeepAlive(fromDir)
	runtime.KeepAlive(toDir)
	if err != nil {
		return &os.LinkError{Op: "link", Old: fromDir.join(from), New: toDir.join(to), Err: err}
	}
	return nil
}
