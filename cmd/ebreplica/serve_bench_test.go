package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

// serveBenchKeys is the size of the replica BenchmarkServeIdleRSS serves.
const serveBenchKeys = 100_000

var (
	serveBenchOnce sync.Once
	serveBenchDir  string
	serveBenchErr  error
)

// serveBenchReplica makes (once per process) a replica of serveBenchKeys
// keys of 100 bytes, pushed to a directory remote, and closes it.
func serveBenchReplica() (string, error) {
	serveBenchOnce.Do(func() {
		base, err := os.MkdirTemp("", "ebreplica-serve-bench-")
		if err != nil {
			serveBenchErr = err
			return
		}
		serveBenchDir = filepath.Join(base, "replica")
		if err := os.Mkdir(filepath.Join(base, "remote"), 0o755); err != nil {
			serveBenchErr = err
			return
		}
		r, err := replica.Init(serveBenchDir, "file://"+filepath.Join(base, "remote"), nil)
		if err != nil {
			serveBenchErr = err
			return
		}
		defer r.Close()
		ctx := context.Background()
		val := make([]byte, 100)
		for start := 0; start < serveBenchKeys; start += 10_000 {
			err := r.Batch(ctx, func(b *replica.Batch) error {
				for i := start; i < start+10_000; i++ {
					b.Put(fmt.Sprintf("key/%08d", i), val)
				}
				return nil
			})
			if err != nil {
				serveBenchErr = err
				return
			}
		}
		if _, err := r.PushAll(ctx); err != nil {
			serveBenchErr = err
		}
	})
	return serveBenchDir, serveBenchErr
}

// BenchmarkServeIdleRSS: the resident memory of an idle `ebreplica serve`
// (this test binary run as the command) holding a 100k-key replica: each
// iteration starts serve, waits for /healthz on its socket, lets it idle
// for 10 s (its live syncer polling the remote), reads VmRSS and VmHWM from
// /proc, and stops it with SIGINT; in the default profile and with
// --low-memory.
//
//	go test -run '^$' -bench BenchmarkServeIdleRSS -benchtime 3x ./cmd/ebreplica
func BenchmarkServeIdleRSS(b *testing.B) {
	dir, err := serveBenchReplica()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(filepath.Dir(dir)) })
	b.Run("default", func(b *testing.B) { serveIdleRSS(b, dir) })
	b.Run("low-memory", func(b *testing.B) { serveIdleRSS(b, dir, "--low-memory") })
}

func serveIdleRSS(b *testing.B, dir string, flags ...string) {
	var rss, hwm []float64
	for range b.N {
		cmd := exec.Command(os.Args[0], append(append([]string{"--dir", dir}, flags...), "serve")...)
		cmd.Env = append(os.Environ(), runMain+"=1")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sock := filepath.Join(dir, "api.sock")
		c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}, Timeout: time.Second}
		up := false
		for deadline := time.Now().Add(time.Minute); !up && time.Now().Before(deadline); {
			if resp, err := c.Get("http://serve/healthz"); err == nil {
				resp.Body.Close()
				up = resp.StatusCode == http.StatusOK
			} else {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if !up {
			cmd.Process.Kill()
			cmd.Wait()
			b.Fatal("serve did not answer /healthz within a minute")
		}
		time.Sleep(10 * time.Second) // idle: the measurement itself
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		rss = append(rss, kib(b, status, "VmRSS"))
		hwm = append(hwm, kib(b, status, "VmHWM"))
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("serve after SIGINT: %v", err)
		}
	}
	b.ReportMetric(minOf(rss)/1024, "MiB-RSS-min")
	b.ReportMetric(minOf(hwm)/1024, "MiB-HWM-min")
	b.Logf("VmRSS KiB per run %v, VmHWM KiB per run %v", rss, hwm)
}

func kib(b *testing.B, status []byte, field string) float64 {
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		b.Fatalf("no %s in /proc status", field)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = min(m, x)
	}
	return m
}
