package sim

import (
	"context"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// TestSealedSweep runs the sweep's sealed seeds (every tenth, s%10 == 9)
// of the first 600: the protocol holds with every body sealed above the
// faults (torn and corrupt reads then fail authentication).
func TestSealedSweep(t *testing.T) {
	n := 0
	for s := uint64(9); s < 600; s += 10 {
		cfg := sweepConfig(s)
		if !cfg.Sealed {
			t.Fatalf("seed %d is not sealed", s)
		}
		if _, err := Run(cfg); err != nil {
			t.Errorf("seed %d: %v", s, err)
		}
		n++
	}
	if n != 60 {
		t.Fatalf("%d seeds", n)
	}
}

// TestSealedWorldSeals: in a Sealed run every log segment and registry in
// the bucket is sealed (it does not decode as stored, and opens with the
// run's key), and the bucket holds the store's keys.
func TestSealedWorldSeals(t *testing.T) {
	cfg, err := sweepConfig(19).validate()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults, cfg.Crashes, cfg.Partitions = -1, -1, -1
	w, err := NewWorld(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, op := range generate(cfg) {
		if err := w.Do(op); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	logs, keys := 0, 0
	for _, key := range w.mem.Keys() {
		obj, err := w.mem.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(key, sealremote.KeysPrefix):
			keys++
		case strings.HasPrefix(key, remote.LogPrefix):
			logs++
			if _, err := segment.Decode(key, obj.Data); err == nil {
				t.Fatalf("%s decodes as stored: not sealed", key)
			}
			fallthrough
		case strings.HasPrefix(key, remote.ReplicasPrefix):
			if _, err := w.plain(ctx, key, obj.Data); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
		}
	}
	if logs == 0 || keys < 2 {
		t.Fatalf("%d segments, %d key objects", logs, keys)
	}
}
