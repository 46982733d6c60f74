package server_test

// Benchmarks of issue 13 (BENCHMARKS.md, "The local HTTP API"): writes and
// reads through the API from many concurrent clients on loopback beside the
// same operations through the Go library in the same run, and the watch
// stream's fan-out to 100 subscribers (every event delivered to every
// subscriber, in order, none lost).
//
//	go test -run '^$' -bench 'BenchmarkServe' -benchtime 2000x -count 3 ./internal/server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/server"
	"github.com/ebreplica/ebreplica/replica"
)

// benchClients is how many HTTP clients (and library goroutines) run at
// once: 32, as the issue asks, on any GOMAXPROCS.
const benchClients = 32

// benchServer opens a replica on disk (durable writes: fsync before a
// write returns) and serves it on a loopback port; it returns the replica,
// the base URL and a client with enough idle connections for benchClients.
func benchServer(b *testing.B) (*replica.Replica, string, *http.Client) {
	b.Helper()
	r, err := replica.Init(b.TempDir(), "file://"+b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := server.New(r, server.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		<-done
		r.Close()
	})
	tr := &http.Transport{MaxIdleConns: 2 * benchClients, MaxIdleConnsPerHost: 2 * benchClients}
	b.Cleanup(tr.CloseIdleConnections)
	return r, "http://" + ln.Addr().String(), &http.Client{Transport: tr}
}

// parallel runs op n times in total from benchClients goroutines; op gets
// the goroutine and a number unique across the run.
func parallel(b *testing.B, op func(g int, i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchClients)
	n := int64(b.N)
	b.ResetTimer()
	for g := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if err := op(g, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func benchValue(i int64) []byte {
	return bytes.Repeat([]byte{byte('a' + i%26)}, 100)
}

// BenchmarkServeWrites: durable 100-byte writes of new keys from 32
// concurrent clients, through the API (PUT on loopback) and through the
// library (Put) in the same run.
func BenchmarkServeWrites(b *testing.B) {
	b.Run("api", func(b *testing.B) {
		_, base, c := benchServer(b)
		parallel(b, func(_ int, i int64) error {
			req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v1/kv/k%09d", base, i), bytes.NewReader(benchValue(i)))
			if err != nil {
				return err
			}
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return fmt.Errorf("PUT: %s", resp.Status)
			}
			return nil
		})
	})
	b.Run("library", func(b *testing.B) {
		r, _, _ := benchServer(b)
		ctx := context.Background()
		parallel(b, func(_ int, i int64) error {
			return r.Put(ctx, fmt.Sprintf("k%09d", i), benchValue(i))
		})
	})
}

// BenchmarkServeReads: reads of 10,000 keys from 32 concurrent clients,
// through the API (GET) and the library (Get) in the same run.
func BenchmarkServeReads(b *testing.B) {
	const keys = 10000
	setup := func(b *testing.B) (*replica.Replica, string, *http.Client) {
		r, base, c := benchServer(b)
		err := r.Batch(context.Background(), func(bt *replica.Batch) error {
			for i := range int64(keys) {
				bt.Put(fmt.Sprintf("k%09d", i), benchValue(i))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return r, base, c
	}
	b.Run("api", func(b *testing.B) {
		_, base, c := setup(b)
		parallel(b, func(_ int, i int64) error {
			resp, err := c.Get(fmt.Sprintf("%s/v1/kv/k%09d", base, i%keys))
			if err != nil {
				return err
			}
			v, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || !bytes.Equal(v, benchValue(i%keys)) {
				return fmt.Errorf("GET: %s %q", resp.Status, v)
			}
			return nil
		})
	})
	b.Run("library", func(b *testing.B) {
		r, _, _ := setup(b)
		parallel(b, func(_ int, i int64) error {
			v, err := r.Get(fmt.Sprintf("k%09d", i%keys))
			if err == nil && !bytes.Equal(v, benchValue(i%keys)) {
				err = fmt.Errorf("Get: %q", v)
			}
			return err
		})
	})
}

// BenchmarkServeFanout: 100 subscribers watch /v1/watch while b.N writes
// land (from 32 writers); each subscriber must receive every write's
// event, sequence numbers strictly rising, none missing. The time is from
// the first write until the last subscriber has the last event.
func BenchmarkServeFanout(b *testing.B) {
	const subscribers = 100
	r, base, _ := benchServer(b)
	ctx := context.Background()
	since, err := r.FeedSeq()
	if err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: subscribers}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	type result struct {
		n   int
		err error
	}
	results := make(chan result, subscribers)
	var ready sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for range subscribers {
		ready.Add(1)
		go func() {
			req, _ := http.NewRequestWithContext(wctx, http.MethodGet, base+"/v1/watch?since="+strconv.FormatUint(since, 10), nil)
			resp, err := c.Do(req)
			if err != nil {
				ready.Done()
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			ready.Done()
			n, last := 0, since
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok {
					continue
				}
				var ch replica.Change
				if err := json.Unmarshal([]byte(data), &ch); err != nil {
					results <- result{n, fmt.Errorf("event %q: %v", data, err)}
					return
				}
				if ch.Seq <= last {
					results <- result{n, fmt.Errorf("seq %d after %d: reordered or repeated", ch.Seq, last)}
					return
				}
				last = ch.Seq
				n++
				if n == b.N {
					results <- result{n, nil}
					return
				}
			}
			results <- result{n, fmt.Errorf("stream ended after %d of %d events: %v", n, b.N, sc.Err())}
		}()
	}
	ready.Wait()
	parallel(b, func(_ int, i int64) error {
		return r.Put(ctx, fmt.Sprintf("k%09d", i), benchValue(i))
	})
	b.StartTimer()
	deadline := time.After(5 * time.Minute)
	for range subscribers {
		select {
		case res := <-results:
			if res.err != nil {
				b.Fatal(res.err)
			}
			if res.n != b.N {
				b.Fatalf("a subscriber got %d of %d events", res.n, b.N)
			}
		case <-deadline:
			b.Fatal("subscribers did not get every event within 5 minutes")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*subscribers)/b.Elapsed().Seconds(), "deliveries/s")
}
