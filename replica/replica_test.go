package replica

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/store"
)

// TestOptionsReachTheEngine sets every field of Options to a non-zero
// value and checks that the engine's options carry each one, by name: a
// field added to Options and forgotten in engine() fails here.
func TestOptionsReachTheEngine(t *testing.T) {
	var o Options
	v := reflect.ValueOf(&o).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(7)
		case reflect.String:
			f.SetString("s")
		}
	}
	o.Durability = store.Relaxed
	o.ID = clock.ReplicaID{1}
	o.Wall = time.Now
	o.Policies = merge.NewRegistry()
	o.Funcs = map[string]merge.Policy{}
	o.Backend = must(fileremote.New(t.TempDir(), nil))
	o.OpenRemote = func(context.Context, string) (remote.Backend, error) { return nil, nil }
	o.Progress = func(string, int64, int64) {}
	o.Keys = must(sealremote.NewKeys())
	o.Logger = nil // a nil *slog.Logger is its zero value: checked below by name only
	e := reflect.ValueOf(o.engine()).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if name == "OpenRemote" || name == "RequestTimeout" || name == "Metrics" || name == "SoftMemoryLimit" {
			continue // the facade's own: it opens the backend it hands the engine, registers metrics, sets the process's limit
		}
		ef := e.FieldByName(name)
		if !ef.IsValid() {
			t.Errorf("engine.Options has no field %s", name)
			continue
		}
		if name != "Logger" && ef.IsZero() {
			t.Errorf("Options.%s does not reach the engine", name)
		}
	}
}

// TestRemoteOpenedOnFirstUse: with no Backend, the recorded URL is opened
// by OpenRemote once, at the first remote operation, and the data flows.
func TestRemoteOpenedOnFirstUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	if err := os.Mkdir(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	opens := 0
	open := func(ctx context.Context, url string) (remote.Backend, error) {
		opens++
		if url != "file://"+bucket {
			t.Errorf("opened %q", url)
		}
		return fileremote.New(bucket, nil)
	}
	a, err := Init(filepath.Join(dir, "a"), "file://"+bucket, &Options{OpenRemote: open})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if opens != 0 {
		t.Fatalf("Init opened the remote %d times", opens)
	}
	if err := a.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if opens != 1 {
		t.Fatalf("opened %d times, want 1", opens)
	}
	b, err := Init(filepath.Join(dir, "b"), "file://"+bucket, &Options{OpenRemote: open})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get("k"); err != nil || string(got) != "v" {
		t.Fatalf("b reads %q, %v", got, err)
	}
}

// TestOpenRemoteErrorAsIs: the opener's error comes back unwrapped, and
// nothing local changes.
func TestOpenRemoteErrorAsIs(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	r, err := Init(filepath.Join(t.TempDir(), "a"), "weird://x", &Options{
		OpenRemote: func(context.Context, string) (remote.Backend, error) { return nil, boom }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx); err != boom {
		t.Fatalf("Push: %v, want the opener's error", err)
	}
	if n := len(collect(t, r)); n != 1 {
		t.Fatalf("%d pending keys, want 1", n)
	}
}

// TestNoRemoteRecorded: a replica with no URL syncs nothing.
func TestNoRemoteRecorded(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "a"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Pull(context.Background()); !errors.Is(err, ErrNoRemote) {
		t.Fatalf("Pull: %v", err)
	}
}

func collect(t *testing.T, r *Replica) []PendingKey {
	var out []PendingKey
	for p, err := range r.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
