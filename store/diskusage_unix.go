//go:build unix

package store

import (
	"io/fs"
	"syscall"
)

// allocated is the bytes a file takes on disk: its allocated blocks
// (Badger extends the files it maps ahead of what it wrote, sparsely).
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}
