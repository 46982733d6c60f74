package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.Replicas != DefaultReplicas || c.Ops != DefaultOps || c.Keys != DefaultKeys || c.Skew != DefaultSkew ||
		c.Faults != DefaultFaults || c.Policy != PolicyLWW || c.Engine != EngineMem || c.Codec != "raw" ||
		c.SegmentCap != DefaultSegmentCap || c.MaxRounds != DefaultMaxRounds {
		t.Fatalf("defaults: %+v", c)
	}
	again, err := c.validate()
	if err != nil || !configEqual(again, c) {
		t.Fatalf("validate is not idempotent: %+v\n%+v", again, c)
	}
	off, _ := Config{Faults: -1, Crashes: -1, Partitions: -1, Jumps: -1, Skew: -1}.validate()
	if on(off.Faults) != 0 || on(off.Crashes) != 0 || faultsAt(off.Faults) != (Faults{}) {
		t.Fatalf("negative rates must turn faults off: %+v", off)
	}
	for _, bad := range []Config{
		{Replicas: 27}, {Keys: -1}, {Ops: -1}, {Faults: 0.6}, {Policy: "nope"}, {Engine: "disk"},
		{Codec: "lz4"}, {Durability: 7}, {Replicas: 2, Offsets: []time.Duration{0}}, {Crashes: 0.5, Partitions: 0.5},
	} {
		if _, err := bad.validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func configEqual(a, b Config) bool {
	ja, _ := json.Marshal(a) // the func and interface fields are nil here
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestDeterministic: the same config gives the same trace and report, byte
// for byte, on every engine and durability.
func TestDeterministic(t *testing.T) {
	for _, cfg := range []Config{
		{Seed: 11, Ops: 60, Faults: 0.3, Crashes: 0.1},
		{Seed: 12, Ops: 60, Faults: 0.3, Durability: store.Relaxed, Crashes: 0.15, Policy: PolicySet},
		{Seed: 13, Ops: 40, Faults: 0.2, Engine: EngineBadger, Policy: PolicyCounter, Codec: "zstd"},
		{Seed: 14, Ops: 40, Replicas: 5, Policy: PolicyMV, SegmentCap: 1},
		// Sealed: random keys, nonces and wrapped keys, the same trace.
		{Seed: 15, Ops: 60, Faults: 0.3, Crashes: 0.1, Compactions: 0.1, Sealed: true},
	} {
		a, errA := Run(cfg)
		b, errB := Run(cfg)
		if errA != nil || errB != nil {
			t.Fatalf("seed %d: %v / %v", cfg.Seed, errA, errB)
		}
		ta, tb := strings.Join(a.Trace, "\n"), strings.Join(b.Trace, "\n")
		if ta != tb {
			t.Fatalf("seed %d: traces differ:\n%s\n---\n%s", cfg.Seed, ta, tb)
		}
		var ra, rb bytes.Buffer
		a.WriteText(&ra)
		b.WriteText(&rb)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if ra.String() != rb.String() || !bytes.Equal(ja, jb) {
			t.Fatalf("seed %d: reports differ:\n%s\n%s", cfg.Seed, ra.String(), rb.String())
		}
		if len(a.Trace) < cfg.Ops {
			t.Fatalf("seed %d: trace of %d lines for %d operations", cfg.Seed, len(a.Trace), cfg.Ops)
		}
	}
	// A different seed gives another run.
	a, _ := Run(Config{Seed: 1})
	b, _ := Run(Config{Seed: 2})
	if slices.Equal(a.Trace, b.Trace) {
		t.Fatal("seeds 1 and 2 gave the same trace")
	}
}

// TestEnginesAgree is metamorphic: the same schedule without crashes
// reaches the same state whatever the engine, the durability and the
// codec.
func TestEnginesAgree(t *testing.T) {
	for seed := range uint64(6) {
		base := Config{Seed: seed, Ops: 40, Crashes: -1, Faults: 0.2, Policy: []string{PolicyLWW, PolicyCounter, PolicySet}[seed%3]}
		var digests []string
		for _, v := range []func(*Config){
			func(*Config) {},
			func(c *Config) { c.Engine = EngineBadger },
			func(c *Config) { c.Durability = store.Relaxed },
		} {
			c := base
			v(&c)
			rep, err := Run(c)
			if err != nil {
				t.Fatal(err)
			}
			digests = append(digests, rep.Digest)
		}
		if digests[0] != digests[1] || digests[0] != digests[2] {
			t.Fatalf("seed %d: digests differ across engines and durabilities: %v", seed, digests)
		}
	}
}

// TestOldRulesCaughtBySweep: random schedules catch each old rule within a
// few seeds, and the failure prints the seed and a shrunk schedule that
// fails again when replayed.
func TestOldRulesCaughtBySweep(t *testing.T) {
	for _, r := range []OldRule{OldMergeByHLC, OldPruneLosers, OldUnsyncedStaging} {
		t.Run(r.Knob, func(t *testing.T) {
			for seed := range uint64(200) {
				cfg := Config{Seed: seed, Faults: 0.1}
				if r.Name == OldUnsyncedStaging.Name {
					cfg.Durability, cfg.Crashes = store.Relaxed, 0.2
				}
				r.Apply(&cfg)
				_, err := Run(cfg)
				if err == nil {
					continue
				}
				var f *Failure
				if !errors.As(err, &f) {
					t.Fatalf("seed %d: %v", seed, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, "shortest failing schedule") || !strings.Contains(msg, "seed ") {
					t.Fatalf("the failure does not print the seed and the schedule:\n%s", msg)
				}
				if len(f.Schedule) >= f.Generated || len(f.Schedule) > 12 {
					t.Fatalf("schedule not shrunk: %d of %d operations", len(f.Schedule), f.Generated)
				}
				if _, err := Replay(f.Config, f.Schedule); err == nil {
					t.Fatalf("the shrunk schedule passes when replayed:\n%s", msg)
				}
				t.Logf("caught at seed %d:\n%s", seed, msg)
				return
			}
			t.Fatalf("200 seeds did not catch %s", r.Name)
		})
	}
}

// TestUserPolicy runs a user's own policy (a merge.NewFunc that keeps the
// larger value) under faults and crashes.
func TestUserPolicy(t *testing.T) {
	larger := merge.NewFunc("larger", func(_ string, a, b merge.Version) (merge.Version, error) {
		if b.Deleted || (!a.Deleted && bytes.Compare(a.Value, b.Value) >= 0) {
			return a, nil
		}
		return b, nil
	})
	for seed := range uint64(20) {
		rep, err := Run(Config{Seed: seed, UserPolicy: larger, Faults: 0.2})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Policy != "larger" || !rep.Converged {
			t.Fatalf("report: %+v", rep)
		}
	}
}

func TestRunMany(t *testing.T) {
	rep, err := RunMany(Config{Seed: 100, Ops: 20}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs != 5 || !rep.Converged || rep.Failed != 0 || rep.Ops != 100 || rep.Digest != "" {
		t.Fatalf("%+v", rep)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "5 runs, seeds 100..104") {
		t.Fatalf("%v\n%s", err, b.String())
	}
	_, err = RunMany(Config{Seed: 0, Merge: MergeByHLC}, 3)
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *Failure, got %v", err)
	}
}

func TestReport(t *testing.T) {
	rep, err := Run(Config{Seed: 3, Faults: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Requests
	if r.Put == 0 || r.Get == 0 || r.List == 0 || rep.BytesOut == 0 || rep.FaultsInjected == 0 {
		t.Fatalf("%+v", rep)
	}
	want := float64(r.Put+r.List)/1000*0.005 + float64(r.Get)/1000*0.0004
	if d := rep.Cost.USD - want; d > 1e-12 || d < -1e-12 {
		t.Fatalf("cost %v, want %v", rep.Cost.USD, want)
	}
	var b bytes.Buffer
	rep.WriteText(&b)
	for _, s := range []string{"converged", "yes", "conflicts", "lost updates", "max siblings", "PUT", "GET", "LIST",
		"bytes", "$0.0050 per 1,000", "$0.0004 per 1,000"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, b.String())
		}
	}
	var back Report
	j, _ := json.Marshal(rep)
	if err := json.Unmarshal(j, &back); err != nil || back.Requests != rep.Requests || !back.Converged {
		t.Fatalf("json round trip: %v %s", err, j)
	}
}

// TestWorld drives a world one operation at a time.
func TestWorld(t *testing.T) {
	w, err := NewWorld(Config{Seed: 5, Replicas: 2, Faults: -1, Skew: -1, DriftPPM: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, op := range []Op{
		{ID: 0, R: 0, Kind: OpPut, Key: "k", Value: "a"},
		{ID: 1, R: 1, Kind: OpPut, Key: "k", Value: "b"},
		{ID: 2, R: 0, Kind: OpSync},
		{ID: 3, R: 1, Kind: OpSync},
		{ID: 4, R: 0, Kind: OpPull},
	} {
		if err := w.Do(op); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if rep.MaxSiblings != 2 || rep.LostUpdates != 1 || rep.Writes != 2 {
		t.Fatalf("%+v", rep)
	}
	if err := w.Do(Op{Kind: OpSync}); err == nil {
		t.Fatal("Do after Finish")
	}
}
