package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/store"
)

// The chaos test (issue 10) drives three replica directories on one store
// of the real S3 test server with real processes, and kills (SIGKILL) and
// suspends (SIGSTOP, later SIGCONT) them in the middle of writes, pushes,
// pulls and compactions with pruning, then checks that nothing
// acknowledged was lost:
//
//   - each directory is driven by a sequence of child processes (this test
//     binary re-executed with -test.run=^TestChaosChild$ and
//     EBREPLICA_CHAOS_CHILD=<plan>), one at a time (the directory is
//     locked); the three sequences run concurrently;
//   - a child opens the replica (Sync durability), makes a few writes to
//     its directory's own keys (put, delete, and Add to counter keys under
//     the policy cnt/=counter, one of them shared by all directories),
//     printing each write before it starts ("try") and once it returned
//     ("ack"), then runs one Push, Pull, Sync or Compact with Prune
//     (RetireAfter chaosRetireAfter, no grace), and exits;
//   - the parent SIGKILLs some children after a random delay, SIGSTOPs
//     others for a random while (sometimes longer than RetireAfter, so
//     that the others retire the sleeper and prune the log past it), and
//     some children stop or kill themselves at a chosen protocol step
//     (engine.Hooks.Step) — in the middle of a push between the fence and
//     the create, between the create and the commit, in a compaction, a
//     rebase (some children, if they find themselves retired, sleep again
//     past RetireAfter right after the rebase kept their dirty keys);
//   - at the end every directory is opened in-process and synced until
//     all read the same, and the checks run: every key reads its last
//     acknowledged write or a later write that was started (by a child
//     killed before it acknowledged); each counter equals the sum of its
//     acknowledged Adds plus some of the Adds started by killed children;
//     every replica reads the same; the store verifies.
//
// A write acknowledged by a child that was later killed is acknowledged:
// with Sync durability it must survive. Any error of a child (ErrCloned
// included: nobody copies a directory here) fails the test, except an
// operation that read an object a concurrent compaction pruned after it
// was listed (remote.ErrNotExist; Grace is negative here): that one is
// logged and the next child of the directory carries on.
//
// On a failure the test logs what every replica reads, the store's
// objects and registries, and every child's plan, signals and output
// lines with times, in the order they ended. The seed repeats the plans
// and signals, not the timing.
//
//	EBREPLICA_CHAOS_SEED      the schedule's seed (default random, logged)
//	EBREPLICA_CHAOS_CHILDREN  children per directory (default 20; 8 in -short)
const (
	chaosChildEnv    = "EBREPLICA_CHAOS_CHILD"
	chaosDirs        = 3
	chaosKeys        = 6 // plain keys per directory
	chaosRetireAfter = 2 * time.Second
	chaosShared      = "cnt/all" // the counter every directory adds to
	// chaosRefresh is Options.RegistryRefresh, far below the retirement
	// age as it must be: with the default (24 h) a replica retired while
	// idle, with nothing to push and the log pruned past its cursor, lists
	// nothing new and reads stale data until its next registry write.
	chaosRefresh = chaosRetireAfter / 4
)

// chaosPlan is what one child process does.
type chaosPlan struct {
	Dir    string       `json:"dir"`
	Bucket string       `json:"bucket"`
	Prefix string       `json:"prefix"`
	D      int          `json:"d"`     // directory index
	Child  int          `json:"child"` // 1-based, per directory
	Writes []chaosWrite `json:"writes"`
	Op     string       `json:"op"` // push, pull, sync, compact
	// Step, when set: at its StepHit-th hit the child stops itself
	// (SelfAction "stop") or kills itself ("kill").
	Step       string `json:"step,omitempty"`
	StepHit    int    `json:"step_hit,omitempty"`
	SelfAction string `json:"self_action,omitempty"`
	// RebasePause: when this child rebases (it was retired), it stops
	// itself at rebase:kept (a sleeper that wakes up, finds itself
	// retired, and sleeps again in the middle of the rebase).
	RebasePause bool `json:"rebase_pause,omitempty"`
}

type chaosWrite struct {
	Kind  string `json:"kind"` // put, del, add
	Key   string `json:"key"`
	Delta int64  `json:"delta,omitempty"`
}

