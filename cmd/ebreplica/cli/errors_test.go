package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/replica"
)

// Every command that needs a replica refuses a directory without one, says
// to run init, and creates nothing.
func TestNotInitialised(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"get", "k"}, {"get", "--all", "k"}, {"put", "k", "v"}, {"del", "k"}, {"ls"}, {"len"},
		{"import"}, {"export"}, {"pending"}, {"status"},
	} {
		missing := filepath.Join(t.TempDir(), "missing")
		stdin := []byte(`{"key":"k","value":"v"}` + "\n")
		failsWith(t, ExitError, stdin, append(args, "--dir", missing), "no replica in "+missing, "ebreplica init")
		noDir(t, missing)

		empty := t.TempDir()
		failsWith(t, ExitError, stdin, append(args, "--dir", empty), "ebreplica init")
		if ents, _ := os.ReadDir(empty); len(ents) != 0 {
			t.Errorf("%q left %v in an empty DIR", args, ents)
		}
	}
}

func TestInvalidKeysAndValues(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	ok(t, nil, "put", "--dir", dir, "existing", "v")
	before := state(t, dir)

	long := strings.Repeat("k", replica.MaxKeyLen+1)
	for _, tc := range []struct {
		stdin []byte
		args  []string
		want  string
	}{
		{nil, []string{"put", "", "v"}, "empty key"},
		{nil, []string{"put", long, "v"}, "longer than"},
		{[]byte("v"), []string{"put", long}, "longer than"},
		{nil, []string{"put", "bad\xffkey", "v"}, "UTF-8"},
		{nil, []string{"get", ""}, "empty key"},
		{nil, []string{"get", "--all", long}, "longer than"},
		{nil, []string{"del", ""}, "empty key"},
		{make([]byte, replica.DefaultMaxValueSize+1), []string{"put", "big"}, "value too large"},
		{nil, []string{"put", "big", string(make([]byte, replica.DefaultMaxValueSize+1))}, "value too large"},
	} {
		failsWith(t, ExitError, tc.stdin, append(tc.args, "--dir", dir), tc.want)
	}
	// Missing and extra arguments are usage errors.
	for _, args := range [][]string{{"put"}, {"get"}, {"del"}, {"get", "a", "b"}, {"put", "a", "b", "c"}, {"len", "x"}, {"import", "a", "b"}} {
		failsWith(t, ExitUsage, nil, append(args, "--dir", dir))
	}
	if after := state(t, dir); after != before {
		t.Errorf("failed commands changed state:\n%s\n%s", before, after)
	}

	// A key of exactly the limit and a value of exactly the limit are fine.
	max := strings.Repeat("k", replica.MaxKeyLen)
	ok(t, nil, "put", "--dir", dir, max, "v")
	value := bytes.Repeat([]byte{0xab}, replica.DefaultMaxValueSize)
	ok(t, value, "put", "--dir", dir, "max")
	if got := ok(t, nil, "get", "--dir", dir, "max").stdout; !bytes.Equal(got, value) {
		t.Errorf("value at the limit: got %d bytes", len(got))
	}
}

func TestBadClockOffset(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	failsWith(t, ExitUsage, nil, []string{"put", "--dir", dir, "--clock-offset", "yesterday", "k", "v"}, "--clock-offset")
	failsWith(t, ExitUsage, nil, []string{"put", "--dir", dir, "k", "v", "--clock-offset"}, "needs a value")
	failsWith(t, ExitNotFound, nil, []string{"get", "--dir", dir, "k"})
}

// --clock-offset moves this process's wall clock: the HLC of a write made
// with -36h is about 36 hours in the past.
func TestClockOffset(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	ok(t, nil, "put", "--dir", dir, "--clock-offset", "-36h", "past", "v")
	ok(t, nil, "--clock-offset=-36h", "put", "--dir", dir, "past2", "v")
	for _, key := range []string{"past", "past2"} {
		v := decodeOne(t, ok(t, nil, "get", "--all", "--json", "--dir", dir, key).stdout)
		n, err := strconv.ParseInt(v["hlc"].(string), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		got := clock.HLC(n).Time()
		want := time.Now().Add(-36 * time.Hour)
		if d := got.Sub(want); d < -time.Hour || d > time.Hour {
			t.Errorf("%s: HLC time %v, want about %v", key, got, want)
		}
	}
}

func TestKeyErrorCodes(t *testing.T) {
	t.Parallel()
	conflict := &replica.ConflictError{Key: "k", Versions: make([]replica.Version, 2)}
	for _, tc := range []struct {
		err  error
		code int
		want string
	}{
		{conflict, ExitConflict, "get --all k"},
		{fmt.Errorf("wrapped: %w", conflict), ExitConflict, "2 concurrent versions"},
		{replica.ErrConflict, ExitConflict, "get --all k"},
		{replica.ErrNotFound, ExitNotFound, `key "k" not found`},
		{errors.New("boom"), ExitError, "boom"},
	} {
		err := keyError("k", tc.err)
		line := errorLine("get", err)
		if exitCode(err) != tc.code || !strings.Contains(line, tc.want) || !strings.HasPrefix(line, "ebreplica: get: ") {
			t.Errorf("%v: exit %d, %q; want %d, %q", tc.err, exitCode(err), line, tc.code, tc.want)
		}
	}
	if got := errorLine("x", errors.New("two\nlines\n")); got != "ebreplica: x: two lines" {
		t.Errorf("multi-line error printed as %q", got)
	}
	for key, want := range map[string]string{"a/b": "a/b", "a b": "'a b'", "-x": "-- -x", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(key); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", key, got, want)
		}
	}
}

