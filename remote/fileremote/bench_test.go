package fileremote_test

import (
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
)

// BenchmarkFile measures fileremote on a fresh directory (t.TempDir) per
// sub-benchmark, for comparison with s3remote's BenchmarkS3:
//
//	go test -run '^$' -bench . -benchtime 2s ./remote/fileremote/
func BenchmarkFile(b *testing.B) {
	remotetest.RunThroughput(b, func(b *testing.B) remote.Backend {
		be, err := fileremote.New(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		return be
	})
}
