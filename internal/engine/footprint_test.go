package engine_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/stats"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/store"
)

// The footprint of the two profiles during repeated sync (issue 19;
// BENCHMARKS.md "Profiles"). A loop of rounds in one process, written
// before sync --watch existed (replica's BenchmarkFootprintLive and
// scripts/footprint-watch.sh measure the live syncer): a replica holding N keys of
// 100 B (default 100k) in one process does R rounds (default 60) of 1,000
// random writes and a Sync, through a directory remote, while a peer (in
// another process, default profile) does the same, so every Sync also
// pulls the peer's changes. Each profile's replica runs in a fresh child
// process (this test binary re-executed with -test.run=^TestFootprintChild$);
// its peak RSS (VmHWM) is read after the load and, reset through
// /proc/self/clear_refs, again over the sync rounds alone. The profiles
// alternate within each run, in one process tree, one after the other.
//
//	go test -count=1 -run '^$' -bench '^BenchmarkFootprint$' -benchtime 1x -timeout 60m ./internal/engine
//	EBREPLICA_FOOTPRINT_KEYS, _ROUNDS, _RUNS  (defaults 100000, 60, 3)
//
// One iteration of the benchmark is the whole harness, its _RUNS runs
// included; the figures (min and median over the runs, and over the
// iterations' runs when -benchtime gives more than one) are reported as
// metrics, each run's line and the summary as log lines.
func BenchmarkFootprint(b *testing.B) {
	keys, rounds, runs := fpEnv(b, "KEYS", 100_000), fpEnv(b, "ROUNDS", 60), fpEnv(b, "RUNS", 3)
	res := map[string][]fpResult{}
	for b.Loop() {
		for p, r := range footprint(b, keys, rounds, runs) {
			res[p] = append(res[p], r...)
		}
	}
	for p, s := range fpSummary(b, res, keys, rounds) {
		b.ReportMetric(s.syncPeakMin, p+"-MiB-peak-sync-min")
		b.ReportMetric(s.syncPeakMedian, p+"-MiB-peak-sync-median")
		b.ReportMetric(s.loadPeakMin, p+"-MiB-peak-load-min")
		b.ReportMetric(s.loadPeakMedian, p+"-MiB-peak-load-median")
		b.ReportMetric(s.rssEndMedian, p+"-MiB-rss-end-median")
		b.ReportMetric(s.roundMedian, p+"-ms-round-median")
	}
}

// TestFootprintSmoke runs BenchmarkFootprint's harness once at 2,000 keys
// and 3 rounds, so the test command keeps it working (its children load,
// sync and report).
func TestFootprintSmoke(t *testing.T) {
	if os.Getenv(fpRoleEnv) != "" {
		t.Skip("in a child")
	}
	fpSummary(t, footprint(t, 2000, 3, 1), 2000, 3)
}

// fpResult is one profile's figures in one run of footprint.
type fpResult struct{ loadPeak, syncPeak, rssEnd, roundMs float64 }

// footprint runs the harness of BenchmarkFootprint runs times, both
// profiles a run, and returns each profile's figures.
func footprint(t testing.TB, keys, rounds, runs int) map[string][]fpResult {
	res := map[string][]fpResult{}
	for run := range runs {
		for _, profile := range []string{"default", "small"} {
			root := t.TempDir()
			remoteDir := filepath.Join(root, "remote")
			if err := os.MkdirAll(remoteDir, 0o755); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), fmt.Sprintf("%s=%d", fpKeysEnv, keys), fmt.Sprintf("%s=%d", fpRoundsEnv, rounds),
				fpRemoteEnv+"="+remoteDir)
			child := exec.Command(os.Args[0], "-test.run=^TestFootprintChild$", "-test.count=1", "-test.timeout=60m")
			child.Env = append(env, fpRoleEnv+"="+profile, fpDirEnv+"="+filepath.Join(root, "a"))
			child.Stderr = os.Stderr
			out, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			var line string
			var peer *exec.Cmd
			for sc.Scan() {
				if sc.Text() == "READY" {
					// The measured replica pushed its keys: the peer starts.
					peer = exec.Command(os.Args[0], "-test.run=^TestFootprintChild$", "-test.count=1", "-test.timeout=60m")
					peer.Env = append(env, fpRoleEnv+"=peer", fpDirEnv+"="+filepath.Join(root, "peer"))
					peer.Stderr = os.Stderr
					if err := peer.Start(); err != nil {
						t.Fatal(err)
					}
				}
				if l, ok := strings.CutPrefix(sc.Text(), "FOOTPRINT "); ok {
					line = l
				}
			}
			_, _ = io.Copy(io.Discard, out)
			if err := child.Wait(); err != nil {
				t.Fatalf("%s: %v", profile, err)
			}
			if peer == nil {
				t.Fatalf("%s: the child never became ready", profile)
			}
			if err := peer.Wait(); err != nil {
				t.Fatalf("%s: peer: %v", profile, err)
			}
			if line == "" {
				t.Fatalf("%s: no FOOTPRINT line", profile)
			}
			t.Logf("run %d: %s", run+1, line)
			f := fpFields(line)
			res[profile] = append(res[profile], fpResult{f["load_peak_mib"], f["sync_peak_mib"], f["rss_end_mib"], f["round_median_ms"]})
		}
	}
	return res
}

