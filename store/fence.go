package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	badger "github.com/dgraph-io/badger/v4"
)

// An earlier ebreplica (local format 1) opens a format-2 directory without
// complaint: it cannot read its records (it reports them corrupt), but it
// writes format-1 records into it, which this code then reads as corrupt.
// So a directory of format 2 is fenced against earlier binaries: Badger's
// MANIFEST carries an "external magic" number that Badger checks at open,
// and an earlier ebreplica opens with 0 (Badger's default). This code
// opens a directory with the magic its MANIFEST holds, creates new ones
// with fenceMagic, and once a directory's format is 2 (a new one, or a
// format-1 one migrated: Store.Open) rewrites its magic to fenceMagic.
// An earlier ebreplica then fails at open ("external magic number doesn't
// match") and changes nothing.
const fenceMagic uint16 = 2

// manifestMagic reads the external magic of dir's MANIFEST: ok is false
// when there is no MANIFEST with a whole header (a new directory, or one a
// crash left before its first manifest write, which Badger recreates).
func manifestMagic(dir string) (magic uint16, ok bool, err error) {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: open %s: %w", dir, err)
	}
	defer f.Close()
	var h [8]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, false, nil
	}
	return binary.BigEndian.Uint16(h[4:6]), true, nil
}

// magicFor is the external magic to open dir with: its MANIFEST's, or
// fenceMagic for a new directory. A magic above fenceMagic is a newer
// ebreplica's: ErrNewerFormat, before Badger touches anything.
func magicFor(dir string) (uint16, error) {
	m, ok, err := manifestMagic(dir)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return fenceMagic, nil
	case m > fenceMagic:
		return 0, fmt.Errorf("%w (its Badger manifest says %d)", ErrNewerFormat, m)
	}
	return m, nil
}

// formatFencer is an engine that can fence its directory (Badger).
type formatFencer interface {
	fenceFormat() error
}

// fenceFormat rewrites the MANIFEST's external magic to fenceMagic when the
// database was opened with another (a directory made or last opened by an
// earlier ebreplica): it closes Badger, writes the two bytes in place and
// fsyncs them, and opens Badger again with the new magic. Store.Open calls
// it once the format is 2. A crash before the write leaves the old magic,
// and the next Open fences again; the two bytes lie in the file's first
// sector, which a disk writes whole.
func (b *Badger) fenceFormat() error {
	if b.dir == "" || b.magic == fenceMagic {
		return nil
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("store: fence %s: %w", b.dir, err)
	}
	f, err := os.OpenFile(filepath.Join(b.dir, badger.ManifestFilename), os.O_WRONLY, 0)
	if err == nil {
		var m [2]byte
		binary.BigEndian.PutUint16(m[:], fenceMagic)
		if _, err = f.WriteAt(m[:], 4); err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	magic := fenceMagic
	if err != nil {
		// Reopen as it was: the directory stays usable, unfenced.
		magic = b.magic
	}
	db, oerr := badger.Open(b.opts.WithExternalMagic(magic))
	if oerr != nil {
		return fmt.Errorf("store: fence %s: reopen: %w", b.dir, oerr)
	}
	b.db, b.magic = db, magic
	if err != nil {
		return fmt.Errorf("store: fence %s: %w", b.dir, err)
	}
	return nil
}
