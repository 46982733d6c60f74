package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// The behavioural tests below run against every engine: Badger in memory,
// Badger on disk, and the map-backed Mem.

type engineKind struct {
	name string
	// open returns a fresh engine and, when the engine can be reopened
	// after Close (the state survives), a function that reopens it.
	open func(t testing.TB) (eng Engine, reopen func(t testing.TB) Engine)
}

var engineKinds = []engineKind{
	{"badger-inmemory", func(t testing.TB) (Engine, func(testing.TB) Engine) {
		b, err := OpenBadger("", BadgerOptions{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		return b, nil
	}},
	{"badger-dir", func(t testing.TB) (Engine, func(testing.TB) Engine) {
		dir := t.TempDir()
		open := func(t testing.TB) Engine {
			b, err := OpenBadger(dir, BadgerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		return open(t), open
	}},
	{"mem", func(t testing.TB) (Engine, func(testing.TB) Engine) {
		m := NewMem()
		return m, func(testing.TB) Engine { return m }
	}},
	// Mem with the pipelined fsync of Badger: the store's syncer goroutine
	// fsyncs while the writer commits the next groups.
	{"mem-pipelined", func(t testing.TB) (Engine, func(testing.TB) Engine) {
		m := pipelinedMem{NewMem()}
		return m, func(testing.TB) Engine { return m }
	}},
}

type pipelinedMem struct{ *Mem }

func (pipelinedMem) concurrentSync() bool { return true }

// forEachEngine runs fn as a subtest per engine kind.
func forEachEngine(t *testing.T, fn func(t *testing.T, k engineKind)) {
	for _, k := range engineKinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k) })
	}
}

var ctx = context.Background()