// TestChaosChild is one child process of TestChaosProcesses. Its stdout
// lines (one write each, never torn by a kill):
//
//	ready
//	try put KEY VAL      / ack put KEY VAL
//	try del KEY TOK      / ack del KEY TOK / skip del KEY TOK (not live)
//	try add KEY TOK DELTA / ack add KEY TOK DELTA
//	op OP
//	step STEP            (a rebase step was reached)
//	pause STEP / die STEP (about to stop / kill itself)
//	done OP JSON         (the operation's stats)
//	fail WHAT: ERROR     (then exit 3)
//	transient OP: ERROR  (the operation read an object pruned meanwhile; exit 5)
func TestChaosChild(t *testing.T) {
	raw := os.Getenv(chaosChildEnv)
	if raw == "" {
		t.Skip("helper process of TestChaosProcesses")
	}
	var outMu sync.Mutex
	emit := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.WriteString(fmt.Sprintf(format, a...) + "\n"); err != nil {
			os.Exit(4) // the parent is gone
		}
	}
	fail := func(format string, a ...any) {
		emit("fail "+format, a...)
		fmt.Fprintf(os.Stderr, "chaos child: "+format+"\n", a...)
		os.Exit(3)
	}
	var p chaosPlan
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		fail("plan: %v", err)
	}
	// Safety net: never outlive a lost parent for long (a stopped child's
	// timers stop with it).
	time.AfterFunc(3*time.Minute, func() { fail("still running after 3 minutes") })

	client := s3test.NewClient(os.Getenv(s3test.EnvEndpoint), os.Getenv(s3test.EnvAccessKey), os.Getenv(s3test.EnvSecretKey))
	be, err := s3remote.New(client, p.Bucket, p.Prefix, nil)
	if err != nil {
		fail("backend: %v", err)
	}
	var stepMu sync.Mutex
	hits, rebasePause := 0, p.RebasePause
	knobs := &engine.Hooks{Step: func(step string) error {
		stepMu.Lock()
		defer stepMu.Unlock()
		if strings.HasPrefix(step, "rebase:") {
			emit("step %s", step)
		}
		action := p.SelfAction
		if rebasePause && step == "rebase:kept" {
			rebasePause = false
			action = "stop"
		} else if step != p.Step {
			return nil
		} else if hits++; hits != p.StepHit {
			return nil
		}
		switch action {
		case "stop":
			emit("pause %s", step)
			if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
				fail("SIGSTOP self: %v", err)
			}
			emit("resumed %s", step)
		case "kill":
			emit("die %s", step)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}}
	r, err := engine.Open(p.Dir, &engine.Options{
		Durability: store.Sync, Backend: be, Hooks: knobs, LowMemory: true, AckInterval: -1, RegistryRefresh: chaosRefresh,
	})
	if err != nil {
		fail("open %s: %v", p.Dir, err)
	}
	emit("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, w := range p.Writes {
		tok := fmt.Sprintf("d%d.c%d.s%d", p.D, p.Child, i+1)
		switch w.Kind {
		case "put":
			emit("try put %s %s", w.Key, tok)
			if err := r.Put(ctx, w.Key, []byte(tok)); err != nil {
				fail("put %s: %v", w.Key, err)
			}
			emit("ack put %s %s", w.Key, tok)
		case "del":
			emit("try del %s %s", w.Key, tok)
			err := r.Delete(ctx, w.Key)
			switch {
			case errors.Is(err, engine.ErrNotFound):
				emit("skip del %s %s", w.Key, tok)
			case err != nil:
				fail("delete %s: %v", w.Key, err)
			default:
				emit("ack del %s %s", w.Key, tok)
			}
		case "add":
			emit("try add %s %s %d", w.Key, tok, w.Delta)
			if _, err := r.CounterAdd(ctx, w.Key, w.Delta); err != nil {
				fail("add %s: %v", w.Key, err)
			}
			emit("ack add %s %s %d", w.Key, tok, w.Delta)
		}
	}
	emit("op %s", p.Op)
	var stats any
	switch p.Op {
	case "push":
		stats, err = r.Push(ctx)
	case "pull":
		stats, err = r.Pull(ctx)
	case "sync":
		stats, err = r.Sync(ctx)
	case "compact":
		stats, err = r.Compact(ctx, engine.CompactOptions{Prune: true, Grace: -1, RetireAfter: chaosRetireAfter})
	default:
		fail("unknown op %q", p.Op)
	}
	if err != nil {
		if errors.Is(err, remote.ErrNotExist) && !errors.Is(err, engine.ErrCloned) {
			// An object listed a moment ago was pruned under this reader by
			// a concurrent compaction (Grace is negative here): the
			// operation failed and changed nothing it cannot resume.
			emit("transient %s: %v", p.Op, err)
			os.Exit(5)
		}
		fail("%s: %v", p.Op, err)
	}
	js, _ := json.Marshal(stats)
	if err := r.Close(); err != nil {
		fail("close: %v", err)
	}
	emit("done %s %s", p.Op, js)
}

