package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

var ms20 = Latency{Mean: 20 * time.Millisecond}

// One writer never contends: 2 PUTs (the registry swap and the claim) and
// no LIST per push, every claim on the first try.
func TestFleetUncontended(t *testing.T) {
	r, err := RunFleet(FleetConfig{Seed: 3, Replicas: 1, Latency: ms20, Rounds: 4})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Contention
	if r.Pushes != 4 || c.PutPerPush != 2 || c.ListPerPush != 0 || c.FirstTry != 1 || r.Retries != 0 || !r.Converged {
		t.Fatalf("one writer: %+v", r)
	}
}

// The same config gives the same report; another seed another one.
func TestFleetDeterministic(t *testing.T) {
	cfg := FleetConfig{Seed: 7, Replicas: 40, Latency: ms20, Interval: 2 * time.Second, Rounds: 2}
	text := func(c FleetConfig) string {
		r, err := RunFleet(c)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(r.Report())
		if err != nil {
			t.Fatal(err)
		}
		return b.String() + string(j)
	}
	a, b := text(cfg), text(cfg)
	if a != b {
		t.Fatalf("same seed, two reports:\n%s\n%s", a, b)
	}
	cfg.Seed++
	if c := text(cfg); c == a {
		t.Fatalf("seeds 7 and 8 gave the same report:\n%s", a)
	}
	if !strings.Contains(a, `"contention":{"put_per_push":`) || !strings.Contains(a, `"first_try":`) ||
		!strings.Contains(a, `"commits_per_s":`) || !strings.Contains(a, `"list_per_push":`) {
		t.Fatalf("the JSON lacks the contention object: %s", a)
	}
}

// Every verb takes the latency: without jitter, a lone writer's push
// (registry PUT, tail LIST, claim PUT, registry GET) takes exactly four
// request times, and a pull that finds one new segment (the probe GET, the
// LIST after the cursor) two, plus one more for each further segment.
func TestFleetLatencyDelaysEveryVerb(t *testing.T) {
	lat := Latency{Mean: 20 * time.Millisecond, Jitter: -1}
	r, err := RunFleet(FleetConfig{Seed: 1, Replicas: 1, Latency: lat, Rounds: 3, TipList: true, PushOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.PushMean != 80*time.Millisecond || r.PushP99 != 80*time.Millisecond {
		t.Fatalf("push with the tail listed: mean %s, p99 %s; want 4 requests of 20ms", r.PushMean, r.PushP99)
	}
	// Two writers, one push each, both at time 0; then each pulls once:
	// the probe GET of position 1 (found, fetched even if its own), the
	// LIST after 0, and a GET of position 2 unless it is its own. The
	// writer at 1 makes 3 requests, the writer at 2 makes 2: 50ms on
	// average.
	r, err = RunFleet(FleetConfig{Seed: 1, Replicas: 2, Latency: lat, Rounds: 1, PushOnly: true, Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pulls != 2 || r.PullMean != 50*time.Millisecond || r.Requests.List != 2+int64(2*r.Contention.ListPerPush) {
		t.Fatalf("pulls: %d, mean %s, %d LIST; want 2 pulls of 3 and 2 requests of 20ms", r.Pulls, r.PullMean, r.Requests.List)
	}
}

// The fleet model's claims cost what the engine's do. K real replicas
// (the engine, store.Mem, a memory remote) pull the empty store, then push
// one after the other, each with a tip of 0, as K fleet writers that push
// once, an hour apart at random phases, do: each finds the positions of
// those before it taken. The PUTs and LISTs of their pushes must match.
func TestFleetMatchesEngine(t *testing.T) {
	const k = 7
	puts, lists := enginePushCosts(t, k, nil)
	f, err := RunFleet(FleetConfig{Seed: 1, Replicas: k, Latency: ms20, Rounds: 1, PushOnly: true, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if f.Retries == 0 {
		t.Fatalf("the fleet's pushes did not follow each other on a stale tip: %+v", f)
	}
	fp, fl := f.Contention.PutPerPush*k, f.Contention.ListPerPush*k
	if fp != float64(puts) || fl != float64(lists) {
		t.Fatalf("%d pushes: the engine made %d PUT and %d LIST, the fleet model %.0f PUT and %.0f LIST", k, puts, lists, fp, fl)
	}
	t.Logf("%d pushes on a stale tip: %d PUT, %d LIST in the engine and the model", k, puts, lists)
}

// enginePushCosts opens k real replicas (the engine, store.Mem, a memory
// remote) with rules (the protocol's when nil), lets each pull the empty
// store, then pushes one write from each, one after the other, and
// returns the PUTs and LISTs of those pushes. Push i lands at position i.
func enginePushCosts(t *testing.T, k int, rules *protocol.Rules) (puts, lists int64) {
	t.Helper()
	ctx := context.Background()
	b, err := memremote.NewWithOptions("engine", memremote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var reps []*engine.Engine
	for i := range k {
		var id clock.ReplicaID
		id[0], id[6], id[8] = byte(i+1), 0x40, 0x80
		o := &engine.Options{Engine: store.NewMem(), Create: true, ID: id, Backend: b,
			Wall: func() time.Time { return Epoch }}
		if rules != nil {
			o.Hooks = &engine.Hooks{Rules: rules}
		}
		r, err := engine.Open("", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if _, err := r.Pull(ctx); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
	}
	for i, r := range reps {
		if err := r.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		ps, err := r.Push(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps.Positions) != 1 || ps.Positions[0] != uint64(i+1) {
			t.Fatalf("push %d landed at %v", i, ps.Positions)
		}
		puts += ps.Requests.Put
		lists += ps.Requests.List
	}
	return puts, lists
}

// The design at the target's load, scaled down for CI: 100 writers each
// syncing every 6 s offer the log what 1,000 once a minute do (16.7
// pushes/s). One global log misses the target; 8 sharded logs with the
// tail listed before the claim meet it.
func TestFleetShardedMeetsTargetScaled(t *testing.T) {
	base := FleetConfig{Seed: 1, Replicas: 100, Latency: ms20, Interval: 6 * time.Second, Rounds: 3}
	global, err := RunFleet(base)
	if err != nil {
		t.Fatal(err)
	}
	if global.Contention.FirstTry > 0.5 || global.Contention.PutPerPush < 3 {
		t.Fatalf("one global log at 16.7 pushes/s: %+v", global.Contention)
	}
	sharded := base
	sharded.Shards, sharded.TipList = 8, true
	r, err := RunFleet(sharded)
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Contention; c.FirstTry < 0.95 || c.PutPerPush > 2.2 || !r.Converged {
		t.Fatalf("8 shards, tail listed: %+v", r.Contention)
	}
}

func TestFleetBadConfig(t *testing.T) {
	for _, c := range []FleetConfig{
		{}, // no latency
		{Latency: Latency{Mean: -time.Second}},
		{Latency: Latency{Mean: time.Millisecond, Jitter: 1.5}},
		{Latency: ms20, Replicas: MaxFleet + 1},
		{Latency: ms20, Replicas: -1},
		{Latency: ms20, Rounds: -2},
		{Latency: ms20, Shards: MaxShards + 1},
		{Latency: ms20, Window: -1},
	} {
		if _, err := RunFleet(c); err == nil || !strings.HasPrefix(err.Error(), "sim: ") {
			t.Errorf("%+v: err %v", c, err)
		}
	}
}
