package format

import "time"

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
//	 "wall": "<RFC 3339 time>"}
//
// Unknown fields are ignored.
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
}
