package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const runMain = "EBREPLICA_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

// Ctrl-C: the process exits 130 and says "interrupted" (issue 15: it said
// "context canceled" and exited 1). The command waits on a server that
// accepts connections and never answers, and gets SIGINT meanwhile.
func TestInterruptExits130(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	dir := filepath.Join(t.TempDir(), "r")
	cmd := exec.Command(os.Args[0], "init", "--dir", dir, "--remote", "s3://bkt/p?endpoint=http://"+ln.Addr().String())
	cmd.Env = append(os.Environ(), runMain+"=1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the command never reached the server; stderr %q", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no exit within 30s of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 || stderr.String() != "ebreplica: init: interrupted\n" || stdout.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 130 and \"ebreplica: init: interrupted\"", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("an interrupted init left %s (%v)", dir, err)
	}
}
