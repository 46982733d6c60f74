package store

import (
	"fmt"
	"testing"
)

// TestRecordWatchSeesEveryRecordWrite: a push keeps the record entries it
// staged and reuses them at its commit for keys no request wrote since
// (Tx.Reuse). Every way a request changes a record entry (a local write,
// PutRecord as pulls, rebases and restores do, a mark set or cleared,
// DeleteRecord as collection does, a pos raised), made after the entry
// was kept, must make Reuse refuse it, so that the commit reads the key
// again; an untouched key's entry is reused and reads as staged; and a
// stopped or replaced watch reuses nothing.
func TestRecordWatchSeesEveryRecordWrite(t *testing.T) {
	forEachEngine(t, func(t *testing.T, k engineKind) {
		s, _ := newStore(t, k, nil)
		writes := map[string]func(tx *Tx) error{
			"write":  func(tx *Tx) error { _, err := tx.Write("write", []byte("new"), false); return err },
			"delete": func(tx *Tx) error { _, err := tx.Write("delete", nil, true); return err },
			"put": func(tx *Tx) error {
				st, _, err := tx.Record("put")
				if err != nil {
					return err
				}
				st.Pos = 77
				return tx.PutRecord("put", st)
			},
			"mark":     func(tx *Tx) error { return tx.SetOutboxMark("mark", 99) },
			"clear":    func(tx *Tx) error { return tx.ClearOutboxMark("clear") },
			"drop":     func(tx *Tx) error { return tx.DeleteRecord("drop") },
			"raisepos": func(tx *Tx) error { return tx.RaisePos("raisepos", 50) },
		}
		keys := []string{"untouched"}
		for k := range writes {
			keys = append(keys, k)
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			for _, k := range keys {
				if _, err := tx.Write(k, []byte("old"), false); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var w *RecordWatch
		kept := map[string]*RecordEntry{}
		if err := s.Update(ctx, func(tx *Tx) error {
			w = tx.WatchRecords()
			for _, k := range keys {
				e, err := tx.Entry(k)
				if err != nil || e == nil {
					return fmt.Errorf("entry of %s: %v %v", k, e, err)
				}
				kept[k] = e
			}
			if e, err := tx.Entry("absent"); err != nil || e != nil {
				return fmt.Errorf("entry of a key without a record: %v %v", e, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for k, fn := range writes {
			if err := s.Update(ctx, fn); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			for k := range writes {
				if tx.Reuse(w, k, kept[k]) {
					return fmt.Errorf("the kept entry of %s, written since, was reused", k)
				}
			}
			if !tx.Reuse(w, "untouched", kept["untouched"]) {
				return fmt.Errorf("the kept entry of an untouched key was not reused")
			}
			st, ok, err := tx.Record("untouched")
			if err != nil || !ok || string(st.Record.Versions[0].Value) != "old" {
				return fmt.Errorf("reused record: %+v %v %v", st, ok, err)
			}
			if tx.Reuse(w, "untouched", kept["untouched"]) {
				return fmt.Errorf("reused twice in one request")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// Stopped, then replaced: nothing is reused.
		w.Stop()
		check := func(w *RecordWatch, what string) {
			t.Helper()
			if err := s.Update(ctx, func(tx *Tx) error {
				if tx.Reuse(w, "untouched", kept["untouched"]) {
					return fmt.Errorf("%s: an entry was reused", what)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		check(w, "stopped watch")
		var w2 *RecordWatch
		if err := s.Update(ctx, func(tx *Tx) error { w2 = tx.WatchRecords(); return nil }); err != nil {
			t.Fatal(err)
		}
		check(w, "replaced watch")
		w2.Stop()
		check(nil, "no watch")
	})
}
