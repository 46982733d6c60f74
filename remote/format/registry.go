package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// RegistryBody is replicas/<replica id>.json, a replica's registry object:
// created create-only when the replica registers (a duplicate id fails),
// then replaced by compare-and-swap on its ETag:
//
//	{"format": 1,
//	 "replica_id": "<uuid>",        // the id its name carries
//	 "seq": 7,                      // increases with every write; never 0
//	 "nonce": "<hex>",              // fresh for every write; never empty
//	 "ack": 41,                     // contiguous applied position
//	 "retired": false,
//	 "retired_nonce": "<hex>",      // omitted unless retired by another
//	 "skew_capped": 0,
//	 "wall": "<RFC 3339 time>",
//	 "sum": "<16 hex digits>"}      // a checksum of the body's bytes
//
// Unknown fields are ignored. The sum (EncodeRegistry, DecodeRegistry) is
// the first 8 bytes of the SHA-256 of the body's bytes as written, with the
// sum's own 16 digits replaced by zeros: a read that comes back damaged
// (a flipped bit, a torn body that still parses) fails it instead of
// decoding into another writer's seq or nonce, which fencing would take as
// a verdict that the directory is a copy. A body without a sum (written
// before it was added) is taken as it decodes.
type RegistryBody struct {
	Format    int    `json:"format"`
	ReplicaID string `json:"replica_id"`
	// Seq increases with every write; Nonce is fresh for every write, so no
	// body ever repeats and a writer recognises its own write on read-back.
	Seq   uint64 `json:"seq"`
	Nonce string `json:"nonce"`
	// Ack is the replica's contiguous applied position, lowered to the base
	// of any staged segment not yet uploaded.
	Ack     uint64 `json:"ack"`
	Retired bool   `json:"retired"`
	// RetiredNonce is the nonce of the body a retirer retired: a retirement
	// is a write of its own (seq+1, a fresh nonce), so the retired replica
	// can tell that the body it retired was its own.
	RetiredNonce string `json:"retired_nonce,omitempty"`
	// SkewCapped counts remote timestamps beyond MaxDrift this replica saw.
	SkewCapped uint64    `json:"skew_capped"`
	Wall       time.Time `json:"wall"`
	// Sum is the checksum EncodeRegistry writes (see above).
	Sum string `json:"sum,omitempty"`
}

// ErrRegistrySum: a registry object whose bytes do not match its sum (a
// damaged read, or a damaged object).
var ErrRegistrySum = errors.New("registry object fails its checksum")

// zeroSum stands for the sum while it is computed.
const zeroSum = "0000000000000000"

// EncodeRegistry returns b as the bytes of a registry object, with its sum.
func EncodeRegistry(b RegistryBody) []byte {
	b.Sum = zeroSum
	out, _ := json.MarshalIndent(b, "", "  ")
	field := []byte(`"sum": "` + zeroSum + `"`)
	i := bytes.LastIndex(out, field)
	sum := sha256.Sum256(out)
	hex.Encode(out[i+len(field)-1-len(zeroSum):], sum[:8])
	return out
}

// sumField finds the sum in a registry object's bytes, however the JSON
// around it is spaced.
var sumField = regexp.MustCompile(`"sum"\s*:\s*"([^"]*)"`)

// DecodeRegistry decodes a registry object's bytes and checks their sum
// when they carry one (ErrRegistrySum when they do not match it).
func DecodeRegistry(data []byte) (RegistryBody, error) {
	var b RegistryBody
	if err := json.Unmarshal(data, &b); err != nil {
		return RegistryBody{}, err
	}
	if b.Sum == "" {
		return b, nil
	}
	ms := sumField.FindAllSubmatchIndex(data, -1)
	if len(b.Sum) != len(zeroSum) || len(ms) == 0 {
		return RegistryBody{}, fmt.Errorf("%w: malformed sum %q", ErrRegistrySum, b.Sum)
	}
	m := ms[len(ms)-1]
	if string(data[m[2]:m[3]]) != b.Sum {
		return RegistryBody{}, fmt.Errorf("%w: malformed sum %q", ErrRegistrySum, b.Sum)
	}
	zeroed := bytes.Clone(data)
	copy(zeroed[m[2]:m[3]], zeroSum)
	sum := sha256.Sum256(zeroed)
	if hex.EncodeToString(sum[:8]) != b.Sum {
		return RegistryBody{}, fmt.Errorf("%w (sum %s)", ErrRegistrySum, b.Sum)
	}
	return b, nil
}
