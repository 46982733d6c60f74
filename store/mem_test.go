package store

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// TestMemCrash: Mem.Crash models a power loss. Relaxed writes not yet
// synced are lost; synced ones (UpdateSync, or any write under Sync
// durability, or a later sync that covers them) are kept; the counters
// roll back with the data, so a reopened store is consistent.
func TestMemCrash(t *testing.T) {
	m := NewMem()
	s, err := Open(m, &Options{Durability: Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	id := clock.NewReplicaID()
	if err := s.Init(ctx, id); err != nil { // Init is always synced
		t.Fatal(err)
	}
	put(t, s, "a", "relaxed-1") // covered by the sync below
	err = s.UpdateSync(ctx, func(tx *Tx) error {
		_, err := tx.Write("b", []byte("synced"), false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	durableCounter := metaUint(t, s, keyCounter)
	durableHLC := s.Clock().Last()
	put(t, s, "a", "relaxed-2")
	put(t, s, "c", "relaxed")
	if err := s.Update(ctx, func(tx *Tx) error { return tx.DeleteRecord("b") }); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("len before crash %d", s.Len())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m.Crash()

	s = openStore(t, m, &Options{Durability: Relaxed})
	if got, err := s.ReplicaID(); err != nil || got != id {
		t.Fatalf("replica id after crash: %v %v", got, err)
	}
	for key, want := range map[string]string{"a": "relaxed-1", "b": "synced"} {
		if v, ok := value(t, s, key); !ok || v != want {
			t.Errorf("%s after crash = %q %v, want %q", key, v, ok, want)
		}
	}
	if _, ok := value(t, s, "c"); ok {
		t.Error("unsynced relaxed write c survived the crash")
	}
	if live, marks := recount(t, s); live != 2 || marks != 2 {
		t.Errorf("after crash live %d marks %d, want 2 2", live, marks)
	}
	if c := metaUint(t, s, keyCounter); c != durableCounter {
		t.Errorf("counter after crash %d, want %d", c, durableCounter)
	}
	if now := s.Clock().Now(); now <= durableHLC {
		t.Errorf("HLC after crash %v, not after the durable %v", now, durableHLC)
	}
	// The store keeps working: new dots continue from the durable counter.
	if v := put(t, s, "d", "new"); v.Dot.Counter != durableCounter+1 {
		t.Errorf("next dot %d, want %d", v.Dot.Counter, durableCounter+1)
	}
}

// TestMemCrashSync: under Sync durability every acknowledged write
// survives a crash.
func TestMemCrashSync(t *testing.T) {
	m := NewMem()
	s, err := Open(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		put(t, s, fmt.Sprintf("k%02d", i%20), fmt.Sprint(i))
	}
	s.Close()
	m.Crash()
	s = openStore(t, m, nil)
	for i := 30; i < 50; i++ {
		if v, ok := value(t, s, fmt.Sprintf("k%02d", i%20)); !ok || v != fmt.Sprint(i) {
			t.Errorf("k%02d = %q %v, want %d", i%20, v, ok, i)
		}
	}
	if live, marks := recount(t, s); live != 20 || marks != 20 {
		t.Errorf("live %d marks %d", live, marks)
	}
	if m.Len() == 0 {
		t.Error("Mem.Len is 0")
	}
}

// TestMemCrashIdempotent: Crash may be called while no store is
// running on the engine, twice in a row, or with nothing unsynced.
func TestMemCrashIdempotent(t *testing.T) {
	m := NewMem()
	m.Crash()
	if m.Len() != 0 {
		t.Fatal("empty Mem not empty after Crash")
	}
	if err := m.Apply([]Mutation{{Key: []byte("k"), Value: []byte("v")}}, true); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply([]Mutation{{Key: []byte("u"), Value: []byte("v")}}, false); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	m.Crash()
	if m.Len() != 1 {
		t.Fatalf("Len %d after crash, want 1", m.Len())
	}
	// Writes after a crash, then Sync, survive the next one.
	if err := m.Apply([]Mutation{{Key: []byte("u"), Value: []byte("v")}}, false); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	if m.Len() != 2 {
		t.Fatalf("Len %d after sync and crash, want 2", m.Len())
	}
}

// syncFailEngine is a Mem whose Sync fails on demand, after the commit has
// happened: the writes are visible, their durability unknown.
type syncFailEngine struct {
	*Mem
	fail atomic.Bool
}

var errSyncFailed = errors.New("fsync failed")

func (e *syncFailEngine) Apply(muts []Mutation, sync bool) error {
	if err := e.Mem.Apply(muts, false); err != nil {
		return err
	}
	if sync {
		return e.Sync()
	}
	return nil
}

func (e *syncFailEngine) Sync() error {
	if e.fail.Load() {
		return errSyncFailed
	}
	return e.Mem.Sync()
}

// TestSyncFailureAfterCommit: when the fsync after a commit fails, the
// writers get the error, but the committed writes are there, so the
// store's counters must follow them: no dot counter is reissued and Len
// and Pending still equal recounts.
func TestSyncFailureAfterCommit(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelined=%v", pipelined), func(t *testing.T) {
			e := &syncFailEngine{Mem: NewMem()}
			var eng Engine = e
			if pipelined {
				eng = pipelinedSyncFail{e}
			}
			testSyncFailureAfterCommit(t, e, openStore(t, eng, nil))
		})
	}
}

type pipelinedSyncFail struct{ *syncFailEngine }

func (pipelinedSyncFail) concurrentSync() bool { return true }

func testSyncFailureAfterCommit(t *testing.T, e *syncFailEngine, s *Store) {
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	v1 := put(t, s, "k1", "1")
	e.fail.Store(true)
	var v2 merge.Version
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		v2, err = tx.Write("k2", []byte("2"), false)
		return err
	})
	if !errors.Is(err, errSyncFailed) {
		t.Fatalf("write with a failing fsync: %v", err)
	}
	e.fail.Store(false)
	v3 := put(t, s, "k3", "3")
	if v3.Dot.Counter <= v2.Dot.Counter || v2.Dot.Counter <= v1.Dot.Counter {
		t.Errorf("dot counters %d, %d, %d: reissued after a failed fsync", v1.Dot.Counter, v2.Dot.Counter, v3.Dot.Counter)
	}
	if v, ok := value(t, s, "k2"); ok && v != "2" {
		t.Errorf("k2 = %q", v)
	}
	recount(t, s)
}
