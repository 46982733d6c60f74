package format

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// SnapIndex is snap/<P>/index, written last (create-only) by a compactor,
// after every part it lists: a snapshot without its index does not exist.
//
//	{"format": 1,
//	 "store_id": "<uuid>",           // the manifest's
//	 "position": P,                  // the position its name carries
//	 "origin": "<replica id>", "nonce": "<hex>",
//	 "g": {"<replica id>": counter, ...},    // the collected context G
//	 "top": {"<replica id>": counter, ...},  // G joined with every record's clock
//	 "records": N,                   // the sum of the parts' records
//	 "parts": [{"name": "snap/<P>/part-<nonce>-0000", "size": bytes,
//	            "sha256": "<hex>", "records": n}, ...],
//	 "created": "<RFC 3339 time>"}
//
// ReadIndex reads it strictly: an unknown field is damage, not a later
// addition (a bit flip in "parts" must not read as a snapshot with none).
type SnapIndex struct {
	Format   int               `json:"format"`
	RemoteID string            `json:"store_id"`
	Position uint64            `json:"position"`
	Origin   string            `json:"origin"`
	Nonce    string            `json:"nonce"`
	G        map[string]uint64 `json:"g"`
	// Top is the join of G and every record's clock: the highest dot of
	// each replica the snapshot holds. A rebasing replica whose own entry
	// here is above its counter was copied or restored (absence rule 5),
	// and finds out before it discards anything.
	Top     map[string]uint64 `json:"top,omitempty"`
	Records int64             `json:"records"`
	Parts   []PartInfo        `json:"parts"`
	Created time.Time         `json:"created"`
}

// PartInfo describes one snapshot part (a segment codec object, see
// remote/segment): its name (remote.PartKey), size in bytes, the hex
// SHA-256 of its bytes and its record count.
type PartInfo struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Records int    `json:"records"`
}

// VectorFromJSON is the clock.Vector of a JSON vector (SnapIndex.G and
// Top): replica id text to counter, zero counters dropped.
func VectorFromJSON(m map[string]uint64) (clock.Vector, error) {
	v := clock.Vector{}
	for s, c := range m {
		id, err := clock.ParseReplicaID(s)
		if err != nil {
			return nil, err
		}
		if c > 0 {
			v[id] = c
		}
	}
	return v, nil
}

// ReadIndex fetches and checks the index of the snapshot at pos on b.
// storeID, when not empty, is the store it must belong to.
//
// The index has no checksum of its own, and prune deletes every part it
// does not list: it is read until two reads agree (ReadStable), decoded
// strictly (DecodeIndex), and checked to add up (found by the simulator: a
// damaged read that still decoded made a compactor prune the live
// snapshot's part).
func ReadIndex(ctx context.Context, b remote.Backend, pos uint64, storeID string) (SnapIndex, error) {
	key := remote.SnapKey(pos)
	obj, err := ReadStable(ctx, b, key)
	if err != nil {
		return SnapIndex{}, fmt.Errorf("replica: read %s on %s: %w", key, b, err)
	}
	return DecodeIndex(obj.Data, pos, storeID, fmt.Sprintf("%s on %s", key, b))
}

// DecodeIndex decodes and checks the bytes of the index of the snapshot at
// pos: of a newer format (ErrNewerFormat), or strictly decoded with no
// unknown field, naming pos (and storeID when not empty), listing at least
// one part, each under snap/<pos>/part- with no negative size or count,
// whose records add up to the index's. Any other failure wraps
// segment.ErrCorrupt. name identifies the object in errors.
func DecodeIndex(data []byte, pos uint64, storeID, name string) (SnapIndex, error) {
	var idx SnapIndex
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err == nil && head.Format > FormatVersion {
		return idx, fmt.Errorf("%w: %s", ErrNewerFormat, remote.SnapKey(pos))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	bad := func(why string) error {
		return fmt.Errorf("%w: %s: not a snapshot index (%s)", segment.ErrCorrupt, name, why)
	}
	if err := dec.Decode(&idx); err != nil {
		return idx, bad(err.Error())
	}
	if idx.Position != pos {
		return idx, bad(fmt.Sprintf("it names position %d", idx.Position))
	}
	if storeID != "" && idx.RemoteID != storeID {
		return idx, fmt.Errorf("%w: %s belongs to another store", segment.ErrCorrupt, name)
	}
	if len(idx.Parts) == 0 {
		return idx, bad("it lists no parts")
	}
	var records int64
	prefix := remote.PartPrefix(pos)
	for _, p := range idx.Parts {
		if !strings.HasPrefix(p.Name, prefix) || p.Records < 0 || p.Size < 0 {
			return idx, bad(fmt.Sprintf("part %q", p.Name))
		}
		records += int64(p.Records)
	}
	if records != idx.Records {
		return idx, bad(fmt.Sprintf("its parts hold %d records, it says %d", records, idx.Records))
	}
	return idx, nil
}

// VectorToJSON is a clock vector as a snapshot index holds it (G, Top):
// replica id -> counter.
func VectorToJSON(v clock.Vector) map[string]uint64 {
	out := map[string]uint64{}
	for _, d := range v.Entries() {
		out[d.Replica.String()] = d.Counter
	}
	return out
}
