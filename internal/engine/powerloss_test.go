package engine_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/lazyfs"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/store"
)

// The power-loss tests run a writer process on a replica whose directory
// is on a lazy file system (internal/lazyfs), kill it at a random point,
// cut the power (everything not fsynced is lost: file contents roll back
// to their last sync, directory entries to their directory's last sync),
// and check what a rebooted machine finds: the replica opens the first
// time; under Sync every acknowledged write is there; under Relaxed what
// is there is a prefix of the commit order (see plCheck); counters equal
// recounts. The writer is this test binary re-executed with
// -test.run=^TestPowerLossChild$.
//
//	EBREPLICA_POWERCUT_SCALE  multiplies the number of cuts (default 1)
//	EBREPLICA_POWERCUT_SEED   seed of the kill points (default: random, logged)
//
// FUSE must be usable (root and /dev/fuse); without it the tests skip,
// except under CI=true, where they fail.
const (
	plChildEnv   = "EBREPLICA_PL_CHILD"
	plRoundEnv   = "EBREPLICA_PL_ROUND"
	plModeEnv    = "EBREPLICA_PL_MODE"
	plRemoteEnv  = "EBREPLICA_PL_REMOTE"
	plLowMemEnv  = "EBREPLICA_PL_LOWMEM"
	plInitEnv    = "EBREPLICA_PL_INIT"
	plFillerEnv  = "EBREPLICA_PL_FILLER"
	plWriters    = 3
	plKeys       = 10
	plMaxAcks    = 40
	plMaxFiller  = 48 << 10 // values up to this size (below LowMemory's value threshold): its 4 MiB memtable fills every few rounds
	plRelaxed    = "relaxed"
	plSyncMode   = "sync"
	plFillerByte = 'x'
)

// plStrict (EBREPLICA_POWERCUT_STRICT=1) cuts power under strict POSIX
// rules: a name is durable only once its directory is fsynced. Badger
// fails there at once (see BENCHMARKS.md, "Power loss"), so the tests use
// Linux's rule that a file's fsync makes its name durable.
var plStrict = os.Getenv("EBREPLICA_POWERCUT_STRICT") == "1"

