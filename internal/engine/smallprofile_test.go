package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/store"
)

// peakGets is a directory remote that counts the Gets of log segments and
// records the most in flight at once.
type peakGets struct {
	remote.Backend
	mu         sync.Mutex
	now, peak  int
	segmentGet int
}

func (p *peakGets) Get(ctx context.Context, key string) (remote.Object, error) {
	if !strings.HasPrefix(key, "log/") {
		return p.Backend.Get(ctx, key)
	}
	p.mu.Lock()
	p.now++
	p.segmentGet++
	p.peak = max(p.peak, p.now)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.now--
		p.mu.Unlock()
	}()
	return p.Backend.Get(ctx, key)
}

// fillRandom writes n keys of size random bytes (incompressible, so the
// segments' raw and stored sizes are alike) and returns them.
func fillRandom(t *testing.T, r *engine.Engine, n, size int, seed uint64) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 19))
	want := map[string][]byte{}
	err := r.Batch(context.Background(), func(b *engine.Batch) error {
		for i := range n {
			v := make([]byte, size)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			k := fmt.Sprintf("big%d/%04d", seed, i)
			want[k] = v
			b.Put(k, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// TestSmallProfileSyncKnobs: under the small profile a replica pulls at
// most SmallPullWindow segments at once, decodes under SmallDecodeBudget
// and pushes segments of at most SmallSegmentCap; the default profile keeps
// 8, 256 MiB and the manifest's 8 MiB cap. A small-profile replica still
// pulls a default-profile peer's segment at the 8 MiB cap (its decode costs
// more than the small budget: it runs alone), through a real directory
// remote and real Badger stores.
func TestSmallProfileSyncKnobs(t *testing.T) {
	ctx := context.Background()
	dirRemote, err := fileremote.New(t.TempDir(), &fileremote.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	be := &peakGets{Backend: dirRemote}
	// getsAtFirstApply: the segment Gets started before the reader applied
	// its first segment, which are those of its first window.
	getsAtFirstApply := -1
	open := func(low bool, progress func(string, int64, int64)) *engine.Engine {
		r, err := engine.Init(t.TempDir(), "file://shared", &engine.Options{Backend: be, LowMemory: low, Durability: store.Relaxed, Progress: progress})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	def, small := open(false, nil), open(true, nil)
	reader := open(true, func(stage string, done, _ int64) {
		if stage == "pull" && done == 1 {
			be.mu.Lock()
			getsAtFirstApply = be.segmentGet
			be.mu.Unlock()
		}
	})

	if w, b, c := def.Knobs(); w != 8 || b != 256<<20 || c != 8<<20 {
		t.Fatalf("default profile knobs: window %d, budget %d, cap %d; want 8, 256 MiB, 8 MiB", w, b, c)
	}
	if w, b, c := small.Knobs(); w != 2 || b != 16<<20 || c != 1<<20 {
		t.Fatalf("small profile knobs: window %d, budget %d, cap %d; want 2, 16 MiB, 1 MiB", w, b, c)
	}

	// The default profile's push: 9 MiB of values in two segments, the
	// first at the 8 MiB cap.
	wantDef := fillRandom(t, def, 90, 100<<10, 1)
	ps, err := def.PushAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Segments != 2 {
		t.Fatalf("the default profile pushed 9 MiB in %d segments, want 2 (8 MiB cap)", ps.Segments)
	}
	var biggest int
	for in, err := range dirRemote.List(ctx, "log/", "") {
		if err != nil {
			t.Fatal(err)
		}
		biggest = max(biggest, int(in.Size))
	}
	if biggest < 8<<20 {
		t.Fatalf("largest segment of the default profile is %d bytes, want one at the 8 MiB cap", biggest)
	}

	// The small profile's push of the same amount: segments of 1 MiB.
	wantSmall := fillRandom(t, small, 90, 100<<10, 2)
	ps, err = small.PushAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Segments < 9 {
		t.Fatalf("the small profile pushed 9 MiB in %d segments, want at least 9 (1 MiB cap)", ps.Segments)
	}

	// A third replica, small profile, pulls them all: the default's two
	// (one of 8 MiB, decoded whole under a budget it exceeds) and the
	// small one's, never more than the small window in flight. The default
	// and the small replica pull each other's.
	be.mu.Lock()
	be.peak, be.segmentGet = 0, 0
	be.mu.Unlock()
	if _, err := reader.Pull(ctx); err != nil {
		t.Fatalf("small profile pulling a default profile's 8 MiB segment: %v", err)
	}
	be.mu.Lock()
	peak, gets := be.peak, be.segmentGet
	be.mu.Unlock()
	if gets < 11 || peak > engine.SmallPullWindow || getsAtFirstApply != engine.SmallPullWindow {
		t.Fatalf("small profile pull: %d Gets, at most %d in flight, %d before the first segment was applied; want 11 or more, a window of %d", gets, peak, getsAtFirstApply, engine.SmallPullWindow)
	}
	for _, r := range []*engine.Engine{def, small} {
		if _, err := r.Pull(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*engine.Engine{def, small, reader} {
		for _, want := range []map[string][]byte{wantDef, wantSmall} {
			for k, v := range want {
				got, err := r.Get(k)
				if err != nil || !bytes.Equal(got, v) {
					t.Fatalf("%s after the pulls: %d bytes, %v; want the %d written", k, len(got), err, len(v))
				}
			}
		}
	}
}
