package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ebreplica/ebreplica/clock"
)

// readMagic returns the external magic in dir's MANIFEST.
func readMagic(t *testing.T, dir string) uint16 {
	t.Helper()
	m, ok, err := manifestMagic(dir)
	if err != nil || !ok {
		t.Fatalf("manifest of %s: ok %v, %v", dir, ok, err)
	}
	return m
}

// writeMagic overwrites the external magic in dir's MANIFEST.
func writeMagic(t *testing.T, dir string, m uint16) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, badger.ManifestFilename), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(binary.BigEndian.AppendUint16(nil, m), 4); err != nil {
		t.Fatal(err)
	}
}

// dirSum hashes every file's name and bytes under dir.
func dirSum(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	if err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			names = append(names, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// openAsEarlier opens dir as an ebreplica of format 1 did (Badger's
// default options: external magic 0) and reports Badger's error.
func openAsEarlier(dir string) error {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err == nil {
		db.Close()
	}
	return err
}

// openDir opens the Store in dir on Badger (the caller closes it).
func openDir(t *testing.T, dir string) *Store {
	t.Helper()
	eng, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newDirWithKey makes a directory with this code: a replica holding key
// "k" = "v", closed.
func newDirWithKey(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s := openDir(t, dir)
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.Write("k", []byte("v"), false); return err }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return dir
}

// TestFenceNewDirectory: a directory made by this code carries the fence
// magic, and an earlier ebreplica's open fails on it and changes nothing.
func TestFenceNewDirectory(t *testing.T) {
	dir := newDirWithKey(t)
	if m := readMagic(t, dir); m != fenceMagic {
		t.Fatalf("new directory: magic %d, want %d", m, fenceMagic)
	}
	before := dirSum(t, dir)
	err := openAsEarlier(dir)
	if err == nil || !strings.Contains(err.Error(), "external magic") {
		t.Fatalf("an earlier ebreplica's open of a format-2 directory: %v, want the external magic mismatch", err)
	}
	if dirSum(t, dir) != before {
		t.Fatal("the refused open changed the directory")
	}
}

// TestFenceMigratedDirectory: a format-1 directory (the fixture, magic 0)
// is fenced when Open has migrated it; the fence survives a reopen (Badger
// rewrites its manifest with the magic it was opened with), and its data
// reads as before.
func TestFenceMigratedDirectory(t *testing.T) {
	dir, want := copyFormat1Data(t)
	if m := readMagic(t, dir); m != 0 {
		t.Fatalf("fixture: magic %d, want 0", m)
	}
	s := openDir(t, dir)
	checkFormat1(t, s, want)
	s.Close()
	if m := readMagic(t, dir); m != fenceMagic {
		t.Fatalf("migrated directory: magic %d, want %d", m, fenceMagic)
	}
	if err := openAsEarlier(dir); err == nil {
		t.Fatal("an earlier ebreplica opened a migrated directory")
	}
	s = openDir(t, dir)
	defer s.Close()
	checkFormat1(t, s, want)
}

// TestFenceAfterCrash: a format-2 directory whose manifest still has magic
// 0 (a crash after the migration's last transaction, before the fence) is
// fenced at its next Open, its data intact.
func TestFenceAfterCrash(t *testing.T) {
	dir := newDirWithKey(t)
	writeMagic(t, dir, 0)
	eng, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, eng, nil)
	if m := readMagic(t, dir); m != fenceMagic {
		t.Fatalf("magic %d after Open, want %d", m, fenceMagic)
	}
	var got Stored
	if err := s.View(func(v *View) error {
		var ok bool
		var err error
		got, ok, err = v.Record("k")
		if err == nil && !ok {
			err = errors.New("k is gone")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got.Versions) != 1 || string(got.Versions[0].Value) != "v" {
		t.Fatalf("k after the fence: %+v", got.Record)
	}
	// Writes go on after the reopen inside Open.
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.Write("k2", []byte("v"), false); return err }); err != nil {
		t.Fatal(err)
	}
}

// TestFenceNewerMagicRefused: a manifest whose magic is above this code's
// (a newer ebreplica's) is refused before Badger opens: ErrNewerFormat, and
// the directory is left as it was.
func TestFenceNewerMagicRefused(t *testing.T) {
	dir := newDirWithKey(t)
	writeMagic(t, dir, fenceMagic+1)
	before := dirSum(t, dir)
	if _, err := OpenBadger(dir, BadgerOptions{}); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("OpenBadger of a newer magic: %v, want ErrNewerFormat", err)
	}
	if dirSum(t, dir) != before {
		t.Fatal("the refused open changed the directory")
	}
}