// chaosAction is what the parent does to one child.
type chaosAction struct {
	Kind  string        // "", "kill", "stop", "stopkill"
	Delay time.Duration // after "ready"
	Dur   time.Duration // of a stop
}

// chaosKey is the parent's model of one plain key.
type chaosKey struct {
	acked bool
	last  chaosEvent            // the last acknowledged write
	tried map[string]chaosEvent // started, not (yet) acknowledged; by token
}

type chaosEvent struct {
	child, seq int
	del        bool
	val        string
}

func (e chaosEvent) after(o chaosEvent) bool {
	return e.child > o.child || e.child == o.child && e.seq > o.seq
}

type chaosCounter struct {
	sum       int64            // acknowledged Adds
	uncertain map[string]int64 // Adds started by a child killed before acknowledging
	tried     map[string]int64 // in flight in the current child
	acks      int
}

// chaosModel is the parent's record of every write; guarded by mu.
type chaosModel struct {
	mu       sync.Mutex
	keys     map[string]*chaosKey
	counters map[string]*chaosCounter
	stats    map[string]int
	// transient: operations that failed because a concurrent compaction
	// pruned an object they had just listed (tolerated, logged).
	transient []string
	history   []string // one line per child: plan, action, outcome
	start     time.Time
}

func (m *chaosModel) count(what string, n int) {
	m.mu.Lock()
	m.stats[what] += n
	m.mu.Unlock()
}

func parseChaosTok(tok string) (d, child, seq int, ok bool) {
	n, err := fmt.Sscanf(tok, "d%d.c%d.s%d", &d, &child, &seq)
	return d, child, seq, err == nil && n == 3
}

// line applies one child output line about a write to the model.
func (m *chaosModel) line(f []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(f) < 4 {
		return fmt.Errorf("bad line %q", strings.Join(f, " "))
	}
	stage, kind, key, tok := f[0], f[1], f[2], f[3]
	_, child, seq, ok := parseChaosTok(tok)
	if !ok {
		return fmt.Errorf("bad token in %q", strings.Join(f, " "))
	}
	if kind == "add" {
		if len(f) != 5 {
			return fmt.Errorf("bad line %q", strings.Join(f, " "))
		}
		delta, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			return err
		}
		c := m.counters[key]
		if c == nil {
			c = &chaosCounter{uncertain: map[string]int64{}, tried: map[string]int64{}}
			m.counters[key] = c
		}
		switch stage {
		case "try":
			c.tried[tok] = delta
		case "ack":
			if _, ok := c.tried[tok]; !ok {
				return fmt.Errorf("ack of an add never started: %q", strings.Join(f, " "))
			}
			delete(c.tried, tok)
			c.sum += delta
			c.acks++
			m.stats["acked adds"]++
		}
		return nil
	}
	k := m.keys[key]
	if k == nil {
		k = &chaosKey{tried: map[string]chaosEvent{}}
		m.keys[key] = k
	}
	e := chaosEvent{child: child, seq: seq, del: kind == "del"}
	if !e.del {
		e.val = tok
	}
	switch stage {
	case "try":
		k.tried[tok] = e
	case "skip":
		delete(k.tried, tok)
	case "ack":
		if _, ok := k.tried[tok]; !ok {
			return fmt.Errorf("ack of a write never started: %q", strings.Join(f, " "))
		}
		if k.acked && !e.after(k.last) {
			return fmt.Errorf("acks of %s out of order: %q after %+v", key, tok, k.last)
		}
		delete(k.tried, tok)
		// Earlier unacknowledged tries can no longer be the final state.
		for t, o := range k.tried {
			if !o.after(e) {
				delete(k.tried, t)
			}
		}
		k.acked, k.last = true, e
		m.stats["acked "+kind+"s"]++
	}
	return nil
}

