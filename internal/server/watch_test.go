package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/server"
	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// sse is one Server-Sent Event.
type sse struct {
	id, event, data string
}

// sseStream reads events from a watch response.
type sseStream struct {
	resp *http.Response
	rd   *bufio.Reader
	// comments counts the comment lines read (heartbeats).
	comments int
}

func openWatch(t *testing.T, c *http.Client, url string, hdr ...string) *sseStream {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("watch: %d %q", resp.StatusCode, b)
	}
	s := &sseStream{resp: resp, rd: bufio.NewReader(resp.Body)}
	t.Cleanup(func() { resp.Body.Close() })
	return s
}

// next returns the next event (comments skipped and counted); err at the
// stream's end.
func (s *sseStream) next() (sse, error) {
	var e sse
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return e, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if e.data != "" || e.event != "" {
				return e, nil
			}
		case strings.HasPrefix(line, ":"):
			s.comments++
		case strings.HasPrefix(line, "id: "):
			e.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.data = line[6:]
		}
	}
}

func (s *sseStream) mustNext(t *testing.T) sse {
	t.Helper()
	e, err := s.next()
	if err != nil {
		t.Fatalf("watch stream ended: %v", err)
	}
	return e
}

// changeLine is the line `watch --json` prints for c.
func changeLine(t *testing.T, c replica.Change) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b) // as the command line's output
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// TestWatch: one event per change, id the sequence number, data the
// watch --json line; a prefix filters; from now on by default.
func TestWatch(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	ts.put("before", "x") // not in a stream opened after it
	all := openWatch(t, ts.tcp, ts.base+"/v1/watch")
	pre := openWatch(t, ts.unix, "http://ebreplica/v1/watch?prefix=p/")
	ts.put("p/1", "a")
	ts.put("q<&>", "b") // not escaped for HTML, as watch --json prints it
	ts.do("DELETE", "/v1/kv/p/1", nil)
	ts.put("p/2", "c")
	var changes []replica.Change
	for c, err := range r.Watch(context.Background(), "", 0) {
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
		if len(changes) == 5 {
			break
		}
	}
	for i, c := range changes[1:] {
		e := all.mustNext(t)
		if e.id != fmt.Sprint(c.Seq) || e.data != changeLine(t, c) || e.event != "" {
			t.Fatalf("event %d: %+v, want id %d data %s", i, e, c.Seq, changeLine(t, c))
		}
	}
	for _, c := range []replica.Change{changes[1], changes[3], changes[4]} {
		if e := pre.mustNext(t); e.id != fmt.Sprint(c.Seq) || e.data != changeLine(t, c) {
			t.Fatalf("prefix event %+v, want %s", e, changeLine(t, c))
		}
	}
	if !strings.Contains(changes[3].Op, "delete") || changes[1].Origin != "local" {
		t.Fatalf("changes %+v", changes)
	}
	for _, q := range []string{"since=x", "since=-1"} {
		ts.do("GET", "/v1/watch?"+q, nil).wantError(t, 400, "bad_request", "since")
	}
	ts.do("GET", "/v1/watch", nil, "Last-Event-ID", "abc").wantError(t, 400, "bad_request", "Last-Event-ID")
}

// TestWatchResume: a reconnect with Last-Event-ID (or since) gets exactly
// the changes after it: no gap, no duplicate.
func TestWatchResume(t *testing.T) {
	r, _ := newReplica(t, "", "", &replica.Options{Durability: store.Relaxed})
	ts := start(t, r, server.Options{})
	s := openWatch(t, ts.tcp, ts.base+"/v1/watch?since=0")
	for i := range 10 {
		ts.put(fmt.Sprintf("k%d", i), "v")
	}
	var last string
	for range 4 {
		last = s.mustNext(t).id
	}
	s.resp.Body.Close()
	for i := 10; i < 20; i++ {
		ts.put(fmt.Sprintf("k%d", i), "v")
	}
	for _, hdr := range [][]string{{"Last-Event-ID", last}, nil} {
		url := ts.base + "/v1/watch"
		if hdr == nil {
			url += "?since=" + last
		} else {
			url += "?since=0" // Last-Event-ID wins over since
		}
		s2 := openWatch(t, ts.tcp, url, hdr...)
		for i := 4; i < 20; i++ {
			e := s2.mustNext(t)
			var c replica.Change
			if err := json.Unmarshal([]byte(e.data), &c); err != nil {
				t.Fatal(err)
			}
			if e.id != fmt.Sprint(i+1) || c.Seq != uint64(i+1) || c.Key != fmt.Sprintf("k%d", i) {
				t.Fatalf("resumed after %s: event %+v, want seq %d key k%d", last, e, i+1, i)
			}
		}
		s2.resp.Body.Close()
	}
}

