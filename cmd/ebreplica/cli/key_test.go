package cli

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote"
)

// TestKeyCommands: the encryption story through the command line on a
// directory remote: key new, init --encrypt, a stranger's init refused
// with nothing created, key add, the second device's init and sync, key
// list, key remove (the removed device reads nothing written afterwards),
// compact --prune, a tampered segment reported by pull and verify, and no
// plaintext anywhere in the bucket.
func TestKeyCommands(t *testing.T) {
	t.Setenv(keyFileEnv, "")
	tmp := t.TempDir()
	rem := filepath.Join(tmp, "remote")
	dirA, dirB, dirC := filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "c")
	kA, kB, kC := filepath.Join(tmp, "ka"), filepath.Join(tmp, "kb"), filepath.Join(tmp, "kc")
	os.Mkdir(rem, 0o755)
	recA := strings.TrimSpace(ok(t, nil, "key", "new", "--key-file", kA).out())
	recB := strings.TrimSpace(ok(t, nil, "key", "new", "--key-file", kB).out())
	recC := strings.TrimSpace(ok(t, nil, "key", "new", "--key-file", kC).out())
	if !strings.HasPrefix(recA, "age1") || recA == recB {
		t.Fatalf("key new printed %q, %q", recA, recB)
	}
	if fi, err := os.Stat(kA); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	failsWith(t, 1, nil, []string{"key", "new", "--key-file", kA}, "exists")
	failsWith(t, 2, nil, []string{"key", "new"}, "--key-file")
	failsWith(t, 2, nil, []string{"key", "add", "age1nope"}, "not an age")

	failsWith(t, 2, nil, []string{"--dir", dirA, "init", "--remote", rem, "--encrypt"}, "key file")
	ok(t, nil, "--dir", dirA, "init", "--remote", rem, "--encrypt", "--key-file", kA)
	ok(t, nil, "--dir", dirA, "put", "zq-secret-key-1", "zq-secret-value-1")
	ok(t, nil, "--dir", dirA, "push")

	// B is not a recipient yet: one line, nothing created.
	failsWith(t, 1, nil, []string{"--dir", dirB, "init", "--remote", rem, "--key-file", kB}, "cannot open the store", recB, "nothing was created")
	if _, err := os.Stat(dirB); err == nil {
		t.Fatalf("a refused init left %s", dirB)
	}
	failsWith(t, 1, nil, []string{"--dir", dirB, "init", "--remote", rem}, "is encrypted", "--key-file")
	failsWith(t, 1, nil, []string{"--dir", dirB, "init", "--remote", rem, "--encrypt", "--key-file", kB}, "exists")
	regs := countObjects(t, rem, remote.ReplicasPrefix)

	ok(t, nil, "--dir", dirA, "key", "add", recB)
	ok(t, nil, "--dir", dirA, "key", "add", recC)
	t.Setenv(keyFileEnv, kB) // the environment names B's key
	ok(t, nil, "--dir", dirB, "init", "--remote", rem)
	t.Setenv(keyFileEnv, "")
	ok(t, nil, "--dir", dirC, "init", "--remote", rem, "--key-file", kC)
	if n := countObjects(t, rem, remote.ReplicasPrefix); n != regs+2 {
		t.Fatalf("%d registries, want %d", n, regs+2)
	}
	ok(t, nil, "--dir", dirB, "pull")
	if got := ok(t, nil, "--dir", dirB, "get", "zq-secret-key-1").out(); strings.TrimSpace(got) != "zq-secret-value-1" {
		t.Fatalf("B reads %q", got)
	}
	list := ok(t, nil, "--dir", dirA, "key", "list").out()
	for _, r := range []string{recA + "  (this device)", recB, recC} {
		if !strings.Contains(list, r+"\n") {
			t.Fatalf("key list = %q, missing %q", list, r)
		}
	}
	if n := strings.Count(list, "\n"); n != 3 {
		t.Fatalf("key list has %d lines", n)
	}

	// Remove C; what A writes afterwards C cannot read.
	failsWith(t, 1, nil, []string{"--dir", dirA, "key", "remove", recA}, "own key")
	ok(t, nil, "--dir", dirA, "key", "remove", recC)
	if list := ok(t, nil, "--dir", dirB, "key", "list").out(); strings.Contains(list, recC) || strings.Count(list, "\n") != 2 {
		t.Fatalf("key list after remove = %q", list)
	}
	ok(t, nil, "--dir", dirA, "put", "zq-secret-key-2", "zq-secret-value-2")
	ok(t, nil, "--dir", dirA, "push")
	failsWith(t, 1, nil, []string{"--dir", dirC, "pull"}, "removed")
	ok(t, nil, "--dir", dirB, "pull")
	if got := ok(t, nil, "--dir", dirB, "get", "zq-secret-key-2").out(); strings.TrimSpace(got) != "zq-secret-value-2" {
		t.Fatalf("B reads %q", got)
	}
	ok(t, nil, "--dir", dirA, "key", "rotate")
	ok(t, nil, "--dir", dirA, "pull")
	ok(t, nil, "--dir", dirA, "compact", "--prune")
	ok(t, nil, "--dir", dirB, "verify")
	// The listings read the sealed registries and snapshot index.
	if reps := ok(t, nil, "--dir", dirB, "replicas").out(); strings.Count(reps, "\n") != 3 || !strings.Contains(reps, "(this replica)") {
		t.Fatalf("replicas = %q", reps)
	}
	if snaps := ok(t, nil, "--dir", dirB, "snapshots").out(); strings.Count(snaps, "\n") != 1 {
		t.Fatalf("snapshots = %q", snaps)
	}

	// A byte flipped in a sealed segment: pull and verify name it, and B
	// applies nothing.
	ok(t, nil, "--dir", dirA, "put", "zq-secret-key-3", "zq-secret-value-3")
	ok(t, nil, "--dir", dirA, "push")
	var last string
	filepath.WalkDir(filepath.Join(rem, "log"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			last = p
		}
		return err
	})
	data, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(last, data, 0o644); err != nil {
		t.Fatal(err)
	}
	name := "log/" + filepath.Base(last)
	failsWith(t, 1, nil, []string{"--dir", dirB, "pull"}, name)
	failsWith(t, 3, nil, []string{"--dir", dirB, "get", "zq-secret-key-3"}, "not found") // not applied
	r := cli(t, nil, "--dir", dirB, "verify")
	if r.code != 1 || !strings.Contains(r.out()+r.stderr, name) || !strings.Contains(r.out(), "corrupt") {
		t.Fatalf("verify of a tampered segment: exit %d\n%s%s", r.code, r.out(), r.stderr)
	}
	// verify --remote with the key in the environment.
	t.Setenv(keyFileEnv, kB)
	r = cli(t, nil, "verify", "--remote", rem)
	if r.code != 1 || !strings.Contains(r.out(), name) {
		t.Fatalf("verify --remote: exit %d\n%s%s", r.code, r.out(), r.stderr)
	}
	t.Setenv(keyFileEnv, "")
	// Repair: the tampered segment is quarantined (sealed) and replaced by
	// a sealed placeholder; pulls go on.
	ok(t, nil, "--dir", dirB, "verify", "--repair")
	ok(t, nil, "--dir", dirB, "verify")
	ok(t, nil, "--dir", dirB, "pull")
	if n := countObjects(t, rem, remote.QuarantinePref); n != 1 {
		t.Fatalf("%d quarantined copies", n)
	}

	// The key file gone: one line.
	os.Rename(kB, kB+".moved")
	failsWith(t, 1, nil, []string{"--dir", dirB, "push"}, kB)
	os.Rename(kB+".moved", kB)
	// Another key in its place: one line, nothing written.
	ok(t, nil, "--dir", dirB, "put", "zq-secret-key-4", "zq-secret-value-4")
	os.Rename(kB, kB+".moved")
	ok(t, nil, "key", "new", "--key-file", kB)
	before := countObjects(t, rem, "")
	failsWith(t, 1, nil, []string{"--dir", dirB, "push"}, "not among the store's recipients")
	if after := countObjects(t, rem, ""); after != before {
		t.Fatalf("a push with a wrong key changed the bucket: %d objects, then %d", before, after)
	}
	os.Remove(kB)
	os.Rename(kB+".moved", kB)
	ok(t, nil, "--dir", dirB, "push")

	grepTree(t, rem, "zq-secret", "secret-key", "secret-value")
}

