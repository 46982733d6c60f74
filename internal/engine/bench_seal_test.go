//go:build linux || darwin

package engine_test

// BenchmarkSealedPushPull: push and pull throughput of an encrypted store
// against a plain one, in the same run (issue 16; BENCHMARKS.md,
// "Encryption"). Each round makes, for plain and then sealed, a fresh
// store: an on-disk writer loads n keys of 100 incompressible bytes (not
// timed), pushes them (timed), and a fresh on-disk reader pulls them
// (timed). Three rounds per backend; the log gives min and median of each
// and the sealed/plain ratios of the medians.
//
//	go test -run '^$' -bench '^BenchmarkSealedPushPull$' -benchtime 1x ./internal/engine/
//	eval "$(scripts/s3server.sh start)"   # adds the S3 rows
//
// EBREPLICA_BENCH_SEAL_N sets n (default 50000).

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/internal/stats"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/store"
)

func BenchmarkSealedPushPull(b *testing.B) {
	n := bsEnvInt(b, "EBREPLICA_BENCH_SEAL_N", 50_000)
	backends := map[string]func(b *testing.B) remote.Backend{
		"dir": func(b *testing.B) remote.Backend {
			be, err := fileremote.New(b.TempDir(), &fileremote.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			return be
		},
	}
	if os.Getenv(s3test.EnvEndpoint) != "" {
		backends["s3"] = func(b *testing.B) remote.Backend {
			be, _, _ := bsS3(b, "seal")
			return be
		}
	}
	for _, name := range []string{"dir", "s3"} {
		mk := backends[name]
		if mk == nil {
			continue
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var push, pull [2][]time.Duration // [plain, sealed]
				for round := range 3 {
					for sealed := range 2 {
						p, l := sealRound(b, mk(b), n, sealed == 1, uint64(round))
						push[sealed] = append(push[sealed], p)
						pull[sealed] = append(pull[sealed], l)
					}
				}
				mb := float64(n*(bsValueSize+len(bsKey(0)))) / 1e6
				for i, what := range []string{"plain", "sealed"} {
					b.Logf("%s %s, %d keys (%.1f MB of keys and values): push min %v median %v (%.1f MB/s at the median); pull min %v median %v (%.1f MB/s)",
						name, what, n, mb, slices.Min(push[i]).Round(time.Millisecond), stats.Median(push[i]).Round(time.Millisecond), mb/stats.Median(push[i]).Seconds(),
						slices.Min(pull[i]).Round(time.Millisecond), stats.Median(pull[i]).Round(time.Millisecond), mb/stats.Median(pull[i]).Seconds())
				}
				pushRatio := stats.Median(push[0]).Seconds() / stats.Median(push[1]).Seconds()
				pullRatio := stats.Median(pull[0]).Seconds() / stats.Median(pull[1]).Seconds()
				b.Logf("%s: sealed throughput / plain: medians push %.2fx, pull %.2fx; minima push %.2fx, pull %.2fx", name, pushRatio, pullRatio,
					slices.Min(push[0]).Seconds()/slices.Min(push[1]).Seconds(), slices.Min(pull[0]).Seconds()/slices.Min(pull[1]).Seconds())
				b.ReportMetric(pushRatio, "push-sealed/plain")
				b.ReportMetric(pullRatio, "pull-sealed/plain")
			}
		})
	}
}

// sealRound times one push of n keys and one pull of them into a fresh
// replica, on a new store on be.
func sealRound(b *testing.B, be remote.Backend, n int, sealed bool, seed uint64) (push, pull time.Duration) {
	b.Helper()
	ctx := context.Background()
	var k *sealremote.Keys
	if sealed {
		var err error
		if k, err = sealremote.NewKeys(); err != nil {
			b.Fatal(err)
		}
	}
	open := func() *engine.Engine {
		r, err := engine.Open(b.TempDir(), &engine.Options{Create: true, Backend: be, Durability: store.Relaxed, Keys: k, Encrypt: sealed})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		if _, err := r.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		return r
	}
	w, r := open(), open()
	bsLoad(b, w, n, rand.New(rand.NewPCG(seed, 16)))
	t0 := time.Now()
	ps := bsPush(b, w)
	t1 := time.Now()
	ls := bsPull(b, r)
	t2 := time.Now()
	if ps.Records != n || ls.Records != n || r.Len() != int64(n) {
		b.Fatalf("push %+v, pull %+v: want %d records", ps, ls, n)
	}
	return t1.Sub(t0), t2.Sub(t1)
}