// childEnded settles the writes child c of directory d left in flight:
// killed, they may or may not have happened; exited, there must be none.
func (m *chaosModel) childEnded(d, c int, killed bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mine := func(tok string) bool {
		td, tc, _, _ := parseChaosTok(tok)
		return td == d && tc == c
	}
	for key, ctr := range m.counters {
		for tok, delta := range ctr.tried {
			if !mine(tok) {
				continue // another directory's child, running now
			}
			if !killed {
				return fmt.Errorf("add %s %s never acknowledged by a child that exited", key, tok)
			}
			ctr.uncertain[tok] = delta
			delete(ctr.tried, tok)
		}
	}
	if !killed {
		for key, k := range m.keys {
			for tok := range k.tried {
				if mine(tok) {
					return fmt.Errorf("write %s %s never acknowledged by a child that exited", key, tok)
				}
			}
		}
	}
	return nil
}

func chaosSeed(t *testing.T) uint64 {
	seed := rand.Uint64()
	if s := os.Getenv("EBREPLICA_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("EBREPLICA_CHAOS_SEED=%q", s)
		}
	}
	return seed
}

// chaosSteps are the protocol steps a child may stop or kill itself at,
// per operation (compact also pushes and pulls; any may rebase).
var chaosSteps = map[string][]string{
	"push": {"push:staged", "registry:swapped", "push:fenced", "push:fenced", "push:uploaded", "push:uploaded",
		"push:checked", "push:committed", "rebase:kept", "rebase:loaded", "rebase:restamped"},
	"pull": {"pull:listed", "pull:chunk", "pull:applied", "rebase:kept", "rebase:loaded"},
	"sync": {"pull:listed", "pull:applied", "registry:swapped", "push:fenced", "push:fenced", "push:uploaded",
		"push:uploaded", "push:checked", "push:committed", "rebase:loaded", "rebase:restamped"},
	"compact": {"push:fenced", "push:uploaded", "compact:pushed", "compact:acks", "compact:collected",
		"compact:snapshot", "compact:retired", "compact:retired", "registry:swapped", "rebase:kept", "rebase:restamped"},
}