// fpStats is one profile's summary over the runs of footprint.
type fpStats struct {
	syncPeakMin, syncPeakMedian, loadPeakMin, loadPeakMedian, rssEndMedian, roundMedian float64
}

// fpSummary logs and returns each profile's summary of res.
func fpSummary(t testing.TB, res map[string][]fpResult, keys, rounds int) map[string]fpStats {
	out := map[string]fpStats{}
	for _, profile := range []string{"default", "small"} {
		var load, peak, end, round []float64
		for _, r := range res[profile] {
			load, peak, end, round = append(load, r.loadPeak), append(peak, r.syncPeak), append(end, r.rssEnd), append(round, r.roundMs)
		}
		if len(peak) == 0 {
			t.Fatalf("%s: no runs", profile)
		}
		s := fpStats{slices.Min(peak), stats.Median(peak), slices.Min(load), stats.Median(load), stats.Median(end), stats.Median(round)}
		t.Logf("%-7s %d keys, %d rounds, %d runs: peak RSS over the sync rounds min %.0f median %.0f MiB; peak after the load min %.0f median %.0f MiB; RSS at the end median %.0f MiB; round median of medians %.0f ms",
			profile, keys, rounds, len(peak), s.syncPeakMin, s.syncPeakMedian, s.loadPeakMin, s.loadPeakMedian, s.rssEndMedian, s.roundMedian)
		out[profile] = s
	}
	return out
}

const (
	fpRoleEnv   = "EBREPLICA_FOOTPRINT_ROLE" // default, small, or peer
	fpDirEnv    = "EBREPLICA_FOOTPRINT_DIR"
	fpRemoteEnv = "EBREPLICA_FOOTPRINT_REMOTE"
	fpKeysEnv   = "EBREPLICA_FOOTPRINT_N"
	fpRoundsEnv = "EBREPLICA_FOOTPRINT_R"
)

