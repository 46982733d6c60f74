//go:build unix

package fileremote_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote/fileremote"
)

// tree returns every file, directory and link under dir with its content
// (or link target), to check that nothing changed.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			m[rel] = "link " + target
			return err
		case e.IsDir():
			m[rel] = "dir"
		default:
			data, err := os.ReadFile(p)
			m[rel] = "file " + string(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o666); err != nil {
		t.Fatal(err)
	}
}

// checkRefused fails unless err wraps ErrSymlink and names key.
func checkRefused(t *testing.T, op, key string, err error) {
	t.Helper()
	if !errors.Is(err, fileremote.ErrSymlink) || !strings.Contains(err.Error(), key) {
		t.Errorf("%s(%q) = %v, want an error wrapping ErrSymlink naming the key", op, key, err)
	}
}

// Links planted in the store are refused by every operation, wherever they
// point, and nothing outside the root (or inside it) changes.
func TestSymlinksRefused(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), "outside")
	b := newBackend(t, root, nil)
	ctx := context.Background()
	for _, k := range []string{"real", "a/obj"} {
		if _, err := b.Put(ctx, k, []byte("inside "+k)); err != nil {
			t.Fatal(err)
		}
	}
	symlink(t, filepath.Join(outside, "secret"), filepath.Join(root, "flink"))  // a file link to outside
	symlink(t, outside, filepath.Join(root, "dlink"))                           // a directory link to outside
	symlink(t, filepath.Join(root, "real"), filepath.Join(root, "ilink"))       // a link to a file inside
	symlink(t, "../dlink", filepath.Join(root, "a", "mid"))                     // an intermediate link, relative
	symlink(t, filepath.Join(root, "a"), filepath.Join(root, "adir"))           // a directory link inside
	symlink(t, filepath.Join(outside, "gone"), filepath.Join(root, "dangling")) // a dangling link
	beforeOut, beforeRoot := tree(t, outside), tree(t, root)

	etags := map[string]string{"real": fileremote.ETag([]byte("inside real")), "outside": fileremote.ETag([]byte("outside"))}
	for _, key := range []string{
		"flink", "dlink/secret", "dlink/new", "ilink", "a/mid/secret", "a/mid/new/deeper",
		"adir/obj", "dangling",
	} {
		_, err := b.Get(ctx, key)
		checkRefused(t, "Get", key, err)
		_, err = b.Put(ctx, key, []byte("overwritten"))
		checkRefused(t, "Put", key, err)
		_, err = b.PutIfAbsent(ctx, key, []byte("created"))
		checkRefused(t, "PutIfAbsent", key, err)
		for _, etag := range etags {
			_, err = b.PutIfMatch(ctx, key, []byte("swapped"), etag)
			checkRefused(t, "PutIfMatch", key, err)
		}
		checkRefused(t, "Delete", key, b.Delete(ctx, key))
	}
	for _, prefix := range []string{"", "dlink/", "dlink/s", "a/mid/", "adir/", "ilink", "flink"} {
		var keys []string
		for info, err := range b.List(ctx, prefix, "") {
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			keys = append(keys, info.Key)
		}
		var want []string
		if prefix == "" {
			want = []string{"a/obj", "real"}
		}
		if !slices.Equal(keys, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, keys, want)
		}
	}
	if after := tree(t, outside); !maps.Equal(after, beforeOut) {
		t.Errorf("outside the root changed:\nbefore %q\nafter  %q", beforeOut, after)
	}
	after := tree(t, root)
	for _, m := range []map[string]string{beforeRoot, after} {
		maps.DeleteFunc(m, func(name, _ string) bool {
			return strings.HasPrefix(name, ".ebreplica-") // the temporary and lock areas
		})
	}
	if !maps.Equal(after, beforeRoot) {
		t.Errorf("the root changed:\nbefore %q\nafter  %q", beforeRoot, after)
	}
	// The objects themselves still work.
	if obj, err := b.Get(ctx, "a/obj"); err != nil || string(obj.Data) != "inside a/obj" {
		t.Errorf("Get(a/obj) = %q, %v", obj.Data, err)
	}
}

// The backend's own areas, the temporary and the lock directory, and the
// lock files in it, are never followed either.
func TestSymlinkedOwnFilesRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, root, outside string)
	}{
		{"temporary directory", func(t *testing.T, root, outside string) {
			symlink(t, outside, filepath.Join(root, ".ebreplica-tmp"))
		}},
		{"lock directory", func(t *testing.T, root, outside string) {
			symlink(t, outside, filepath.Join(root, ".ebreplica-lock"))
		}},
		{"lock files", func(t *testing.T, root, outside string) {
			lock := filepath.Join(root, ".ebreplica-lock")
			if err := os.Mkdir(lock, 0o777); err != nil {
				t.Fatal(err)
			}
			for s := range 256 {
				name := string("0123456789abcdef"[s>>4]) + string("0123456789abcdef"[s&15])
				symlink(t, filepath.Join(outside, "lock-"+name), filepath.Join(lock, name))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			writeFile(t, filepath.Join(outside, "keep"), "outside")
			b := newBackend(t, root, &fileremote.Options{NoSync: true})
			etag, err := b.Put(ctx, "k", []byte("v"))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{".ebreplica-tmp", ".ebreplica-lock"} {
				if err := os.RemoveAll(filepath.Join(root, name)); err != nil {
					t.Fatal(err)
				}
			}
			tc.plant(t, root, outside)
			before := tree(t, outside)

			_, err = b.Put(ctx, "k", []byte("w"))
			checkRefused(t, "Put", "k", err)
			_, err = b.PutIfAbsent(ctx, "new", []byte("w"))
			if tc.name == "temporary directory" { // no lock taken
				checkRefused(t, "PutIfAbsent", "new", err)
			}
			_, err = b.PutIfMatch(ctx, "k", []byte("w"), etag)
			checkRefused(t, "PutIfMatch", "k", err)
			if obj, err := b.Get(ctx, "k"); err != nil || string(obj.Data) != "v" {
				t.Errorf("Get(k) = %q, %v; want the old value", obj.Data, err)
			}
			err = b.Delete(ctx, "k")
			if tc.name != "temporary directory" { // Delete writes no temporary file
				checkRefused(t, "Delete", "k", err)
			}
			if after := tree(t, outside); !maps.Equal(after, before) {
				t.Errorf("outside the root changed:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// New's clean-up of stale temporary files does not follow a link put in
// place of the temporary directory.
func TestStaleTempCleanupRefusesSymlink(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	old := filepath.Join(outside, "1-old")
	writeFile(t, old, "someone else's file")
	long := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, filepath.Join(root, ".ebreplica-tmp"))
	newBackend(t, root, nil)
	if _, err := os.Stat(old); err != nil {
		t.Errorf("New removed a file outside the root: %v", err)
	}
}