// TestInitKeyOnPlainStore: --key-file for a store that is not encrypted is
// refused, nothing created.
func TestInitKeyOnPlainStore(t *testing.T) {
	t.Setenv(keyFileEnv, "")
	tmp := t.TempDir()
	rem, k := filepath.Join(tmp, "remote"), filepath.Join(tmp, "k")
	os.Mkdir(rem, 0o755)
	os.Mkdir(filepath.Join(tmp, "r2"), 0o755)
	ok(t, nil, "key", "new", "--key-file", k)
	ok(t, nil, "--dir", filepath.Join(tmp, "a"), "init", "--remote", rem)
	failsWith(t, 1, nil, []string{"--dir", filepath.Join(tmp, "b"), "init", "--remote", rem, "--key-file", k}, "not encrypted")
	failsWith(t, 1, nil, []string{"--dir", filepath.Join(tmp, "a"), "key", "list"}, "not encrypted")
	if _, err := os.Stat(filepath.Join(tmp, "b")); err == nil {
		t.Fatal("a refused init left its directory")
	}
	// A key file that others may read is refused.
	os.Chmod(k, 0o644)
	failsWith(t, 1, nil, []string{"--dir", filepath.Join(tmp, "c"), "init", "--remote", filepath.Join(tmp, "r2"), "--encrypt", "--key-file", k}, "chmod 600")
}