// openStore opens a Store on eng and closes it at the end of the test.
func openStore(t testing.TB, eng Engine, o *Options) *Store {
	t.Helper()
	s, err := Open(eng, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore opens a fresh engine of kind k with an initialised replica.
func newStore(t testing.TB, k engineKind, o *Options) (*Store, func(t testing.TB) Engine) {
	t.Helper()
	eng, reopen := k.open(t)
	s := openStore(t, eng, o)
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	return s, reopen
}

// recount counts live records and outbox marks by full scans, and checks
// them (and the persisted counters) against the O(1) counters, and the
// marks against those the outbox log lists (OutboxMarks): every mark is
// listed in it, at or after its low position.
func recount(t testing.TB, s *Store) (live, marks int64) {
	t.Helper()
	var pLive, pPending uint64
	err := s.View(func(v *View) error {
		var err error
		if live, err = v.CountLive(); err != nil {
			return err
		}
		var scanned, listed []string
		if err := v.ScanMarks("", func(k string, m uint64) (bool, error) {
			marks++
			scanned = append(scanned, fmt.Sprint(k, "@", m))
			return true, nil
		}); err != nil {
			return err
		}
		if err := v.OutboxMarks("", func(k string, m uint64) (bool, error) {
			listed = append(listed, fmt.Sprint(k, "@", m))
			return true, nil
		}); err != nil {
			return err
		}
		if !slices.Equal(scanned, listed) {
			t.Errorf("marks in the records %v, listed in the outbox log %v", scanned, listed)
		}
		if pLive, err = getUint(v.r, keyLive); err != nil {
			return err
		}
		pPending, err = getUint(v.r, keyPending)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != live || int64(pLive) != live {
		t.Errorf("live: Len()=%d m/live=%d, recount %d", s.Len(), pLive, live)
	}
	if s.OutboxLen() != marks || int64(pPending) != marks {
		t.Errorf("pending: OutboxLen()=%d m/pending=%d, marks %d", s.OutboxLen(), pPending, marks)
	}
	return live, marks
}

func put(t testing.TB, s *Store, key, val string) merge.Version {
	t.Helper()
	var v merge.Version
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		v, err = tx.Write(key, []byte(val), false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// value returns the lww read of key: ok is false when the key is absent or
// reads as deleted.
func value(t testing.TB, s *Store, key string) (string, bool) {
	t.Helper()
	var out string
	var ok bool
	err := s.View(func(v *View) error {
		st, had, err := v.Record(key)
		if err != nil || !had {
			return err
		}
		res, err := merge.Read(merge.LWW{}, key, st.Record)
		if err != nil {
			return err
		}
		out, ok = string(res.Value), !res.Deleted
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, ok
}

func metaUint(t testing.TB, s *Store, k []byte) uint64 {
	t.Helper()
	var n uint64
	if err := s.View(func(v *View) error {
		var err error
		n, err = getUint(v.r, k)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitQueued waits (without sleeping) until n requests sit in the writer's
// channel.
func waitQueued(t testing.TB, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(s.reqs), n)
		}
		runtime.Gosched()
	}
}

// blockWriter submits a request that holds the writer until release is
// closed; it returns once the writer runs it, and a channel with its result.
func blockWriter(t testing.TB, s *Store, release chan struct{}) chan error {
	t.Helper()
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		res <- s.Update(ctx, func(tx *Tx) error {
			close(started)
			<-release
			_, err := tx.Write("blocker", []byte("b"), false)
			return err
		})
	}()
	<-started
	return res
}

// TestGroupSemantics queues requests behind a blocked writer so that they
// run as one group, deterministically: a later request sees the writes of
// earlier ones; a failing or cancelled request applies nothing and does not
// disturb the others.
func TestGroupSemantics(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		put(t, s, "base", "0")
		release := make(chan struct{})
		blocked := blockWriter(t, s, release)
		commits := s.Commits()

		type result struct {
			name string
			err  error
		}
		results := make(chan result, 8)
		var seenByB, seenByD, seenByE string
		var seenByDok, seenByEok bool
		cctx, cancel := context.WithCancel(ctx)
		reqs := []struct {
			name string
			ctx  context.Context
			fn   func(tx *Tx) error
		}{
			{"a", ctx, func(tx *Tx) error {
				_, err := tx.Write("x", []byte("from-a"), false)
				return err
			}},
			{"b", ctx, func(tx *Tx) error {
				st, ok, err := tx.Record("x")
				if err != nil || !ok {
					return fmt.Errorf("b does not see a's write: %v %v", ok, err)
				}
				seenByB = string(st.Versions[0].Value)
				_, err = tx.Write("y", []byte("from-b"), false)
				return err
			}},
			{"c-fails", ctx, func(tx *Tx) error {
				if _, err := tx.Write("x", []byte("from-c"), false); err != nil {
					return err
				}
				if _, err := tx.Write("z", []byte("from-c"), false); err != nil {
					return err
				}
				if err := tx.DeleteRecord("base"); err != nil {
					return err
				}
				tx.SetMeta("c", []byte("c"))
				return errors.New("c fails")
			}},
			{"d", ctx, func(tx *Tx) error {
				st, ok, err := tx.Record("x")
				if err != nil {
					return err
				}
				if ok {
					seenByD = string(st.Versions[0].Value)
				}
				_, seenByDok, err = tx.Record("z")
				if err != nil {
					return err
				}
				_, err = tx.Write("x", []byte("from-d"), false)
				return err
			}},
			{"e-cancelled", cctx, func(tx *Tx) error {
				_, err := tx.Write("e", []byte("from-e"), false)
				return err
			}},
			{"f", ctx, func(tx *Tx) error {
				st, ok, err := tx.Record("x")
				if err != nil {
					return err
				}
				seenByE, seenByEok = string(st.Versions[0].Value), ok
				_, err = tx.Write("base", nil, true)
				return err
			}},
		}
		for i, r := range reqs {
			go func() {
				results <- result{r.name, s.Update(r.ctx, r.fn)}
			}()
			waitQueued(t, s, i+1)
		}
		cancel()
		close(release)
		if err := <-blocked; err != nil {
			t.Fatal(err)
		}
		got := map[string]error{}
		for range reqs {
			r := <-results
			got[r.name] = r.err
		}
		for _, n := range []string{"a", "b", "d", "f"} {
			if got[n] != nil {
				t.Errorf("request %s: %v", n, got[n])
			}
		}
		if got["c-fails"] == nil || got["c-fails"].Error() != "c fails" {
			t.Errorf("request c: %v", got["c-fails"])
		}
		if !errors.Is(got["e-cancelled"], context.Canceled) {
			t.Errorf("request e: %v", got["e-cancelled"])
		}
		if seenByB != "from-a" || seenByD != "from-a" || seenByDok || !seenByEok || seenByE != "from-d" {
			t.Errorf("views inside the group: b=%q d=%q d-saw-z=%v f=%q", seenByB, seenByD, seenByDok, seenByE)
		}
		if n := s.Commits() - commits; n != 2 {
			t.Errorf("%d commits for the blocker and one group, want 2", n)
		}
		for key, want := range map[string]string{"x": "from-d", "y": "from-b", "blocker": "b"} {
			if v, ok := value(t, s, key); !ok || v != want {
				t.Errorf("%s = %q %v, want %q", key, v, ok, want)
			}
		}
		for _, key := range []string{"z", "e", "base"} {
			if v, ok := value(t, s, key); ok {
				t.Errorf("%s = %q, want absent or deleted", key, v)
			}
		}
		err := s.View(func(v *View) error {
			if _, ok, _ := v.Record("z"); ok {
				t.Error("record z of the failed request exists")
			}
			if _, ok, _ := v.Record("base"); !ok {
				t.Error("record base deleted whole by the failed request")
			}
			if _, ok, _ := v.Meta("c"); ok {
				t.Error("meta of the failed request exists")
			}
			if _, ok, _ := v.OutboxMark("z"); ok {
				t.Error("mark of the failed request exists")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		live, marks := recount(t, s)
		// live: x y blocker (f deleted base); marks: base x y blocker.
		if live != 3 || marks != 4 {
			t.Errorf("live %d marks %d, want 3 and 4", live, marks)
		}
		// Dots are dense: the failed and cancelled requests consumed none.
		// base(1) blocker(2) a(3) b(4) d(5) f(6).
		if c := metaUint(t, s, keyCounter); c != 6 {
			t.Errorf("m/counter = %d, want 6", c)
		}
	})
}

// op is one step of the model check in TestGroupCommitConcurrent.
type op struct {
	seq  int64 // execution order in the writer
	key  string
	kind int // opPut, opDel, opClearMark, opDeleteRecord
	val  string
}

const (
	opPut = iota
	opDel
	opClearMark
	opDeleteRecord
)

// TestGroupCommitConcurrent runs many concurrent requests over shared keys,
// a quarter of which fail after writing. Requests run in the writer one at
// a time, so a global sequence taken inside each request gives the order in
// which their effects apply; the final state must equal a model replaying
// the successful requests in that order. Counters must equal a recount.
func TestGroupCommitConcurrent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		for _, dur := range []Durability{Sync, Relaxed} {
			t.Run(dur.String(), func(t *testing.T) {
				s, reopen := newStore(t, k, &Options{Durability: dur})
				testGroupCommitConcurrent(t, s)
				if reopen == nil {
					return
				}
				// The counters and data survive a reopen.
				live, marks := s.Len(), s.OutboxLen()
				counter := metaUint(t, s, keyCounter)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s2 := openStore(t, reopen(t), &Options{Durability: dur})
				if s2.Len() != live || s2.OutboxLen() != marks || metaUint(t, s2, keyCounter) != counter {
					t.Errorf("after reopen: len %d pending %d counter %d, before %d %d %d",
						s2.Len(), s2.OutboxLen(), metaUint(t, s2, keyCounter), live, marks, counter)
				}
				recount(t, s2)
			})
		}
	})
}

func testGroupCommitConcurrent(t *testing.T, s *Store) {
	const goroutines, perG, nkeys = 16, 40, 24
	var seq atomic.Int64
	var mu sync.Mutex
	var applied []op
	var failed, dots []uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range perG {
				fail := rng.IntN(4) == 0
				nops := 1 + rng.IntN(4)
				var ops []op
				var myDots []uint64
				err := s.Update(ctx, func(tx *Tx) error {
					ops, myDots = ops[:0], myDots[:0]
					for range nops {
						o := op{seq: seq.Add(1), key: fmt.Sprintf("k%02d", rng.IntN(nkeys))}
						switch r := rng.IntN(10); {
						case r < 6:
							o.kind, o.val = opPut, fmt.Sprintf("%d-%d-%d", g, i, o.seq)
						case r < 8:
							o.kind = opDel
						case r < 9:
							o.kind = opClearMark
						default:
							o.kind = opDeleteRecord
						}
						var err error
						var v merge.Version
						switch o.kind {
						case opPut:
							v, err = tx.Write(o.key, []byte(o.val), false)
						case opDel:
							v, err = tx.Write(o.key, nil, true)
						case opClearMark:
							err = tx.ClearOutboxMark(o.key)
						case opDeleteRecord:
							err = tx.DeleteRecord(o.key)
						}
						if err != nil {
							return err
						}
						if v.Dot.Counter != 0 {
							myDots = append(myDots, v.Dot.Counter)
						}
						ops = append(ops, o)
					}
					if fail {
						// Poison: writes that must never be seen.
						if _, err := tx.Write(fmt.Sprintf("poison/%d-%d", g, i), []byte("x"), false); err != nil {
							return err
						}
						return fmt.Errorf("request %d-%d fails", g, i)
					}
					return nil
				})
				mu.Lock()
				switch {
				case err == nil && !fail:
					applied = append(applied, ops...)
					dots = append(dots, myDots...)
				case err != nil && fail:
					failed = append(failed, myDots...)
				default:
					t.Errorf("request %d-%d (fail=%v): %v", g, i, fail, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	// Model: replay the successful ops in execution order.
	type state struct {
		record, live, mark bool
		val                string
	}
	model := map[string]*state{}
	slicesSortOps(applied)
	for _, o := range applied {
		st := model[o.key]
		if st == nil {
			st = &state{}
			model[o.key] = st
		}
		switch o.kind {
		case opPut:
			st.record, st.live, st.mark, st.val = true, true, true, o.val
		case opDel:
			st.record, st.live, st.mark, st.val = true, false, true, ""
		case opClearMark:
			st.mark = false
		case opDeleteRecord:
			// The mark lives in the record entry: it goes too.
			st.record, st.live, st.mark, st.val = false, false, false, ""
		}
	}
	var wantLive, wantMarks int64
	err := s.View(func(v *View) error {
		for i := range nkeys {
			key := fmt.Sprintf("k%02d", i)
			want := model[key]
			if want == nil {
				want = &state{}
			}
			st, had, err := v.Record(key)
			if err != nil {
				return err
			}
			_, marked, err := v.OutboxMark(key)
			if err != nil {
				return err
			}
			live := had && merge.Live(merge.LWW{}, key, st.Record)
			var val string
			if live {
				val = string(st.Versions[0].Value)
			}
			if had != want.record || live != want.live || val != want.val || marked != want.mark {
				t.Errorf("%s: record=%v live=%v val=%q mark=%v, model %+v", key, had, live, val, marked, *want)
			}
			if want.live {
				wantLive++
			}
			if want.mark {
				wantMarks++
			}
		}
		return v.Records("poison/", "", func(key string, _ Stored) (bool, error) {
			t.Errorf("record %s of a failed request exists", key)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	live, marks := recount(t, s)
	if live != wantLive || marks != wantMarks {
		t.Errorf("live %d marks %d, model %d %d", live, marks, wantLive, wantMarks)
	}
	// Dots of successful writes are unique, and the persisted counter is
	// at least the highest.
	seen := map[uint64]bool{}
	var maxDot uint64
	for _, d := range dots {
		if seen[d] {
			t.Errorf("dot counter %d issued twice", d)
		}
		seen[d] = true
		maxDot = max(maxDot, d)
	}
	if c := metaUint(t, s, keyCounter); c < maxDot {
		t.Errorf("m/counter %d below the highest dot %d", c, maxDot)
	}
	t.Logf("%d successful ops, %d failed requests' dots discarded, %d commits", len(applied), len(failed), s.Commits())
}

func slicesSortOps(ops []op) {
	// insertion by seq (ops are nearly sorted already per request)
	for i := 1; i < len(ops); i++ {
		for j := i; j > 0 && ops[j-1].seq > ops[j].seq; j-- {
			ops[j-1], ops[j] = ops[j], ops[j-1]
		}
	}
}

// TestDotCounterPersisted: dot counters strictly increase, across failed
// requests and across Close and reopen (no dot reuse after reopen).
func TestDotCounterPersisted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		for _, dur := range []Durability{Sync, Relaxed} {
			t.Run(dur.String(), func(t *testing.T) {
				s, reopen := newStore(t, k, &Options{Durability: dur})
				var last uint64
				check := func(s *Store, round int) {
					for i := range 20 {
						if i%5 == 4 {
							err := s.Update(ctx, func(tx *Tx) error {
								if _, err := tx.Write("f", []byte("x"), false); err != nil {
									return err
								}
								return errors.New("fail")
							})
							if err == nil {
								t.Fatal("failing request succeeded")
							}
						}
						v := put(t, s, fmt.Sprintf("k%d", i%3), fmt.Sprint(round, i))
						if v.Dot.Counter <= last {
							t.Fatalf("round %d: dot counter %d after %d", round, v.Dot.Counter, last)
						}
						last = v.Dot.Counter
					}
					if c := metaUint(t, s, keyCounter); c != last {
						t.Fatalf("m/counter %d, last dot %d", c, last)
					}
				}
				check(s, 0)
				if reopen == nil {
					return
				}
				for round := 1; round <= 3; round++ {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					s = openStore(t, reopen(t), &Options{Durability: dur})
					check(s, round)
				}
			})
		}
	})
}

// TestHLCPersisted: the HLC survives a reopen, even when the wall clock has
// gone back in the meantime, and write times strictly increase.
func TestHLCPersisted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		var wallMu sync.Mutex
		wallNow := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		wall := func() time.Time {
			wallMu.Lock()
			defer wallMu.Unlock()
			return wallNow
		}
		setWall := func(t time.Time) { wallMu.Lock(); wallNow = t; wallMu.Unlock() }
		s, reopen := newStore(t, k, &Options{Wall: wall})
		var last clock.HLC
		for i := range 10 {
			v := put(t, s, "k", fmt.Sprint(i))
			if v.Time <= last {
				t.Fatalf("write %d at %v after %v", i, v.Time, last)
			}
			last = v.Time
		}
		if last.Physical() != wallNow.UnixMilli() {
			t.Errorf("HLC %v does not follow the wall clock %v", last, wallNow)
		}
		if got := clock.HLC(metaUint(t, s, keyHLC)); got != last {
			t.Errorf("m/hlc %v, last write %v", got, last)
		}
		if reopen == nil {
			return
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		setWall(wallNow.Add(-time.Hour)) // the wall clock jumps back
		s = openStore(t, reopen(t), &Options{Wall: wall})
		if now := s.Clock().Now(); now <= last {
			t.Errorf("Now after reopen %v, not after %v", now, last)
		}
		if v := put(t, s, "k", "after"); v.Time <= last {
			t.Errorf("write after reopen at %v, not after %v", v.Time, last)
		}
	})
}

func TestInitTwice(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		eng, reopen := k.open(t)
		s := openStore(t, eng, nil)
		if _, err := s.ReplicaID(); !errors.Is(err, ErrNoReplica) {
			t.Fatalf("ReplicaID before Init: %v", err)
		}
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.Write("k", nil, false); return err }); !errors.Is(err, ErrNoReplica) {
			t.Fatalf("write before Init: %v", err)
		}
		if err := s.Init(ctx, clock.ReplicaID{}); err == nil {
			t.Fatal("Init with the zero id succeeded")
		}
		id := clock.NewReplicaID()
		if err := s.Init(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ReplicaID(); err != nil || got != id {
			t.Fatalf("ReplicaID %v %v", got, err)
		}
		if err := s.Init(ctx, clock.NewReplicaID()); !errors.Is(err, ErrReplicaExists) {
			t.Fatalf("second Init: %v", err)
		}
		v := put(t, s, "k", "v")
		if v.Dot.Replica != id {
			t.Fatalf("dot of replica %v, want %v", v.Dot.Replica, id)
		}
		if reopen == nil {
			return
		}
		s.Close()
		s = openStore(t, reopen(t), nil)
		if got, err := s.ReplicaID(); err != nil || got != id {
			t.Fatalf("ReplicaID after reopen %v %v", got, err)
		}
		if err := s.Init(ctx, clock.NewReplicaID()); !errors.Is(err, ErrReplicaExists) {
			t.Fatalf("Init after reopen: %v", err)
		}
	})
}

// TestUpdateSync: UpdateSync commits like Update, and with Relaxed
// durability it is still durable (the Mem engine's crash model shows it;
// see TestMemCrash).
func TestUpdateSync(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, &Options{Durability: Relaxed})
		err := s.UpdateSync(ctx, func(tx *Tx) error {
			tx.SetMeta("stage/1", []byte("segment"))
			_, err := tx.Write("k", []byte("v"), false)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := value(t, s, "k"); !ok || v != "v" {
			t.Fatalf("k = %q %v", v, ok)
		}
		err = s.UpdateSync(ctx, func(tx *Tx) error { return errors.New("no") })
		if err == nil || err.Error() != "no" {
			t.Fatalf("failing UpdateSync: %v", err)
		}
		err = s.View(func(v *View) error {
			b, ok, err := v.Meta("stage/1")
			if err != nil || !ok || string(b) != "segment" {
				return fmt.Errorf("meta %q %v %v", b, ok, err)
			}
			var names []string
			err = v.MetaScan("stage/", func(name string, _ []byte) (bool, error) {
				names = append(names, name)
				return true, nil
			})
			if len(names) != 1 || names[0] != "stage/1" {
				return fmt.Errorf("MetaScan: %v", names)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		recount(t, s)
	})
}

// TestClose: Close answers every queued request before it returns; later
// calls return ErrClosed.
func TestClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, reopen := newStore(t, k, nil)
		release := make(chan struct{})
		blocked := blockWriter(t, s, release)
		const n = 20
		results := make(chan error, n)
		for i := range n {
			go func() {
				results <- s.Update(ctx, func(tx *Tx) error {
					_, err := tx.Write(fmt.Sprintf("q%02d", i), []byte("v"), false)
					return err
				})
			}()
		}
		waitQueued(t, s, n)
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		// Once Close has begun, new requests are refused...
		for {
			s.closeMu.RLock()
			c := s.closed
			s.closeMu.RUnlock()
			if c {
				break
			}
			runtime.Gosched()
		}
		if err := s.Update(ctx, func(tx *Tx) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Fatalf("Update while closing: %v", err)
		}
		// ...while the queued ones are still answered.
		close(release)
		if err := <-blocked; err != nil {
			t.Fatalf("blocker: %v", err)
		}
		for range n {
			if err := <-results; err != nil {
				t.Fatalf("queued request: %v", err)
			}
		}
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: %v", err)
		}
		if err := s.Update(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Update after Close: %v", err)
		}
		if err := s.UpdateSync(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("UpdateSync after Close: %v", err)
		}
		if err := s.View(func(*View) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("View after Close: %v", err)
		}
		if err := s.Init(ctx, clock.NewReplicaID()); !errors.Is(err, ErrClosed) {
			t.Errorf("Init after Close: %v", err)
		}
		if reopen == nil {
			return
		}
		s = openStore(t, reopen(t), nil)
		for i := range n {
			if v, ok := value(t, s, fmt.Sprintf("q%02d", i)); !ok || v != "v" {
				t.Errorf("q%02d after reopen = %q %v", i, v, ok)
			}
		}
		if live, _ := recount(t, s); live != n+1 {
			t.Errorf("live %d, want %d", live, n+1)
		}
	})
}

// TestCancelledContext: a request whose context is done before submission
// is refused; the writer is unaffected.
func TestCancelledContext(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		c, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Update(c, func(tx *Tx) error { t.Error("ran"); return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Update: %v", err)
		}
		put(t, s, "k", "v")
	})
}

// TestCorrupt writes bad bytes through the engine directly: reads report
// ErrCorrupt (never panic or invent data) and writes over them fail cleanly.
func TestCorrupt(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		eng, reopen := k.open(t)
		s := openStore(t, eng, nil)
		if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
			t.Fatal(err)
		}
		put(t, s, "good", "v")
		err := eng.Apply([]Mutation{
			{Key: []byte("r/short"), Value: []byte{1, 2, 3}},
			{Key: []byte("r/garbage"), Value: append(make([]byte, 8), 0xc1, 0xff, 0x00)},
			{Key: []byte("r/trailing"), Value: nil},
			{Key: []byte("r/badmark"), Value: []byte{0x80}}, // a header cut short
			{Key: logKey(1 << 40), Value: []byte{0xff}},     // an outbox log entry cut short
		}, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"short", "garbage", "trailing"} {
			err := s.View(func(v *View) error { _, _, err := v.Record(key); return err })
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("View.Record(%s): %v", key, err)
			}
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("error does not name the key: %v", err)
			}
			err = s.Update(ctx, func(tx *Tx) error {
				_, err := tx.Write(key, []byte("new"), false)
				return err
			})
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Write over %s: %v", key, err)
			}
		}
		if err := s.View(func(v *View) error { _, err := v.CountLive(); return err }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("CountLive: %v", err)
		}
		err = s.View(func(v *View) error {
			return v.OutboxMarks("", func(string, uint64) (bool, error) { return true, nil })
		})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Marks: %v", err)
		}
		err = s.View(func(v *View) error {
			return v.ScanMarks("", func(string, uint64) (bool, error) { return true, nil })
		})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("ScanMarks: %v", err)
		}
		if err := s.View(func(v *View) error { _, _, err := v.OutboxMark("badmark"); return err }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Mark: %v", err)
		}
		// The good key is untouched and the writer still works.
		if v, ok := value(t, s, "good"); !ok || v != "v" {
			t.Errorf("good = %q %v", v, ok)
		}
		put(t, s, "good", "v2")
		if reopen == nil {
			return
		}
		// Corrupt metadata makes Open fail with ErrCorrupt.
		s.Close()
		eng = reopen(t)
		if err := eng.Apply([]Mutation{{Key: keyCounter, Value: []byte{1, 2}}}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(eng, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open with a bad m/counter: %v", err)
		}
		if err := eng.Apply([]Mutation{{Key: keyCounter, Value: putUint(9)}, {Key: keyReplica, Value: []byte("short")}}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(eng, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open with a bad m/replica: %v", err)
		}
		eng.Close()
	})
}