// TestPowerLossChild is the writer process. It prints one line per event:
//
//	ready                        the replica is open
//	init <id>                    (with EBREPLICA_PL_INIT) Init returned
//	put <key> <tag> <counter>    an acknowledged put; the value is tag, ":", and filler
//	del <key> <counter>          an acknowledged delete
//	durable <counter>            an empty UpdateSync returned that started after every ack up to counter
//	synced                       a push, pull, sync or compaction (with or without pruning) returned
func TestPowerLossChild(t *testing.T) {
	dir := os.Getenv(plChildEnv)
	if dir == "" {
		t.Skip("helper process of TestPowerLoss")
	}
	round := os.Getenv(plRoundEnv)
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "power-loss child: "+format+"\n", a...)
		os.Exit(3)
	}
	var outMu sync.Mutex
	var maxAck uint64
	emit := func(lines []string, counter uint64) {
		outMu.Lock()
		defer outMu.Unlock()
		maxAck = max(maxAck, counter)
		if _, err := os.Stdout.WriteString(strings.Join(lines, "")); err != nil {
			os.Exit(4) // the parent is gone
		}
	}
	time.AfterFunc(2*time.Minute, func() { fail("not killed") })
	opts := &engine.Options{Durability: store.Sync, LowMemory: os.Getenv(plLowMemEnv) != ""}
	if os.Getenv(plModeEnv) == plRelaxed {
		opts.Durability = store.Relaxed
	}
	remoteDir := os.Getenv(plRemoteEnv)
	if remoteDir != "" {
		b, err := fileremote.New(remoteDir, nil)
		if err != nil {
			fail("remote: %v", err)
		}
		opts.Backend = b
	}
	var r *engine.Engine
	var err error
	if os.Getenv(plInitEnv) != "" {
		url := "mem://powerloss"
		if remoteDir != "" {
			url = "file://" + remoteDir
		}
		if r, err = engine.Init(dir, url, opts); err != nil {
			fail("init: %v", err)
		}
		emit([]string{"init " + r.ID().String() + "\n"}, 0)
	} else if r, err = engine.Open(dir, opts); err != nil {
		fail("open: %v", err)
	}
	emit([]string{"ready\n"}, 0)
	ctx := context.Background()
	counterOf := func(key string) uint64 {
		vs, err := r.Versions(key)
		if err != nil || len(vs) != 1 {
			fail("versions of %s: %v %v", key, vs, err)
		}
		return vs[0].Counter
	}
	seed := uint64(time.Now().UnixNano())
	maxFiller := plMaxFiller
	if f, err := strconv.Atoi(os.Getenv(plFillerEnv)); err == nil {
		maxFiller = f
	}
	for g := range plWriters {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			live := map[string]bool{}
			for i := range plKeys {
				key := fmt.Sprintf("w%d/k%02d", g, i)
				_, err := r.Get(key)
				live[key] = err == nil
			}
			seq := 0
			next := func() (tag string, value []byte) {
				seq++
				n := rng.IntN(maxFiller)
				tag = fmt.Sprintf("%s.%d.%d.%d", round, g, seq, n)
				return tag, append([]byte(tag+":"), bytes.Repeat([]byte{plFillerByte}, n)...)
			}
			for {
				key := fmt.Sprintf("w%d/k%02d", g, rng.IntN(plKeys))
				switch op := rng.IntN(10); {
				case op < 5 || op < 7 && !live[key]:
					tag, val := next()
					if err := r.Put(ctx, key, val); err != nil {
						fail("put: %v", err)
					}
					live[key] = true
					c := counterOf(key)
					emit([]string{fmt.Sprintf("put %s %s %d\n", key, tag, c)}, c)
				case op < 7:
					if err := r.Delete(ctx, key); err != nil {
						fail("delete: %v", err)
					}
					live[key] = false
					c := counterOf(key)
					emit([]string{fmt.Sprintf("del %s %d\n", key, c)}, c)
				default:
					type bop struct {
						key, tag string
						val      []byte
					}
					var ops []bop
					for _, j := range rng.Perm(plKeys)[:2+rng.IntN(3)] {
						k := fmt.Sprintf("w%d/k%02d", g, j)
						if live[k] && rng.IntN(3) == 0 {
							ops = append(ops, bop{key: k})
						} else {
							tag, val := next()
							ops = append(ops, bop{key: k, tag: tag, val: val})
						}
					}
					err := r.Batch(ctx, func(b *engine.Batch) error {
						for _, o := range ops {
							if o.val == nil {
								b.Delete(o.key)
							} else {
								b.Put(o.key, o.val)
							}
						}
						return nil
					})
					if err != nil {
						fail("batch: %v", err)
					}
					var lines []string
					var top uint64
					for _, o := range ops {
						live[o.key] = o.val != nil
						c := counterOf(o.key)
						top = max(top, c)
						if o.val == nil {
							lines = append(lines, fmt.Sprintf("del %s %d\n", o.key, c))
						} else {
							lines = append(lines, fmt.Sprintf("put %s %s %d\n", o.key, o.tag, c))
						}
					}
					emit(lines, top)
				}
			}
		}()
	}
	if opts.Durability == store.Relaxed {
		// Barriers: an empty synced update makes every earlier commit
		// durable (Store.UpdateSync's contract).
		go func() {
			for {
				time.Sleep(15 * time.Millisecond)
				outMu.Lock()
				c := maxAck
				outMu.Unlock()
				if err := r.Store().UpdateSync(ctx, func(*store.Tx) error { return nil }); err != nil {
					fail("barrier: %v", err)
				}
				emit([]string{fmt.Sprintf("durable %d\n", c)}, 0)
			}
		}()
	}
	if remoteDir != "" {
		go func() {
			rng := rand.New(rand.NewPCG(seed, 99))
			for {
				var err error
				switch rng.IntN(8) {
				case 0, 1, 2:
					_, err = r.Push(ctx)
				case 3, 4:
					_, err = r.Pull(ctx)
				case 5, 6:
					_, err = r.Sync(ctx)
				default:
					_, err = r.Compact(ctx, engine.CompactOptions{Prune: rng.IntN(2) == 0, Grace: -1})
					if err != nil && strings.Contains(err.Error(), "try again when quieter") {
						continue // the writers are busy: expected, and nothing was done
					}
				}
				if err != nil {
					fail("push/pull/compact: %v", err)
				}
				emit([]string{"synced\n"}, 0)
			}
		}()
	}
	select {}
}