func countObjects(t *testing.T, root, prefix string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(root, filepath.FromSlash(prefix)), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// grepTree fails when a file under root holds any of needles.
func grepTree(t *testing.T, root string, needles ...string) {
	t.Helper()
	files := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, _ := os.ReadFile(p)
		for _, s := range needles {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds plaintext %q", p, s)
			}
		}
		return nil
	})
	if files < 5 {
		t.Fatalf("only %d files under %s", files, root)
	}
}

// TestEncryptedS3: an encrypted store on the real S3 test server: two
// devices, a realistic workload (distinctive keys and values, deletes,
// push, pull, compact --prune, a device bootstrapping from the snapshot),
// then every object of the bucket is read back and holds no key or value
// bytes; a flipped byte in a sealed segment is named by pull and verify.
func TestEncryptedS3(t *testing.T) {
	srv := s3test.Config(t)
	_, bucket := srv.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	t.Setenv(keyFileEnv, "")
	u := "s3://" + bucket + "/enc?endpoint=" + srv.Endpoint
	tmp := t.TempDir()
	kA, kB, kC := filepath.Join(tmp, "ka"), filepath.Join(tmp, "kb"), filepath.Join(tmp, "kc")
	ok(t, nil, "key", "new", "--key-file", kA)
	recB := strings.TrimSpace(ok(t, nil, "key", "new", "--key-file", kB).out())
	recC := strings.TrimSpace(ok(t, nil, "key", "new", "--key-file", kC).out())
	a, b, c := filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "c")
	ok(t, nil, "--dir", a, "init", "--remote", u, "--encrypt", "--key-file", kA, "--policy", "cnt/=counter")
	var in bytes.Buffer
	for i := range 300 {
		fmt.Fprintf(&in, "{\"key\":\"zq-secret-key-%03d\",\"value\":\"zq-secret-value-%03d-%s\"}\n", i, i, strings.Repeat("w", i%50))
	}
	ok(t, in.Bytes(), "--dir", a, "import", "-")
	ok(t, nil, "--dir", a, "incr", "cnt/zq-secret-counter", "5")
	ok(t, nil, "--dir", a, "push")
	ok(t, nil, "--dir", a, "key", "add", recB)
	ok(t, nil, "--dir", b, "init", "--remote", u, "--key-file", kB)
	ok(t, nil, "--dir", b, "pull")
	ok(t, nil, "--dir", b, "del", "zq-secret-key-001")
	ok(t, nil, "--dir", b, "put", "zq-secret-key-b", "zq-secret-value-b")
	ok(t, nil, "--dir", b, "push")
	ok(t, nil, "--dir", a, "pull")
	ok(t, nil, "--dir", a, "compact", "--prune")
	ok(t, nil, "--dir", a, "key", "add", recC)
	ok(t, nil, "--dir", c, "init", "--remote", u, "--key-file", kC)
	ok(t, nil, "--dir", c, "pull")
	if got := strings.TrimSpace(ok(t, nil, "--dir", c, "get", "zq-secret-key-b").out()); got != "zq-secret-value-b" {
		t.Fatalf("c reads %q", got)
	}
	ok(t, nil, "--dir", c, "verify")

	client := srv.Client()
	objects := 0
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			objects++
			for _, s := range []string{"zq-secret", "secret-key", "secret-value", "wwwwwwww"} {
				if bytes.Contains(data, []byte(s)) {
					t.Errorf("%s holds plaintext %q", aws.ToString(o.Key), s)
				}
			}
		}
	}
	if objects < 8 {
		t.Fatalf("only %d objects in the bucket", objects)
	}

	ok(t, nil, "--dir", a, "put", "zq-secret-key-late", "x")
	ok(t, nil, "--dir", a, "push")
	corruptNewestSegment(t, srv, bucket, "enc")
	r := cli(t, nil, "--dir", c, "pull")
	if r.code != 1 || !strings.Contains(r.stderr, "enc/log/") && !strings.Contains(r.stderr, "log/") {
		t.Fatalf("pull of a tampered segment: exit %d, %q", r.code, r.stderr)
	}
	failsWith(t, 3, nil, []string{"--dir", c, "get", "zq-secret-key-late"}, "not found")
	r = cli(t, nil, "--dir", c, "verify")
	if r.code != 1 || !strings.Contains(r.out(), "corrupt") {
		t.Fatalf("verify of a tampered segment: exit %d\n%s%s", r.code, r.out(), r.stderr)
	}
}
