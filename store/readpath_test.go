package store

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// TestWriteNewKeyClock: a local write of a new key leaves its record's
// clock out until a read of the same request asks (lazyClock): Tx.Record
// returns the clock it stands for (exactly the write's dot), a second
// write of the key in the request starts from it, and what commits reads
// back the same (in the compact form) from the engine.
func TestWriteNewKeyClock(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		var inTx map[string]Stored
		var dots map[string]clock.Dot
		err := s.Update(ctx, func(tx *Tx) error {
			inTx, dots = map[string]Stored{}, map[string]clock.Dot{}
			for _, key := range []string{"a", "b", "c"} {
				v, err := tx.Write(key, []byte("1-"+key), key == "c")
				if err != nil {
					return err
				}
				dots[key] = v.Dot
			}
			// No t.Fatal here: this runs on the store's writer goroutine.
			st, ok, err := tx.Record("a")
			if err != nil || !ok {
				return fmt.Errorf("record a: %v, %v", ok, err)
			}
			if want := (clock.Vector{dots["a"].Replica: dots["a"].Counter}); !reflect.DeepEqual(st.Clock, want) {
				return fmt.Errorf("record a in its request: clock %v, want %v", st.Clock, want)
			}
			v, err := tx.Write("a", []byte("2-a"), false) // starts from the record just read
			if err != nil {
				return err
			}
			dots["a"] = v.Dot
			for _, key := range []string{"a", "b", "c"} {
				if inTx[key], ok, err = tx.Record(key); err != nil || !ok {
					return fmt.Errorf("record %s: %v, %v", key, ok, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.View(func(v *View) error {
			for key, want := range inTx {
				d := dots[key]
				if c := (clock.Vector{d.Replica: d.Counter}); !reflect.DeepEqual(want.Clock, c) {
					t.Errorf("%s in its request: clock %v, want %v", key, want.Clock, c)
				}
				got, ok, err := v.Record(key)
				if err != nil || !ok {
					t.Fatalf("record %s: %v, %v", key, ok, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: committed %+v, in its request %+v", key, got, want)
				}
				b, _, _ := v.r.Get(recordKey(key))
				if _, _, body, err := splitRecord(key, b); err != nil || len(body) == 0 || body[0] != compactBody {
					t.Errorf("%s: stored body % x (%v), want the compact form", key, body, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if live, _ := recount(t, s); live != 2 {
			t.Errorf("live = %d, want 2", live)
		}
	})
}

// TestViewRecordReads: View.RecordVersions reads the versions View.Record
// reads, for a compact and a canonical body (a record of two versions);
// both keep the value they decode inside the engine's copy, so a caller
// that changes a value it was given changes nothing stored.
func TestViewRecordReads(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		put(t, s, "compact", "value-1")
		other := clock.NewReplicaID()
		err := s.Update(ctx, func(tx *Tx) error {
			v, err := tx.Write("canonical", []byte("mine"), false)
			if err != nil {
				return err
			}
			w := merge.Version{Dot: clock.Dot{Replica: other, Counter: 3}, Time: v.Time, Value: []byte("theirs")}
			c := clock.Vector{v.Dot.Replica: v.Dot.Counter, other: 3}
			rec := merge.Record{Clock: c, Versions: []merge.Version{v, w}}
			if w.Dot.Compare(v.Dot) < 0 {
				rec.Versions = []merge.Version{w, v}
			}
			return tx.PutRecord("canonical", Stored{Record: rec})
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.View(func(v *View) error {
			for _, key := range []string{"compact", "canonical", "absent"} {
				st, ok, err := v.Record(key)
				if err != nil {
					t.Fatal(err)
				}
				vs, ok2, err := v.RecordVersions(key)
				if err != nil {
					t.Fatal(err)
				}
				if ok != (key != "absent") || ok2 != ok {
					t.Fatalf("%s: Record found %v, RecordVersions %v", key, ok, ok2)
				}
				if !reflect.DeepEqual(vs, st.Versions) {
					t.Errorf("%s: RecordVersions %+v, Record's %+v", key, vs, st.Versions)
				}
				for i := range vs {
					clear(vs[i].Value)
				}
				for i := range st.Versions {
					clear(st.Versions[i].Value)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := value(t, s, "compact"); got != "value-1" {
			t.Errorf("compact reads %q after a caller changed its copy, want value-1", got)
		}
		err = s.View(func(v *View) error {
			vs, _, err := v.RecordVersions("canonical")
			for _, x := range vs {
				if !bytes.Equal(x.Value, []byte("mine")) && !bytes.Equal(x.Value, []byte("theirs")) {
					t.Errorf("canonical: a version reads %q after a caller changed its copy", x.Value)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
