package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/server"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

// testServer is a Server over a real replica (Badger in a temporary
// directory, a directory remote) serving a loopback TCP listener and a
// unix socket.
type testServer struct {
	t      *testing.T
	r      *replica.Replica
	dir    string
	remote string // the remote's URL
	srv    *server.Server
	base   string // http://127.0.0.1:PORT
	sock   string
	tcp    *http.Client
	unix   *http.Client
	stop   context.CancelFunc
	done   chan error
}

// newReplica makes a replica in a new directory bound to remoteURL ("" :
// a new directory remote), under policy pol for every key ("": lww).
func newReplica(t *testing.T, remoteURL, pol string, o *replica.Options) (*replica.Replica, string) {
	t.Helper()
	if remoteURL == "" {
		remoteURL = "file://" + t.TempDir()
	}
	if o == nil {
		o = &replica.Options{}
	}
	if pol != "" {
		reg := merge.NewRegistry()
		p, ok := merge.Builtin(pol)
		if !ok {
			t.Fatalf("no policy %q", pol)
		}
		reg.Set("", p)
		o.Policies = reg
	}
	dir := t.TempDir()
	r, err := replica.Init(dir, remoteURL, o)
	if err != nil {
		t.Fatal(err)
	}
	return r, remoteURL
}

// newReplicaPolicies makes a replica (with a new directory remote) whose
// keys under each prefix take the named policy (lww elsewhere).
func newReplicaPolicies(t *testing.T, pols map[string]string) *replica.Replica {
	t.Helper()
	reg := merge.NewRegistry()
	for prefix, name := range pols {
		p, ok := merge.Builtin(name)
		if !ok {
			t.Fatalf("no policy %q", name)
		}
		reg.Set(prefix, p)
	}
	r, err := replica.Init(t.TempDir(), "file://"+t.TempDir(), &replica.Options{Policies: reg})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start serves r (closed at cleanup) with so.
func start(t *testing.T, r *replica.Replica, so server.Options) *testServer {
	t.Helper()
	ts := &testServer{t: t, r: r, dir: r.Dir(), done: make(chan error, 1)}
	ts.srv = server.New(r, so)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A short path: unix socket names are limited to about 100 bytes.
	ts.sock = filepath.Join(t.TempDir(), "api.sock")
	ul, err := net.Listen("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	ts.base = "http://" + tl.Addr().String()
	ts.tcp = &http.Client{}
	ts.unix = unixClient(ts.sock)
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = cancel
	go func() { ts.done <- ts.srv.Serve(ctx, tl, ul) }()
	t.Cleanup(func() {
		ts.shutdown()
		r.Close()
	})
	return ts
}

// shutdown ends Serve and returns its error (once).
func (ts *testServer) shutdown() error {
	ts.stop()
	ts.tcp.CloseIdleConnections()
	ts.unix.CloseIdleConnections()
	if ts.done == nil {
		return nil
	}
	err := <-ts.done
	ts.done = nil
	return err
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorBody decodes an error answer, failing unless it is one.
func (a answer) errorBody(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v", a.status, a.body, err)
	}
	if _, ok := m["error"].(string); !ok {
		t.Fatalf("answer %d %q has no error", a.status, a.body)
	}
	if strings.Contains(m["error"].(string), "\n") {
		t.Fatalf("error %q is not one line", m["error"])
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error answer Content-Type %q", ct)
	}
	return m
}

// wantError checks a is an error answer with status and code, whose
// message holds each of want.
func (a answer) wantError(t *testing.T, status int, code string, want ...string) map[string]any {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d (%q), want %d", a.status, a.body, status)
	}
	m := a.errorBody(t)
	if m["code"] != code {
		t.Fatalf("code %v (%q), want %s", m["code"], a.body, code)
	}
	for _, w := range want {
		if !strings.Contains(m["error"].(string), w) {
			t.Fatalf("error %q does not say %q", m["error"], w)
		}
	}
	return m
}

// do sends a request over TCP; hdr is name, value pairs.
func (ts *testServer) do(method, path string, body []byte, hdr ...string) answer {
	ts.t.Helper()
	return ts.doWith(ts.tcp, ts.base, method, path, body, hdr...)
}

// doUnix sends a request over the unix socket.
func (ts *testServer) doUnix(method, path string, body []byte, hdr ...string) answer {
	ts.t.Helper()
	return ts.doWith(ts.unix, "http://ebreplica", method, path, body, hdr...)
}

func (ts *testServer) doWith(c *http.Client, base, method, path string, body []byte, hdr ...string) answer {
	ts.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func (ts *testServer) put(key, value string) {
	ts.t.Helper()
	if a := ts.do("PUT", "/v1/kv/"+key, []byte(value)); a.status != http.StatusNoContent {
		ts.t.Fatalf("PUT %s: %d %q", key, a.status, a.body)
	}
}

// value reads key from the replica directly ("" and false when not found).
func value(t *testing.T, r *replica.Replica, key string) (string, bool) {
	t.Helper()
	v, err := r.Get(key)
	if err != nil {
		return "", false
	}
	return string(v), true
}

// watchHandlers counts the goroutines running a watch stream's handler.
func watchHandlers() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return strings.Count(b.String(), "server.(*Server).watch(")
}

// eventually polls cond until it holds, failing after a generous bound
// (the bound only catches a hang: nothing asserts how long it took).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