func TestChaosProcesses(t *testing.T) {
	if os.Getenv(chaosChildEnv) != "" {
		t.Skip("in the child")
	}
	if runtime.GOOS != "linux" {
		t.Skip("chaos test needs Linux (/proc, SIGSTOP)")
	}
	client, bucket := s3test.NewBucket(t) // skips, or fails when the server is required
	perDir := 20
	if testing.Short() {
		perDir = 8
	}
	if s := os.Getenv("EBREPLICA_CHAOS_CHILDREN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("EBREPLICA_CHAOS_CHILDREN=%q", s)
		}
		perDir = n
	}
	seed := chaosSeed(t)
	t.Logf("chaos: %d directories x %d children, seed %d (EBREPLICA_CHAOS_SEED=%d to repeat the schedule)", chaosDirs, perDir, seed, seed)
	prefix := fmt.Sprintf("chaos/%d", seed)
	be, err := s3remote.New(client, bucket, prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := merge.ParsePolicies([]string{"cnt/=counter"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := "s3://" + bucket + "/" + prefix
	dirs := make([]string, chaosDirs)
	for d := range dirs {
		dirs[d] = t.TempDir()
		r, err := engine.Init(dirs[d], url, &engine.Options{Durability: store.Sync, Backend: be, Policies: pol})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}

	model := &chaosModel{keys: map[string]*chaosKey{}, counters: map[string]*chaosCounter{}, stats: map[string]int{}, start: time.Now()}
	var (
		failMu   sync.Mutex
		failures []string
		failed   atomic.Bool
		sleeping atomic.Int32 // children in a long stop (others then compact more)
		wg       sync.WaitGroup
	)
	failf := func(format string, a ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		failures = append(failures, fmt.Sprintf(format, a...))
		failed.Store(true)
	}
	start := time.Now()
	for d := range chaosDirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(d)))
			for c := 1; c <= perDir && !failed.Load(); c++ {
				p, act := chaosPlanFor(rng, d, c, dirs[d], bucket, prefix, sleeping.Load() > 0)
				if err := chaosRun(p, act, model, &sleeping); err != nil {
					failf("directory %d child %d (op %s, step %q %s, action %+v): %v", d, c, p.Op, p.Step, p.SelfAction, act, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("children done in %v", time.Since(start).Round(time.Millisecond))
	for _, s := range model.transient {
		t.Logf("tolerated: %s", s)
	}
	if len(failures) > 0 {
		t.Logf("the children, in the order they ended (times since %s):\n%s", model.start.Format("15:04:05.000"), strings.Join(model.history, "\n"))
		t.Fatalf("seed %d: %d failure(s):\n%s", seed, len(failures), strings.Join(failures, "\n"))
	}

	// Final syncs, in-process, until every replica reads the same.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs := make([]*engine.Engine, chaosDirs)
	for d := range rs {
		r, err := engine.Open(dirs[d], &engine.Options{Durability: store.Sync, Backend: be, AckInterval: -1, RegistryRefresh: chaosRefresh})
		if err != nil {
			t.Fatalf("seed %d: open directory %d after the chaos: %v", seed, d, err)
		}
		t.Cleanup(func() { r.Close() })
		rs[d] = r
	}
	var reads []map[string]string
	converged := false
	for round := 1; round <= 6 && !converged; round++ {
		for d, r := range rs {
			if _, err := r.Sync(ctx); err != nil {
				t.Fatalf("seed %d: final sync %d of directory %d: %v", seed, round, d, err)
			}
		}
		reads = reads[:0]
		converged = true
		for d, r := range rs {
			m, err := chaosReads(r)
			if err != nil {
				t.Fatalf("seed %d: read directory %d: %v", seed, d, err)
			}
			if r.Store().OutboxLen() != 0 {
				converged = false
			}
			reads = append(reads, m)
			if d > 0 && !chaosSame(reads[0], m) {
				converged = false
			}
		}
	}
	// Every acknowledged write is there (or a later started one), in
	// every directory.
	model.mu.Lock()
	var problems []string
	for d, m := range reads {
		for _, pr := range chaosCheck(model, m) {
			problems = append(problems, fmt.Sprintf("directory %d: %s", d, pr))
		}
	}
	stats := model.stats
	history := model.history
	model.mu.Unlock()
	if !converged || len(problems) > 0 {
		for d, m := range reads {
			st, _ := rs[d].Status()
			t.Logf("directory %d (replica %s, cursor %d, pending %d) reads %v", d, st.ReplicaID, st.Cursor, st.Pending, m)
		}
		t.Logf("remote after the final syncs:\n%s", chaosListing(ctx, be))
		t.Logf("the children, in the order they ended (times since %s):\n%s", model.start.Format("15:04:05.000"), strings.Join(history, "\n"))
	}
	if !converged {
		t.Errorf("seed %d: the replicas do not agree after 6 rounds of syncs", seed)
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("seed %d: %d acknowledged write(s) lost or wrong:\n%s", seed, len(problems), strings.Join(problems, "\n"))
	}

	rep, err := engine.Verify(ctx, be, engine.VerifyOptions{})
	if err != nil {
		t.Fatalf("seed %d: verify: %v", seed, err)
	}
	if !rep.OK {
		t.Errorf("seed %d: the store does not verify: %+v", seed, rep.Problems)
	}
	var names []string
	for k := range stats {
		names = append(names, k)
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, k := range names {
		fmt.Fprintf(&sb, " %s=%d", k, stats[k])
	}
	t.Logf("chaos: seed %d, %v in all;%s", seed, time.Since(start).Round(time.Millisecond), sb.String())
}

// chaosCheck returns what a replica's reads lose of the model.
func chaosCheck(model *chaosModel, final map[string]string) []string {
	var problems []string
	for key, k := range model.keys {
		got, live := final[key]
		ok := false
		if k.acked {
			ok = k.last.del && !live || !k.last.del && live && got == k.last.val
		} else {
			ok = !live
		}
		for _, e := range k.tried {
			if (!k.acked || e.after(k.last)) && (e.del && !live || !e.del && live && got == e.val) {
				ok = true
			}
		}
		if !ok {
			desc := "absent"
			if live {
				desc = fmt.Sprintf("%q", got)
			}
			problems = append(problems, fmt.Sprintf("%s reads %s; last acknowledged %+v (acked %v), in flight at a kill %v", key, desc, k.last, k.acked, k.tried))
		}
	}
	for key := range final {
		if strings.HasPrefix(key, "cnt/") {
			continue
		}
		if _, ok := model.keys[key]; !ok {
			problems = append(problems, fmt.Sprintf("%s reads %q, never written", key, final[key]))
		}
	}
	for key, c := range model.counters {
		var got int64
		if s, ok := final[key]; ok {
			var err error
			if got, err = strconv.ParseInt(s, 10, 64); err != nil {
				problems = append(problems, fmt.Sprintf("counter %s reads %q", key, s))
				continue
			}
		}
		if !chaosSubsetSum(got-c.sum, c.uncertain) {
			problems = append(problems, fmt.Sprintf("counter %s = %d, acknowledged adds sum to %d (%d adds); the difference %d is no sum of the adds in flight at kills %v",
				key, got, c.sum, c.acks, got-c.sum, c.uncertain))
		}
	}
	sort.Strings(problems)
	return problems
}

// chaosListing describes the store's objects: registries in full, log
// positions and snapshots in short.
func chaosListing(ctx context.Context, be remote.Backend) string {
	var sb strings.Builder
	var logs []string
	for info, err := range be.List(ctx, "", "") {
		if err != nil {
			fmt.Fprintf(&sb, "list: %v\n", err)
			break
		}
		switch {
		case strings.HasPrefix(info.Key, remote.LogPrefix):
			logs = append(logs, strings.TrimLeft(strings.TrimPrefix(info.Key, remote.LogPrefix), "0"))
		case strings.HasPrefix(info.Key, remote.ReplicasPrefix):
			obj, err := be.Get(ctx, info.Key)
			body := ""
			if err == nil {
				body = strings.Join(strings.Fields(string(obj.Data)), " ")
			}
			fmt.Fprintf(&sb, "%s (modified %s): %s %v\n", info.Key, info.LastModified.Format("15:04:05.000"), body, err)
		default:
			fmt.Fprintf(&sb, "%s (modified %s)\n", info.Key, info.LastModified.Format("15:04:05.000"))
		}
	}
	fmt.Fprintf(&sb, "log positions: %s\n", strings.Join(logs, " "))
	return sb.String()
}

// chaosPlanFor draws child c of directory d: its writes, operation, and
// what is done to it.
func chaosPlanFor(rng *rand.Rand, d, c int, dir, bucket, prefix string, othersSleep bool) (chaosPlan, chaosAction) {
	p := chaosPlan{Dir: dir, Bucket: bucket, Prefix: prefix, D: d, Child: c}
	for range 1 + rng.IntN(5) {
		var w chaosWrite
		switch x := rng.IntN(20); {
		case x < 11:
			w = chaosWrite{Kind: "put", Key: fmt.Sprintf("d%d/k%d", d, rng.IntN(chaosKeys))}
		case x < 14:
			w = chaosWrite{Kind: "del", Key: fmt.Sprintf("d%d/k%d", d, rng.IntN(chaosKeys))}
		default:
			key := chaosShared
			if rng.IntN(3) == 0 {
				key = fmt.Sprintf("cnt/d%d", d)
			}
			w = chaosWrite{Kind: "add", Key: key, Delta: int64(rng.IntN(151) - 50)}
			if w.Delta == 0 {
				w.Delta = 7
			}
		}
		p.Writes = append(p.Writes, w)
	}
	switch x := rng.IntN(20); {
	case othersSleep && x < 14, x < 6:
		p.Op = "compact"
	case x < 10:
		p.Op = "push"
	case x < 13:
		p.Op = "pull"
	default:
		p.Op = "sync"
	}
	long := func() time.Duration {
		return chaosRetireAfter + 500*time.Millisecond + time.Duration(rng.IntN(1500))*time.Millisecond
	}
	short := func() time.Duration { return time.Duration(20+rng.IntN(600)) * time.Millisecond }
	var a chaosAction
	switch x := rng.IntN(100); {
	case x < 30: // left alone, but for a pause in a rebase
		if rng.IntN(2) == 0 {
			p.RebasePause, a.Dur = true, long()
		}
	case x < 48:
		a = chaosAction{Kind: "kill", Delay: time.Duration(rng.IntN(400)) * time.Millisecond}
	case x < 60:
		a = chaosAction{Kind: "stop", Delay: time.Duration(rng.IntN(300)) * time.Millisecond, Dur: short()}
		if rng.IntN(3) == 0 {
			a.Dur = long()
		}
	case x < 66:
		a = chaosAction{Kind: "stopkill", Delay: time.Duration(rng.IntN(300)) * time.Millisecond, Dur: short()}
	case x < 88:
		steps := chaosSteps[p.Op]
		p.Step, p.StepHit, p.SelfAction = steps[rng.IntN(len(steps))], 1, "stop"
		if rng.IntN(4) == 0 {
			p.StepHit = 2
		}
		a.Dur = long()
		if rng.IntN(3) == 0 {
			a.Dur = short()
		}
	default:
		steps := chaosSteps[p.Op]
		p.Step, p.StepHit, p.SelfAction = steps[rng.IntN(len(steps))], 1, "kill"
	}
	return p, a
}

// chaosRun runs one child to its end, doing act to it, and feeds its lines
// to the model.
func chaosRun(p chaosPlan, act chaosAction, m *chaosModel, sleeping *atomic.Int32) error {
	raw, _ := json.Marshal(p)
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), chaosChildEnv+"="+string(raw))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	started := fmt.Sprintf("%.3fs", time.Since(m.start).Seconds())
	if err := cmd.Start(); err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		signaled []string // what the parent did
		bg       sync.WaitGroup
		ended    = make(chan struct{})
	)
	stamp := func() string { return fmt.Sprintf("%.3fs", time.Since(m.start).Seconds()) }
	note := func(s string) { mu.Lock(); signaled = append(signaled, s+"@"+stamp()); mu.Unlock() }
	signal := func(sig syscall.Signal) { _ = cmd.Process.Signal(sig) }
	// sleepOrEnd waits d, or less when the child ends.
	sleepOrEnd := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-ended:
			return false
		}
	}
	pause := func(d time.Duration) {
		long := d > chaosRetireAfter
		if long {
			sleeping.Add(1)
			defer sleeping.Add(-1)
			m.count("long stops", 1)
		}
		sleepOrEnd(d)
		note("SIGCONT")
		signal(syscall.SIGCONT)
	}
	external := func() {
		defer bg.Done()
		if !sleepOrEnd(act.Delay) {
			return
		}
		switch act.Kind {
		case "kill":
			note("SIGKILL")
			signal(syscall.SIGKILL)
			m.count("kills (external)", 1)
		case "stop", "stopkill":
			note("SIGSTOP")
			signal(syscall.SIGSTOP)
			m.count("stops (external)", 1)
			pause(act.Dur)
			if act.Kind == "stopkill" {
				note("SIGKILL")
				signal(syscall.SIGKILL)
				m.count("kills (external)", 1)
			}
		}
	}
	// A hard bound: a child that hangs is killed and fails the test.
	hung := atomic.Bool{}
	watchdog := time.AfterFunc(90*time.Second+act.Dur, func() { hung.Store(true); signal(syscall.SIGKILL) })
	defer watchdog.Stop()

	var lineErr error
	done, selfKill, resumed := false, false, false
	var failLine, transient string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "ready", "op", "pause", "resumed", "die", "step", "done", "fail", "transient":
			note(line)
		}
		var err error
		switch f[0] {
		case "ready":
			if act.Kind != "" {
				bg.Add(1)
				go external()
			}
		case "try", "ack", "skip":
			err = m.line(f)
		case "step":
			if len(f) == 2 && f[1] == "rebase:kept" {
				m.count("rebases", 1)
				if resumed && (strings.HasPrefix(p.Step, "push:") || p.Step == "registry:swapped") {
					// The sleeper in the middle of a push was retired.
					m.count("rebases after a stop mid-push", 1)
				}
			}
		case "resumed":
			resumed = true
		case "pause":
			m.count("stops (at "+f[1]+")", 1)
			bg.Add(1)
			go func() {
				defer bg.Done()
				// The child stops itself right after this line: continue it
				// only once it is stopped, or it would sleep for ever.
				if !chaosWaitStopped(cmd.Process.Pid, ended) {
					return
				}
				pause(act.Dur)
			}()
		case "die":
			selfKill = true
			m.count("kills (at "+f[1]+")", 1)
		case "done":
			done = true
			if len(f) == 3 && f[1] == "compact" {
				var cs engine.CompactStats
				if json.Unmarshal([]byte(f[2]), &cs) == nil {
					m.count("compactions", 1)
					m.count("retirements", len(cs.Retired))
					m.count("segments pruned", cs.Pruned)
				}
			}
		case "fail":
			failLine = line
		case "transient":
			transient = line
		}
		if err != nil && lineErr == nil {
			lineErr = err
		}
	}
	werr := cmd.Wait()
	close(ended)
	bg.Wait()
	m.count("children", 1)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		m.mu.Lock()
		defer m.mu.Unlock()
		w, _ := json.Marshal(p.Writes)
		m.history = append(m.history, fmt.Sprintf("d%d c%d started %s op %s step %q/%d %s action %+v writes %s: exit %v; %s",
			p.D, p.Child, started, p.Op, p.Step, p.StepHit, p.SelfAction, act, w, werr, strings.Join(signaled, "; ")))
	}()
	if hung.Load() {
		return fmt.Errorf("child hung (killed after %v): %v\n%s", 90*time.Second+act.Dur, werr, stderr.String())
	}
	if lineErr != nil {
		return lineErr
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	switch {
	case killed:
		if !selfKill && act.Kind != "kill" && act.Kind != "stopkill" {
			return fmt.Errorf("child killed by nobody: %v\n%s", werr, stderr.String())
		}
	case transient != "" && ws.Exited() && ws.ExitStatus() == 5:
		m.count("ops failed on a pruned object", 1)
		m.mu.Lock()
		m.transient = append(m.transient, fmt.Sprintf("directory %d child %d: %s", p.D, p.Child, strings.TrimPrefix(transient, "transient ")))
		m.mu.Unlock()
	case werr != nil || !done:
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("child failed (%v; signals sent %v): %s\n%s", werr, signaled, failLine, stderr.String())
	}
	return m.childEnded(p.D, p.Child, killed)
}

