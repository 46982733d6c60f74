package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// repairCrashLeftovers removes from the Badger directory dir the empty
// files a crash can leave and that Badger cannot open, so that a replica
// opens after any kill, the first time.
//
// Badger (v4.9.6, in go.mod) creates a memtable log (NNNNN.mem) or a value
// log (NNNNNN.vlog) by opening it with O_CREATE, then truncating it to its
// mapped size and writing a 20-byte header (ristretto z.OpenMmapFile,
// badger logFile.bootstrap), all before any entry goes into it. A kill
// between the create and the truncate leaves a 0-byte file. On the next
// open, z.OpenMmapFile sees the 0-byte file, truncates it and returns
// z.NewFile, which openMemTables ("while opening memtables … Create a new
// file") and valueLog.open ("During db.vlog.open … Create a new file")
// treat as fatal; that failed open has bootstrapped the file, which is why
// a second try works. Upstream: dgraph-io/badger issue 2207 (fix not
// merged).
//
// Removing such a file is safe: a 0-byte file holds no entry, so no write
// (acknowledged or not) lives in it, and nothing can refer to it — a value
// pointer names a value written into a value log, and a memtable log is
// only replayed. Every file Badger has written to keeps at least its
// header: Badger truncates a value log it closes to its write offset,
// never below the header. Only provably empty files go: 0 bytes, a
// regular file, with a name Badger parses. Every 0-byte .mem goes (Badger
// skips an empty memtable anyway; the numbers only order them); of the
// value logs only the newest, the one a crash while creating can leave
// empty (Badger creates value logs one at a time, each after the newest,
// and writes the header at once) — an older empty one is not a crash
// leftover, and Badger reports it.
//
// The repair holds the directory's lock (the flock Badger takes), so it
// never removes a file that a running Badger, in this process or
// another, has just created: a directory in use fails with ErrLocked. A
// directory that does not exist yet has nothing to repair. On platforms
// without flock it does nothing.
func repairCrashLeftovers(dir string, log *slog.Logger) error {
	unlock, err := lockDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNoDirLock):
		return nil
	case errors.Is(err, errDirLocked):
		return fmt.Errorf("%w: %s", ErrLocked, dir)
	case err != nil:
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	defer unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	var remove []string
	var newestVlog fs.DirEntry
	var newestFid uint64
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".mem"):
			if _, err := strconv.ParseInt(strings.TrimSuffix(name, ".mem"), 10, 64); err == nil && emptyFile(e) {
				remove = append(remove, name)
			}
		case strings.HasSuffix(name, ".vlog"):
			fid, err := strconv.ParseUint(strings.TrimSuffix(name, ".vlog"), 10, 32)
			if err == nil && (newestVlog == nil || fid > newestFid) {
				newestVlog, newestFid = e, fid
			}
		}
	}
	if newestVlog != nil && emptyFile(newestVlog) {
		remove = append(remove, newestVlog.Name())
	}
	if len(remove) == 0 {
		return nil
	}
	for _, name := range remove {
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("store: open %s: removing an empty file left by a crash: %w", dir, err)
		}
		log.Warn("store: removed an empty file left by a crash", "file", p)
	}
	// Make the removal durable; should it be lost, the next open repairs
	// the same files again.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: open %s: sync directory: %w", dir, err)
	}
	return nil
}

// emptyFile reports whether e is a regular file of 0 bytes.
func emptyFile(e fs.DirEntry) bool {
	if !e.Type().IsRegular() {
		return false
	}
	info, err := e.Info()
	return err == nil && info.Mode().IsRegular() && info.Size() == 0
}

var (
	// errDirLocked: another holder has the directory's lock.
	errDirLocked = errors.New("store: directory locked")
	// errNoDirLock: this platform has no directory lock to take.
	errNoDirLock = errors.New("store: no directory lock on this platform")
)
