package s3remote_test

import (
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// BenchmarkS3 measures s3remote against the local test server
// (scripts/s3server.sh start), one fresh bucket per sub-benchmark:
//
//	go test -run '^$' -bench . -benchtime 2s ./remote/s3remote/
func BenchmarkS3(b *testing.B) {
	remotetest.RunThroughput(b, func(b *testing.B) remote.Backend { return newReal(b, "bench", nil) })
}
