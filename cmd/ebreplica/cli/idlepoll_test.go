package cli

import (
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/internal/s3test"
)

// serverCounts counts the requests a Proxy passed to the S3 server by
// kind: LIST (a GET with list-type or a bucket-level GET), GET, PUT,
// DELETE and other.
type serverCounts struct{ list, get, head, put, del, other int }

type serverCounter struct {
	mu sync.Mutex
	serverCounts
}

func (c *serverCounter) count(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && (r.URL.Query().Has("list-type") || r.URL.Query().Has("prefix")):
		c.list++
	case r.Method == http.MethodGet:
		c.get++
	case r.Method == http.MethodHead:
		c.head++
	case r.Method == http.MethodPut:
		c.put++
	case r.Method == http.MethodDelete:
		c.del++
	default:
		c.other++
	}
}

func (c *serverCounter) take() serverCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.serverCounts
	c.serverCounts = serverCounts{}
	return out
}

// TestIdlePullOneGET measures, at the real S3 server (versitygw, through
// a counting proxy), what an idle `pull` costs when each is its own
// process (the CLI opens the replica afresh every time): one GET, no
// LIST, nothing written to the remote. A pull that has something to
// fetch lists once to catch up.
func TestIdlePullOneGET(t *testing.T) {
	srv := s3test.Config(t)
	_, bucket := srv.NewBucket(t)
	var c serverCounter
	p := srv.NewProxy(t, func(_ int64, _ http.ResponseWriter, r *http.Request) bool {
		c.count(r)
		return false
	})
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	u := "s3://" + bucket + "/idle?endpoint=" + p.URL
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", u)
	ok(t, nil, "init", "--dir", b, "--remote", u)
	ok(t, nil, "put", "--dir", a, "k", "v")
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "pull", "--dir", a)
	ok(t, nil, "pull", "--dir", b)
	c.take()
	for i := range 3 {
		for _, dir := range []string{a, b} {
			ok(t, nil, "pull", "--dir", dir)
			got := c.take()
			if got != (serverCounts{get: 1}) {
				t.Fatalf("idle pull %d of %s: the server saw %+v, want one GET", i, filepath.Base(dir), got)
			}
		}
	}
	// Catching up: the GET finds log/<cursor+1>, one LIST learns the tip,
	// the probed segment is not fetched again.
	ok(t, nil, "put", "--dir", a, "k2", "v2")
	ok(t, nil, "push", "--dir", a)
	c.take()
	ok(t, nil, "pull", "--dir", b)
	got := c.take()
	if got.list != 1 || got.get != 1 || got.del != 0 {
		t.Fatalf("catching-up pull: the server saw %+v, want one GET and one LIST (and at most the ack's registry swap)", got)
	}
	if v := string(ok(t, nil, "get", "--dir", b, "k2").stdout); v != "v2" {
		t.Fatalf("get k2 on b = %q", v)
	}
}
