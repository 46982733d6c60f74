package replica_test

import (
	"context"
	"testing"

	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// TestFeedSeq: FeedSeq is the newest change's sequence number (0 before
// any), and a watch from it yields exactly the changes made after the
// call, however late the iteration starts.
func TestFeedSeq(t *testing.T) {
	ctx := context.Background()
	r, err := replica.Open(t.TempDir(), &replica.Options{Create: true, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if seq, err := r.FeedSeq(); err != nil || seq != 0 {
		t.Fatalf("FeedSeq of a new replica = %d, %v", seq, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := r.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	seq, err := r.FeedSeq()
	if err != nil || seq != 3 {
		t.Fatalf("FeedSeq = %d, %v; want 3", seq, err)
	}
	if err := r.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, "d", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The iteration starts after those writes: it still begins at seq.
	got := collect(t, r, "", seq, 2)
	if got[0].Seq != 4 || got[0].Key != "a" || got[0].Op != "delete" || got[1].Seq != 5 || got[1].Key != "d" {
		t.Fatalf("after FeedSeq: %v", got)
	}
	r.Close()
	if _, err := r.FeedSeq(); err == nil {
		t.Fatal("FeedSeq of a closed replica: no error")
	}
}
