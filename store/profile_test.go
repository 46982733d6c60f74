package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
)

func TestProfileFor(t *testing.T) {
	if got := ProfileFor(true); got != ProfileSmall {
		t.Errorf("ProfileFor(true) = %q", got)
	}
	want := ProfileDefault
	if Is32Bit {
		want = ProfileSmall
	}
	if got := ProfileFor(false); got != want {
		t.Errorf("ProfileFor(false) = %q on a %d-bit build, want %q", got, 32<<(^uint(0)>>63), want)
	}
	for _, c := range []struct {
		v    string
		want bool
	}{{"", false}, {"0", false}, {"false", false}, {"no", false}, {"1", true}, {"true", true}, {"TRUE", true}, {"yes", true}, {"on", true}, {" 1 ", true}, {"2", false}} {
		t.Setenv(LowMemoryEnv, c.v)
		if got := LowMemoryFromEnv(); got != c.want {
			t.Errorf("%s=%q: %v, want %v", LowMemoryEnv, c.v, got, c.want)
		}
	}
	for _, low := range []bool{false, true} {
		b, err := OpenBadger(t.TempDir(), BadgerOptions{LowMemory: low})
		if err != nil {
			t.Fatal(err)
		}
		s := openStore(t, b, nil)
		if got := s.Profile(); got != ProfileFor(low) {
			t.Errorf("LowMemory %v: store profile %q", low, got)
		}
	}
	if got := openStore(t, NewMem(), nil).Profile(); got != "" {
		t.Errorf("map engine: profile %q", got)
	}
}

