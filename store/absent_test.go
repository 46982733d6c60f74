package store

import (
	"fmt"
	"strings"
	"testing"
)

// TestReaderAny: Any's range is inclusive at both ends, empty when lo >
// hi, and sees committed keys only in it. A key deleted from Badger leaves
// a tombstone that Any stops at (true: "maybe a key"), which is what
// bounds its cost: it never steps over deleted keys one by one. Mem keeps
// no deleted keys and answers exactly.
func TestReaderAny(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		eng, _ := k.open(t)
		defer eng.Close()
		muts := []Mutation{
			{Key: []byte("r/b"), Value: []byte("1")},
			{Key: []byte("r/d"), Value: []byte("2")},
			{Key: []byte("s/x"), Value: []byte("3")},
		}
		// r/t0000..r/t0999, then deleted: a range of tombstones.
		for i := range 1000 {
			muts = append(muts, Mutation{Key: fmt.Appendf(nil, "r/t%04d", i), Value: []byte("x")})
		}
		if err := eng.Apply(muts, false); err != nil {
			t.Fatal(err)
		}
		var dels []Mutation
		for i := range 1000 {
			dels = append(dels, Mutation{Key: fmt.Appendf(nil, "r/t%04d", i), Delete: true})
		}
		if err := eng.Apply(dels, false); err != nil {
			t.Fatal(err)
		}
		keepsTombstones := strings.HasPrefix(k.name, "badger")
		cases := []struct {
			lo, hi string
			want   bool
		}{
			{"r/a", "r/a", false},
			{"r/b", "r/b", true},    // a range of one key
			{"r/a", "r/b", true},    // hi inclusive
			{"r/b", "r/c", true},    // lo inclusive
			{"r/ba", "r/cz", false}, // between two keys
			{"r/c", "r/c", false},
			{"r/d", "r/b", false}, // lo > hi: empty
			{"r/e", "r/s", false},
			{"r/e", "s/x", true}, // across prefixes
			{"r/u", "r/zz", false},
			{"", "r/a", false},
			{"s/y", "\xff", false},
			{"r/t", "r/u", keepsTombstones}, // only deleted keys
			{"r/t0500", "r/t0500", keepsTombstones},
		}
		r, release := eng.Reader()
		defer release()
		check := func(how string, r Reader) {
			for _, c := range cases {
				if got, err := r.Any([]byte(c.lo), []byte(c.hi)); err != nil || got != c.want {
					t.Errorf("%s Any(%q, %q) = %v, %v; want %v", how, c.lo, c.hi, got, err, c.want)
				}
			}
		}
		check("Reader", r)
		if err := eng.View(func(r Reader) error { check("View", r); return nil }); err != nil {
			t.Fatal(err)
		}
	})
}

// TestProbeAbsent: Tx.ProbeAbsent finds a range of keys without records
// empty, and then Record answers "absent" for them; it finds a range
// holding a committed record, a record written earlier in the group or
// by this request, or a deleted one, not empty, at both inclusive ends.
// Its answer must never be "empty" where a record is: the applier would
// then overwrite the record instead of merging into it.
func TestProbeAbsent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		put(t, s, "k10", "v")
		put(t, s, "k20", "v")
		put(t, s, "k30", "v")
		put(t, s, "k60", "v")
		// k30 collected: its record deleted from the engine (a Badger
		// tombstone).
		if err := s.Update(ctx, func(tx *Tx) error { return tx.DeleteRecord("k30") }); err != nil {
			t.Fatal(err)
		}
		keepsTombstones := strings.HasPrefix(k.name, "badger")
		probe := func(tx *Tx, want bool, keys ...string) {
			t.Helper()
			got, err := tx.ProbeAbsent(keys)
			if err != nil || got != want {
				t.Errorf("ProbeAbsent(%q) = %v, %v; want %v", keys, got, err, want)
			}
		}
		err := s.Update(ctx, func(tx *Tx) error {
			probe(tx, true, "k15", "k11", "k19")
			probe(tx, true, "k21")
			probe(tx, false)               // nothing to probe
			probe(tx, false, "k19", "k10") // lo inclusive, in any order
			probe(tx, false, "k05", "k10") // hi inclusive
			probe(tx, false, "k20")        // a range of one key
			probe(tx, false, "k11", "k21") // k20 inside
			probe(tx, false, "k00", "k99")
			probe(tx, !keepsTombstones, "k29", "k31") // only the collected k30
			if _, ok, err := tx.Record("k15"); err != nil || ok {
				t.Errorf("k15 after an empty probe: %v, %v", ok, err)
			}
			if st, ok, err := tx.Record("k20"); err != nil || !ok || string(st.Versions[0].Value) != "v" {
				t.Errorf("k20 after a probe that found it: %v, %v, %v", st, ok, err)
			}
			// This request's own writes: a record, and a deletion.
			if _, err := tx.Write("k45", []byte("w"), false); err != nil {
				return err
			}
			probe(tx, false, "k41", "k49")
			probe(tx, false, "k45")
			if err := tx.DeleteRecord("k60"); err != nil {
				return err
			}
			probe(tx, false, "k55", "k65")
			if st, ok, err := tx.Record("k45"); err != nil || !ok || string(st.Versions[0].Value) != "w" {
				t.Errorf("k45 after the probe: %v, %v, %v", st, ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// The writes of an earlier request in the same group: requests
		// queued behind a blocked writer run as one group.
		release := make(chan struct{})
		blocked := blockWriter(t, s, release)
		first := make(chan error, 1)
		go func() {
			first <- s.Update(ctx, func(tx *Tx) error {
				_, err := tx.Write("k75", []byte("earlier"), false)
				return err
			})
		}()
		waitQueued(t, s, 1)
		second := make(chan error, 1)
		var found bool
		var sawEmpty bool
		go func() {
			second <- s.Update(ctx, func(tx *Tx) error {
				var err error
				if sawEmpty, err = tx.ProbeAbsent([]string{"k71", "k79"}); err != nil {
					return err
				}
				_, found, err = tx.Record("k75")
				return err
			})
		}()
		waitQueued(t, s, 2)
		commits := s.Commits()
		close(release)
		for _, c := range []chan error{blocked, first, second} {
			if err := <-c; err != nil {
				t.Fatal(err)
			}
		}
		if n := s.Commits() - commits; n != 2 {
			t.Fatalf("%d commits for the blocker and one group, want 2", n)
		}
		if sawEmpty || !found {
			t.Errorf("a probe after an earlier request of its group wrote k75: empty %v, then Record found it %v", sawEmpty, found)
		}
	})
}