// plAck is an acknowledged write of a key (or, for a key's base, its state
// observed at the last check).
type plAck struct {
	del     bool
	tag     string
	counter uint64
}

// plKey is what the parent knows of one key: its state at the last check,
// and the acknowledged writes since, in order.
type plKey struct {
	base plAck
	acks []plAck
}

// plScenario is one power-loss test.
type plScenario struct {
	name    string
	mode    string // plSyncMode or plRelaxed
	lowMem  bool
	remote  bool // a directory remote; the child pushes and pulls, a peer writes between rounds
	cuts    int
	initCut bool // every round's child initialises a new replica on the lazy file system
	strict  bool // strict POSIX: a name is durable only by its directory's fsync
	maxAcks int  // a round is killed after 0..maxAcks acks (plMaxAcks when 0)
	filler  int  // values up to this size (plMaxFiller when 0)
}

func TestPowerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("power-loss test skipped in -short mode")
	}
	if os.Getenv(plChildEnv) != "" {
		t.Skip("in the child")
	}
	if err := lazyfs.Usable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v: CI=true, and the power-loss tests need FUSE", err)
		}
		t.Skipf("%v", err)
	}
	scale := 1
	if s := os.Getenv("EBREPLICA_POWERCUT_SCALE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("EBREPLICA_POWERCUT_SCALE=%q", s)
		}
		scale = n
	}
	seed := rand.Uint64()
	if s := os.Getenv("EBREPLICA_POWERCUT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("EBREPLICA_POWERCUT_SEED=%q", s)
		}
	}
	t.Logf("power-loss test: seed %d (EBREPLICA_POWERCUT_SEED=%d repeats the kill points; the writers' interleaving is not repeatable)", seed, seed)
	for _, sc := range []plScenario{
		// Strict POSIX: the store makes a new replica's names durable
		// itself (store.syncNames); Badger's later files are not (plStrict).
		{name: "init-strict", mode: plSyncMode, cuts: 8, initCut: true, strict: true},
		{name: "sync", mode: plSyncMode, cuts: 25},
		{name: "sync-lowmem", mode: plSyncMode, lowMem: true, cuts: 25},
		{name: "relaxed-lowmem", mode: plRelaxed, lowMem: true, cuts: 25},
		// Many large writes a round: LowMemory's 4 MiB memtable fills, and
		// Badger moves to a new one, during a round.
		{name: "relaxed-rotate", mode: plRelaxed, lowMem: true, cuts: 10, maxAcks: 400, filler: 60 << 10},
		// Not LowMemory: its transaction limit (about 600 KiB) is below
		// what a push stages, or a pull applies, at once with these values.
		{name: "sync-remote", mode: plSyncMode, remote: true, cuts: 25},
		// Pull merges commit without an fsync; with LowMemory and many
		// writes a round, Badger moves to a new memtable between a merge
		// and a later synced write. Values small enough for LowMemory's
		// transaction limit in a push's staging (finding 4).
		{name: "sync-remote-rotate", mode: plSyncMode, lowMem: true, remote: true, cuts: 8, maxAcks: 400, filler: 12 << 10},
		// LowMemory pushing and pulling values of 48 KiB a round: over its
		// 614 KiB transaction limit in one staging or one applied chunk
		// before issue 19 (finding 4).
		{name: "sync-remote-lowmem", mode: plSyncMode, lowMem: true, remote: true, cuts: 8, maxAcks: 400, filler: 48 << 10},
	} {
		sc.cuts *= scale
		t.Run(sc.name, func(t *testing.T) { plRun(t, sc, seed) })
	}
}