// TestBadgerMutationCostValueLog: on disk, a value at or over the value
// threshold counts its 12-byte pointer toward Badger's limit, exactly as
// Badger counts it: a transaction at the limit fails, one byte under
// commits, and megabytes of such values commit at once under the small
// profile, whose limit is 614 KiB.
func TestBadgerMutationCostValueLog(t *testing.T) {
	b, err := OpenBadger(t.TempDir(), BadgerOptions{LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	limitBytes, _ := b.Limits()
	const th = 64 << 10
	if b.threshold != th {
		t.Fatalf("threshold %d", b.threshold)
	}
	for _, c := range []struct{ size, cost int }{{0, 3 + 24}, {11, 3 + 24}, {12, 3 + 24}, {13, 3 + 25}, {th - 1, 3 + th - 1 + 12}, {th, 3 + 24}, {8 << 20, 3 + 24}} {
		if got := b.mutationCost(Mutation{Key: []byte("key"), Value: make([]byte, c.size)}); got != int64(c.cost) {
			t.Errorf("value of %d bytes: cost %d, want %d", c.size, got, c.cost)
		}
	}
	// A transaction of value-log values and one tree value that cost
	// exactly total in all.
	round := 0
	muts := func(total int64) []Mutation {
		round++
		var out []Mutation
		var sum int64
		add := func(size int) {
			m := Mutation{Key: fmt.Appendf(nil, "%c%06d", 'a'+round, len(out)), Value: make([]byte, size)}
			out = append(out, m)
			sum += b.mutationCost(m)
		}
		for range 130 {
			add(th) // 8.1 MiB in the value log
		}
		for total-sum-19 >= th {
			add(th / 2)
		}
		add(int(total - sum - 19))
		if sum != total {
			t.Fatalf("built %d, want %d", sum, total)
		}
		return out
	}
	if err := b.Apply(muts(limitBytes-1), false); err != nil {
		t.Errorf("cost %d, limit %d: %v", limitBytes-1, limitBytes, err)
	}
	if err := b.Apply(muts(limitBytes), false); !errors.Is(err, ErrTooBig) {
		t.Errorf("cost %d at the limit: %v, want ErrTooBig", limitBytes, err)
	}
}

// TestValueLogGCBoundsDisk: steady rewrites of large values (in the value
// log) on a small-profile store with small value-log files. Collected on an
// injected clock after every round, the disk stays within a bound of the
// live data; without collection it grows with every round.
func TestValueLogGCBoundsDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 120 MiB")
	}
	const (
		keys     = 16
		size     = 128 << 10 // in the value log (threshold 64 KiB)
		rounds   = 30
		vlogFile = 4 << 20
	)
	live := int64(keys * size)
	run := func(t *testing.T, collect bool) (peak, final int64, st GCStats) {
		b, err := OpenBadger(t.TempDir(), BadgerOptions{LowMemory: true, ValueLogFileSize: vlogFile})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		s := openStore(t, b, &Options{Wall: func() time.Time { return now }, Durability: Relaxed})
		if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		val := make([]byte, size)
		var all GCStats
		if collect { // the first call starts the interval
			if st, err := s.MaybeCollectGarbage(); err != nil || st.Ran {
				t.Fatalf("first MaybeCollectGarbage of a new database: %+v, %v", st, err)
			}
		}
		for r := range rounds {
			for k := range keys {
				for i := range val {
					val[i] = byte(rng.Uint32())
				}
				err := s.Update(ctx, func(tx *Tx) error {
					_, err := tx.Write(fmt.Sprintf("k%02d", k), val, false)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if collect {
				now = now.Add(DefaultGCInterval)
				st, err := s.MaybeCollectGarbage()
				if err != nil {
					t.Fatal(err)
				}
				if !st.Ran {
					t.Fatalf("round %d: not collected %s after the last", r, DefaultGCInterval)
				}
				all.Rewritten += st.Rewritten
			}
			lsm, vlog := b.DiskSize()
			peak = max(peak, lsm+vlog)
		}
		lsm, vlog := b.DiskSize()
		t.Logf("collect %v: live %d KiB, written %d MiB, disk at the end %d KiB (lsm %d, vlog %d), peak %d KiB, files rewritten %d",
			collect, live>>10, int64(rounds)*live>>20, (lsm+vlog)>>10, lsm>>10, vlog>>10, peak>>10, all.Rewritten)
		return peak, lsm + vlog, all
	}
	// What may stay: twice the live values (files under half garbage),
	// one interval's rewrites (one round), the head file and the one
	// being rewritten, and the tree and memtable logs (sparse maps, a few
	// small tables; DiskSize counts allocated blocks).
	bound := 2*live + live + 2*vlogFile + 4<<20
	peak, final, st := run(t, true)
	if st.Rewritten == 0 {
		t.Error("no value-log file was ever rewritten")
	}
	if peak > bound || final > bound {
		t.Errorf("with GC: peak %d, final %d bytes on disk; bound %d (live %d)", peak, final, bound, live)
	}
	_, grown, _ := run(t, false)
	if grown < 2*bound {
		t.Errorf("without GC the disk reached only %d bytes; the bound %d proves nothing", grown, bound)
	}
}

// TestMaybeCollectGarbageInterval: a new database's first call starts the
// interval without collecting; at most one collection per interval,
// remembered across a reopen; a clock set back collects; a negative
// interval never does.
func TestMaybeCollectGarbageInterval(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	wall := func() time.Time { return now }
	open := func(every time.Duration) (*Store, *Badger) {
		b, err := OpenBadger(dir, BadgerOptions{LowMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(b, &Options{Wall: wall, GCInterval: every})
		if err != nil {
			t.Fatal(err)
		}
		return s, b
	}
	s, _ := open(0)
	ran := func(want bool) {
		t.Helper()
		st, err := s.MaybeCollectGarbage()
		if err != nil {
			t.Fatal(err)
		}
		if st.Ran != want {
			t.Fatalf("at %s: ran %v, want %v", now.Format(time.TimeOnly), st.Ran, want)
		}
	}
	ran(false) // never collected: the first call starts the interval
	now = now.Add(DefaultGCInterval)
	ran(true)
	ran(false)
	now = now.Add(DefaultGCInterval - time.Second)
	ran(false)
	now = now.Add(time.Second)
	ran(true)
	s.Close()
	s, _ = open(0)
	ran(false) // remembered
	now = now.Add(-time.Hour)
	ran(true) // clock set back
	s.Close()
	s, _ = open(-1)
	now = now.Add(24 * time.Hour)
	ran(false)
	if st, err := s.CollectGarbage(); err != nil || !st.Ran {
		t.Fatalf("CollectGarbage: %+v, %v", st, err)
	}
	s.Close()
	if st, err := s.CollectGarbage(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %+v, %v", st, err)
	}
}

// TestSmallProfileCompaction writes 24 MiB of 1 KiB values in the tree
// under the small profile (many flushes and compactions, tables larger
// than their builder's first buffer), flattens the tree, and reads every
// value back after a reopen. On a 32-bit build with ristretto's unpatched
// z.Allocator (third_party/ristretto/README.md) compaction wrote corrupt
// tables and this panicked; the test command runs it under qemu-arm
// (scripts/qemu-test.sh).
func TestSmallProfileCompaction(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(dir, BadgerOptions{LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 24000, 1 << 10
	val := func(i int) []byte {
		v := make([]byte, size)
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		return v
	}
	for i := 0; i < n; i += 200 {
		var muts []Mutation
		for j := i; j < i+200; j++ {
			muts = append(muts, Mutation{Key: fmt.Appendf(nil, "k%06d", j), Value: val(j)})
		}
		if err := b.Apply(muts, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DB().Flatten(2); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err = OpenBadger(dir, BadgerOptions{LowMemory: true}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.View(func(r Reader) error {
		for i := range n {
			got, ok, err := r.Get(fmt.Appendf(nil, "k%06d", i))
			if err != nil || !ok || !slices.Equal(got, val(i)) {
				return fmt.Errorf("k%06d: %d bytes, %v, %v", i, len(got), ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkFootprintDisk: disk use after many rewrites of large values,
// both profiles, with the value-log GC run on an injected clock every
// `every` rewrites (standing for GCInterval). The figure is 1M
// rewrites over 10k keys of 100 KiB; scaled to this machine it defaults to
// 10,000 rewrites over 500 keys (live 50 MiB, 20 times that written).
//
//	go test -count=1 -run '^$' -bench '^BenchmarkFootprintDisk$' -benchtime 1x -timeout 60m ./store
//	EBREPLICA_FOOTPRINT_DISK_KEYS, _REWRITES, _EVERY, _RUNS  (500, 10000, 1000, 3)
//
// One iteration is the whole harness, its _RUNS runs included (each run
// both profiles); the min and median ratios are over the runs (of every
// iteration, when -benchtime gives more than one).
func BenchmarkFootprintDisk(b *testing.B) {
	env := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv("EBREPLICA_FOOTPRINT_DISK_" + name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	keys, rewrites, every, runs := env("KEYS", 500), env("REWRITES", 10000), env("EVERY", 1000), env("RUNS", 3)
	out := map[string][]diskResult{}
	run := 0
	for b.Loop() {
		for range runs {
			for _, low := range []bool{false, true} {
				p := string(ProfileFor(low))
				out[p] = append(out[p], footprintDiskRun(b, run, keys, rewrites, every, low))
			}
			run++
		}
	}
	for _, p := range []string{"default", "small"} {
		var final, peak []float64
		for _, r := range out[p] {
			final, peak = append(final, r.final), append(peak, r.peak)
		}
		slices.Sort(final)
		slices.Sort(peak)
		b.Logf("%-7s disk/live at the end: min %.2f median %.2f; peak (at a collection): min %.2f median %.2f", p, final[0], final[len(final)/2], peak[0], peak[len(peak)/2])
		b.ReportMetric(final[0], p+"-x-live-end-min")
		b.ReportMetric(final[len(final)/2], p+"-x-live-end-median")
		b.ReportMetric(peak[0], p+"-x-live-peak-min")
		b.ReportMetric(peak[len(peak)/2], p+"-x-live-peak-median")
	}
}

// diskResult is one run of footprintDiskRun: the disk use at the end and
// its peak (at a collection), as multiples of the live data, and the
// run's seconds.
type diskResult struct{ final, peak, secs float64 }

// footprintDiskRun is run number run (it seeds the writes) of
// BenchmarkFootprintDisk for one profile.
func footprintDiskRun(t testing.TB, run, keys, rewrites, every int, low bool) diskResult {
	const size = 100 << 10
	live := float64(keys * size)
	b, err := OpenBadger(t.TempDir(), BadgerOptions{LowMemory: low})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(b, &Options{Wall: func() time.Time { return now }, Durability: Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(run), 5))
	val := make([]byte, size)
	write := func(k int) {
		for i := 0; i < len(val); i += 8 {
			x := rng.Uint64()
			for j := 0; j < 8; j++ {
				val[i+j] = byte(x >> (8 * j))
			}
		}
		err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.Write(fmt.Sprintf("k%06d", k), val, false)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	for k := range keys {
		write(k)
	}
	var peak int64
	var rewritten int
	for i := 1; i <= rewrites; i++ {
		write(rng.IntN(keys))
		if i%every == 0 {
			now = now.Add(DefaultGCInterval)
			st, err := s.MaybeCollectGarbage()
			if err != nil {
				t.Fatal(err)
			}
			rewritten += st.Rewritten
			peak = max(peak, st.Before, st.After)
		}
	}
	lsm, vlog := b.DiskSize()
	secs := time.Since(t0).Seconds()
	s.Close()
	t.Logf("run %d %-7s %d keys x 100 KiB (live %.0f MiB), %d rewrites, GC every %d: disk at the end %.0f MiB (lsm %.0f, vlog %.0f) = %.2fx live; peak %.2fx; %d value-log files rewritten; %.0f s",
		run+1, ProfileFor(low), keys, live/(1<<20), rewrites, every, float64(lsm+vlog)/(1<<20), float64(lsm)/(1<<20), float64(vlog)/(1<<20),
		float64(lsm+vlog)/live, float64(peak)/live, rewritten, secs)
	return diskResult{float64(lsm+vlog) / live, float64(peak) / live, secs}
}

// TestCollectGarbageConcurrentWrites: collections (memtable flush, which
// blocks Badger's writes, and rewrites) while the writer commits: every
// write succeeds, and every value reads back after a reopen.
func TestCollectGarbageConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	b, err := OpenBadger(dir, BadgerOptions{LowMemory: true, ValueLogFileSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(b, &Options{Durability: Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(3, 3))
		for i := range 600 {
			k := fmt.Sprintf("k%02d", rng.IntN(20))
			v := make([]byte, 70<<10+i) // in the value log
			v[0], v[1] = byte(i), byte(i>>8)
			err := s.Update(ctx, func(tx *Tx) error {
				_, err := tx.Write(k, v, false)
				return err
			})
			if err != nil {
				done <- fmt.Errorf("write %d: %w", i, err)
				return
			}
			want[k] = v
		}
		done <- nil
	}()
	var collections, rewritten int
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
			st, err := s.CollectGarbage()
			if err != nil {
				t.Fatal(err)
			}
			collections++
			rewritten += st.Rewritten
		}
	}
	t.Logf("%d collections, %d files rewritten", collections, rewritten)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBadger(dir, BadgerOptions{LowMemory: true, ValueLogFileSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, b, nil)
	err = s.View(func(v *View) error {
		for k, val := range want {
			st, ok, err := v.Record(k)
			if err != nil || !ok || len(st.Record.Versions) != 1 || !slices.Equal(st.Record.Versions[0].Value, val) {
				return fmt.Errorf("%s: %v %v", k, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCollectGarbageSkipsEmptyValueLog: with no value-log file other than
// the newest holding an entry (every value under the threshold), a
// collection can rewrite nothing, so it records its time without the
// memtable flush (whose compaction rewrote tables for nothing: the small
// profile's peak RSS in live sync); once a value over the threshold sits
// in an older file, it flushes and collects as before.
func TestCollectGarbageSkipsEmptyValueLog(t *testing.T) {
	b, err := OpenBadger(t.TempDir(), BadgerOptions{LowMemory: true, ValueLogFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openStore(t, b, &Options{Wall: func() time.Time { return now }, Durability: Relaxed})
	if err := s.Init(ctx, clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	put := func(k string, n int) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.Write(k, make([]byte, n), false); return err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		put(fmt.Sprintf("small%03d", i), 100)
	}
	st, err := s.CollectGarbage()
	if err != nil || !st.Ran || st.Flushed {
		t.Fatalf("small values only: %+v, %v; want ran without a flush", st, err)
	}
	if st, err := s.MaybeCollectGarbage(); err != nil || st.Ran {
		t.Fatalf("right after a skipped collection: %+v, %v; want its time recorded", st, err)
	}
	for i := range 40 { // 40 x 100 KiB over 1 MiB files: older files hold values
		put(fmt.Sprintf("big%02d", i), 100<<10)
	}
	if !b.valueLogHolds() {
		t.Fatal("valueLogHolds: false with 4 MiB of values over 1 MiB value-log files")
	}
	if st, err := s.CollectGarbage(); err != nil || !st.Flushed {
		t.Fatalf("values in the value log: %+v, %v; want a flush", st, err)
	}
}
