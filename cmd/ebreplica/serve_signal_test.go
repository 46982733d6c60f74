package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

// lockedBuffer is a bytes.Buffer the test reads while the process writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeSignals: `ebreplica serve` as a process, stopped by SIGTERM and
// by SIGINT while clients write through its socket: it exits 0, logs its
// shutdown, removes api.sock, and every write it answered 204 is in the
// replica afterwards.
func TestServeSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { serveUntilSignal(t, sig) })
	}
}

func serveUntilSignal(t *testing.T, sig syscall.Signal) {
	dir := t.TempDir()
	initCmd := exec.Command(os.Args[0], "init", "--dir", dir, "--remote", "file://"+t.TempDir())
	initCmd.Env = append(os.Environ(), runMain+"=1")
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("init: %v %s", err, out)
	}
	cmd := exec.Command(os.Args[0], "serve", "--dir", dir, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), runMain+"=1")
	var stderr lockedBuffer
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()
	listening := regexp.MustCompile(`listening on http://(\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for !listening.MatchString(stderr.String()) {
		select {
		case err := <-done:
			t.Fatalf("serve exited (%v) before listening: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never listened: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	sock := filepath.Join(dir, "api.sock")
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}

	// Writers until the server is gone; each remembers what it was told
	// was written.
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d/%06d", w, i)
				req, _ := http.NewRequest("PUT", "http://ebreplica/v1/kv/"+strings.ReplaceAll(key, "/", "%2F"), strings.NewReader("v-"+key))
				resp, err := client.Do(req)
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 204 {
					return // 503 while closing, or the like: not acknowledged
				}
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited (%v): %s", err, stderr.String())
		default:
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit after %v: %s", sig, stderr.String())
	}
	wg.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after %v: %s", code, sig, stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{"ebreplica: serve: listening on " + sock, "shutting down", "ebreplica: serve: stopped\n"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout %q", stdout.String())
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("api.sock left: %v", err)
	}
	r, err := replica.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, k := range acked {
		if v, err := r.Get(k); err != nil || string(v) != "v-"+k {
			t.Fatalf("acknowledged write %s lost: %q %v", k, v, err)
		}
	}
	t.Logf("%d acknowledged writes, all there", len(acked))
}
