package cli

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/s3test"
)

// TestTimeoutSilentServer: an S3 endpoint that accepts the connection and
// never answers makes pull, push and sync fail with one line naming the
// remote within about --timeout, instead of hanging; nothing is half-done
// locally (the write stays pending and goes out once the server answers).
func TestTimeoutSilentServer(t *testing.T) {
	srv := s3test.Config(t)
	_, bucket := srv.NewBucket(t)
	var silent atomic.Bool
	release := make(chan struct{})
	p := srv.NewProxy(t, func(_ int64, _ http.ResponseWriter, r *http.Request) bool {
		if !silent.Load() {
			return false
		}
		select { // accept, read, never answer
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the proxy closes
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	u := "s3://" + bucket + "/silent?endpoint=" + p.URL
	dir := filepath.Join(t.TempDir(), "a")
	ok(t, nil, "init", "--dir", dir, "--remote", u)
	ok(t, nil, "sync", "--dir", dir)
	ok(t, nil, "put", "--dir", dir, "k", "v")

	silent.Store(true)
	for _, cmd := range []string{"pull", "push", "sync"} {
		start := time.Now()
		r := cli(t, nil, "--timeout", "1s", cmd, "--dir", dir)
		took := time.Since(start)
		if r.code != ExitError {
			t.Fatalf("%s against a silent server: exit %d, stderr %q", cmd, r.code, r.stderr)
		}
		msg := strings.TrimSpace(string(r.stderr))
		if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "no answer within 1s") || !strings.Contains(msg, "s3://"+bucket+"/silent") {
			t.Fatalf("%s: want one line naming the remote and the timeout, got %q", cmd, msg)
		}
		if took > 10*time.Second {
			t.Fatalf("%s took %v with --timeout 1s", cmd, took)
		}
		t.Logf("%s: %v: %s", cmd, took.Round(time.Millisecond), msg)
	}
	if got := strings.TrimSpace(ok(t, nil, "pending", "--dir", dir).out()); got != "k" {
		t.Fatalf("pending after the failed pushes: %q", got)
	}
	silent.Store(false)
	unblock() // the abandoned requests return; release is never reassigned (handlers still read it)
	ok(t, nil, "sync", "--dir", dir)
	if got := strings.TrimSpace(ok(t, nil, "pending", "--dir", dir).out()); got != "" {
		t.Fatalf("pending after the server came back: %q", got)
	}
	failsWith(t, ExitUsage, nil, []string{"--timeout", "soon", "pull", "--dir", dir}, "--timeout")
}
