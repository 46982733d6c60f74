package fsck_test

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

// The engine's test helpers that the verify tests use, as they are in
// internal/engine's tests.

type fakeWall struct{ t time.Time }

func (w *fakeWall) now() time.Time { w.t = w.t.Add(time.Millisecond); return w.t }

func newReplicaOpts(t *testing.T, b remote.Backend, o engine.Options) *engine.Engine {
	t.Helper()
	w := &fakeWall{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	o.InMemory, o.Create, o.Backend = true, true, b
	if o.Wall == nil {
		o.Wall = w.now
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

func mustSync(t *testing.T, r *engine.Engine) engine.SyncStats {
	t.Helper()
	s, err := r.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync %s: %v", r.ID().Short(), err)
	}
	return s
}

func objects(t *testing.T, b remote.Backend, prefix string) []string {
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

func backends() map[string]func(t *testing.T) remote.Backend {
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

// state is a replica's full state: every record with its clock and
// versions (not only what reads show).
func state(t *testing.T, r *engine.Engine) string {
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
