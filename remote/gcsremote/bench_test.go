package gcsremote_test

import (
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// BenchmarkGCS measures gcsremote against the local emulator
// (scripts/gcsserver.sh start), one fresh bucket per sub-benchmark:
//
//	go test -run '^$' -bench . -benchtime 2s ./remote/gcsremote/
func BenchmarkGCS(b *testing.B) {
	remotetest.RunBenchmarks(b, func(b *testing.B) remote.Backend { return newBackend(b, "bench", nil) })
}