// A second process on a DIR that this one holds open is refused, and
// writes nothing.
func TestDirInUse(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	ok(t, nil, "put", "--dir", dir, "k", "before")
	before := state(t, dir)

	r, err := replica.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"put", "--dir", dir, "k", "after"},
		{"get", "--dir", dir, "k"},
		{"init", "--dir", dir, "--remote", "file://" + filepath.ToSlash(t.TempDir())},
		{"len", "--dir", dir},
	} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), execEnv+"=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%q: %v (stderr %q)", args, err, errb.String())
		}
		res := result{code: ee.ExitCode(), stdout: out.Bytes(), stderr: errb.String()}
		want := "in use by another process"
		if args[0] == "init" {
			want = "already holds a replica"
		}
		checkFailure(t, res, ExitError, args, want)
	}
	if v, err := r.Get("k"); err != nil || string(v) != "before" {
		t.Errorf("k = %q, %v", v, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if after := state(t, dir); after != before {
		t.Errorf("state changed while in use:\n%s\n%s", before, after)
	}
}

// No command shows a secret held in a remote URL, whatever the error: one
// given to init, or one a replica recorded earlier.
func TestErrorsNeverShowSecrets(t *testing.T) {
	t.Parallel()
	const secret = "S3cr3tPW"
	for _, remote := range []string{
		"s3://bkt/p?endpoint=http://user:" + secret + "@host:9000",
		"s3://bkt/p?endpoint=http%3A%2F%2Fuser%3A" + secret + "%40host",
		"s3://AKID:" + secret + "@bkt/p",
		"s3://AKID:" + secret + "/x@bkt/p", // not a URL: a slash in the password
		"s3://bkt/p?aws_secret_access_key=" + secret,
		"s3://bkt/p?foo=" + secret,
		"s3:/AKID:" + secret + "@bkt",
		"ftp://user:" + secret + "@host/x",
		"file://user:" + secret + "@localhost/tmp/x",
		"file://user:" + secret + "@host/tmp/x",
		"mem://user:" + secret + "@name",
	} {
		for _, json := range []bool{false, true} {
			dir := filepath.Join(t.TempDir(), "replica")
			args := []string{"init", "--dir", dir, "--remote", remote}
			if json {
				args = append(args, "--json")
			}
			r := cli(t, nil, args...)
			if r.code == ExitOK {
				t.Errorf("ebreplica %q succeeded", args)
			}
			if strings.Contains(r.out()+r.stderr, secret) {
				t.Errorf("ebreplica %q shows the secret: stdout %q, stderr %q", args, r.stdout, r.stderr)
			}
		}
	}
	// A replica that recorded such a remote (an older version accepted
	// some): commands that open the remote fail without showing it.
	for _, remote := range []string{"mem://user:" + secret + "@name", "s3://AKID:" + secret + "@bkt/p"} {
		dir := filepath.Join(t.TempDir(), "replica")
		r, err := replica.Init(dir, remote, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"push"}, {"pull"}, {"sync"}, {"verify"}} {
			res := cli(t, nil, append(args, "--dir", dir)...)
			if res.code == ExitOK {
				t.Errorf("ebreplica %q on a remote with a password succeeded", args)
			}
			if strings.Contains(res.out()+res.stderr, secret) {
				t.Errorf("ebreplica %q shows the secret: stdout %q, stderr %q", args, res.stdout, res.stderr)
			}
		}
	}
}

// Ctrl-C (the context canceled by main's signal handler) exits 130 and says
// "interrupted", whatever error the command met on the way out (issue 15:
// it said "context canceled" with exit 1).
func TestInterrupted(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range [][]string{{"put", "--dir", dir, "k", "v"}, {"sync", "--dir", dir}, {"--json", "len", "--dir", dir}} {
		var out, errb bytes.Buffer
		code := Run(ctx, args, nil, &out, &errb)
		if code != ExitInterrupted || !strings.HasPrefix(errb.String(), "ebreplica: ") || !strings.HasSuffix(errb.String(), ": interrupted\n") {
			t.Errorf("%q: exit %d, stderr %q; want 130, interrupted", args, code, errb.String())
		}
	}
	// Interrupted midway, import says how far it got.
	var in strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&in, `{"key":"k%04d","value":"v"}`+"\n", i)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var errb bytes.Buffer
	code := Run(ctx, []string{"import", "--dir", dir}, &cancelAfter{r: strings.NewReader(in.String()), n: 1 << 20, cancel: cancel}, io.Discard, &errb)
	if code != ExitInterrupted || !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("import interrupted: exit %d, stderr %q", code, errb.String())
	}
}

// Under --json every error is also one JSON object on stdout: usage errors
// found before the command was known too.
func TestJSONErrors(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--json", "nosuchcommand"}, ExitUsage},
		{[]string{"get", "--json", "--dir", dir, "--bogus"}, ExitUsage},
		{[]string{"del", "--dir", dir, "--json", "absent"}, ExitNotFound},
		{[]string{"len", "--json", "--dir", filepath.Join(t.TempDir(), "none")}, ExitError},
	} {
		r := cli(t, nil, tc.args...)
		m := decodeOne(t, r.stdout)
		if r.code != tc.code || m["code"] != json.Number(strconv.Itoa(tc.code)) ||
			"ebreplica: "+m["error"].(string)+"\n" != r.stderr {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", tc.args, r.code, r.stdout, r.stderr)
		}
	}
	if r := cli(t, nil, "--json=false", "nosuchcommand"); len(r.stdout) != 0 {
		t.Errorf("--json=false: stdout %q", r.stdout)
	}
}

// cancelAfter reads r, then cancels once it is read to the end.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.cancel()
	}
	return n, err
}
