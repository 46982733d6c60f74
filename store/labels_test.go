package store

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
)

// labelEngine is a real Badger engine whose Apply records the profile
// labels of the goroutine that commits (the store's writer), read from the
// goroutine profile.
type labelEngine struct {
	*Badger
	applyLabels []string
}

func (e *labelEngine) Apply(muts []Mutation, sync bool) error {
	e.applyLabels = append(e.applyLabels, writerLabels())
	return e.Badger.Apply(muts, sync)
}

// writerLabels returns the "# labels:" line of the goroutine running
// Store.group in a debug=1 goroutine profile ("" when it has none).
func writerLabels() string {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return "error: " + err.Error()
	}
	// Records are separated by blank lines: a count line, an optional
	// labels line, then the stack.
	for _, rec := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(rec, "store.(*Store).group") {
			continue
		}
		for _, line := range strings.Split(rec, "\n") {
			if strings.HasPrefix(line, "# labels: ") {
				return strings.TrimPrefix(line, "# labels: ")
			}
		}
		return ""
	}
	return "no writer goroutine"
}

// TestWriterProfileLabels: a request's work and its group's commit run in
// the store's writer goroutine under the profile labels of the request's
// context (pprof.Do), so a CPU profile's -tagfocus attributes them to the
// caller; a request without labels leaves the writer unlabelled, whoever
// opened the store.
func TestWriterProfileLabels(t *testing.T) {
	b, err := OpenBadger("", BadgerOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	eng := &labelEngine{Badger: b}
	var s *Store
	// Opened under a label of its own: the writer inherits it at birth.
	pprof.Do(context.Background(), pprof.Labels("phase", "open"), func(context.Context) {
		s, err = Open(eng, &Options{Durability: Relaxed})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Init(context.Background(), clock.NewReplicaID()); err != nil {
		t.Fatal(err)
	}
	var inFn string
	pprof.Do(context.Background(), pprof.Labels("phase", "put-test"), func(ctx context.Context) {
		err = s.Update(ctx, func(tx *Tx) error {
			inFn = writerLabels()
			_, err := tx.Write("k", []byte("v"), false)
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"phase":"put-test"}`
	if inFn != want {
		t.Errorf("labels of the writer running the request: %q, want %q", inFn, want)
	}
	if got := eng.applyLabels[len(eng.applyLabels)-1]; got != want {
		t.Errorf("labels of the writer committing the group: %q, want %q", got, want)
	}
	// A request whose context has no labels: not charged to "put-test"
	// (the last labelled request) nor to "open".
	var plain string
	if err := s.Update(context.Background(), func(tx *Tx) error {
		plain = writerLabels()
		_, err := tx.Write("k2", []byte("v"), false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if plain != "" {
		t.Errorf("labels of the writer running an unlabelled request: %q, want none", plain)
	}
}
