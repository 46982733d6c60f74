package s3remote_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// BenchmarkS3 measures s3remote against the local test server
// (scripts/s3server.sh start), one fresh bucket per sub-benchmark:
//
//	go test -run '^$' -bench . -benchtime 2s ./remote/s3remote/
func BenchmarkS3(b *testing.B) {
	benchRemoteOps(b, func(b *testing.B) remote.Backend { return newReal(b, "bench", nil) })
}

// benchRemoteOps runs PUT and GET of 1 KiB and 1 MiB objects at concurrency 1
// and 32 against the backend newBackend returns, as sub-benchmarks named
// Put/1KiB/c1 and so on, reporting ops/s and MB/s (payload bytes).
func benchRemoteOps(b *testing.B, newBackend func(b *testing.B) remote.Backend) {
	for _, op := range []string{"Put", "Get"} {
		for _, size := range []int{1 << 10, 1 << 20} {
			for _, conc := range []int{1, 32} {
				name := fmt.Sprintf("%s/%dKiB/c%d", op, size>>10, conc)
				if size >= 1<<20 {
					name = fmt.Sprintf("%s/%dMiB/c%d", op, size>>20, conc)
				}
				b.Run(name, func(b *testing.B) {
					be := newBackend(b)
					ctx := b.Context()
					data := remotetest.Content(uint64(size), size)
					// GET reads one object per worker, PUT overwrites a
					// rotating set of 64 keys per worker.
					fn := func(worker, i int) error {
						_, err := be.Put(ctx, fmt.Sprintf("bench/%02d/%02d", worker, i%64), data)
						return err
					}
					if op == "Get" {
						for w := range conc {
							if _, err := be.Put(ctx, fmt.Sprintf("bench/%02d", w), data); err != nil {
								b.Fatal(err)
							}
						}
						fn = func(worker, _ int) error {
							obj, err := be.Get(ctx, fmt.Sprintf("bench/%02d", worker))
							if err == nil && len(obj.Data) != size {
								err = fmt.Errorf("got %d bytes, want %d", len(obj.Data), size)
							}
							return err
						}
					}
					benchWorkers(b, conc, size, fn)
				})
			}
		}
	}
}

// benchWorkers runs b.N calls of fn spread over conc goroutines and reports
// the throughput.
func benchWorkers(b *testing.B, conc, size int, fn func(worker, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range conc {
		wg.Go(func() {
			for i := 0; ; i++ {
				if next.Add(1) > int64(b.N) {
					return
				}
				if err := fn(w, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "ops/s")
	b.ReportMetric(float64(b.N)*float64(size)/1e6/secs, "MB/s")
}
