package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

// The crash test kills a real writer process with SIGKILL at random points
// and checks that the replica it leaves behind always opens, holds every
// write the process acknowledged, and keeps its O(1) counters equal to full
// recounts. The writer is this test binary re-executed with
// -test.run=^TestCrashChild$ and EBREPLICA_CRASH_CHILD=<dir>.
//
//	EBREPLICA_CRASH_KILLS  number of kills (default 100)
//	EBREPLICA_CRASH_SEED   seed of the kill points (default: random, logged)
const (
	crashChildEnv = "EBREPLICA_CRASH_CHILD"
	crashRoundEnv = "EBREPLICA_CRASH_ROUND"
	crashWriters  = 4  // goroutines in the child, each owning its keys
	crashKeys     = 12 // keys per goroutine
	crashMaxAcks  = 60 // a round is killed after 0..crashMaxAcks acks
)

// TestCrashChild is the writer process. It writes until it is killed,
// printing one line per acknowledged write:
//
//	put <key> <value> <dot counter>
//	del <key> <dot counter>
//
// The dot counter is read back after the write returns (each key has a
// single writer goroutine, so the key's only version is that write).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashKill")
	}
	round := os.Getenv(crashRoundEnv)
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", a...)
		os.Exit(3)
	}
	r, err := engine.Open(dir, &engine.Options{Durability: store.Sync})
	if err != nil {
		fail("open: %v", err)
	}
	var outMu sync.Mutex
	emit := func(lines []string) {
		outMu.Lock()
		defer outMu.Unlock()
		// One write per acknowledgement (< PIPE_BUF): never torn by a kill.
		if _, err := os.Stdout.WriteString(strings.Join(lines, "")); err != nil {
			os.Exit(4) // the parent is gone
		}
	}
	emit([]string{"ready\n"})
	ctx := context.Background()
	counterOf := func(key string) uint64 {
		vs, err := r.Versions(key)
		if err != nil || len(vs) != 1 {
			fail("versions of %s: %v %v", key, vs, err)
		}
		return vs[0].Counter
	}
	// Safety net: never outlive a lost parent for long.
	time.AfterFunc(2*time.Minute, func() { fail("not killed") })
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(g)))
			live := map[string]bool{}
			for i := range crashKeys {
				key := fmt.Sprintf("w%d/k%02d", g, i)
				_, err := r.Get(key)
				live[key] = err == nil
			}
			seq := 0
			nextVal := func() string { seq++; return fmt.Sprintf("%s.%d.%d", round, g, seq) }
			for {
				key := fmt.Sprintf("w%d/k%02d", g, rng.IntN(crashKeys))
				switch op := rng.IntN(10); {
				case op < 5 || op < 7 && !live[key]:
					val := nextVal()
					if err := r.Put(ctx, key, []byte(val)); err != nil {
						fail("put: %v", err)
					}
					live[key] = true
					emit([]string{fmt.Sprintf("put %s %s %d\n", key, val, counterOf(key))})
				case op < 7:
					if err := r.Delete(ctx, key); err != nil {
						fail("delete: %v", err)
					}
					live[key] = false
					emit([]string{fmt.Sprintf("del %s %d\n", key, counterOf(key))})
				default:
					type bop struct {
						key, val string
						del      bool
					}
					var ops []bop
					for _, j := range rng.Perm(crashKeys)[:2+rng.IntN(4)] {
						k := fmt.Sprintf("w%d/k%02d", g, j)
						if live[k] && rng.IntN(3) == 0 {
							ops = append(ops, bop{key: k, del: true})
						} else {
							ops = append(ops, bop{key: k, val: nextVal()})
						}
					}
					err := r.Batch(ctx, func(b *engine.Batch) error {
						for _, o := range ops {
							if o.del {
								b.Delete(o.key)
							} else {
								b.Put(o.key, []byte(o.val))
							}
						}
						return nil
					})
					if err != nil {
						fail("batch: %v", err)
					}
					var lines []string
					for _, o := range ops {
						live[o.key] = !o.del
						if o.del {
							lines = append(lines, fmt.Sprintf("del %s %d\n", o.key, counterOf(o.key)))
						} else {
							lines = append(lines, fmt.Sprintf("put %s %s %d\n", o.key, o.val, counterOf(o.key)))
						}
					}
					emit(lines)
				}
			}
		}()
	}
	wg.Wait()
}

// crashAck is an acknowledged (or, after a check, observed durable) state
// of a key.
type crashAck struct {
	del     bool
	val     string
	counter uint64
}

func parseAck(line string) (key string, a crashAck, err error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 4 && f[0] == "put":
		a.val = f[2]
	case len(f) == 3 && f[0] == "del":
		a.del = true
	default:
		return "", a, fmt.Errorf("bad ack line %q", line)
	}
	a.counter, err = strconv.ParseUint(f[len(f)-1], 10, 64)
	return f[1], a, err
}

// valueOrder parses "<round>.<goroutine>.<seq>" into a comparable pair.
func valueOrder(v string) (round, seq int) {
	p := strings.Split(v, ".")
	if len(p) != 3 {
		return -1, -1
	}
	round, _ = strconv.Atoi(p[0])
	seq, _ = strconv.Atoi(p[2])
	return round, seq
}

