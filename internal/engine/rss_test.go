package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/procstat"
	"github.com/ebreplica/ebreplica/internal/stats"
	"github.com/ebreplica/ebreplica/store"
)

// BenchmarkRSS measures the memory of the default and LowMemory profiles at
// 1M keys. Each profile runs in a fresh child process (this test binary
// re-executed with -test.run=^TestRSSChild$) so they do not pollute each
// other: the child loads 1M keys (16-byte keys, 100-byte values, Relaxed
// durability, batches of 1000) into a fresh directory, then does 100k
// random Gets, and reports VmHWM (peak RSS), VmRSS, RssAnon and RssFile from
// /proc/self/status. One iteration is one run of both profiles; the metrics
// are the medians over the iterations.
//
//	go test -count=1 -run '^$' -bench '^BenchmarkRSS$' -benchtime 1x -timeout 30m ./internal/engine
//	EBREPLICA_RSS_KEYS=n   keys to load (default 1000000)
func BenchmarkRSS(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("EBREPLICA_RSS_KEYS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("EBREPLICA_RSS_KEYS=%q: want a positive integer", s)
		}
	}
	var def, low []float64
	for b.Loop() {
		d, l := rssRun(b, n)
		def, low = append(def, float64(d)), append(low, float64(l))
	}
	b.ReportMetric(stats.Median(def), "default-MiB-peak")
	b.ReportMetric(stats.Median(low), "lowmemory-MiB-peak")
}

// TestRSS runs BenchmarkRSS's measurement at 20k keys (a smoke run of the
// harness in the test command), and checks the point of the LowMemory
// profile: a lower peak than the default.
func TestRSS(t *testing.T) {
	if os.Getenv(rssChildEnv) != "" {
		t.Skip("in the child")
	}
	rssRun(t, 20_000)
}

// rssRun measures both profiles at n keys, logs the children's RSS lines,
// and returns each one's peak RSS (VmHWM) in MiB. It fails t when the
// LowMemory peak is not below the default's.
func rssRun(t testing.TB, n int) (defPeak, lowPeak int) {
	var table []string
	for _, profile := range []string{"default", "lowmemory"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRSSChild$", "-test.count=1", "-test.timeout=30m")
		cmd.Env = append(os.Environ(), "EBREPLICA_RSS_KEYS="+strconv.Itoa(n), rssChildEnv+"="+profile, rssDirEnv+"="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s\n%s", profile, err, out, stderr.String())
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		found := false
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "RSS "); ok {
				table = append(table, line)
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: no RSS line in\n%s\n%s", profile, out, stderr.String())
		}
	}
	for _, line := range table {
		t.Log(line)
	}
	peak := func(line string) int {
		m := regexp.MustCompile(` VmHWM=(\d+)MiB`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no VmHWM in %q", line)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// The point of the LowMemory profile: a lower peak than the default.
	def, low := peak(table[0]), peak(table[1])
	if low >= def {
		t.Fatalf("LowMemory peak %d MiB is not below the default's %d MiB", low, def)
	}
	return def, low
}

const (
	rssChildEnv = "EBREPLICA_RSS_CHILD"
	rssDirEnv   = "EBREPLICA_RSS_DIR"
)

// TestRSSChild is the measuring process of BenchmarkRSS and TestRSS.
func TestRSSChild(t *testing.T) {
	profile := os.Getenv(rssChildEnv)
	if profile == "" {
		t.Skip("helper process of BenchmarkRSS")
	}
	n := 1_000_000
	if s := os.Getenv("EBREPLICA_RSS_KEYS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	low := profile == "lowmemory"
	ctx := context.Background()
	r, err := engine.Init(os.Getenv(rssDirEnv), "mem://rss", &engine.Options{LowMemory: low, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	val := make([]byte, 100)
	t0 := time.Now()
	const batch = 1000
	for from := 0; from < n; from += batch {
		err := r.Batch(ctx, func(b *engine.Batch) error {
			for i := from; i < min(from+batch, n); i++ {
				val[0], val[1] = byte(i), byte(i>>8)
				b.Put(fmt.Sprintf("%016d", i), val)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	load := time.Since(t0)
	if r.Len() != int64(n) {
		t.Fatalf("Len %d", r.Len())
	}
	hwmLoad, rssLoad, _, _ := procStatus(t)
	rng := rand.New(rand.NewPCG(7, 7))
	t1 := time.Now()
	const gets = 100_000
	for range gets {
		if _, err := r.Get(fmt.Sprintf("%016d", rng.IntN(n))); err != nil {
			t.Fatal(err)
		}
	}
	getTime := time.Since(t1)
	hwm, rss, anon, file := procStatus(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("RSS profile=%s keys=%d load=%.1fs (%.0f puts/s) VmHWM-after-load=%dMiB VmRSS-after-load=%dMiB gets=%d in %.2fs (%.1fus/get) VmHWM=%dMiB VmRSS=%dMiB (RssAnon=%dMiB RssFile=%dMiB) go-heap-inuse=%dMiB go-sys=%dMiB\n",
		profile, n, load.Seconds(), float64(n)/load.Seconds(), hwmLoad>>10, rssLoad>>10,
		gets, getTime.Seconds(), float64(getTime.Microseconds())/gets, hwm>>10, rss>>10, anon>>10, file>>10,
		ms.HeapInuse>>20, ms.Sys>>20)
}

// procStatus returns VmHWM, VmRSS, RssAnon and RssFile in KiB.
func procStatus(t testing.TB) (hwm, rss, anon, file int64) {
	t.Helper()
	hwm, rss, anon, file, err := procstat.Self()
	if err != nil {
		t.Fatal(err)
	}
	return hwm, rss, anon, file
}
