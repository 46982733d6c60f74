package replica_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/procstat"
	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// BenchmarkFootprintLive measures the peak RSS of a replica holding 100k
// keys × 100 B doing live sync (Replica.Run, as `ebreplica sync --watch
// --interval 1s`) for 10 minutes, under the default and the small profile
// in the same run (issue 19, BENCHMARKS.md "Profiles").
//
// A seeder (this process, default profile) loads the keys in batches of
// 1,000 and pushes them through a directory remote (file://), in segments
// at the default 8 MiB cap. Then three child processes (this test binary
// re-executed with -test.run=^TestFootprintLiveChild$) start at once on
// that remote: the two measured replicas, "default" and "small" (LowMemory,
// with the soft memory limit the command line sets under the small
// profile, replica.SmallMemoryLimit), and a "peer" (default profile). Each
// pulls the 100k keys, then runs Run with a 1 s interval for the duration;
// the peer writes 1,000 random keys every 30 s, and each measured replica
// writes 100 random keys every 10 s itself. A measured child resets its
// peak (/proc/self/clear_refs) once its pull of the keys is done, samples
// VmRSS every 500 ms, and reports at the end its VmHWM (the peak over the
// live sync), the largest sample, and the peak of the initial pull.
//
//	go test -count=1 -run '^$' -bench '^BenchmarkFootprintLive$' -benchtime 1x -timeout 90m ./replica
//	EBREPLICA_FOOTPRINT_LIVE_KEYS, _DURATION, _RUNS  (defaults 100000, 10m, 1)
//
// A benchmark of wall-clock duration (10 minutes a run). One iteration is
// the whole harness, its _RUNS runs included; the min and median peaks are
// over the runs (of every iteration, when -benchtime gives more than one).
func BenchmarkFootprintLive(b *testing.B) {
	keys := liveEnvInt(b, "KEYS", 100_000)
	runs := liveEnvInt(b, "RUNS", 1)
	dur := 10 * time.Minute
	if s := os.Getenv("EBREPLICA_FOOTPRINT_LIVE_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("EBREPLICA_FOOTPRINT_LIVE_DURATION=%q: not a positive duration", s)
		}
		dur = d
	}
	peaks := map[string][]float64{}
	run := 0
	for b.Loop() {
		for range runs {
			run++
			for role, mib := range footprintLiveRun(b, run, keys, dur) {
				peaks[role] = append(peaks[role], mib)
			}
		}
	}
	for _, role := range []string{"default", "small"} {
		p := slices.Clone(peaks[role])
		slices.Sort(p)
		b.Logf("%s: peak RSS over %v of live sync, %d runs: min %.0f MiB, median %.0f MiB (%v)", role, dur, len(p), p[0], p[len(p)/2], peaks[role])
		b.ReportMetric(p[0], role+"-MiB-peak-min")
		b.ReportMetric(p[len(p)/2], role+"-MiB-peak-median")
	}
}

// footprintLiveRun is one run of BenchmarkFootprintLive: it seeds a remote,
// runs the three children on it, logs the measured ones' LIVE lines, and
// returns their peaks over the live sync (VmHWM-live) in MiB, by role.
func footprintLiveRun(t testing.TB, run, keys int, dur time.Duration) map[string]float64 {
	root := t.TempDir()
	bucket := filepath.Join(root, "bucket")
	if err := os.Mkdir(bucket, 0o755); err != nil {
		t.Fatal(err)
	}
	url := "file://" + bucket
	liveSeed(t, filepath.Join(root, "seed"), url, keys)
	type child struct {
		role string
		cmd  *exec.Cmd
		out  bytes.Buffer
		err  bytes.Buffer
	}
	var children []*child
	for _, role := range []string{"peer", "default", "small"} {
		c := &child{role: role}
		c.cmd = exec.Command(os.Args[0], "-test.run=^TestFootprintLiveChild$", "-test.count=1", "-test.timeout=0")
		c.cmd.Env = append(os.Environ(), liveRoleEnv+"="+role, liveDirEnv+"="+filepath.Join(root, role),
			liveURLEnv+"="+url, "EBREPLICA_FOOTPRINT_LIVE_KEYS="+strconv.Itoa(keys),
			"EBREPLICA_FOOTPRINT_LIVE_DURATION="+dur.String())
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.err
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, c)
	}
	peaks := map[string]float64{}
	for _, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("run %d, %s: %v\n%s\n%s", run, c.role, err, c.out.String(), c.err.String())
		}
		sc := bufio.NewScanner(&c.out)
		found := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "LIVE ")
			if !ok {
				continue
			}
			found = true
			t.Logf("run %d: %s", run, line)
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "VmHWM-live="); ok {
					mib, _ := strconv.ParseFloat(strings.TrimSuffix(v, "MiB"), 64)
					peaks[c.role] = mib
				}
			}
		}
		if !found {
			t.Fatalf("run %d, %s: no LIVE line in\n%s\n%s", run, c.role, c.out.String(), c.err.String())
		}
	}
	return peaks
}

const (
	liveRoleEnv = "EBREPLICA_FOOTPRINT_LIVE_ROLE"
	liveDirEnv  = "EBREPLICA_FOOTPRINT_LIVE_DIR"
	liveURLEnv  = "EBREPLICA_FOOTPRINT_LIVE_URL"
)

