package engine

import (
	"testing"

	"github.com/ebreplica/ebreplica/store"
)

// TestSmallProfileDecoders: the decoders a pull and a bootstrap use hold
// the small profile's budget under the small profile and the default
// budget otherwise (a real Badger store each).
func TestSmallProfileDecoders(t *testing.T) {
	for _, low := range []bool{false, true} {
		r, err := Init(t.TempDir(), "file://unused", &Options{LowMemory: low, Durability: store.Relaxed})
		if err != nil {
			t.Fatal(err)
		}
		want := decodeBudget
		if low {
			want = smallDecodeBudget
		}
		if r.decoder().Budget != want || r.partDecoder().Budget != want {
			t.Errorf("LowMemory %v: segment decoder budget %d, part decoder budget %d; want %d",
				low, r.decoder().Budget.Size(), r.partDecoder().Budget.Size(), want.Size())
		}
		r.Close()
	}
}