// plRun runs one scenario: sc.cuts rounds of write, kill, cut, check.
func plRun(t *testing.T, sc plScenario, seed uint64) {
	h := fnv.New64a()
	h.Write([]byte(sc.name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64())) // each scenario its own kill points
	base := t.TempDir()
	backing, mnt, remoteDir := filepath.Join(base, "backing"), filepath.Join(base, "mnt"), filepath.Join(base, "remote")
	for _, d := range []string{backing, mnt, remoteDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(backing, "replica") // as seen by the parent, on the backing directory
	childDir := filepath.Join(mnt, "replica")
	plDirs := func(round int) {
		if sc.initCut {
			name := fmt.Sprintf("replica%d", round)
			dir, childDir = filepath.Join(backing, name), filepath.Join(mnt, name)
		}
	}
	opts := func() *engine.Options {
		o := &engine.Options{LowMemory: sc.lowMem}
		if sc.remote {
			b, err := fileremote.New(remoteDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			o.Backend = b
		}
		return o
	}
	var peer *engine.Engine
	if sc.remote {
		var err error
		if peer, err = engine.Init(filepath.Join(base, "peer"), "file://"+remoteDir, opts()); err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
	}
	if !sc.initCut {
		r, err := engine.Init(dir, "file://"+remoteDir, opts())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var l *lazyfs.FS
	defer func() {
		if l != nil {
			l.Unmount()
		}
	}()
	model := map[string]*plKey{}
	var counterBefore, durable uint64
	var acks, lostFiles, syncs, barriers int
	var lostBytes int64
	start := time.Now()
	for round := 1; round <= sc.cuts; round++ {
		var err error
		if l, err = lazyfs.Mount(mnt, backing, &lazyfs.Options{FsyncPersistsName: !plStrict && !sc.strict}); err != nil {
			if round == 1 && errors.Is(err, lazyfs.ErrUnavailable) && os.Getenv("CI") != "true" {
				t.Skipf("%v", err) // /dev/fuse opens, but mounting is not allowed here
			}
			t.Fatalf("mount: %v", err)
		}
		if sc.remote {
			plPeerWrites(t, peer, round, rng)
		}
		initRound := sc.initCut
		if initRound {
			plDirs(round)
			clear(model)
			counterBefore = 0
		}
		killAt := rng.IntN(cmp.Or(sc.maxAcks, plMaxAcks) + 1)
		delay := time.Duration(rng.IntN(2000)) * time.Microsecond
		if sc.remote && rng.IntN(2) == 0 {
			delay = time.Duration(rng.IntN(40)) * time.Millisecond // into a push or pull
		}
		var initID string
		n, err := plRound(sc, childDir, remoteDir, round, killAt, delay, initRound, func(line string) error {
			if line == "synced" {
				syncs++
				return nil
			}
			f := strings.Fields(line)
			switch f[0] {
			case "init":
				initID = f[1]
				return nil
			case "durable":
				barriers++
				c, err := strconv.ParseUint(f[1], 10, 64)
				durable = max(durable, c)
				return err
			}
			key, a, err := plParse(line)
			if err != nil {
				return err
			}
			if a.counter <= counterBefore {
				return fmt.Errorf("ack of %s with dot counter %d, not above %d, the persisted counter at the last check: dot reuse", key, a.counter, counterBefore)
			}
			k := model[key]
			if k == nil {
				k = &plKey{}
				model[key] = k
			}
			if len(k.acks) > 0 && a.counter <= k.acks[len(k.acks)-1].counter {
				return fmt.Errorf("acks of %s out of order", key)
			}
			k.acks = append(k.acks, a)
			return nil
		})
		if err != nil {
			t.Fatalf("round %d (kill after %d acks, EBREPLICA_POWERCUT_SEED=%d): %v", round, killAt, seed, err)
		}
		acks += n
		rep, err := l.PowerCut()
		l = nil
		if err != nil {
			t.Fatalf("round %d: power cut: %v", round, err)
		}
		lostFiles += rep.UnsyncedFiles
		lostBytes += rep.UnsyncedBytes
		// Check after most cuts; otherwise the next child opens the
		// replica as the cut left it, and the check after the next cut
		// covers both rounds.
		// (Not under Relaxed: a lost write's dot counter is issued again.)
		if round < sc.cuts && !initRound && sc.mode == plSyncMode && rng.IntN(4) == 0 {
			continue
		}
		if initRound && initID != "" {
			if err := plCheckInit(dir, initID); err != nil {
				t.Fatalf("round %d (kill after %d acks, EBREPLICA_POWERCUT_SEED=%d, cut: %+v): %v", round, killAt, seed, rep, err)
			}
		}
		if initRound && initID == "" {
			// Killed before Init returned: nothing was promised, but Init
			// run again works on whatever is left (or, if the killed Init
			// had finished, the replica opens).
			r, err := engine.Init(dir, "mem://powerloss", nil)
			if errors.Is(err, engine.ErrAlreadyInitialized) {
				r, err = engine.Open(dir, nil)
			}
			if err != nil {
				t.Fatalf("round %d (kill %v after start, EBREPLICA_POWERCUT_SEED=%d, cut: %+v): Init again after a cut during Init: %v", round, delay, seed, rep, err)
			}
			r.Close()
			continue
		}
		if counterBefore, err = plCheck(dir, &engine.Options{LowMemory: sc.lowMem}, model, sc.mode, durable); err != nil {
			if k := strings.Fields(err.Error()); len(k) > 0 {
				t.Log(plDump(dir, strings.TrimSuffix(k[0], ":")))
			}
			t.Fatalf("round %d (kill after %d acks, EBREPLICA_POWERCUT_SEED=%d, cut: %+v): %v", round, killAt, seed, rep, err)
		}
	}
	if sc.remote {
		plConverge(t, dir, peer, opts())
	}
	t.Logf("%s: %d power cuts, %d acknowledged writes checked, %d pushes or pulls, %d barriers; the cuts discarded %d bytes of unsynced writes in %d files; %v",
		sc.name, sc.cuts, acks, syncs, barriers, lostBytes, lostFiles, time.Since(start).Round(time.Millisecond))
}

// plPeerWrites has the peer write a few keys and push them, for the child
// to pull and merge.
func plPeerWrites(t *testing.T, peer *engine.Engine, round int, rng *rand.Rand) {
	ctx := context.Background()
	for range 1 + rng.IntN(4) {
		key := fmt.Sprintf("p/k%02d", rng.IntN(plKeys))
		if err := peer.Put(ctx, key, fmt.Appendf(nil, "peer.%d.%d", round, rng.IntN(1000))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := peer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// plConverge reopens the replica with the remote, syncs it and the peer,
// and checks that both hold the same keys and values.
func plConverge(t *testing.T, dir string, peer *engine.Engine, o *engine.Options) {
	ctx := context.Background()
	r, err := engine.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 2 {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatalf("sync after the cuts: %v", err)
		}
		if _, err := peer.Sync(ctx); err != nil {
			t.Fatalf("peer sync: %v", err)
		}
	}
	a, b := plContents(t, r), plContents(t, peer)
	if len(a) != len(b) || r.Len() != int64(len(a)) || peer.Len() != int64(len(b)) {
		t.Fatalf("not converged: %d keys (Len %d) and the peer's %d (Len %d)", len(a), r.Len(), len(b), peer.Len())
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("not converged: %s", k)
		}
	}
	if p := r.Store().OutboxLen(); p != 0 {
		t.Fatalf("%d keys still pending after a sync", p)
	}
}

func plContents(t *testing.T, r *engine.Engine) map[string]string {
	m := map[string]string{}
	for it, err := range r.Scan("") {
		if err != nil {
			t.Fatal(err)
		}
		m[it.Key] = string(it.Value)
	}
	return m
}

func plParse(line string) (key string, a plAck, err error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 4 && f[0] == "put":
		a.tag = f[2]
	case len(f) == 3 && f[0] == "del":
		a.del = true
	default:
		return "", a, fmt.Errorf("bad line %q", line)
	}
	a.counter, err = strconv.ParseUint(f[len(f)-1], 10, 64)
	return f[1], a, err
}

// plRound runs one writer process on the lazy file system, kills it on
// its killAt-th acknowledgement ("ready" when killAt is 0) and passes
// every line it printed before dying to line. An init round is killed
// right after Init returns or, with killAt 0, at once.
func plRound(sc plScenario, dir, remoteDir string, round, killAt int, delay time.Duration, initRound bool, line func(string) error) (int, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPowerLossChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), plChildEnv+"="+dir, plRoundEnv+"="+strconv.Itoa(round), plModeEnv+"="+sc.mode)
	if sc.remote {
		cmd.Env = append(cmd.Env, plRemoteEnv+"="+remoteDir)
	}
	if sc.lowMem {
		cmd.Env = append(cmd.Env, plLowMemEnv+"=1")
	}
	if sc.filler > 0 {
		cmd.Env = append(cmd.Env, plFillerEnv+"="+strconv.Itoa(sc.filler))
	}
	if initRound {
		cmd.Env = append(cmd.Env, plInitEnv+"=1")
	}
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
	defer kill()
	killLater := func() {
		// A little later than the line read: the writers are then
		// anywhere in their next write, its commit or its fsync.
		if !killed {
			time.Sleep(delay)
			kill()
		}
	}
	if initRound && killAt == 0 {
		killLater() // anywhere in Init
	}
	n := 0
	var lineErr error
	sc2 := bufio.NewScanner(out)
	for sc2.Scan() {
		l := sc2.Text()
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "ready":
			if killAt == 0 {
				killLater()
			}
			continue
		case "synced":
			line(l)
			continue
		case "init":
			if err := line(l); err != nil && lineErr == nil {
				lineErr = err
			}
			if initRound {
				killLater()
			}
			continue
		case "durable", "put", "del":
		default:
			continue // test framework noise
		}
		// Every line printed before death was acknowledged.
		if err := line(l); err != nil && lineErr == nil {
			lineErr = err
			kill()
		}
		if f[0] == "durable" {
			continue
		}
		n++
		if n == killAt {
			killLater()
		}
	}
	werr := cmd.Wait()
	if lineErr != nil {
		return n, lineErr
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

// plCheckInit checks that a replica whose Init returned before the cut
// opens, with the id Init gave it.
func plCheckInit(dir, id string) error {
	r, err := engine.Open(dir, nil)
	if err != nil {
		return fmt.Errorf("Init returned, then the power went: the replica does not open: %w", err)
	}
	defer r.Close()
	if got := r.ID().String(); got != id {
		return fmt.Errorf("Init returned id %s, the replica after the cut has %s", id, got)
	}
	return nil
}

// plCheck reopens the replica (on the backing directory, after the cut)
// and checks every key of the model against the acknowledged writes.
//
// Let P be the persisted dot counter: every group commit writes it, so it
// names the last group that survived. Dot counters grow in commit order,
// so the commit order's prefix that survived is every write with a dot
// counter up to P. For each key (one writer goroutine each, so its writes
// commit in ack order) the version found must have counter s with: s <= P;
// s not below the key's state at the last check; no acknowledged write of
// the key in (s, P] (a surviving prefix holds the key's last write in it);
// if s is an acknowledged write, the same contents; the value untorn. Under
// Sync, also: s at or above the key's last acknowledged write (nothing
// acknowledged is lost), and under Relaxed, no acknowledged write at or
// below the last barrier (durable) is lost: durable <= P.
//
// The model then takes the observed state. It returns P.
func plCheck(dir string, o *engine.Options, model map[string]*plKey, mode string, durable uint64) (uint64, error) {
	r, err := engine.Open(dir, o)
	if err != nil {
		return 0, fmt.Errorf("reopen after the power cut: %w", err)
	}
	defer r.Close()
	st, err := r.Status()
	if err != nil {
		return 0, err
	}
	p := st.Counter
	if mode == plRelaxed && durable > p {
		return 0, fmt.Errorf("a barrier (UpdateSync) returned after writes up to counter %d, the persisted counter is %d: synced writes lost", durable, p)
	}
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		k := model[key]
		var got plAck
		vs, err := r.Versions(key)
		switch {
		case errors.Is(err, engine.ErrNotFound):
			// no record: counter 0
		case err != nil:
			return 0, err
		case len(vs) != 1:
			return 0, fmt.Errorf("%s: %d versions", key, len(vs))
		default:
			got = plAck{del: vs[0].Deleted, counter: vs[0].Counter}
			if !got.del {
				tag, filler, ok := strings.Cut(string(vs[0].Value), ":")
				f := strings.Split(tag, ".")
				n, _ := strconv.Atoi(f[len(f)-1])
				if !ok || len(f) != 4 || len(filler) != n || strings.Trim(filler, string(rune(plFillerByte))) != "" {
					return 0, fmt.Errorf("%s: torn or foreign value of %d bytes, starting %.40q", key, len(vs[0].Value), vs[0].Value)
				}
				got.tag = tag
			}
		}
		s := got.counter
		if s > p {
			return 0, fmt.Errorf("%s: holds dot counter %d, above the persisted counter %d", key, s, p)
		}
		if s < k.base.counter {
			return 0, fmt.Errorf("%s: holds counter %d, older than %d, seen at the last check", key, s, k.base.counter)
		}
		if s == k.base.counter && (got.del != k.base.del || got.tag != k.base.tag) {
			return 0, fmt.Errorf("%s: counter %d names %+v, and %+v at the last check", key, s, got, k.base)
		}
		for _, a := range k.acks {
			switch {
			case a.counter == s && (a.del != got.del || a.tag != got.tag):
				return 0, fmt.Errorf("%s: dot counter %d names two writes: %+v and %+v", key, s, got, a)
			case a.counter > s && a.counter <= p:
				return 0, fmt.Errorf("%s: holds counter %d, but the acknowledged write %+v (counter %d <= persisted %d) is lost: not a prefix", key, s, a, a.counter, p)
			case a.counter > s && mode == plSyncMode:
				return 0, fmt.Errorf("%s: acknowledged write lost: holds counter %d (%+v), acknowledged %d (%+v); persisted counter %d", key, s, got, a.counter, a, p)
			}
		}
		v, err := r.Get(key)
		switch {
		case s == 0 || got.del:
			if !errors.Is(err, engine.ErrNotFound) {
				return 0, fmt.Errorf("%s: deleted, Get = %.20q %v", key, v, err)
			}
		case err != nil || !strings.HasPrefix(string(v), got.tag+":"):
			return 0, fmt.Errorf("%s: Get = %.20q %v, version %s", key, v, err, got.tag)
		}
		k.base, k.acks = got, nil
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
	return p, r.Close()
}

// plDump describes, for triage, every Badger version of key's record and
// the files of the replica's Badger directory.
func plDump(dir, key string) string {
	var b strings.Builder
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "data")).WithLogger(nil))
	if err != nil {
		return fmt.Sprintf("dump: %v", err)
	}
	defer db.Close()
	db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.AllVersions = true
		io.Prefix = []byte("r/" + key)
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, _ := item.ValueCopy(nil)
			fmt.Fprintf(&b, "\n  %s at Badger version %d (deleted %v): %d bytes %x", item.Key(), item.Version(), item.IsDeletedOrExpired(), len(v), v[:min(len(v), 40)])
		}
		return nil
	})
	ents, _ := os.ReadDir(filepath.Join(dir, "data"))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "\n  file %s: %d bytes", e.Name(), fi.Size())
		}
	}
	return b.String()
}