// TestRecordsScan: prefix, start and early stop, on every engine alike.
func TestRecordsScan(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		keys := []string{"a", "a/1", "a/2", "a/3", "b", "b/1", "c"}
		err := s.Update(ctx, func(tx *Tx) error {
			for _, key := range keys {
				if _, err := tx.Write(key, []byte(key), false); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		scan := func(prefix, start string, limit int) []string {
			var out []string
			err := s.View(func(v *View) error {
				return v.Records(prefix, start, func(key string, st Stored) (bool, error) {
					if string(st.Versions[0].Value) != key {
						t.Errorf("%s holds %q", key, st.Versions[0].Value)
					}
					out = append(out, key)
					return len(out) < limit, nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		for _, c := range []struct {
			prefix, start string
			limit         int
			want          string
		}{
			{"", "", 100, "a a/1 a/2 a/3 b b/1 c"},
			{"a/", "", 100, "a/1 a/2 a/3"},
			{"a/", "a/2", 100, "a/2 a/3"},
			{"a/", "a/21", 100, "a/3"},
			{"a/", "b", 100, ""},
			{"a/", "", 2, "a/1 a/2"},
			{"b", "", 100, "b b/1"},
			{"", "b", 100, "b b/1 c"},
			{"a/", "a", 100, "a/1 a/2 a/3"}, // start before the prefix: from the prefix
			{"d", "", 100, ""},
		} {
			if got := strings.Join(scan(c.prefix, c.start, c.limit), " "); got != c.want {
				t.Errorf("Records(%q, %q) limit %d = %q, want %q", c.prefix, c.start, c.limit, got, c.want)
			}
		}
		stop := errors.New("stop")
		err = s.View(func(v *View) error {
			return v.Records("", "", func(string, Stored) (bool, error) { return true, stop })
		})
		if !errors.Is(err, stop) {
			t.Errorf("callback error: %v", err)
		}
	})
}

// TestLocked: a second OpenBadger on the same directory fails with
// ErrLocked and names the directory.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b2, err := OpenBadger(dir, BadgerOptions{})
	if err == nil {
		b2.Close()
		t.Fatal("second open succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("unclear message: %v", err)
	}
	// Closing the first lets it open again.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b3, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b3.Close()
}

// TestEngineContract checks the Engine contract directly on every engine:
// Get copies, Scan order and bounds, atomic Apply, Reader sees applied state.
func TestEngineContract(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		eng, _ := k.open(t)
		defer eng.Close()
		if err := eng.Apply([]Mutation{
			{Key: []byte("p/b"), Value: []byte("2")},
			{Key: []byte("p/a"), Value: []byte("1")},
			{Key: []byte("q"), Value: []byte("3")},
			{Key: []byte("p/c"), Value: []byte{}},
		}, false); err != nil {
			t.Fatal(err)
		}
		if err := eng.Apply([]Mutation{{Key: []byte("p/c"), Delete: true}, {Key: []byte("nope"), Delete: true}}, true); err != nil {
			t.Fatal(err)
		}
		r, release := eng.Reader()
		v, ok, err := r.Get([]byte("p/a"))
		release()
		if err != nil || !ok || string(v) != "1" {
			t.Fatalf("Reader Get = %q %v %v", v, ok, err)
		}
		err = eng.View(func(r Reader) error {
			v, ok, err := r.Get([]byte("p/b"))
			if err != nil || !ok || string(v) != "2" {
				return fmt.Errorf("get p/b = %q %v %v", v, ok, err)
			}
			v[0] = 'X' // a copy: must not change the stored value
			if _, ok, _ := r.Get([]byte("p/c")); ok {
				return errors.New("deleted key p/c found")
			}
			if v, ok, err := r.Get([]byte("missing")); v != nil || ok || err != nil {
				return fmt.Errorf("missing key: %v %v %v", v, ok, err)
			}
			var got []string
			err = r.Scan([]byte("p/"), nil, func(k, v []byte) (bool, error) {
				got = append(got, string(k)+"="+string(v))
				return true, nil
			})
			if strings.Join(got, ",") != "p/a=1,p/b=2" {
				return fmt.Errorf("scan %v", got)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.View(func(r Reader) error {
			v, _, _ := r.Get([]byte("p/b"))
			if !bytes.Equal(v, []byte("2")) {
				return fmt.Errorf("p/b changed through a returned slice: %q", v)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := eng.Sync(); err != nil {
			t.Fatal(err)
		}
	})
}