// chaosWaitStopped waits until process pid is stopped (state T in
// /proc/pid/stat); false when the child ended first.
func chaosWaitStopped(pid int, ended <-chan struct{}) bool {
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			// pid (comm) state ...: the state follows the last ')'.
			if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				return true
			}
		}
		select {
		case <-ended:
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// chaosReads is what a replica reads: every live key's value (a counter's
// decimal value).
func chaosReads(r *engine.Engine) (map[string]string, error) {
	out := map[string]string{}
	for it, err := range r.Scan("") {
		if err != nil {
			return nil, err
		}
		if it.Conflict {
			out[it.Key] = fmt.Sprintf("<conflict of %d>", it.NumVersions)
			continue
		}
		if strings.HasPrefix(it.Key, "cnt/") {
			v, err := r.CounterValue(it.Key)
			if err != nil {
				return nil, err
			}
			out[it.Key] = strconv.FormatInt(v, 10)
			continue
		}
		out[it.Key] = string(it.Value)
	}
	return out, nil
}

func chaosSame(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// chaosSubsetSum reports whether diff is the sum of some of the deltas.
func chaosSubsetSum(diff int64, deltas map[string]int64) bool {
	sums := map[int64]bool{0: true}
	for _, d := range deltas {
		next := make(map[int64]bool, 2*len(sums))
		for s := range sums {
			next[s] = true
			next[s+d] = true
		}
		sums = next
	}
	return sums[diff]
}
