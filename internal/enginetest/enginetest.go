// Package enginetest holds the helpers that the engine's tests and the
// fsck tests share: replicas on a fake wall clock, a fresh store per
// backend kind (memory, a real directory, the real S3 server), and a
// replica's full state. Only tests import it.
package enginetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/store"
)

// Start is the fake wall clocks' origin.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// FakeWall is a wall clock that moves on by a millisecond at every read.
type FakeWall struct{ T time.Time }

// Now reads the clock.
func (w *FakeWall) Now() time.Time { w.T = w.T.Add(time.Millisecond); return w.T }

// NewReplica opens an in-memory replica on b with Relaxed durability, acks
// after every pull, and a fake wall clock unless o has one; it is closed
// when t ends, and connected.
func NewReplica(t testing.TB, b remote.Backend, o engine.Options) *engine.Engine {
	t.Helper()
	w := &FakeWall{T: Start}
	o.InMemory, o.Create, o.Backend = true, true, b
	if o.Wall == nil {
		o.Wall = w.Now
	}
	o.Durability = store.Relaxed
	if o.AckInterval == 0 {
		o.AckInterval = -1
	}
	r, err := engine.Open("", &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, err := r.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// MustSync syncs r or fails t.
func MustSync(t testing.TB, r *engine.Engine) engine.SyncStats {
	t.Helper()
	s, err := r.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync %s: %v", r.ID().Short(), err)
	}
	return s
}

// Objects lists the object names under prefix.
func Objects(t testing.TB, b remote.Backend, prefix string) []string {
	t.Helper()
	var out []string
	for info, err := range b.List(context.Background(), prefix, "") {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info.Key)
	}
	return out
}

// Backends returns a constructor of a fresh, empty store per backend kind:
// memory, a real directory and the real S3 server.
func Backends() map[string]func(t *testing.T) remote.Backend {
	return map[string]func(t *testing.T) remote.Backend{
		"mem": func(t *testing.T) remote.Backend { return memremote.New("e2e") },
		"file": func(t *testing.T) remote.Backend {
			b, err := fileremote.New(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"s3": func(t *testing.T) remote.Backend {
			client, bucket := s3test.NewBucket(t)
			b, err := s3remote.New(client, bucket, "stores/e2e", nil)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

// State is a replica's full state: every record with its clock and
// versions (not only what reads show).
func State(t testing.TB, r *engine.Engine) string {
	t.Helper()
	var sb strings.Builder
	err := r.Store().View(func(v *store.View) error {
		return v.Records("", "", func(key string, st store.Stored) (bool, error) {
			b, err := merge.EncodeRecord(st.Record)
			fmt.Fprintf(&sb, "%s %x\n", key, b)
			return true, err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