func liveEnvInt(t testing.TB, name string, def int) int {
	s := os.Getenv("EBREPLICA_FOOTPRINT_LIVE_" + name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("EBREPLICA_FOOTPRINT_LIVE_%s=%q: not a positive integer", name, s)
	}
	return n
}

// liveKey is the name of key i of the harness.
func liveKey(i int) string { return fmt.Sprintf("k%015d", i) }

// liveSeed loads n keys of 100 B into a new default-profile replica bound to
// url and pushes them all.
func liveSeed(t testing.TB, dir, url string, n int) {
	ctx := context.Background()
	r, err := replica.Init(dir, url, &replica.Options{Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	liveWrite(t, r, n, func(i int) int { return i })
	if _, err := r.PushAll(ctx); err != nil {
		t.Fatal(err)
	}
}

// liveWrite writes n values of 100 B, to the keys pick(0..n-1), in batches of
// 1,000.
func liveWrite(t testing.TB, r *replica.Replica, n int, pick func(int) int) {
	val := make([]byte, 100)
	for from := 0; from < n; from += 1000 {
		err := r.Batch(context.Background(), func(b *replica.Batch) error {
			for i := from; i < min(from+1000, n); i++ {
				k := pick(i)
				val[0], val[1], val[2] = byte(k), byte(k>>8), byte(i)
				b.Put(liveKey(k), val)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
			return
		}
	}
}

// TestFootprintLiveChild is a process of BenchmarkFootprintLive, started
// with its role in EBREPLICA_FOOTPRINT_LIVE_ROLE; without it (a plain go
// test) it has nothing to do.
func TestFootprintLiveChild(t *testing.T) {
	role := os.Getenv(liveRoleEnv)
	if role == "" {
		t.Skip("helper process of BenchmarkFootprintLive")
	}
	keys := liveEnvInt(t, "KEYS", 100_000)
	dur, err := time.ParseDuration(os.Getenv("EBREPLICA_FOOTPRINT_LIVE_DURATION"))
	if err != nil {
		t.Fatal(err)
	}
	opts := &replica.Options{}
	switch role {
	case "small":
		opts.LowMemory = true
		opts.SoftMemoryLimit = replica.SmallMemoryLimit // as the command line
	case "peer":
		opts.Durability = store.Relaxed
	}
	ctx := context.Background()
	r, err := replica.Init(os.Getenv(liveDirEnv), os.Getenv(liveURLEnv), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t0 := time.Now()
	if _, err := r.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Len() != int64(keys) {
		t.Fatalf("pulled %d keys, want %d", r.Len(), keys)
	}
	pullTime := time.Since(t0)
	loadHWM, _, _, _ := liveStatus(t)
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}

	runCtx, stop := context.WithTimeout(ctx, dur)
	defer stop()
	var rounds, failed, pulled, pushed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() {
		defer wg.Done()
		runErr = r.Run(runCtx, replica.LiveOptions{Interval: time.Second, OnRound: func(rd replica.Round) {
			rounds.Add(1)
			if rd.Err != nil {
				failed.Add(1)
			}
			if rd.Pull != nil {
				pulled.Add(int64(rd.Pull.Records))
			}
			if rd.Push != nil {
				pushed.Add(int64(rd.Push.Records))
			}
		}})
	}()
	// Writes: the peer 1,000 every 30 s, a measured replica 100 every 10 s.
	every, batch := 10*time.Second, 100
	if role == "peer" {
		every, batch = 30*time.Second, 1000
	}
	rng := rand.New(rand.NewPCG(uint64(len(role)), 19))
	writes := 0
	var maxRSS int64
	sample := time.NewTicker(500 * time.Millisecond)
	defer sample.Stop()
	write := time.NewTicker(every)
	defer write.Stop()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-sample.C:
			_, rss, _, _ := liveStatus(t)
			maxRSS = max(maxRSS, rss)
		case <-write.C:
			liveWrite(t, r, batch, func(int) int { return rng.IntN(keys) })
			writes += batch
		}
	}
	wg.Wait()
	if runErr != nil && runCtx.Err() == nil {
		t.Fatal(runErr)
	}
	hwm, rss, anon, file := liveStatus(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LIVE role=%s profile=%s keys=%d pull=%.1fs VmHWM-pull=%dMiB VmHWM-live=%dMiB max-VmRSS-sample=%dMiB VmRSS-end=%dMiB (RssAnon=%dMiB RssFile=%dMiB) go-heap-inuse=%dMiB go-sys=%dMiB rounds=%d failed=%d pulled=%d pushed=%d writes=%d duration=%v\n",
		role, st.Profile, keys, pullTime.Seconds(), loadHWM>>10, hwm>>10, maxRSS>>10, rss>>10, anon>>10, file>>10,
		ms.HeapInuse>>20, ms.Sys>>20, rounds.Load(), failed.Load(), pulled.Load(), pushed.Load(), writes, dur)
}

// liveStatus returns VmHWM, VmRSS, RssAnon and RssFile in KiB.
func liveStatus(t testing.TB) (hwm, rss, anon, file int64) {
	t.Helper()
	hwm, rss, anon, file, err := procstat.Self()
	if err != nil {
		t.Fatal(err)
	}
	return hwm, rss, anon, file
}