// TestWatchFeedTooOld: a resume older than the feed keeps is 410 with a
// clear error, before any stream.
func TestWatchFeedTooOld(t *testing.T) {
	r, _ := newReplica(t, "", "", &replica.Options{Durability: store.Relaxed})
	ts := start(t, r, server.Options{})
	ctx := context.Background()
	for n := 0; n <= store.FeedRetention; n += 10000 {
		err := r.Batch(ctx, func(b *replica.Batch) error {
			for i := range 10000 {
				b.Put(fmt.Sprintf("k%05d", i), []byte{byte(n / 10000)})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	m := ts.do("GET", "/v1/watch?since=1", nil).wantError(t, 410, "not_found", "no longer holds", "watch from now")
	if m["reason"] != "feed_too_old" {
		t.Fatalf("reason %v", m["reason"])
	}
	seq, _ := r.FeedSeq()
	s := openWatch(t, ts.tcp, ts.base+fmt.Sprintf("/v1/watch?since=%d", seq-10))
	if e := s.mustNext(t); e.id != fmt.Sprint(seq-9) {
		t.Fatalf("recent resume: %+v", e)
	}
}

// TestWatchSlowClient: a client that opens a stream and never reads does
// not hold writers up while 10,000 writes go through the API, and its
// handler is dropped by the per-event write deadline (so the memory it
// holds is bounded and released); other streams go on.
func TestWatchSlowClient(t *testing.T) {
	r, _ := newReplica(t, "", "", &replica.Options{Durability: store.Relaxed})
	ts := start(t, r, server.Options{WriteTimeout: 200e6})
	conn, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.UnixConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /v1/watch HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stream's handler runs", func() bool { return watchHandlers() == 1 })
	// A reader that keeps up, to see the writes flow.
	good := openWatch(t, ts.tcp, ts.base+"/v1/watch")

	const writes, workers = 10000, 8
	long := strings.Repeat("x", 200) // fat events fill the socket sooner
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{}
			for i := w; i < writes; i += workers {
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/kv/%s%05d", ts.base, long, i), strings.NewReader("v"))
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 204 {
					errs <- fmt.Errorf("PUT %d: %d", i, resp.StatusCode)
					return
				}
			}
		}()
	}
	go func() {
		for range writes {
			if _, err := good.next(); err != nil {
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := r.Len(); n != writes {
		t.Fatalf("Len %d, want %d", n, writes)
	}
	// The silent client's handler is gone; the good reader's stays.
	eventually(t, "the silent client's handler is dropped", func() bool { return watchHandlers() == 1 })
	ts.put("after", "v")
	s := openWatch(t, ts.tcp, ts.base+"/v1/watch?since="+fmt.Sprint(writes))
	if e := s.mustNext(t); !strings.Contains(e.data, `"key":"after"`) {
		t.Fatalf("after the drop: %+v", e)
	}
}

// TestWatchOutlivesServerTimeouts: a stream is not ended by the server's
// ReadTimeout nor by its WriteTimeout, which bounds each event, not the
// stream: its heartbeats keep coming, then events.
func TestWatchOutlivesServerTimeouts(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{ReadTimeout: 100e6, WriteTimeout: 100e6, Heartbeat: 10e6})
	s := openWatch(t, ts.tcp, ts.base+"/v1/watch")
	// Heartbeats for well past both timeouts: 60 of them, 10ms apart.
	for s.comments < 60 {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %d comments: %v", s.comments, err)
		}
		if strings.HasPrefix(line, ":") {
			s.comments++
		}
	}
	ts.put("k", "v")
	if e := s.mustNext(t); !strings.Contains(e.data, `"key":"k"`) {
		t.Fatalf("event %+v", e)
	}
}

// TestWatchFallsBehind: a stream whose client stops reading while more
// changes than the feed keeps are written ends, once the client reads
// again, with the events it had queued and then an "error" event saying
// the feed is too old (never a silent gap).
func TestWatchFallsBehind(t *testing.T) {
	r, _ := newReplica(t, "", "", &replica.Options{Durability: store.Relaxed})
	// A write deadline longer than the writes below take on a loaded
	// machine: this stream must fall behind the feed, not be dropped as a
	// client that does not read (TestWatchSlowClient).
	ts := start(t, r, server.Options{WriteTimeout: 10 * time.Minute})
	conn, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/watch?since=0 HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stream's handler runs", func() bool { return watchHandlers() == 1 })
	conn.SetReadDeadline(time.Now().Add(5 * time.Minute)) // only against a hang
	ctx := context.Background()
	write := func(n int) {
		for done := 0; done < n; done += 10000 {
			err := r.Batch(ctx, func(b *replica.Batch) error {
				for i := range 10000 {
					b.Put(fmt.Sprintf("k%05d", i), []byte{byte(done / 10000)})
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// More than the socket, the stream's queue and one read of the feed
	// hold: the stream stalls, unread.
	write(20000)
	write(store.FeedRetention)
	rd := bufio.NewReader(conn)
	var last string
	events := 0
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended without an error event after %d events: %v", events, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "id: ") {
			id := line[4:]
			if last != "" && id != fmt.Sprint(mustUint(t, last)+1) {
				t.Fatalf("event %s after %s: a gap", id, last)
			}
			last = id
			events++
		}
		if line == "event: error" {
			data, _ := rd.ReadString('\n')
			if !strings.Contains(data, `"code":"not_found"`) || !strings.Contains(data, `"reason":"feed_too_old"`) || !strings.Contains(data, "no longer holds") {
				t.Fatalf("error event %q", data)
			}
			break
		}
	}
	if events == 0 || events >= 20000 {
		t.Fatalf("%d events before the error", events)
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	var n uint64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
