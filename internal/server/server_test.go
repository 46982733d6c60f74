package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/server"
	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/replica"
)

// TestSlowLoris: a client that sends its headers a byte at a time and
// stalls before their end is cut off by ReadHeaderTimeout; the server
// answers others meanwhile.
func TestSlowLoris(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{ReadHeaderTimeout: 200e6})
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, b := range []byte("PUT /v1/kv/k HTTP/1.1\r\nHost: localhost\r\nContent-Le") {
		if _, err := conn.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	if a := ts.do("GET", "/healthz", nil); a.status != 200 {
		t.Fatalf("healthz meanwhile: %d", a.status)
	}
	// The server closes the connection; the bound here only catches a
	// server that never does.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the stalled client was never cut off")
	}
	if n := r.Len(); n != 0 {
		t.Fatal("written")
	}
}

// TestGracefulShutdown: when Serve's context ends, a PUT in flight (its
// body half sent) is finished and answered, and is on disk after the
// replica is reopened; a watch stream is ended; new connections are
// refused; Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	r, _ := newReplica(t, "", "", nil) // durable writes (fsync), the default
	dir := r.Dir()
	ts := start(t, r, server.Options{})
	stream := openWatch(t, ts.tcp, ts.base+"/v1/watch")
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PUT /v1/kv/inflight HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhello"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the PUT is being read", func() bool { return stackHas("server.(*Server).put(") })

	served := make(chan error, 1)
	go func() { served <- ts.shutdown() }()
	eventually(t, "the listener is closed", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if _, err := stream.next(); err == nil {
		t.Fatal("the watch stream goes on after shutdown")
	}
	if _, err := io.WriteString(conn, "world"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 204 {
		t.Fatalf("in-flight PUT: %d", resp.StatusCode)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := replica.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if v, _ := value(t, r2, "inflight"); v != "helloworld" {
		t.Fatalf("after reopen: %q", v)
	}
}

// stackHas reports whether a goroutine runs fn.
func stackHas(fn string) bool {
	buf := make([]byte, 1<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte(fn))
}

// TestCausalContext: a read's context, given back with a write, keeps a
// write made meanwhile on another replica as a sibling (a 409 under mv
// with both versions), and the 409's context resolves them; a bad context
// is 400 and writes nothing.
func TestCausalContext(t *testing.T) {
	a, remoteURL := newReplica(t, "", "mv", nil)
	b, _ := newReplica(t, remoteURL, "mv", nil)
	defer b.Close()
	ts := start(t, a, server.Options{})
	ctx := context.Background()
	ts.put("cart", "v0")
	if a := ts.do("POST", "/v1/sync", nil); a.status != 200 {
		t.Fatalf("sync: %d %q", a.status, a.body)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	read := ts.do("GET", "/v1/kv/cart", nil)
	cc := read.header.Get("X-Ebreplica-Context")
	if read.status != 200 || string(read.body) != "v0" || cc == "" {
		t.Fatalf("GET: %d %q %q", read.status, read.body, cc)
	}
	if err := b.Put(ctx, "cart", []byte("from-b")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a := ts.do("POST", "/v1/pull", nil); a.status != 200 {
		t.Fatalf("pull: %d %q", a.status, a.body)
	}
	// A bad context, or one of another key: 400, nothing written.
	ts.put("other", "x")
	otherCC := ts.do("GET", "/v1/kv/other", nil).header.Get("X-Ebreplica-Context")
	for _, bad := range []string{"not a context!", otherCC} {
		ts.do("PUT", "/v1/kv/cart", []byte("bad"), "X-Ebreplica-Context", bad).wantError(t, 400, "bad_request")
		ts.do("DELETE", "/v1/kv/cart", nil, "X-Ebreplica-Context", bad).wantError(t, 400, "bad_request")
	}
	if vs, _ := a.Versions("cart"); len(vs) != 1 || string(vs[0].Value) != "from-b" {
		t.Fatalf("after bad contexts: %+v", vs)
	}

	if r := ts.do("PUT", "/v1/kv/cart", []byte("from-a"), "X-Ebreplica-Context", cc); r.status != 204 {
		t.Fatalf("PUT with context: %d %q", r.status, r.body)
	}
	conflict := ts.do("GET", "/v1/kv/cart", nil)
	m := conflict.wantError(t, 409, "conflict")
	vs, _ := m["versions"].([]any)
	got := map[string]bool{}
	for _, v := range vs {
		got[v.(map[string]any)["value"].(string)] = true
		for _, f := range []string{"value_b64", "deleted", "replica_id", "hlc"} {
			if _, ok := v.(map[string]any)[f]; !ok {
				t.Fatalf("version without %s: %v", f, v)
			}
		}
	}
	if len(vs) != 2 || !got["from-a"] || !got["from-b"] {
		t.Fatalf("409 versions %v", vs)
	}
	all := ts.do("GET", "/v1/kv/cart?all=1", nil)
	var av struct {
		Versions []struct {
			ValueB64  string `json:"value_b64"`
			Deleted   bool   `json:"deleted"`
			ReplicaID string `json:"replica_id"`
			HLC       string `json:"hlc"`
		} `json:"versions"`
		Context string            `json:"context"`
		Vector  map[string]uint64 `json:"vector"`
	}
	if err := json.Unmarshal(all.body, &av); err != nil || all.status != 200 {
		t.Fatalf("?all=1: %d %q %v", all.status, all.body, err)
	}
	if len(av.Versions) != 2 || av.Context == "" || len(av.Vector) != 2 || av.Versions[0].HLC == "" {
		t.Fatalf("?all=1: %s", all.body)
	}
	// conflicts=1 lists the conflicted key alone.
	if r := ts.do("GET", "/v1/kv?conflicts=1", nil); r.status != 200 ||
		string(r.body) != `{"items":[{"key":"cart","size":0,"versions":2,"conflict":true}],"next":null}`+"\n" {
		t.Fatalf("conflicts=1: %d %s", r.status, r.body)
	}
	ts.do("GET", "/v1/kv?conflicts=maybe", nil).wantError(t, 400, "bad_request", "conflicts")
	// The 409's context settles both.
	cc409 := conflict.header.Get("X-Ebreplica-Context")
	if cc409 == "" || cc409 != m["context"] {
		t.Fatalf("409 context header %q body %v", cc409, m["context"])
	}
	if r := ts.do("PUT", "/v1/kv/cart", []byte("merged"), "X-Ebreplica-Context", cc409); r.status != 204 {
		t.Fatalf("PUT merged: %d %q", r.status, r.body)
	}
	if r := ts.do("GET", "/v1/kv/cart", nil); r.status != 200 || string(r.body) != "merged" {
		t.Fatalf("after merge: %d %q", r.status, r.body)
	}
	if r := ts.do("GET", "/v1/kv?conflicts=1", nil); string(r.body) != `{"items":[],"next":null}`+"\n" {
		t.Fatalf("conflicts=1 after the merge: %s", r.body)
	}
	ts.do("GET", "/v1/kv/cart?all=x", nil).wantError(t, 400, "bad_request", "all")
	ts.do("GET", "/v1/kv/nope?all=1", nil).wantError(t, 404, "not_found")
}

// TestSyncStatusMetrics: POST /v1/push, /v1/pull and /v1/sync answer the
// stats objects the command line prints with --json (the same fields in
// the same order); status is status --json plus "live"; a failing remote
// is 503 unavailable; /metrics is Prometheus text with the replica's
// metrics.
func TestSyncStatusMetrics(t *testing.T) {
	reg := replica.NewMetricsRegistry()
	r, _ := newReplica(t, "", "", &replica.Options{Metrics: reg})
	ts := start(t, r, server.Options{Metrics: reg})
	ts.put("k", "v")
	same := func(path string, v any) {
		t.Helper()
		a := ts.do("POST", path, nil)
		if a.status != 200 || a.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q", path, a.status, a.body)
		}
		if err := json.Unmarshal(a.body, v); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b) // as the command line's writeJSON
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		if b.String() != string(a.body) {
			t.Fatalf("%s answered %q; the CLI prints %q", path, a.body, b.String())
		}
	}
	var push replica.PushStats
	same("/v1/push", &push)
	if push.Records != 1 || push.Pending != 0 {
		t.Fatalf("push %+v", push)
	}
	var pull replica.PullStats
	same("/v1/pull", &pull)
	var sync replica.SyncStats
	same("/v1/sync", &sync)

	a := ts.do("GET", "/v1/status", nil)
	var st map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &st); err != nil {
		t.Fatal(err)
	}
	want, _ := r.Status()
	want.RemoteURL = remoteurl.Redact(want.RemoteURL)
	wb, _ := json.Marshal(want)
	var wm map[string]json.RawMessage
	json.Unmarshal(wb, &wm)
	for k := range wm {
		if _, ok := st[k]; !ok {
			t.Fatalf("status lacks %q: %s", k, a.body)
		}
	}
	if !strings.HasPrefix(string(a.body), `{"replica_id":`) || !strings.Contains(string(a.body), `"live":{"online":false,"last_ok":null,"last_error":null,"lag":0,`) {
		t.Fatalf("status: %s", a.body)
	}

	m := ts.do("GET", "/metrics", nil)
	if m.status != 200 || !strings.Contains(string(m.body), "ebreplica_keys 1") || !strings.Contains(string(m.body), "ebreplica_pushes_total 2") {
		t.Fatalf("metrics: %d %.2000s", m.status, m.body)
	}

	// A remote that fails: 503, the push's pending count.
	bad := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(bad, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r2, _ := newReplica(t, "file://"+bad, "", nil)
	ts2 := start(t, r2, server.Options{})
	ts2.put("k", "v")
	for _, p := range []string{"/v1/push", "/v1/pull", "/v1/sync"} {
		m := ts2.do("POST", p, nil).wantError(t, 503, "unavailable", strings.TrimPrefix(p, "/v1/")+": ")
		if _, ok := m["pending"]; ok != (p != "/v1/pull") {
			t.Fatalf("%s: pending %v", p, m["pending"])
		}
	}
}

// TestCLIOutlivesReadTimeout: a request to the CLI forwarding handler
// streams its body (a forwarded command's stdin and cancel) for as long as
// the command runs, past the server's ReadTimeout.
func TestCLIOutlivesReadTimeout(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	echo := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			t.Error(err)
			return
		}
		w.WriteHeader(200)
		rc.Flush()
		buf := make([]byte, 64)
		for {
			n, err := req.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})
	ts := start(t, r, server.Options{CLI: echo, ReadTimeout: 100e6, Heartbeat: 10e6})
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", ts.base+"/v1/cli", pr)
	go io.WriteString(pw, "one")
	resp, err := ts.tcp.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make([]byte, 3)
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != "one" {
		t.Fatalf("echo %q %v", got, err)
	}
	// Well past the ReadTimeout: 30 heartbeats of a stream, 10ms apart.
	s := openWatch(t, ts.tcp, ts.base+"/v1/watch")
	for s.comments < 30 {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, ":") {
			s.comments++
		}
	}
	go io.WriteString(pw, "two")
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != "two" {
		t.Fatalf("after the ReadTimeout: echo %q %v", got, err)
	}
}

