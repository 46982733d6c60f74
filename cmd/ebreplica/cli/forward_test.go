package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// forwardServer holds a replica and takes forwarded commands on the
// replica's api.sock, as `ebreplica serve` does, counting them.
type forwardServer struct {
	calls atomic.Int64
	srv   *http.Server
}

// serveForward opens the replica in dir (held until the test ends) and
// serves forwardHandler on dir/api.sock.
func serveForward(t *testing.T, dir string) *forwardServer {
	t.Helper()
	e := &env{dir: dir}
	r, err := e.open()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, serveSocket))
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	fs := &forwardServer{}
	h := forwardHandler(context.Background(), r, e.standIns, nil)
	mux := http.NewServeMux()
	mux.Handle(cliPath, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fs.calls.Add(1)
		h.ServeHTTP(w, req)
	}))
	fs.srv = &http.Server{Handler: mux}
	go fs.srv.Serve(ln)
	t.Cleanup(func() {
		fs.srv.Close()
		if err := r.Close(); err != nil {
			t.Errorf("closing the held replica: %v", err)
		}
	})
	return fs
}

// twin is two replica directories with the same history, each named "rep"
// in its own parent (so that messages naming DIR read alike): a's is held
// by a forward server, b's is used locally. same runs a command in both,
// from the parent as working directory, and compares.
type twin struct {
	t        *testing.T
	pa, pb   string
	idA, idB string
	srv      *forwardServer
}

func newTwin(t *testing.T, initArgs ...string) *twin {
	base := t.TempDir()
	t.Chdir(base) // restored at the end; same switches between pa and pb
	tw := &twin{t: t, pa: filepath.Join(base, "a"), pb: filepath.Join(base, "b")}
	for _, p := range []string{tw.pa, tw.pb} {
		if err := os.MkdirAll(filepath.Join(p, "remote"), 0o755); err != nil {
			t.Fatal(err)
		}
		id := tw.in(p, nil, append([]string{"--dir", "rep", "init", "--remote", "remote"}, initArgs...))
		if id.code != 0 {
			t.Fatalf("init: %d %s", id.code, id.stderr)
		}
		if p == tw.pa {
			tw.idA = strings.TrimSpace(id.out())
		} else {
			tw.idB = strings.TrimSpace(id.out())
		}
	}
	tw.srv = serveForward(t, filepath.Join(tw.pa, "rep"))
	return tw
}

// in runs the command line with dir as the working directory.
func (tw *twin) in(dir string, stdin []byte, args []string) result {
	tw.t.Helper()
	if err := os.Chdir(dir); err != nil {
		tw.t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.Bytes(), stderr: errb.String()}
}

// same runs args locally in b, then in a (through the server when fwd),
// and fails unless both exit alike with the same stdout and stderr (b's
// replica id read as a's). It returns a's result.
func (tw *twin) same(fwd bool, stdin []byte, args ...string) result {
	tw.t.Helper()
	return tw.compare(fwd, false, stdin, args...)
}

// sizes matches the byte counts of push, pull and sync output.
var sizes = regexp.MustCompile(`(\(|"bytes[a-z_]*":)[0-9]+`)

// compare is same, with loose: byte counts aside.
func (tw *twin) compare(fwd, loose bool, stdin []byte, args ...string) result {
	tw.t.Helper()
	rb := tw.in(tw.pb, stdin, args)
	before := tw.srv.calls.Load()
	ra := tw.in(tw.pa, stdin, args)
	if n := tw.srv.calls.Load() - before; n != map[bool]int64{true: 1, false: 0}[fwd] {
		tw.t.Fatalf("%q: %d requests to the server", args, n)
	}
	rb.stdout = bytes.ReplaceAll(rb.stdout, []byte(tw.idB), []byte(tw.idA))
	rb.stderr = strings.ReplaceAll(rb.stderr, tw.idB, tw.idA)
	if loose {
		// The twins' clocks differ, and so do the sizes of the segments
		// that carry their stamps.
		for _, r := range []*result{&ra, &rb} {
			r.stdout = sizes.ReplaceAll(r.stdout, []byte("${1}N"))
		}
	}
	if ra.code != rb.code || !bytes.Equal(ra.stdout, rb.stdout) || ra.stderr != rb.stderr {
		tw.t.Fatalf("%q:\nthrough the server: exit %d, stdout %q, stderr %q\nlocally:            exit %d, stdout %q, stderr %q",
			args, ra.code, ra.stdout, ra.stderr, rb.code, rb.stdout, rb.stderr)
	}
	return ra
}

