package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// serving is an `ebreplica serve` running in this process through Run.
type serving struct {
	t      *testing.T
	dir    string
	stderr *lockedBuffer
	stop   context.CancelFunc
	done   chan int
	tcp    string // host:port when --listen was given
	client *http.Client
}

// startServe runs `ebreplica --dir dir serve args...` and waits until it
// listens.
func startServe(t *testing.T, dir string, args ...string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{t: t, dir: dir, stderr: &lockedBuffer{}, stop: cancel, done: make(chan int, 1)}
	go func() {
		s.done <- Run(ctx, append([]string{"--dir", dir, "serve"}, args...), nil, io.Discard, s.stderr)
	}()
	listening := regexp.MustCompile(`listening on http://(\S+)`)
	wantTCP := false
	for _, a := range args {
		wantTCP = wantTCP || a == "--listen"
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := s.stderr.String()
		if strings.Contains(out, "listening on "+filepath.Join(dir, "api.sock")) {
			if m := listening.FindStringSubmatch(out); m != nil {
				s.tcp = m[1]
			}
			if !wantTCP || s.tcp != "" {
				break
			}
		}
		select {
		case code := <-s.done:
			t.Fatalf("serve exited %d before listening: %s", code, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never listened: %s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	sock := filepath.Join(dir, "api.sock")
	s.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(func() {
		if s.done != nil {
			s.shutdown()
		}
	})
	return s
}

// shutdown interrupts serve (as SIGINT does) and returns its exit code.
func (s *serving) shutdown() int {
	s.stop()
	s.client.CloseIdleConnections()
	code := <-s.done
	s.done = nil
	return code
}

func (s *serving) do(method, path, body string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://ebreplica"+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeEndToEnd: serve through Run, the API on its unix socket (mode
// 0600) and on loopback TCP, a second serve refused, a graceful stop on
// interrupt (exit 0, socket removed, the writes on disk).
func TestServeEndToEnd(t *testing.T) {
	dir, remote := t.TempDir(), t.TempDir()
	ok(t, nil, "--dir", dir, "init", "--remote", "file://"+remote)
	s := startServe(t, dir, "--listen", "127.0.0.1:0", "--interval", "50ms")

	fi, err := os.Stat(filepath.Join(dir, "api.sock"))
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("api.sock: %v %v", fi.Mode(), err)
	}
	if code, body := s.do("PUT", "/v1/kv/a%2Fb", "hello"); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := s.do("GET", "/v1/kv/a%2Fb", ""); code != 200 || body != "hello" {
		t.Fatalf("GET: %d %q", code, body)
	}
	resp, err := http.Get("http://" + s.tcp + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "{\"ok\":true}\n" {
		t.Fatalf("healthz over TCP: %d %q", resp.StatusCode, b)
	}
	// The live syncer pushes the write.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := s.do("GET", "/v1/status", "")
		if code == 200 && strings.Contains(body, `"pending":0`) && strings.Contains(body, `"online":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never pushed: %s", body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, body := s.do("GET", "/metrics", ""); code != 200 || !strings.Contains(body, "ebreplica_keys 1") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d %.300s", code, body)
	}

	if code, body := s.do("GET", "/", ""); code != 200 || !strings.Contains(body, "<html") {
		t.Fatalf("inspector page: %d %.200s", code, body)
	}

	r := cli(t, nil, "--dir", dir, "serve")
	checkFailure(t, r, ExitError, []string{"serve"}, "a server already runs on "+dir)

	if code := s.shutdown(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
	if _, err := os.Lstat(filepath.Join(dir, "api.sock")); !os.IsNotExist(err) {
		t.Fatalf("api.sock left behind: %v", err)
	}
	if out := s.stderr.String(); !strings.Contains(out, "shutting down") || !strings.Contains(out, "stopped") {
		t.Fatalf("log: %s", out)
	}
	if got := ok(t, nil, "--dir", dir, "get", "a/b").out(); got != "hello" {
		t.Fatalf("after serve: %q", got)
	}
}

// TestServeSmallProfile: serve under the small profile gives its start-up
// pages back once its live syncer has had a good round, and goes on
// answering and syncing.
func TestServeSmallProfile(t *testing.T) {
	t.Setenv(store.LowMemoryEnv, "")
	released := countReleases(t)
	dir, remote := t.TempDir(), t.TempDir()
	ok(t, nil, "--dir", dir, "init", "--remote", "file://"+remote)
	s := startServe(t, dir, "--interval", "20ms")
	_ = s.shutdown()
	if n := released.Load(); n != 0 && !store.Is32Bit {
		t.Fatalf("the default profile released its start-up pages (%d times)", n)
	}
	s = startServe(t, dir, "--low-memory", "--interval", "20ms")
	if code, body := s.do("PUT", "/v1/kv/k", "v"); code != 204 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for released.Load() == 0 || !strings.Contains(s.statusBody(), `"pending":0`) {
		if time.Now().After(deadline) {
			t.Fatalf("released %d times; status %s", released.Load(), s.statusBody())
		}
		time.Sleep(5 * time.Millisecond) // polling a live process, not timing it
	}
	if code, body := s.do("GET", "/v1/kv/k", ""); code != 200 || body != "v" {
		t.Fatalf("GET after the release: %d %q", code, body)
	}
	if code := s.shutdown(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, s.stderr.String())
	}
	if n := released.Load(); n != 1 {
		t.Fatalf("start-up pages released %d times, want once", n)
	}

	// A replica without a remote (made by the library) has no rounds:
	// serve releases once it has opened.
	local := filepath.Join(t.TempDir(), "local")
	r, err := replica.Init(local, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	s = startServe(t, local, "--low-memory")
	if code, body := s.do("PUT", "/v1/kv/k", "v"); code != 204 {
		t.Fatalf("PUT without a remote: %d %s", code, body)
	}
	if code := s.shutdown(); code != 0 {
		t.Fatalf("serve without a remote exited %d: %s", code, s.stderr.String())
	}
	if n := released.Load(); n != 2 {
		t.Fatalf("serve without a remote: start-up pages released %d times in all, want 2", n)
	}
}

func (s *serving) statusBody() string {
	_, body := s.do("GET", "/v1/status", "")
	return body
}

// TestServeStaleSocket: a socket file left by a server that died is
// replaced; a file that is not a socket is refused and kept.
func TestServeStaleSocket(t *testing.T) {
	dir := t.TempDir()
	ok(t, nil, "--dir", dir, "init", "--remote", "file://"+t.TempDir())
	sock := filepath.Join(dir, "api.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // nothing answers now; the file stays
	if _, err := os.Lstat(sock); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir)
	if code, body := s.do("GET", "/healthz", ""); code != 200 {
		t.Fatalf("healthz: %d %s", code, body)
	}
	if code := s.shutdown(); code != 0 {
		t.Fatalf("exit %d", code)
	}

	if err := os.WriteFile(sock, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cli(t, nil, "--dir", dir, "serve")
	checkFailure(t, r, ExitError, []string{"serve"}, "not a socket")
	if b, _ := os.ReadFile(sock); string(b) != "mine" {
		t.Fatal("the file was touched")
	}
}

// TestServeListenChecks: a non-loopback address needs a token file; an
// empty token file is refused; with a token, TCP requests need it.
func TestServeListenChecks(t *testing.T) {
	dir := t.TempDir()
	ok(t, nil, "--dir", dir, "init", "--remote", "file://"+t.TempDir())
	r := cli(t, nil, "--dir", dir, "serve", "--listen", "0.0.0.0:0")
	checkFailure(t, r, ExitUsage, []string{"serve"}, "not a loopback address", "--token-file")
	r = cli(t, nil, "--dir", dir, "serve", "--listen", ":0")
	checkFailure(t, r, ExitUsage, []string{"serve"}, "not a loopback address")
	r = cli(t, nil, "--dir", dir, "serve", "--listen", "nonsense")
	checkFailure(t, r, ExitUsage, []string{"serve"}, "HOST:PORT")
	empty := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, nil, "--dir", dir, "serve", "--listen", "0.0.0.0:0", "--token-file", empty)
	checkFailure(t, r, ExitError, []string{"serve"}, "empty")
	r = cli(t, nil, "--dir", dir, "serve", "--token-file", filepath.Join(t.TempDir(), "missing"))
	checkFailure(t, r, ExitError, []string{"serve"}, "token file")

	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("  tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, "--listen", "127.0.0.1:0", "--token-file", tok)
	put := func(auth string) int {
		req, _ := http.NewRequest("PUT", "http://"+s.tcp+"/v1/kv/k", strings.NewReader("v"))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := put(""); c != 401 {
		t.Fatalf("no token: %d", c)
	}
	if c := put("Bearer nope"); c != 401 {
		t.Fatalf("wrong token: %d", c)
	}
	if code, _ := s.do("GET", "/v1/kv/k", ""); code != 404 {
		t.Fatalf("after refused puts, GET on the socket: %d", code)
	}
	if c := put("Bearer tok-123"); c != 204 {
		t.Fatalf("the token: %d", c)
	}
	if code := s.shutdown(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestServeLongDir: a directory too deep for a unix socket's path is a
// clear error, and serve leaves nothing behind.
func TestServeLongDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 110))
	ok(t, nil, "--dir", dir, "init", "--remote", "file://"+t.TempDir())
	r := cli(t, nil, "--dir", dir, "serve")
	checkFailure(t, r, ExitError, []string{"serve"}, "shorter --dir")
	if _, err := os.Lstat(filepath.Join(dir, "api.sock")); !os.IsNotExist(err) {
		t.Fatalf("api.sock: %v", err)
	}
	ok(t, nil, "--dir", dir, "put", "k", "v") // the directory is free again
}
