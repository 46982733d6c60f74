package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/merge"
)

// recordingEngine records every Apply's mutations; with failAt > 0 the
// failAt-th Apply fails without applying anything (a crash just before it).
type recordingEngine struct {
	Engine
	applies [][]Mutation
	failAt  int
}

var errCrash = errors.New("crash (test)")

func (e *recordingEngine) Apply(muts []Mutation, sync bool) error {
	if e.failAt > 0 && len(e.applies)+1 == e.failAt {
		return errCrash
	}
	e.applies = append(e.applies, slices.Clone(muts))
	return e.Engine.Apply(muts, sync)
}

// TestWriteOneEntryPerKey: a request of n local writes commits n record
// entries and one outbox log entry (and the group's counters): the mark
// lives in each record, and the group lists its marks once. A push's
// commit (read the mark, clear it, raise pos) writes each record once.
func TestWriteOneEntryPerKey(t *testing.T) {
	eng := &recordingEngine{Engine: NewMem()}
	s := openStore(t, eng, nil)
	if err := s.Init(ctx, [16]byte{1}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	eng.applies = nil
	if err := s.Update(ctx, func(tx *Tx) error {
		for i := range n {
			if _, err := tx.Write(fmt.Sprintf("k%03d", i), []byte("v"), false); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	count := func() map[string]int {
		got := map[string]int{}
		for _, muts := range eng.applies {
			for _, m := range muts {
				got[string(m.Key[:2])]++
			}
		}
		eng.applies = nil
		return got
	}
	if got := count(); got["r/"] != n || got["l/"] != 1 || len(got) != 3 {
		t.Fatalf("a request of %d writes applied %v, want %d r/, 1 l/ and m/ counters", n, got, n)
	}
	if err := s.Update(ctx, func(tx *Tx) error {
		for i := range n {
			k := fmt.Sprintf("k%03d", i)
			if _, ok, err := tx.OutboxMark(k); err != nil || !ok {
				return fmt.Errorf("mark of %s: %v %v", k, ok, err)
			}
			if err := tx.ClearOutboxMark(k); err != nil {
				return err
			}
			st, _, err := tx.Record(k)
			if err != nil {
				return err
			}
			st.Pos = 7
			if err := tx.PutRecord(k, st); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := count(); got["r/"] != n || got["l/"] != 0 {
		t.Fatalf("a commit of %d keys applied %v, want %d r/ and no l/", n, got, n)
	}
	if s.OutboxLen() != 0 {
		t.Fatalf("pending %d", s.OutboxLen())
	}
	recount(t, s)
}

// TestOutboxLogStaleListings: OutboxOrder yields each dirty key once, at
// its current mark, skipping the listings its record no longer carries
// (cleared, or marked again later); SetOutboxLow drops the entries below
// a position and never goes back.
func TestOutboxLogStaleListings(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		write := func(keys ...string) {
			t.Helper()
			if err := s.Update(ctx, func(tx *Tx) error {
				for _, k := range keys {
					if _, err := tx.Write(k, []byte("v"), false); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		type mk struct {
			key  string
			mark uint64
		}
		order := func() (out []mk, next uint64) {
			t.Helper()
			if err := s.View(func(v *View) error {
				low, err := v.OutboxLow()
				if err != nil {
					return err
				}
				if next, err = v.OutboxNext(); err != nil {
					return err
				}
				return v.OutboxOrder(low, func(key string, mark uint64) (bool, error) {
					out = append(out, mk{key, mark})
					return true, nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			return out, next
		}
		write("a", "b", "c") // dots 1, 2, 3
		write("a")           // 4
		if err := s.Update(ctx, func(tx *Tx) error { return tx.ClearOutboxMark("b") }); err != nil {
			t.Fatal(err)
		}
		// d marked at the current counter twice, as PushAll does: once.
		for range 2 {
			if err := s.Update(ctx, func(tx *Tx) error {
				if err := tx.PutRecord("d", Stored{Pos: 1}); err != nil {
					return err
				}
				if err := tx.ClearOutboxMark("d"); err != nil {
					return err
				}
				return tx.SetOutboxMark("d", tx.Counter())
			}); err != nil {
				t.Fatal(err)
			}
		}
		got, next := order()
		if want := []mk{{"c", 3}, {"a", 4}, {"d", 4}}; !slices.Equal(got, want) {
			t.Fatalf("outbox order %v, want %v", got, want)
		}
		// Consumed: a push cleared what it read; e is written after.
		if err := s.Update(ctx, func(tx *Tx) error {
			for _, m := range got {
				if err := tx.ClearOutboxMark(m.key); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		write("e")
		if err := s.Update(ctx, func(tx *Tx) error { return tx.SetOutboxLow(next) }); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, func(tx *Tx) error { return tx.SetOutboxLow(1) }); err != nil {
			t.Fatal(err)
		}
		if got, _ := order(); !slices.Equal(got, []mk{{"e", 5}}) {
			t.Fatalf("after the push, outbox order %v", got)
		}
		entries := 0
		if err := s.View(func(v *View) error {
			return v.r.Scan(prefixLog, nil, func(k, _ []byte) (bool, error) { entries++; return true, nil })
		}); err != nil {
			t.Fatal(err)
		}
		if entries != 1 {
			t.Fatalf("%d outbox log entries left, want 1 (e's)", entries)
		}
		if s.OutboxLen() != 1 {
			t.Fatalf("pending %d", s.OutboxLen())
		}
		recount(t, s)
	})
}

// format1Want is ../internal/engine/testdata/format1/expect.json: what the
// format-1 code read back from the directory it wrote.
type format1Want struct {
	Live, Pending int64
	Records       map[string]struct {
		Pos    uint64
		Record []byte
		Mark   uint64
		Marked bool
	}
	Order []struct {
		Key  string
		Mark uint64
	}
}

// copyFormat1Data copies the fixture's Badger directory to a temporary one.
func copyFormat1Data(t *testing.T) (string, format1Want) {
	t.Helper()
	src := filepath.Join("..", "internal", "engine", "testdata", "format1")
	dir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-r", filepath.Join(src, "replica", "data"), dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(src, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want format1Want
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	return dir, want
}

// checkFormat1 checks that s holds what the fixture's writer read back:
// every record and mark, the counts, the outbox order; and nothing of
// format 1's keys.
func checkFormat1(t *testing.T, s *Store, want format1Want) {
	t.Helper()
	if s.Len() != want.Live || s.OutboxLen() != want.Pending {
		t.Errorf("live %d pending %d, want %d %d", s.Len(), s.OutboxLen(), want.Live, want.Pending)
	}
	live, marks := recount(t, s)
	if live != want.Live || marks != want.Pending {
		t.Errorf("by scan: live %d marks %d, want %d %d", live, marks, want.Live, want.Pending)
	}
	err := s.View(func(v *View) error {
		n := 0
		if err := v.Records("", "", func(key string, st Stored) (bool, error) {
			n++
			w := want.Records[key]
			enc, err := merge.EncodeRecord(st.Record)
			if err != nil {
				return false, err
			}
			m, ok, err := v.OutboxMark(key)
			if err != nil {
				return false, err
			}
			if st.Pos != w.Pos || !bytes.Equal(enc, w.Record) || m != w.Mark || ok != w.Marked {
				t.Errorf("%q: pos %d mark %d %v %x, want %d %d %v %x", key, st.Pos, m, ok, enc, w.Pos, w.Mark, w.Marked, w.Record)
			}
			return true, nil
		}); err != nil {
			return err
		}
		if n != len(want.Records) {
			t.Errorf("%d records, want %d", n, len(want.Records))
		}
		low, err := v.OutboxLow()
		if err != nil {
			return err
		}
		var got, exp []string
		if err := v.OutboxOrder(low, func(key string, mark uint64) (bool, error) {
			got = append(got, fmt.Sprint(key, "@", mark))
			return true, nil
		}); err != nil {
			return err
		}
		for _, o := range want.Order {
			exp = append(exp, fmt.Sprint(o.Key, "@", o.Mark))
		}
		if !slices.Equal(got, exp) {
			t.Errorf("outbox order\n%v\nwant\n%v", got, exp)
		}
		for _, p := range [][]byte{prefixOutbox1, prefixQueue1, keyMigrating} {
			if err := v.r.Scan(p, nil, func(k, _ []byte) (bool, error) {
				t.Errorf("format 1's %q is left", k)
				return false, nil
			}); err != nil {
				return err
			}
		}
		if f, err := getUint(v.r, keyFormat); err != nil || f != formatVersion {
			t.Errorf("m/format %d %v", f, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFormat1 opens the format-1 fixture: Open migrates it, and it
// reads back as the format-1 code read it.
func TestMigrateFormat1(t *testing.T) {
	dir, want := copyFormat1Data(t)
	eng, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, eng, nil)
	checkFormat1(t, s, want)
	// Writes go on: a new mark joins the order.
	if _, err := s.ReplicaID(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.Write("k100", []byte("x"), false); return err }); err != nil {
		t.Fatal(err)
	}
	if s.OutboxLen() != want.Pending+1 {
		t.Fatalf("pending %d after a write", s.OutboxLen())
	}
}

// TestMigrateInterrupted: a migration that stops before any of its
// transactions (a crash; small chunks, so there are many) resumes at the
// next Open and ends with the same result.
func TestMigrateInterrupted(t *testing.T) {
	defer func(c int) { migrateChunk = c }(migrateChunk)
	migrateChunk = 16
	// How many transactions a whole migration takes.
	dir, want := copyFormat1Data(t)
	b, err := OpenBadger(dir, BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingEngine{Engine: b}
	if err := migrate(rec); err != nil {
		t.Fatal(err)
	}
	b.Close()
	total := len(rec.applies)
	if total < 10 {
		t.Fatalf("the migration took %d transactions: too few to interrupt", total)
	}
	for _, at := range []int{1, 2, 3, total / 3, total / 2, total - 2, total - 1, total} {
		t.Run(fmt.Sprint("crash-before-", at), func(t *testing.T) {
			dir, _ := copyFormat1Data(t)
			b, err := OpenBadger(dir, BadgerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Open(&recordingEngine{Engine: b, failAt: at}, nil); !errors.Is(err, errCrash) {
				t.Fatalf("interrupted open: %v", err)
			}
			b.Close()
			b, err = OpenBadger(dir, BadgerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkFormat1(t, openStore(t, b, nil), want)
		})
	}
}

// TestNewerFormatRefused: a directory of a newer format is refused with
// ErrNewerFormat, which names the format, and left as it was; so is an
// unknown older one (ErrCorrupt).
func TestNewerFormatRefused(t *testing.T) {
	for _, c := range []struct {
		format uint64
		want   error
	}{{formatVersion + 1, ErrNewerFormat}, {1 << 40, ErrNewerFormat}, {1, ErrCorrupt}} {
		t.Run(fmt.Sprint(c.format), func(t *testing.T) {
			b, err := OpenBadger(t.TempDir(), BadgerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// What a newer layout might hold: its own keys, and no o/ or q/.
			if err := b.Apply([]Mutation{
				{Key: keyFormat, Value: putUint(c.format)},
				{Key: []byte("r/a"), Value: []byte{9, 9, 9}},
				{Key: []byte("q/x"), Value: []byte{1}},
				{Key: keyPending, Value: putUint(5)},
			}, true); err != nil {
				t.Fatal(err)
			}
			before := dumpEngine(t, b)
			_, err = Open(b, nil)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), fmt.Sprint(c.format)) {
				t.Fatalf("Open of format %d: %v, want %v naming the format", c.format, err, c.want)
			}
			if after := dumpEngine(t, b); after != before {
				t.Fatalf("the refused open changed the engine:\n%s\nwas\n%s", after, before)
			}
		})
	}
}

// dumpEngine returns every key and value of eng.
func dumpEngine(t *testing.T, eng Engine) string {
	t.Helper()
	var b strings.Builder
	if err := eng.View(func(r Reader) error {
		return r.Scan(nil, nil, func(k, v []byte) (bool, error) {
			fmt.Fprintf(&b, "%q=%x\n", k, v)
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestFeedTrimKeepsWindow: the change feed's old entries are dropped as
// new ones come (flushFeed's scan starts past the ones it dropped): after
// more than FeedRetention changes in requests of 1000, only the entries
// inside the window and a few more are left, and so after a reopen.
func TestFeedTrimKeepsWindow(t *testing.T) {
	eng := NewMem()
	s := openStore(t, eng, nil)
	if err := s.Init(ctx, [16]byte{3}); err != nil {
		t.Fatal(err)
	}
	const per = 1000
	write := func(s *Store, from, to int) {
		t.Helper()
		for r := from; r < to; r++ {
			if err := s.Update(ctx, func(tx *Tx) error {
				for i := range per {
					if _, err := tx.Write(fmt.Sprintf("k%d", i), []byte{byte(r)}, false); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries := func() (n int) {
		t.Helper()
		if err := eng.View(func(r Reader) error {
			return r.Scan(prefixFeedKey, nil, func(k, _ []byte) (bool, error) { n++; return true, nil })
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rounds := FeedRetention/per + 30
	write(s, 0, rounds)
	want := FeedRetention/per + 2
	if n := entries(); n > want {
		t.Fatalf("%d feed entries after %d requests of %d changes, want at most %d", n, rounds, per, want)
	}
	s.Close()
	s = openStore(t, eng, nil)
	write(s, rounds, rounds+5)
	if n := entries(); n > want {
		t.Fatalf("after a reopen: %d feed entries, want at most %d", n, want)
	}
}

// countingReads wraps an engine and counts the point reads of r/ keys.
type countingReads struct {
	Engine
	gets int
}

type countingReader struct {
	Reader
	c *countingReads
}

func (r countingReader) Get(k []byte) ([]byte, bool, error) {
	if bytes.HasPrefix(k, prefixRecord) {
		r.c.gets++
	}
	return r.Reader.Get(k)
}

func (c *countingReads) Reader() (Reader, func()) {
	r, release := c.Engine.Reader()
	return countingReader{r, c}, release
}

// TestProbeAbsentBatch: a batch of new keys whose range holds no record reads
// none of them; a range holding one record (or a key this request wrote
// already) reads each key, and every write sees what is there: the live
// count and the records come out as without the probe. On Badger, a key
// deleted in the range (which Badger keeps until compaction) makes the
// probe fall back too.
func TestProbeAbsentBatch(t *testing.T) {
	keys := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("k%04d", i))
		}
		return out
	}
	write := func(t *testing.T, s *Store, ks []string, val string) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.ProbeAbsent(ks); err != nil {
				return err
			}
			for _, k := range ks {
				if _, err := tx.Write(k, []byte(val), false); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("mem", func(t *testing.T) {
		c := &countingReads{Engine: NewMem()}
		s := openStore(t, c, nil)
		if err := s.Init(ctx, [16]byte{4}); err != nil {
			t.Fatal(err)
		}
		write(t, s, keys(0, 100), "a")
		if c.gets != 0 || s.Len() != 100 {
			t.Fatalf("new keys: %d reads, %d live", c.gets, s.Len())
		}
		write(t, s, keys(100, 200), "b") // past the last record: still none
		if c.gets != 0 {
			t.Fatalf("appended keys: %d reads", c.gets)
		}
		write(t, s, keys(150, 250), "c") // half exist
		if c.gets != 100 || s.Len() != 250 {
			t.Fatalf("overlapping keys: %d reads, %d live, want 100 and 250", c.gets, s.Len())
		}
		c.gets = 0
		// A key this request wrote before the probe keeps its record.
		if err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.Write("k0300", []byte("first"), false); err != nil {
				return err
			}
			ks := keys(300, 400)
			if absent, err := tx.ProbeAbsent(ks); err != nil || absent {
				return fmt.Errorf("probe over a key this request wrote: %v %v", absent, err)
			}
			st, ok, err := tx.Record("k0300")
			if err != nil || !ok || string(st.Versions[0].Value) != "first" {
				return fmt.Errorf("k0300 after the probe: %v %v %v", st, ok, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		recount(t, s)
		if err := s.View(func(v *View) error {
			for _, k := range keys(0, 250) {
				st, ok, err := v.Record(k)
				if err != nil || !ok || len(st.Versions) != 1 {
					return fmt.Errorf("%s: %v %v %v", k, st, ok, err)
				}
				want := map[bool]string{true: "c", false: "a"}[k >= "k0150"]
				if k >= "k0100" && k < "k0150" {
					want = "b"
				}
				if got := string(st.Versions[0].Value); got != want {
					return fmt.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("badger", func(t *testing.T) {
		b, err := OpenBadger(t.TempDir(), BadgerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := openStore(t, b, nil)
		if err := s.Init(ctx, [16]byte{5}); err != nil {
			t.Fatal(err)
		}
		probe := func(ks []string) (absent int) {
			t.Helper()
			if err := s.Update(ctx, func(tx *Tx) error {
				if _, err := tx.ProbeAbsent(ks); err != nil {
					return err
				}
				for _, k := range ks {
					if rs, ok := tx.cache[k]; ok && !rs.had {
						absent++
					}
				}
				return errors.New("probe only") // writes nothing
			}); err == nil {
				t.Fatal("the probe's request did not fail")
			}
			return absent
		}
		if n := probe(keys(0, 100)); n != 100 {
			t.Fatalf("empty store: %d of 100 known absent", n)
		}
		write(t, s, []string{"k0050"}, "x")
		if n := probe(keys(0, 100)); n != 0 {
			t.Fatalf("a record in the range: %d known absent, want 0", n)
		}
		if err := s.Update(ctx, func(tx *Tx) error { return tx.DeleteRecord("k0050") }); err != nil {
			t.Fatal(err)
		}
		if n := probe(keys(0, 100)); n != 0 {
			t.Fatalf("a deleted key in the range: %d known absent, want 0 (the probe falls back)", n)
		}
		if n := probe(keys(100, 200)); n != 100 {
			t.Fatalf("past it: %d of 100 known absent", n)
		}
	})
}
