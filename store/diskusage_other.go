//go:build !unix

package store

import "io/fs"

// allocated is the file's size where the system reports no block count.
func allocated(info fs.FileInfo) int64 { return info.Size() }