// TestFootprintChild is a process of BenchmarkFootprint (and
// TestFootprintSmoke): the measured replica (role default or small) or the
// peer. Started with the role in EBREPLICA_FOOTPRINT_ROLE; without it (a
// plain go test) it has nothing to do.
func TestFootprintChild(t *testing.T) {
	role := os.Getenv(fpRoleEnv)
	if role == "" {
		t.Skip("helper process of BenchmarkFootprint")
	}
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Getenv(fpKeysEnv))
	rounds, _ := strconv.Atoi(os.Getenv(fpRoundsEnv))
	be, err := fileremote.New(os.Getenv(fpRemoteEnv), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := engine.Init(os.Getenv(fpDirEnv), "file://"+os.Getenv(fpRemoteEnv), &engine.Options{
		LowMemory: role == "small", Backend: be,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key := func(i int) string { return fmt.Sprintf("fp/%08d", i) }
	rng := rand.New(rand.NewPCG(uint64(len(role)), 19))
	val := func() []byte {
		v := make([]byte, 100)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}
	write := func(count int, pick func(i int) int) {
		err := r.Batch(ctx, func(b *engine.Batch) error {
			for i := range count {
				b.Put(key(pick(i)), val())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if role == "peer" {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		for from := 0; from < n; from += 1000 {
			write(min(1000, n-from), func(i int) int { return from + i })
		}
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if r.Len() != int64(n) {
			t.Fatalf("Len %d, want %d", r.Len(), n)
		}
	}
	loadPeak, _, _, _ := procStatus(t)
	if role != "peer" {
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			t.Fatalf("resetting the peak RSS: %v", err)
		}
		fmt.Println("READY")
	}
	var times []float64
	for range rounds {
		t0 := time.Now()
		write(1000, func(int) int { return rng.IntN(max(n, 1)) })
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
	}
	if _, err := r.Sync(ctx); err != nil { // the peer's last changes
		t.Fatal(err)
	}
	hwm, rss, anon, file := procStatus(t)
	if role != "peer" {
		st, _ := r.Status()
		fmt.Printf("FOOTPRINT profile=%s keys=%d rounds=%d load_peak_mib=%.1f sync_peak_mib=%.1f rss_end_mib=%.1f anon_mib=%.1f file_mib=%.1f round_median_ms=%.1f status_profile=%s\n",
			role, r.Len(), rounds, float64(loadPeak)/1024, float64(hwm)/1024, float64(rss)/1024, float64(anon)/1024, float64(file)/1024, stats.Median(times), st.Profile)
	}
}

func fpEnv(t testing.TB, name string, def int) int {
	s := os.Getenv("EBREPLICA_FOOTPRINT_" + name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("EBREPLICA_FOOTPRINT_%s=%q: want a positive integer", name, s)
	}
	return n
}

func fpFields(line string) map[string]float64 {
	out := map[string]float64{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if x, err := strconv.ParseFloat(v, 64); ok && err == nil {
			out[k] = x
		}
	}
	return out
}

// BenchmarkFootprintSpeed: the push and pull figures of BENCHMARKS.md
// ("Sync, snapshots and bootstrap": BenchmarkPushChanged,
// BenchmarkPullMerge) under the small profile, as ratios to the default,
// measured in the same process one profile after the other: a replica
// loads N keys of 100 B (default 100k) and pushes them to memremote; then
// 20 rounds of 1,000 random writes and a Push (the push alone timed); then
// a fresh replica of the same profile pulls the N records (timed).
//
//	go test -count=1 -run '^$' -bench '^BenchmarkFootprintSpeed$' -benchtime 1x -timeout 60m ./internal/engine
//	EBREPLICA_FOOTPRINT_KEYS, _RUNS  (defaults 100000, 3)
//
// One iteration is the whole harness, its _RUNS runs included (each run
// both profiles, one after the other); the min, max and median figures are
// over the runs (of every iteration, when -benchtime gives more than one).
func BenchmarkFootprintSpeed(b *testing.B) {
	n, runs := fpEnv(b, "KEYS", 100_000), fpEnv(b, "RUNS", 3)
	push := map[string][]float64{}
	pull := map[string][]float64{}
	for b.Loop() {
		for range runs {
			run := len(push["default"]) // counts on over the iterations
			for _, profile := range []string{"default", "small"} {
				pushMs, pullRate := footprintSpeedRun(b, n, run, profile)
				push[profile] = append(push[profile], pushMs)
				pull[profile] = append(pull[profile], pullRate)
			}
		}
	}
	for _, p := range []string{"default", "small"} {
		b.Logf("%-7s push median ms: min %.1f median %.1f; pull rec/s: max %.0f median %.0f", p,
			slices.Min(push[p]), stats.Median(push[p]), slices.Max(pull[p]), stats.Median(pull[p]))
		b.ReportMetric(slices.Min(push[p]), p+"-ms-push-min")
		b.ReportMetric(stats.Median(push[p]), p+"-ms-push-median")
		b.ReportMetric(slices.Max(pull[p]), p+"-rec/s-pull-max")
		b.ReportMetric(stats.Median(pull[p]), p+"-rec/s-pull-median")
	}
	pushRatio, pushRatioMin := stats.Median(push["small"])/stats.Median(push["default"]), slices.Min(push["small"])/slices.Min(push["default"])
	pullRatio := stats.Median(pull["small"]) / stats.Median(pull["default"])
	b.Logf("small/default: push time median %.2f (min %.2f); pull rate median %.2f", pushRatio, pushRatioMin, pullRatio)
	b.ReportMetric(pushRatio, "small:default-push-median")
	b.ReportMetric(pushRatioMin, "small:default-push-min")
	b.ReportMetric(pullRatio, "small:default-pull-median")
}

// footprintSpeedRun is run number run (it seeds the writes) of
// BenchmarkFootprintSpeed for one profile: the median time of a push of
// 1,000 changes in ms, and the pull-merge rate in records a second.
func footprintSpeedRun(t testing.TB, n, run int, profile string) (pushMs, pullRate float64) {
	ctx := context.Background()
	mem := memremote.New("speed")
	open := func() *engine.Engine {
		r, err := engine.Init(t.TempDir(), "mem://speed", &engine.Options{LowMemory: profile == "small", Backend: mem, Durability: store.Relaxed})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := open()
	rng := rand.New(rand.NewPCG(uint64(run), 3))
	val := func() []byte {
		v := make([]byte, 100)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}
	batch := func(count int, pick func(int) int) {
		err := a.Batch(ctx, func(b *engine.Batch) error {
			for i := range count {
				b.Put(fmt.Sprintf("bench/%08d", pick(i)), val())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for from := 0; from < n; from += 1000 { // batches of 10k are too big for the small profile
		batch(min(1000, n-from), func(i int) int { return from + i })
		if (from+1000)%40_000 == 0 {
			if _, err := a.Push(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := a.Push(ctx); err != nil {
		t.Fatal(err)
	}
	var pushes []float64
	for range 20 {
		batch(1000, func(int) int { return rng.IntN(n) })
		t0 := time.Now()
		if _, err := a.Push(ctx); err != nil {
			t.Fatal(err)
		}
		pushes = append(pushes, float64(time.Since(t0).Microseconds())/1000)
	}
	a.Close()
	c := open()
	t0 := time.Now()
	ps, err := c.Pull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(t0)
	held := c.Len()
	c.Close()
	if held != int64(n) || ps.Records == 0 {
		t.Fatalf("a fresh replica pulled %d records and holds %d keys, want all %d", ps.Records, held, n)
	}
	rate := float64(ps.Records) / d.Seconds()
	t.Logf("run %d %-7s push of 1k changes in a %d-key store: median %.1f ms; pull-merge of %d records: %.0f rec/s",
		run+1, profile, n, stats.Median(pushes), ps.Records, rate)
	return stats.Median(pushes), rate
}
