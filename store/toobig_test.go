package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
)

// The engine's transaction limit: a request too big to commit with its
// group commits on its own after it, and fails with ErrTooBig only when it
// cannot fit even alone; the rest of its group is unaffected.

// newLimitedStore opens an initialised store on an in-memory Badger with
// small memtables (LowMemory), so its transaction limit is small (a few
// hundred KiB); it returns the limit in bytes.
func newLimitedStore(t *testing.T) (*Store, int64) {
	t.Helper()
	b, err := OpenBadger("", BadgerOptions{InMemory: true, LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, b, nil)
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	limit, _ := b.Limits()
	return s, limit
}

// batchOf returns a request writing keys prefix0..prefix<n-1>, each with a
// value of size bytes, and, when extra is set, also deleting the record of
// "base" whole and setting meta "batch": a request that touches every kind
// of state.
func batchOf(prefix string, n, size int, extra bool) func(tx *Tx) error {
	return func(tx *Tx) error {
		for i := range n {
			if _, err := tx.Write(fmt.Sprintf("%s%d", prefix, i), []byte(strings.Repeat("v", size)), false); err != nil {
				return err
			}
		}
		if extra {
			if err := tx.DeleteRecord("base"); err != nil {
				return err
			}
			tx.SetMeta("batch", []byte(prefix))
		}
		return nil
	}
}

func smallPut(key string) func(tx *Tx) error {
	return func(tx *Tx) error {
		_, err := tx.Write(key, []byte("1"), false)
		return err
	}
}

type namedReq struct {
	name string
	fn   func(tx *Tx) error
}

// runGroup queues reqs, in order, behind a blocked writer so that they run
// as one group (or as many as the caps allow), releases it, and returns
// each request's result by name.
func runGroup(t *testing.T, s *Store, reqs []namedReq) map[string]error {
	t.Helper()
	release := make(chan struct{})
	blocked := blockWriter(t, s, release)
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(reqs))
	for i, r := range reqs {
		go func() { results <- result{r.name, s.Update(ctx, r.fn)} }()
		waitQueued(t, s, i+1)
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	got := map[string]error{}
	for range reqs {
		r := <-results
		if _, dup := got[r.name]; dup {
			t.Fatalf("request %s answered twice", r.name)
		}
		got[r.name] = r.err
	}
	return got
}

// TestTooBigAloneFailsAlone: small writers queued with one batch larger
// than Badger's transaction limit, in one group. The small writes succeed,
// once each; the batch fails with ErrTooBig and nothing of it is visible:
// no record, mark or meta, the record it deleted is still there, and the
// dot counter, live count and outbox are as if it never ran.
func TestTooBigAloneFailsAlone(t *testing.T) {
	s, limit := newLimitedStore(t)
	put(t, s, "base", "0")
	const size = 32 << 10
	n := int(limit/size) + 2 // too big by itself
	// One such batch at the head of a group, one after small writes.
	reqs := []namedReq{{"first", batchOf("first", n, size, true)}}
	for i := range 5 {
		reqs = append(reqs, namedReq{fmt.Sprintf("s%d", i), smallPut(fmt.Sprintf("s%d", i))})
	}
	reqs = append(reqs, namedReq{"big", batchOf("big", n, size, true)})
	for i := 5; i < 10; i++ {
		reqs = append(reqs, namedReq{fmt.Sprintf("s%d", i), smallPut(fmt.Sprintf("s%d", i))})
	}
	got := runGroup(t, s, reqs)
	for i := range 10 {
		name := fmt.Sprintf("s%d", i)
		if got[name] != nil {
			t.Errorf("small write %s: %v", name, got[name])
		}
		if v, ok := value(t, s, name); !ok || v != "1" {
			t.Errorf("%s = %q %v, want 1", name, v, ok)
		}
	}
	for _, name := range []string{"first", "big"} {
		if !errors.Is(got[name], ErrTooBig) {
			t.Errorf("batch %s: %v, want ErrTooBig", name, got[name])
		}
	}
	err := s.View(func(v *View) error {
		for _, prefix := range []string{"first", "big"} {
			if err := v.Records(prefix, "", func(key string, _ Stored) (bool, error) {
				t.Errorf("record %s of a failed batch exists", key)
				return true, nil
			}); err != nil {
				return err
			}
			if err := v.OutboxMarks(prefix, func(key string, _ uint64) (bool, error) {
				t.Errorf("mark %s of a failed batch exists", key)
				return true, nil
			}); err != nil {
				return err
			}
		}
		if _, ok, _ := v.Meta("batch"); ok {
			t.Error("meta of the failed batch exists")
		}
		if _, ok, _ := v.Record("base"); !ok {
			t.Error("record base deleted by the failed batch")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// live and marks: base, blocker, s0..s9.
	if live, marks := recount(t, s); live != 12 || marks != 12 {
		t.Errorf("live %d marks %d, want 12 and 12", live, marks)
	}
	// Dots are dense: base(1) blocker(2) s0..s9(3..12); the batches used
	// none.
	if c := metaUint(t, s, keyCounter); c != 12 {
		t.Errorf("m/counter = %d, want 12", c)
	}
	// The store goes on: the next write gets the next dot.
	if v := put(t, s, "after", "x"); v.Dot.Counter != 13 {
		t.Errorf("next write got dot %d, want 13", v.Dot.Counter)
	}
}

// TestTooBigWithGroupCommitsAlone: a batch that fits Badger's transaction
// limit by itself but not with the requests queued before it commits on
// its own after them; every request succeeds, exactly once.
func TestTooBigWithGroupCommitsAlone(t *testing.T) {
	s, limit := newLimitedStore(t)
	put(t, s, "base", "0")
	const size = 16 << 10
	n1 := int(limit / 5 / size)       // m1: a fifth of the limit, under the group cap
	n2 := int(limit * 17 / 20 / size) // m2: 85% of the limit: fits alone, not after m1
	got := runGroup(t, s, []namedReq{
		{"a0", smallPut("a0")},
		{"m1", batchOf("m1-", n1, size, false)},
		{"a1", smallPut("a1")},
		{"m2", batchOf("m2-", n2, size, false)},
		{"a2", smallPut("a2")},
	})
	for name, err := range got {
		if err != nil {
			t.Errorf("request %s: %v", name, err)
		}
	}
	keys := []string{"base", "blocker", "a0", "a1", "a2"}
	for i := range n1 {
		keys = append(keys, fmt.Sprintf("m1-%d", i))
	}
	for i := range n2 {
		keys = append(keys, fmt.Sprintf("m2-%d", i))
	}
	var missing []string
	for _, k := range keys {
		if _, ok := value(t, s, k); !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d keys missing: %v…", len(missing), len(keys), missing[:min(len(missing), 5)])
	}
	if live, marks := recount(t, s); live != int64(len(keys)) || marks != int64(len(keys)) {
		t.Errorf("live %d marks %d, want %d", live, marks, len(keys))
	}
	if c := metaUint(t, s, keyCounter); c != uint64(len(keys)) {
		t.Errorf("m/counter = %d, want %d (one dot per key written)", c, len(keys))
	}
}

// limitedMem is Mem with a transaction limit (as Badger has), whose Apply
// fails with errApply when it writes failKey.
type limitedMem struct {
	*Mem
	limit   int64
	failKey []byte
}

var errApply = errors.New("apply failed")

func (m *limitedMem) Limits() (bytes, entries int64) { return m.limit, 1 << 20 }
func (m *limitedMem) mutationCost(mu Mutation) int64 { return int64(len(mu.Key) + len(mu.Value)) }

func (m *limitedMem) Apply(muts []Mutation, sync bool) error {
	var sum int64
	for _, mu := range muts {
		if bytes.Equal(mu.Key, m.failKey) {
			return errApply
		}
		sum += m.mutationCost(mu)
	}
	if sum >= m.limit {
		return ErrTooBig
	}
	return m.Mem.Apply(muts, sync)
}

// TestTooBigGroupCommitFails: a request set aside to commit alone ran
// against its group's writes; when the group's commit fails, it fails
// with the same error and applies nothing.
func TestTooBigGroupCommitFails(t *testing.T) {
	e := &limitedMem{Mem: NewMem(), limit: 64 << 10, failKey: recordKey("a0")}
	s := openStore(t, e, nil)
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	commits := s.Commits()
	got := runGroup(t, s, []namedReq{
		{"a", batchOf("a", 1, 10<<10, false)}, // under the group cap (16 KiB); its commit fails
		{"b", batchOf("b", 5, 11<<10, false)}, // fits alone, not after a
	})
	for name, err := range got {
		if !errors.Is(err, errApply) {
			t.Errorf("request %s: %v, want the group's commit error", name, err)
		}
	}
	for _, k := range []string{"a0", "b0", "b4"} {
		if _, ok := value(t, s, k); ok {
			t.Errorf("%s exists", k)
		}
	}
	if n := s.Commits() - commits; n != 1 {
		t.Errorf("%d commits, want 1 (the blocker)", n)
	}
	// blocker(1), then the next write: the failed requests used no dot.
	if v := put(t, s, "after", "x"); v.Dot.Counter != 2 {
		t.Errorf("next write got dot %d, want 2", v.Dot.Counter)
	}
	recount(t, s)
}

// TestBadgerMutationCost pins mutationCost and Limits to the Badger in
// go.mod. Badger counts len(key)+len(value)+12 for a value kept in the tree
// (all of them in memory): a transaction counting just under the byte limit
// commits, one at the limit fails with ErrTooBig, likewise for the entry
// limit; and mutationCost is never below Badger's count (exact for values
// of 12 bytes or more kept in the tree). An upgrade of Badger that counts
// more fails here, not in production.
func TestBadgerMutationCost(t *testing.T) {
	b, err := OpenBadger("", BadgerOptions{InMemory: true, LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	limitBytes, limitEntries := b.Limits()
	badgerCost := func(m Mutation) int64 { return int64(len(m.Key) + len(m.Value) + 12) }
	// muts returns mutations of distinct 7-byte keys that Badger counts as
	// total bytes in all.
	round := 0
	muts := func(total int64) []Mutation {
		round++
		const size = 30000
		key := func(i int) []byte { return fmt.Appendf(nil, "%c%06d", 'a'+round, i) }
		per := int64(7 + size + 12)
		n, rem := total/per, total%per
		if rem > 0 && rem < 7+12+12 {
			n, rem = n-1, rem+per
		}
		var out []Mutation
		for i := range int(n) {
			out = append(out, Mutation{Key: key(i), Value: make([]byte, size)})
		}
		if rem > 0 {
			out = append(out, Mutation{Key: key(int(n)), Value: make([]byte, rem-7-12)})
		}
		var sum, est int64
		for _, m := range out {
			sum += badgerCost(m)
			est += b.mutationCost(m)
		}
		if sum != total {
			t.Fatalf("built %d, want %d", sum, total)
		}
		if est != sum {
			t.Errorf("mutationCost counts %d, Badger %d", est, sum)
		}
		return out
	}
	if err := b.Apply(muts(limitBytes-1), false); err != nil {
		t.Errorf("cost %d, limit %d: %v", limitBytes-1, limitBytes, err)
	}
	if err := b.Apply(muts(limitBytes), false); !errors.Is(err, ErrTooBig) {
		t.Errorf("cost %d at the limit: %v, want ErrTooBig", limitBytes, err)
	}
	small := func(n int64) []Mutation {
		round++
		out := make([]Mutation, n)
		for i := range out {
			out[i] = Mutation{Key: fmt.Appendf(nil, "%c%06d", 'a'+round, i)}
		}
		return out
	}
	if err := b.Apply(small(limitEntries-1), false); err != nil {
		t.Errorf("%d entries, limit %d: %v", limitEntries-1, limitEntries, err)
	}
	if err := b.Apply(small(limitEntries), false); !errors.Is(err, ErrTooBig) {
		t.Errorf("%d entries at the limit: %v, want ErrTooBig", limitEntries, err)
	}
	// Never below Badger's count, whether the value stays in the tree
	// (len+12) or goes to the value log (a 12-byte pointer: 24).
	for _, size := range []int{0, 1, 11, 12, 13, 1000, 64<<10 - 1, 64 << 10, 1 << 20} {
		m := Mutation{Key: []byte("key"), Value: make([]byte, size)}
		if c := b.mutationCost(m); c < badgerCost(m) || c < int64(len(m.Key)+24) {
			t.Errorf("value of %d bytes: mutationCost %d, Badger counts up to %d", size, c, max(badgerCost(m), int64(len(m.Key)+24)))
		}
	}
}
