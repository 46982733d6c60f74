package replica_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// collect reads n changes from the feed after since.
func collect(t *testing.T, r *replica.Replica, prefix string, since uint64, n int) []replica.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out []replica.Change
	for c, err := range r.Watch(ctx, prefix, since) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
		if len(out) == n {
			break
		}
	}
	return out
}

func changeLine(c replica.Change) string {
	return fmt.Sprintf("%d %s %s %s %v", c.Seq, c.Op, c.Key, c.Origin, c.Conflict)
}

// TestWatch: local writes and pulled changes appear in order with their
// sequence numbers, origin and conflict flag; a resume after a number
// delivers exactly what follows it, also after reopening; a prefix
// filters; a reader that waits is woken by the next write; writing never
// waits for a reader; a resume older than the kept window says so.
func TestWatch(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("watch")
	dir := t.TempDir()
	a, err := replica.Init(dir, "mem://watch", &replica.Options{Backend: mem})
	if err != nil {
		t.Fatal(err)
	}
	b, err := replica.Init("", "mem://watch", &replica.Options{InMemory: true, Backend: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Put(ctx, "x/1", []byte("a")))
	must(a.Put(ctx, "y/1", []byte("a")))
	must(a.Delete(ctx, "x/1"))
	must(b.Put(ctx, "x/2", []byte("b")))
	must(b.Put(ctx, "y/1", []byte("b"))) // concurrent with a's
	_, err = b.Push(ctx)
	must(err)
	ps, err := a.Pull(ctx)
	must(err)
	if fmt.Sprint(ps.Keys) != "[x/2 y/1]" || ps.KeysTruncated {
		t.Fatalf("PullStats.Keys %v", ps.Keys)
	}
	got := collect(t, a, "", 0, 5)
	want := []string{"1 put x/1 local false", "2 put y/1 local false", "3 delete x/1 local false",
		"4 put x/2 remote false", "5 put y/1 remote true"}
	if len(got) != len(want) {
		t.Fatalf("got %d changes", len(got))
	}
	for i := range want {
		if changeLine(got[i]) != want[i] {
			t.Fatalf("change %d: %q, want %q", i, changeLine(got[i]), want[i])
		}
	}
	// Resume after 3, and by prefix.
	if got := collect(t, a, "", 3, 2); changeLine(got[0]) != want[3] || changeLine(got[1]) != want[4] {
		t.Fatalf("resume after 3: %v", got)
	}
	if got := collect(t, a, "y/", 0, 2); changeLine(got[0]) != want[1] || changeLine(got[1]) != want[4] {
		t.Fatalf("prefix y/: %v", got)
	}
	// A reader from now on is woken by the next write.
	wctx, cancel := context.WithCancel(ctx)
	next := make(chan replica.Change, 1)
	go func() {
		for c, err := range a.Watch(wctx, "", replica.WatchFromNow) {
			if err == nil {
				next <- c
			}
			return
		}
	}()
	// The reader may start before or after this write; either way it
	// sees it or the next one.
	must(a.Put(ctx, "z", []byte("1")))
	must(a.Put(ctx, "z", []byte("2")))
	c := <-next
	cancel()
	if c.Key != "z" || c.Seq < 6 {
		t.Fatalf("woken with %+v", c)
	}
	// Reopened: the feed is persisted.
	must(a.Close())
	a, err = replica.Open(dir, &replica.Options{Backend: mem})
	must(err)
	defer a.Close()
	if got := collect(t, a, "", 5, 2); got[0].Seq != 6 || got[1].Seq != 7 || got[1].Key != "z" {
		t.Fatalf("after reopening: %v", got)
	}
	// Nobody reads: writes go on (the feed is in the store, not a
	// channel), past the kept window; a resume from the start then fails
	// clearly.
	for i := 0; i < store.FeedRetention; i += 2000 {
		must(a.Batch(ctx, func(bt *replica.Batch) error {
			for j := range 2000 {
				bt.Put(fmt.Sprintf("bulk/%06d", i+j), []byte("v"))
			}
			return nil
		}))
	}
	for _, err := range a.Watch(ctx, "", 0) {
		if !errors.Is(err, replica.ErrFeedTooOld) {
			t.Fatalf("resume from 0 after %d changes: %v", store.FeedRetention+7, err)
		}
		break
	}
	last := collect(t, a, "bulk/", 7+store.FeedRetention-1, 1)
	if last[0].Key != fmt.Sprintf("bulk/%06d", store.FeedRetention-1) {
		t.Fatalf("last change %+v", last[0])
	}
}