// both runs args in a and b alike (locally: for another replica's dir).
func (tw *twin) both(stdin []byte, args ...string) {
	tw.t.Helper()
	for _, p := range []string{tw.pa, tw.pb} {
		if r := tw.in(p, stdin, args); r.code != 0 {
			tw.t.Fatalf("%q in %s: exit %d, stderr %q", args, p, r.code, r.stderr)
		}
	}
}

func (tw *twin) write(name, content string) {
	for _, p := range []string{tw.pa, tw.pb} {
		if err := os.WriteFile(filepath.Join(p, name), []byte(content), 0o644); err != nil {
			tw.t.Fatal(err)
		}
	}
}

// TestForwardSameOutput: while a server holds the replica directory, each
// command runs through it with the stdout, stderr and exit code of the same
// command run locally on a twin replica with the same history: found, not
// found (3), a conflict (4), usage (2), errors (1), --json errors, stdin,
// relative file names, counters and sets, push, pull and sync.
func TestForwardSameOutput(t *testing.T) {
	tw := newTwin(t, "--policy", "c/=counter", "--policy", "s/=set", "--policy", "m/=mv", "--policy", "j/=json")

	tw.same(true, nil, "--dir", "rep", "put", "k1", "v1")
	tw.same(true, []byte("from\x00stdin\n"), "put", "--dir", "rep", "k2")
	tw.same(true, nil, "get", "--dir", "rep", "k1")
	if r := tw.same(true, nil, "get", "--dir", "rep", "k2"); string(r.stdout) != "from\x00stdin\n" {
		t.Fatalf("get k2: %q", r.stdout)
	}
	if r := tw.same(true, nil, "get", "--dir", "rep", "nope"); r.code != ExitNotFound {
		t.Fatalf("get nope: exit %d", r.code)
	}
	if r := tw.same(true, nil, "--json", "get", "--dir", "rep", "nope"); r.code != ExitNotFound || len(r.stdout) == 0 {
		t.Fatalf("--json get nope: exit %d, stdout %q", r.code, r.stdout)
	}
	tw.same(true, nil, "del", "--dir", "rep", "k2")
	tw.same(true, nil, "del", "--dir", "rep", "k2")
	tw.same(true, nil, "put", "--dir", "rep", "k3", "")
	tw.same(true, nil, "put", "--dir", "rep", "--", "-dash", "v")
	tw.same(true, nil, "put", "--dir", "rep", "bad\xffkey", "v")
	tw.same(true, nil, "ls", "--dir", "rep")
	tw.same(true, nil, "ls", "--json", "--dir", "rep")
	tw.same(true, nil, "len", "--dir", "rep")
	tw.same(true, nil, "incr", "--dir", "rep", "c/n", "5")
	tw.same(true, nil, "incr", "--dir", "rep", "c/n", "-2")
	tw.same(true, nil, "put", "--dir", "rep", "c/n", "7")
	tw.same(true, nil, "sadd", "--dir", "rep", "s/x", "a", "b")
	tw.same(true, nil, "srem", "--dir", "rep", "s/x", "a")
	tw.same(true, nil, "smembers", "--dir", "rep", "s/x")
	tw.same(true, nil, "get", "--dir", "rep", "c/n")
	tw.same(true, nil, "pending", "--dir", "rep")
	tw.same(true, nil, "pending", "--json", "--dir", "rep")
	tw.sameStatus()

	// Import: stdin, a malformed stdin (nothing written), a relative file
	// name (the client's working directory), a missing file.
	tw.same(true, []byte(`{"key":"i1","value":"one"}`+"\n"+`{"key":"i2","value_b64":"AP8="}`+"\n"), "import", "--dir", "rep")
	tw.same(true, []byte(`{"key":"i3","value":"x"}`+"\nnot json\n"), "import", "--dir", "rep", "-")
	tw.write("in.jsonl", `{"key":"f1","value":"file"}`+"\n"+`{"key":"c/n","counter":10}`+"\n")
	tw.same(true, nil, "import", "--dir", "rep", "in.jsonl")
	tw.same(true, nil, "import", "--dir", "rep", "missing.jsonl")
	tw.same(true, nil, "export", "--dir", "rep")
	tw.same(true, nil, "export", "--prefix", "i", "--dir", "rep")

	// The remote: push, pull, sync; then a concurrent write by another
	// replica of the same store makes an mv conflict (exit 4).
	tw.compare(true, true, nil, "push", "--dir", "rep")
	tw.compare(true, true, nil, "pull", "--dir", "rep")
	tw.same(true, nil, "put", "--dir", "rep", "m/k", "mine")
	tw.compare(true, true, nil, "sync", "--json", "--dir", "rep")
	tw.both(nil, "--dir", "other", "init", "--remote", "remote")
	tw.both(nil, "--dir", "other", "put", "m/k", "theirs")
	tw.both(nil, "--dir", "other", "sync")
	tw.compare(true, true, nil, "pull", "--dir", "rep")
	if r := tw.same(true, nil, "get", "--dir", "rep", "m/k"); r.code != ExitConflict {
		t.Fatalf("get of a conflict: exit %d", r.code)
	}
	tw.same(true, nil, "export", "--dir", "rep")
	tw.same(true, nil, "pending", "--dir", "rep")
	tw.same(true, nil, "put", "--dir", "rep", "m/k", "settled")
	tw.same(true, nil, "patch", "--dir", "rep", "j/doc", `{"a":1}`)
	tw.same(true, nil, "patch", "--dir", "rep", "j/doc", `not json`)
	tw.same(true, nil, "get", "--json", "--dir", "rep", "j/doc")
	tw.compare(true, true, nil, "compact", "--json", "--dir", "rep")
	tw.same(true, nil, "len", "--dir", "rep")

	// Usage errors are found before anything is sent; help too; init does
	// not open the directory and says that it holds a replica.
	if r := tw.same(false, nil, "get", "--dir", "rep", "--bogus", "k1"); r.code != ExitUsage {
		t.Fatalf("unknown flag: exit %d", r.code)
	}
	tw.same(false, nil, "get", "--dir", "rep")
	tw.same(false, nil, "help", "get")
	tw.same(false, nil, "init", "--dir", "rep", "--remote", "remote")
	tw.same(false, nil, "--dir", "rep", "version")
}

