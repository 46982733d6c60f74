package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// countingEngine is the simulator's map engine with every point read
// counted by key prefix ("r/" record entries, which hold the outbox marks
// too).
type countingEngine struct {
	*store.Mem
	mu   sync.Mutex
	gets map[string]int
}

type countingReader struct {
	store.Reader
	e *countingEngine
}

func (r countingReader) Get(k []byte) ([]byte, bool, error) {
	if i := bytes.IndexByte(k, '/'); i > 0 {
		r.e.mu.Lock()
		r.e.gets[string(k[:i+1])]++
		r.e.mu.Unlock()
	}
	return r.Reader.Get(k)
}

func (e *countingEngine) View(fn func(store.Reader) error) error {
	return e.Mem.View(func(r store.Reader) error { return fn(countingReader{r, e}) })
}

func (e *countingEngine) Reader() (store.Reader, func()) {
	r, release := e.Mem.Reader()
	return countingReader{r, e}, release
}

// take returns the counts since the last call and starts again.
func (e *countingEngine) take() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.gets
	e.gets = map[string]int{}
	return g
}

// TestPushReadsEachKeyOnce: a push of n changed keys reads each key's
// record entry once (staging checks its mark and encodes it; the commit,
// which compares and clears the mark and raises pos, reuses that read for
// a key no write touched since) and nothing else per key (before, the
// commit read each record again):
// the mark lives in the record entry, and staging takes the keys from the
// outbox log without reading their records there. Format 1 read each
// record twice and each mark once (and before that, three times), which
// in a large store means as many point lookups through every level of the
// LSM tree. A local write reads the record entry once.
func TestPushReadsEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	eng := &countingEngine{Mem: store.NewMem(), gets: map[string]int{}}
	r, err := engine.Open("", &engine.Options{Engine: eng, Create: true, Backend: memremote.New("lookups")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const all, n = 300, 100
	put := func(from, to int, round int) {
		t.Helper()
		if err := r.Batch(ctx, func(b *engine.Batch) error {
			for i := from; i < to; i++ {
				b.Put(fmt.Sprintf("k%04d", i), fmt.Appendf(nil, "v%d-%d", i, round))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(0, all, 0)
	if ps, err := r.Push(ctx); err != nil || ps.Records != all {
		t.Fatalf("first push: %+v, %v", ps, err)
	}
	eng.take()
	put(50, 50+n, 1) // n existing keys
	if g := eng.take(); g["r/"] != n || g["o/"]+g["q/"]+g["l/"] != 0 {
		t.Errorf("a Batch of %d writes read %v, want %d records and no other entry of a key", n, g, n)
	}
	ps, err := r.Push(ctx)
	if err != nil || ps.Records != n || ps.Pending != 0 {
		t.Fatalf("push: %+v, %v", ps, err)
	}
	// Staging reads each record once; the commit reuses what staging read
	// of the keys no write touched since (store.RecordWatch).
	if g := eng.take(); g["r/"] != n || g["o/"] != 0 {
		t.Errorf("a push of %d keys read %v, want %d records and no o/ marks", n, g, n)
	}
	for i := 50; i < 50+n; i++ {
		if v, err := r.Get(fmt.Sprintf("k%04d", i)); err != nil || string(v) != fmt.Sprintf("v%d-1", i) {
			t.Fatalf("k%04d: %q, %v", i, v, err)
		}
	}
}
