package sealremote_test

import (
	"testing"

	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// BenchmarkSealOpen: sealing and opening one 8 MiB body (a full segment)
// in memory, the CPU cost sealing adds to a push and a pull.
//
//	go test -run '^$' -bench '^BenchmarkSealOpen' -count 3 ./remote/sealremote/
func BenchmarkSealOpen(b *testing.B) {
	data := remotetest.Content(1, 8<<20)
	for _, what := range []string{"seal", "open"} {
		b.Run(what, func(b *testing.B) {
			mem := memremote.New("m")
			be := emptiedB(b, mem)
			ctx := b.Context()
			if _, err := be.Put(ctx, "log/00000000000000000001", data); err != nil {
				b.Fatal(err)
			}
			sealed, _ := mem.Get(ctx, "log/00000000000000000001")
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if what == "seal" {
					if _, err := be.Put(ctx, "log/00000000000000000002", data); err != nil {
						b.Fatal(err)
					}
				} else if _, err := be.Unseal(ctx, "log/00000000000000000001", sealed.Data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