// sameStatus compares status --json through the server and locally.
func (tw *twin) sameStatus() {
	tw.t.Helper()
	args := []string{"status", "--json", "--dir", "rep"}
	rb, ra := tw.in(tw.pb, nil, args), tw.in(tw.pa, nil, args)
	norm := func(r result) map[string]any {
		m := decodeOne(tw.t, r.stdout)
		if m["dir"] != "rep" || r.code != 0 || r.stderr != "" {
			tw.t.Fatalf("status: %s, exit %d, stderr %q", r.stdout, r.code, r.stderr)
		}
		// The clock and the id differ between the twins, the remote's path
		// too; commits counts those since the replica was opened (by the
		// server, for a).
		for _, k := range []string{"hlc", "replica_id", "remote", "commits"} {
			delete(m, k)
		}
		return m
	}
	a, b := norm(ra), norm(rb)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		tw.t.Fatalf("status --json:\nthrough the server %s\nlocally            %s", ja, jb)
	}
}

// TestForwardRefusals: what a held replica cannot do is refused through
// the server with one line and exit 1, changing nothing.
func TestForwardRefusals(t *testing.T) {
	dir := newReplica(t)
	fs := serveForward(t, dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dir", dir, "reidentify"}, "ebreplica: reidentify: `ebreplica serve` holds " + dir + " and takes writes while the id would change; stop serve, run reidentify, then start serve again\n"},
		{[]string{"--dir", dir, "--clock-offset", "1h", "put", "k", "v"}, "ebreplica: put: --clock-offset cannot change the clock of the replica `ebreplica serve` holds in " + dir + "; stop serve to run with it\n"},
	} {
		before := fs.calls.Load()
		r := cli(t, nil, tc.args...)
		if r.code != ExitError || r.stderr != tc.want || len(r.stdout) != 0 || fs.calls.Load() != before+1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1, %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	failsWith(t, ExitNotFound, nil, []string{"--dir", dir, "get", "k"})
	// verify --remote does not open DIR: it runs here.
	remote := decodeOne(t, ok(t, nil, "--dir", dir, "status", "--json").stdout)["remote"].(string)
	before := fs.calls.Load()
	if r := ok(t, nil, "--dir", dir, "verify", "--remote", remote); !strings.HasSuffix(r.out(), "ok\n") || fs.calls.Load() != before {
		t.Fatalf("verify --remote: %q, %d requests", r.out(), fs.calls.Load()-before)
	}
	// --clock-offset 0 changes nothing, and goes through.
	ok(t, nil, "--dir", dir, "--clock-offset", "0s", "put", "k", "v")
	if r := ok(t, nil, "--dir", dir, "get", "k"); r.out() != "v" {
		t.Fatalf("get k: %q", r.out())
	}
}

// TestForwardWatch: watch through the server prints each change as it
// happens (the output streams, it is not held until the end), and an
// interrupt ends it with exit 0, as locally.
func TestForwardWatch(t *testing.T) {
	dir := newReplica(t)
	fs := serveForward(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, []string{"watch", "--since", "0", "--interval", "1h", "--dir", dir}, nil, &out, &errb)
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: stdout %q, stderr %q", what, out.String(), errb.String())
			}
			time.Sleep(5 * time.Millisecond) // polling for an event, not timing it
		}
	}
	waitFor("the watch reaching the server", func() bool { return fs.calls.Load() == 1 })
	ok(t, nil, "--dir", dir, "put", "w1", "x")
	waitFor("the first change", func() bool { return out.String() == "1 put w1 local\n" })
	ok(t, nil, "--dir", dir, "del", "w1")
	waitFor("the second change", func() bool { return out.String() == "1 put w1 local\n2 delete w1 local\n" })
	cancel()
	if c := <-code; c != ExitOK || errb.String() != "" || out.String() != "1 put w1 local\n2 delete w1 local\n" {
		t.Fatalf("watch interrupted: exit %d, stdout %q, stderr %q", c, out.String(), errb.String())
	}
}