func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	kills := 100
	if s := os.Getenv("EBREPLICA_CRASH_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("EBREPLICA_CRASH_KILLS=%q", s)
		}
		kills = n
	}
	seed := rand.Uint64()
	if s := os.Getenv("EBREPLICA_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("EBREPLICA_CRASH_SEED=%q", s)
		}
	}
	t.Logf("crash test: %d kills, seed %d (EBREPLICA_CRASH_SEED=%d to repeat the kill points)", kills, seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	dir := t.TempDir()
	r, err := engine.Init(dir, "mem://crash", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	var counterBefore uint64 // the persisted dot counter when a round starts

	model := map[string]crashAck{} // per key: the latest acknowledged or observed durable state
	var totalAcks int
	start := time.Now()
	for round := 1; round <= kills; round++ {
		// Every write the child acknowledges must get a dot counter above
		// the one persisted when it started (no dot reuse).
		killAt := rng.IntN(crashMaxAcks + 1)
		acks, err := crashRound(dir, round, killAt, func(key string, a crashAck) error {
			if a.counter <= counterBefore {
				return fmt.Errorf("ack of %s with dot counter %d, not above the persisted %d: dot reuse", key, a.counter, counterBefore)
			}
			if prev, ok := model[key]; ok && a.counter <= prev.counter {
				return fmt.Errorf("acks of %s out of order: counter %d after %d", key, a.counter, prev.counter)
			}
			model[key] = a
			return nil
		})
		if err != nil {
			t.Fatalf("round %d (kill after %d acks, seed %d): %v", round, killAt, seed, err)
		}
		totalAcks += acks
		if counterBefore, err = checkAfterCrash(dir, model); err != nil {
			t.Fatalf("round %d (kill after %d acks, seed %d): %v", round, killAt, seed, err)
		}
	}
	t.Logf("%d kills, %d acknowledged writes checked, %d keys, %v", kills, totalAcks, len(model), time.Since(start).Round(time.Millisecond))
}

// crashRound runs one writer process, kills it with SIGKILL on reading its
// killAt-th acknowledgement ("ready" when killAt is 0), and passes every
// acknowledgement it printed before dying to ack.
func crashRound(dir string, round, killAt int, ack func(key string, a crashAck) error) (int, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	defer kill() // on any early return
	n := 0
	var ackErr error
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ready":
			if killAt == 0 {
				kill()
			}
			continue
		case strings.HasPrefix(line, "put ") || strings.HasPrefix(line, "del "):
		default:
			continue // test framework noise
		}
		// Every line printed before death is an acknowledged write, so
		// lines read after the kill count too.
		key, a, err := parseAck(line)
		if err == nil && ackErr == nil {
			err = ack(key, a)
		}
		if err != nil && ackErr == nil {
			ackErr = err
			kill()
		}
		n++
		if n == killAt {
			kill()
		}
	}
	werr := cmd.Wait()
	if ackErr != nil {
		return n, ackErr
	}
	if !killed {
		return n, fmt.Errorf("writer exited after %d acks before the kill: %v\n%s", n, werr, stderr.String())
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return n, fmt.Errorf("writer did not die by SIGKILL: %v\n%s", werr, stderr.String())
	}
	return n, nil
}

// checkAfterCrash reopens the replica and checks it against the model:
// each key's current write is its last acknowledged write or a later one,
// and the counters equal full recounts. The model then takes the observed
// state, which the reopen has made durable. It returns the persisted dot
// counter.
func checkAfterCrash(dir string, model map[string]crashAck) (uint64, error) {
	r, err := engine.Open(dir, nil)
	if err != nil {
		return 0, fmt.Errorf("reopen after kill: %w", err)
	}
	defer r.Close()
	for key, want := range model {
		vs, err := r.Versions(key)
		if errors.Is(err, engine.ErrNotFound) {
			return 0, fmt.Errorf("%s: acknowledged write (counter %d) lost: no record", key, want.counter)
		}
		if err != nil {
			return 0, err
		}
		if len(vs) != 1 {
			return 0, fmt.Errorf("%s: %d versions", key, len(vs))
		}
		got := crashAck{del: vs[0].Deleted, val: string(vs[0].Value), counter: vs[0].Counter}
		switch {
		case got.counter < want.counter:
			return 0, fmt.Errorf("%s: acknowledged write lost: holds counter %d (%+v), acknowledged %d (%+v)", key, got.counter, got, want.counter, want)
		case got.counter == want.counter && (got.del != want.del || got.val != want.val):
			return 0, fmt.Errorf("%s: dot counter %d names two writes: %+v and %+v", key, got.counter, got, want)
		case got.counter > want.counter && !got.del && !want.del:
			gr, gs := valueOrder(got.val)
			wr, ws := valueOrder(want.val)
			if gr < wr || gr == wr && gs <= ws {
				return 0, fmt.Errorf("%s: holds %q (counter %d), older than the acknowledged %q (counter %d)", key, got.val, got.counter, want.val, want.counter)
			}
		}
		v, err := r.Get(key)
		switch {
		case got.del && !errors.Is(err, engine.ErrNotFound):
			return 0, fmt.Errorf("%s: deleted, Get = %q %v", key, v, err)
		case !got.del && (err != nil || string(v) != got.val):
			return 0, fmt.Errorf("%s: Get = %q %v, version %q", key, v, err, got.val)
		}
		model[key] = got
	}
	var live, marks int64
	err = r.Store().View(func(v *store.View) error {
		var err error
		if live, err = v.CountLive(); err != nil {
			return err
		}
		return v.OutboxMarks("", func(string, uint64) (bool, error) { marks++; return true, nil })
	})
	if err != nil {
		return 0, err
	}
	if r.Len() != live || r.Store().OutboxLen() != marks {
		return 0, fmt.Errorf("counters: Len %d (recount %d), Pending %d (marks %d)", r.Len(), live, r.Store().OutboxLen(), marks)
	}
	st, err := r.Status()
	if err != nil {
		return 0, err
	}
	var maxSeen uint64
	for _, a := range model {
		maxSeen = max(maxSeen, a.counter)
	}
	if st.Counter < maxSeen {
		return 0, fmt.Errorf("persisted dot counter %d below a stored dot %d", st.Counter, maxSeen)
	}
	return st.Counter, r.Close()
}