// TestServeListenerFails: a listener that fails ends Serve with its error,
// after shutting the others down.
func TestServeListenerFails(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	defer r.Close()
	good, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bad.Close()
	err = server.New(r, server.Options{}).Serve(context.Background(), good, bad)
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Serve = %v, want the closed listener's error", err)
	}
	if c, err := net.Dial("tcp", good.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the good listener still accepts")
	}
}

// TestBrowserAbuse: what a web page in a browser could send to the
// loopback API is refused with 403 and changes nothing: a cross-origin
// write (CSRF), and without a token any request whose Host is not a
// loopback name (DNS rebinding). Same-origin writes, plain clients, the
// unix socket, and a token-bearing request under any Host are served.
func TestBrowserAbuse(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	ts.do("PUT", "/v1/kv/k", []byte("evil"), "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site").
		wantError(t, 403, "unauthorized", "cross-origin")
	ts.do("POST", "/v1/batch", []byte(`{"ops":[{"op":"put","key":"k","value":"evil"}]}`), "Origin", "http://evil.example").
		wantError(t, 403, "unauthorized", "cross-origin")
	if n := r.Len(); n != 0 {
		t.Fatalf("a refused request wrote: %d keys", n)
	}
	// The inspector's own writes: same origin.
	if a := ts.do("PUT", "/v1/kv/k", []byte("ok"), "Origin", ts.base, "Sec-Fetch-Site", "same-origin"); a.status != 204 {
		t.Fatalf("same-origin PUT: %d %q", a.status, a.body)
	}
	// DNS rebinding: a page of evil.example rebound to 127.0.0.1.
	rebound := func(host string, hdr ...string) answer {
		req, err := http.NewRequest("GET", ts.base+"/v1/kv/k", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := ts.tcp.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header, body}
	}
	rebound("evil.example:80").wantError(t, 403, "unauthorized", "DNS rebinding")
	for _, host := range []string{"localhost", "LOCALHOST:8080", "127.0.0.1:1", "[::1]:9", "app.localhost"} {
		if a := rebound(host); a.status != 200 || string(a.body) != "ok" {
			t.Fatalf("Host %q: %d %q", host, a.status, a.body)
		}
	}
	// The unix socket is out of a browser's reach.
	if a := ts.doUnix("PUT", "/v1/kv/u", []byte("x"), "Origin", "http://evil.example"); a.status != 204 {
		t.Fatalf("unix socket: %d %q", a.status, a.body)
	}
	// With a token, the Host is free (a rebinding page has no token).
	r2, _ := newReplica(t, "", "", nil)
	ts2 := start(t, r2, server.Options{Token: "s3cret"})
	req, _ := http.NewRequest("GET", ts2.base+"/healthz", nil)
	req.Host = "replica.lan:8080"
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("token and a LAN Host: %d", resp.StatusCode)
	}
}