// TestForwardInterrupted: an interrupt of the client stops the command in
// the server: put waiting for its value on stdin exits 130, "interrupted",
// and writes nothing.
func TestForwardInterrupted(t *testing.T) {
	dir := newReplica(t)
	fs := serveForward(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	var out, errb lockedBuffer
	code := make(chan int, 1)
	go func() { code <- Run(ctx, []string{"put", "--dir", dir, "k"}, pr, &out, &errb) }()
	if _, err := pw.Write([]byte("part of a value")); err != nil { // read by the client: it is sending stdin
		t.Fatal(err)
	}
	cancel()
	if c := <-code; c != ExitInterrupted || errb.String() != "ebreplica: put: interrupted\n" || out.String() != "" {
		t.Fatalf("put interrupted: exit %d, stdout %q, stderr %q", c, out.String(), errb.String())
	}
	if fs.calls.Load() != 1 {
		t.Fatalf("%d requests", fs.calls.Load())
	}
	failsWith(t, ExitNotFound, nil, []string{"--dir", dir, "get", "k"})
}

// TestForwardStaleSocket: a socket left by a server that is gone (nothing
// answers) is ignored: the command runs locally.
func TestForwardStaleSocket(t *testing.T) {
	dir := newReplica(t)
	ln, err := net.Listen("unix", filepath.Join(dir, serveSocket))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(filepath.Join(dir, serveSocket)); err != nil {
		t.Fatal(err)
	}
	ok(t, nil, "--dir", dir, "put", "k", "v")
	if r := ok(t, nil, "--dir", dir, "get", "k"); r.out() != "v" {
		t.Fatalf("get: %q", r.out())
	}
}

// TestForwardBadRequests: the handler refuses a request that is not a
// command, and one that does not come over the unix socket.
func TestForwardBadRequests(t *testing.T) {
	dir := newReplica(t)
	serveForward(t, dir)
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(dir, serveSocket))
	}}}
	for _, body := range []string{"", "\x02\x00\x00\x00\x01x", "\x01\x00\x00\x00\x02{]"} {
		resp, err := c.Post("http://ebreplica"+cliPath, "application/octet-stream", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), `"code":"bad_request"`) {
			t.Errorf("body %q: %s %s", body, resp.Status, msg)
		}
	}
	// A command the client never forwards (one that does not open DIR, or
	// serve itself) is refused when sent anyway.
	for _, args := range [][]string{{"serve"}, {"init", "--remote", "x"}, {"verify", "--remote", "x"}} {
		hello, _ := json.Marshal(forwardRequest{Args: func() (b [][]byte) {
			for _, a := range append([]string{"--dir", "somewhere"}, args...) {
				b = append(b, []byte(a))
			}
			return b
		}(), Dir: []byte("somewhere")})
		var body bytes.Buffer
		(&frameWriter{w: &body}).frame(frameCommand, hello)
		resp, err := c.Post("http://ebreplica"+cliPath, "application/octet-stream", &body)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			kind, n, err := readFrameHeader(resp.Body)
			if err != nil {
				break
			}
			data := make([]byte, n)
			io.ReadFull(resp.Body, data)
			got = append(got, fmt.Sprintf("%d:%q", kind, data))
		}
		resp.Body.Close()
		want := []string{fmt.Sprintf("%d:%q", frameStderr, "ebreplica: "+args[0]+": "+args[0]+" does not run through the server\n"), fmt.Sprintf("%d:%q", frameExit, "\x00\x00\x00\x01")}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%q sent to the server: %v, want %v", args, got, want)
		}
	}

	// The same handler on TCP takes no command.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: newReplica(t)}
	r, err := e.open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv := &http.Server{Handler: forwardHandler(context.Background(), r, nil, nil)}
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := http.Post("http://"+ln.Addr().String()+cliPath, "application/octet-stream", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("over TCP: %s", resp.Status)
	}
}

