package fileremote

import "os"

// sysLink hard-links from in fromDir as to in toDir; it fails with EEXIST
// if to exists (a link at to included). This system has no linkat(2) in
// golang.org/x/sys/unix, so it links by path: a directory on the way
// swapped for a symbolic link after it was opened is not detected here.
func sysLink(fromDir *dirHandle, from string, toDir *dirHandle, to string) error {
	return os.Link(fromDir.join(from), toDir.join(to))
}
