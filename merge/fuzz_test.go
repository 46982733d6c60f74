package merge_test

import (
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// fuzzSeeds are valid encodings of a few records; the checked-in corpus in
// testdata/fuzz/FuzzDecodeRecord adds more of these and some junk.
func fuzzSeeds(t tb) [][]byte {
	const at = clock.HLC(1_700_000_000_000 << 16)
	records := []merge.Record{
		{},
		{Clock: vec(2, 1)},
		{Clock: vec(1), Versions: []merge.Version{put(0, 1, "hello", at)}},
		{Clock: vec(2, 1, 0, 3), Versions: []merge.Version{del(3, 3, at+1), put(1, 1, "", at), put(0, 2, "x", at)}},
	}
	var out [][]byte
	for _, r := range records {
		out = append(out, encode(t, r))
	}
	return out
}

// FuzzDecodeRecord: DecodeRecord never panics; it fails with ErrBadRecord or
// returns a valid record whose encoding decodes to an equal record.
//
//	go test -run='^$' -fuzz=FuzzDecodeRecord -fuzztime=60s ./merge/
func FuzzDecodeRecord(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
	})
}