// inProcess runs the command line as another process (this test binary as
// ebreplica) in the working directory wd, with stdin.
func inProcess(t *testing.T, wd string, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), execEnv+"=1")
	cmd.Dir, cmd.Stdin = wd, stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stdout: out.Bytes(), stderr: errb.String()}
}

// TestForwardOtherProcess: commands of another process, in another working
// directory than the server's, go through the server (the directory is
// locked, so nothing else would work): a relative FILE is the client's,
// stdin a pipe or a file, and the messages name files as given.
func TestForwardOtherProcess(t *testing.T) {
	dir := newReplica(t)
	fs := serveForward(t, dir)
	wd := t.TempDir()
	if err := os.WriteFile(filepath.Join(wd, "in.jsonl"), []byte(`{"key":"f","value":"from a file"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stdin  io.Reader
		args   []string
		want   result
		wantFn string // the key f's value after, "" to skip
	}{
		{nil, []string{"import", "--dir", dir, "in.jsonl"}, result{stdout: []byte("imported 1\n")}, "from a file"},
		{nil, []string{"import", "--dir", dir, "nope.jsonl"}, result{code: 1, stderr: "ebreplica: import: opening nope.jsonl: open nope.jsonl: no such file or directory\n"}, ""},
		{strings.NewReader("piped\x00"), []string{"put", "--dir", dir, "f"}, result{}, "piped\x00"},
		{openFile(t, filepath.Join(wd, "in.jsonl")), []string{"import", "--dir", dir}, result{stdout: []byte("imported 1\n")}, "from a file"},
		{nil, []string{"get", "--dir", dir, "none"}, result{code: 3, stderr: "ebreplica: get: key \"none\" not found\n"}, ""},
	} {
		before := fs.calls.Load()
		r := inProcess(t, wd, tc.stdin, tc.args...)
		if r.code != tc.want.code || !bytes.Equal(r.stdout, tc.want.stdout) || r.stderr != tc.want.stderr || fs.calls.Load() != before+1 {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q (%d requests); want %d, %q, %q",
				tc.args, r.code, r.stdout, r.stderr, fs.calls.Load()-before, tc.want.code, tc.want.stdout, tc.want.stderr)
		}
		if tc.wantFn != "" {
			if g := inProcess(t, wd, nil, "get", "--dir", dir, "f"); g.out() != tc.wantFn {
				t.Fatalf("after %q: f = %q (%s)", tc.args, g.stdout, g.stderr)
			}
		}
	}
}

func openFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestForwardThroughServe: with `ebreplica serve` running on DIR, commands
// go through it (what they write is what the API reads), a second serve and
// what a held replica cannot do are refused, and a watch through it ends
// with exit 0 when serve shuts down; after it, commands run locally again.
func TestForwardThroughServe(t *testing.T) {
	dir := newReplica(t)
	s := startServe(t, dir)
	ok(t, nil, "--dir", dir, "put", "k", "v")
	if code, body := s.do(http.MethodGet, "/v1/kv/k", ""); code != http.StatusOK || body != "v" {
		t.Fatalf("GET /v1/kv/k after put through the server: %d %q", code, body)
	}
	if r := ok(t, nil, "--dir", dir, "get", "k"); r.out() != "v" {
		t.Fatalf("get k: %q", r.out())
	}
	if r := ok(t, []byte("a\nb\n"), "--dir", dir, "put", "multi"); r.out() != "" {
		t.Fatalf("put from stdin: %q", r.out())
	}
	if code, body := s.do(http.MethodGet, "/v1/kv/multi", ""); code != http.StatusOK || body != "a\nb\n" {
		t.Fatalf("GET /v1/kv/multi: %d %q", code, body)
	}
	failsWith(t, ExitNotFound, nil, []string{"--dir", dir, "get", "none"}, `key "none" not found`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dir", dir, "serve"}, "ebreplica: serve: a server already runs on " + dir + " (api.sock)\n"},
		{[]string{"--dir", dir, "reidentify"}, "ebreplica: reidentify: `ebreplica serve` holds " + dir + " and takes writes while the id would change; stop serve, run reidentify, then start serve again\n"},
	} {
		if r := cli(t, nil, tc.args...); r.code != ExitError || r.stderr != tc.want || len(r.stdout) != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1, %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	// serve syncs live: sync --watch through it prints its syncer's rounds
	// (here a push of the writes made meanwhile), and ends with exit 0.
	deadline := time.Now().Add(30 * time.Second)
	sctx, scancel := context.WithCancel(context.Background())
	var sout, serrb lockedBuffer
	scode := make(chan int, 1)
	go func() { scode <- Run(sctx, []string{"--dir", dir, "--json", "sync", "--watch"}, nil, &sout, &serrb) }()
	puts := 0 // of the key round
	for i := 0; !strings.Contains(sout.String(), `"push":{`); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("sync --watch through serve: stdout %q, stderr %q", sout.String(), serrb.String())
		}
		if i%200 == 0 { // a write for the syncer to push (again, if the command was not listening yet)
			ok(t, nil, "--dir", dir, "put", "round", strconv.Itoa(i))
			puts++
		}
		time.Sleep(5 * time.Millisecond) // polling for an event, not timing it
	}
	scancel()
	if c := <-scode; c != ExitOK || serrb.String() != "" {
		t.Fatalf("sync --watch through serve: exit %d, stderr %q", c, serrb.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(sout.String()), "\n") {
		var rd map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &rd); err != nil {
			t.Fatalf("sync --watch line %q: %v", line, err)
		}
		for _, f := range []string{"time", "pull", "push", "error"} {
			if _, ok := rd[f]; !ok {
				t.Fatalf("sync --watch line %q has no %q", line, f)
			}
		}
	}
	ok(t, nil, "--dir", dir, "del", "round")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	code := make(chan int, 1)
	go func() { code <- Run(ctx, []string{"watch", "--since", "0", "--dir", dir}, nil, &out, &errb) }()
	ok(t, nil, "--dir", dir, "del", "multi")
	lines := "1 put k local\n2 put multi local\n"
	for j := range puts {
		lines += fmt.Sprintf("%d put round local\n", 3+j)
	}
	lines += fmt.Sprintf("%d delete round local\n%d delete multi local\n", 3+puts, 4+puts)
	for out.String() != lines {
		if time.Now().After(deadline) {
			t.Fatalf("watch through serve: stdout %q, stderr %q", out.String(), errb.String())
		}
		time.Sleep(5 * time.Millisecond) // polling for an event, not timing it
	}
	if c := s.shutdown(); c != ExitOK {
		t.Fatalf("serve: exit %d, stderr %s", c, s.stderr.String())
	}
	if c := <-code; c != ExitOK || out.String() != lines || errb.String() != "" {
		t.Fatalf("watch when serve stopped: exit %d, stdout %q, stderr %q", c, out.String(), errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, serveSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api.sock after serve: %v", err)
	}
	if r := ok(t, nil, "--dir", dir, "get", "k"); r.out() != "v" {
		t.Fatalf("get k after serve: %q", r.out())
	}
}

// TestForwardProgressOnTerminal: progress the command line draws shows on
// the client's terminal when the command runs through the server (the
// server is told that stderr is a terminal), and the output is unchanged.
func TestForwardProgressOnTerminal(t *testing.T) {
	dir := newReplica(t)
	fs := serveForward(t, dir)
	var in strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&in, `{"key":"k%05d","value":"%s"}`+"\n", i, strings.Repeat("v", 200))
	}
	term, out := onTerminal(t, []byte(in.String()), "import", "--dir", dir)
	if out != "imported 5000\n" || fs.calls.Load() != 1 {
		t.Fatalf("stdout %q, %d requests", out, fs.calls.Load())
	}
	for _, want := range []string{"import  20% |", "(1000/5000, ", " records/s)", "import  80% |"} {
		if !strings.Contains(term, want) {
			t.Errorf("the terminal did not show %q: %q", want, term)
		}
	}
}

// brokenWriter fails every write, as a closed pipe does.
type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestForwardStdoutFails: when the client's stdout fails, the command
// fails as it does locally (exit 1, "writing output").
func TestForwardStdoutFails(t *testing.T) {
	local, held := newReplica(t), newReplica(t)
	fs := serveForward(t, held)
	for _, dir := range []string{local, held} {
		ok(t, nil, "--dir", dir, "put", "k", "v")
	}
	var got []string
	for _, dir := range []string{local, held} {
		var errb bytes.Buffer
		code := Run(context.Background(), []string{"--dir", dir, "ls"}, nil, brokenWriter{}, &errb)
		got = append(got, fmt.Sprintf("%d %s", code, errb.String()))
	}
	if got[0] != got[1] || got[0] != "1 ebreplica: ls: writing output: broken pipe\n" || fs.calls.Load() != 2 {
		t.Fatalf("locally %q, through the server %q", got[0], got[1])
	}
}
