package azremote_test

import (
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// BenchmarkAzure measures azremote against the local emulator
// (scripts/azserver.sh start), one fresh container per sub-benchmark:
//
//	go test -run '^$' -bench . -benchtime 2s ./remote/azremote/
func BenchmarkAzure(b *testing.B) {
	remotetest.RunBenchmarks(b, func(b *testing.B) remote.Backend { return newBackend(b, "bench", nil) })
}
