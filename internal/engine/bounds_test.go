package engine_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// metaCount counts the m/<prefix> entries of a replica.
func metaCount(t *testing.T, r *engine.Engine, prefix string) int {
	t.Helper()
	n := 0
	if err := r.Store().View(func(v *store.View) error {
		return v.MetaScan(prefix, func(string, []byte) (bool, error) { n++; return true, nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOwnAndSentStayBounded: m/own (scanned by every pull) and m/sent (one
// entry per staged segment) do not grow with the number of pushes.
func TestOwnAndSentStayBounded(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplica(t, b, 0)
	c := newReplica(t, b, 0)
	for i := range 50 {
		if err := a.Put(ctx, fmt.Sprintf("k%d", i%7), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a)
		if i%5 == 0 {
			mustSync(t, c)
		}
	}
	mustSync(t, a)
	if own, sent := metaCount(t, a, "own/"), metaCount(t, a, "sent/"); own > 1 || sent > 1 {
		t.Fatalf("after 50 pushes and pulls: %d m/own and %d m/sent entries, want at most 1 each", own, sent)
	}
	// A segment under our id that we never staged is still refused: the
	// check of m/sent works for what is above the cursor.
	mustSync(t, c)
	if dump(t, a) != dump(t, c) {
		t.Fatalf("diverged:\n%s\n%s", dump(t, a), dump(t, c))
	}
}

// phantom is a store that answers "exists" to every create of a log
// position and lists none of them.
type phantom struct{ *memremote.Backend }

func (p phantom) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	if strings.HasPrefix(key, remote.LogPrefix) {
		return "", fmt.Errorf("phantom: %w", remote.ErrExists)
	}
	return p.Backend.PutIfAbsent(ctx, key, data)
}

// TestUploadPhantomExistsEnds: an upload against a store that answers
// "exists" for positions it never lists fails after a bounded number of
// requests instead of looping, and keeps the outbox.
func TestUploadPhantomExistsEnds(t *testing.T) {
	ctx := context.Background()
	b := phantom{memremote.New("t")}
	a := newReplica(t, b, 0)
	mustSync(t, a)
	if err := a.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	ps, err := a.Push(ctx)
	if err == nil || !strings.Contains(err.Error(), "no listing shows it") {
		t.Fatalf("push against a phantom store: %v", err)
	}
	if n := ps.Requests.Requests(); n > 100 {
		t.Fatalf("push made %d requests before giving up", n)
	}
	if a.Store().OutboxLen() != 1 {
		t.Fatalf("outbox lost: %d pending", a.Store().OutboxLen())
	}
}

// hiding lists replicas/ without one registry (an inconsistent listing).
type hiding struct {
	*memremote.Backend
	hide string
}

func (h *hiding) List(ctx context.Context, prefix, after string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		for info, err := range h.Backend.List(ctx, prefix, after) {
			if err == nil && h.hide != "" && info.Key == h.hide {
				continue
			}
			if !yield(info, err) {
				return
			}
		}
	}
}

// TestListingMissingRegistryIsConservative: a compactor that once saw a
// replica's registry does not ignore that replica's ack when a later
// listing misses it: its ack still holds collection back, and a registry
// that cannot be read at all stops the compaction.
func TestListingMissingRegistryIsConservative(t *testing.T) {
	ctx := context.Background()
	mem := memremote.New("t")
	h := &hiding{Backend: mem}
	r := newReplica(t, h, 0)
	x := newReplica(t, mem, 0)
	if err := r.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	mustSync(t, x)
	if _, err := r.Compact(ctx, engine.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	// R deletes k; X has not pulled the delete, so its ack holds it.
	if err := r.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	h.hide = remote.RegistryKey(x.ID())
	cs, err := r.Compact(ctx, engine.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Collected != 0 {
		t.Fatalf("collected %d records while X (hidden from the listing) had not acked the delete", cs.Collected)
	}
	// Gone for good (or unreadable): no compaction.
	if err := mem.Delete(ctx, remote.RegistryKey(x.ID())); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Compact(ctx, engine.CompactOptions{}); err == nil || !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("compaction with a known registry missing: %v", err)
	}
}

// TestHostileSegmentBounded: a valid, checksummed 96 KiB segment that
// declares a 1 GiB body (remote/segment/testdata/hostile) stops a pull and
// a verify with a corruption error, allocating a bounded amount, and
// changes nothing locally.
func TestHostileSegmentBounded(t *testing.T) {
	data, err := os.ReadFile("../../remote/segment/testdata/hostile/amp-1gib.seg")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplica(t, b, 0)
	mustSync(t, a)
	if err := b.SetObject(remote.LogKey(1), data); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = a.Pull(ctx)
	rep, verr := a.Verify(ctx, engine.VerifyOptions{})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, segment.ErrCorrupt) {
		t.Fatalf("pull of a hostile segment: %v", err)
	}
	if verr != nil || rep.OK {
		t.Fatalf("verify of a hostile segment: ok=%v %v", rep.OK, verr)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Fatalf("pull and verify allocated %d MiB", got>>20)
	}
	if st, _ := a.Status(); st.Cursor != 0 {
		t.Fatalf("cursor moved to %d", st.Cursor)
	}
}

// TestVerifyProbeObjectIsInfo: a conditional-write probe's scratch object
// (a connect running, or a clean-up that failed) is information, not a
// problem.
func TestVerifyProbeObjectIsInfo(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("t")
	a := newReplica(t, b, 0)
	mustSync(t, a)
	if err := b.SetObject(remote.ProbePrefix+"0123456789abcdef0123456789abcdef", []byte("x")); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Verify(ctx, engine.VerifyOptions{})
	if err != nil || !rep.OK {
		t.Fatalf("verify with a probe object: ok=%v %v %+v", rep.OK, err, rep.Problems)
	}
	found := false
	for _, i := range rep.Info {
		found = found || i.Kind == engine.KindProbe
	}
	if !found {
		t.Fatalf("no probe info: %+v", rep.Info)
	}
}
