// Package format holds the JSON bodies of the bucket layout (see package
// remote for the object names): the store manifest (store.json), the
// replica registries (replicas/<id>.json) and the snapshot indexes
// (snap/<P>/index), with the strict readers the sync engine trusts them
// through. Log segments and snapshot parts are binary and have their own
// codec, package remote/segment.
//
// Every body carries "format": the version of the store format that wrote
// it. A reader accepts every version from 1 to FormatVersion and refuses a
// newer one with ErrNewerFormat: upgrade, never guess.
//
// None of these objects carries a checksum of its own, so one read of them
// is never trusted alone: ReadManifest and ReadIndex read until two reads
// return the same bytes (ReadStable). A damaged read that still parses
// would otherwise become a verdict: a foreign store, or a snapshot that
// lists no parts (and a compactor that prunes the live one's).
//
// The error messages keep the "replica:" prefix of the engine that
// returned them before this package existed: the command line shows them.
package format

import "errors"

// FormatVersion is the store format this build writes and reads.
const FormatVersion = 1

// Limits of the format: what an honest writer produces, and so what a
// reader accepts.
const (
	// DefaultSegmentCap is the raw size at which a push starts a new
	// segment, when the manifest's segment_cap is 0.
	DefaultSegmentCap = 8 << 20
	// MaxPartSize bounds a snapshot part's raw size: a compactor writes no
	// larger part, a reader accepts none larger (plus the record that
	// crosses it).
	MaxPartSize = 64 << 20
	// DefaultMaxValueSize is the largest value a replica accepts unless
	// configured otherwise; a reader with no replica (verify) bounds a
	// segment's last record by it.
	DefaultMaxValueSize = 16 << 20
)

// Errors.
var (
	// ErrNewerFormat: an object made by a newer format version.
	ErrNewerFormat = errors.New("replica: remote store was made by a newer format version (upgrade ebreplica)")
	// ErrForeignRemote: store.json is not an ebreplica store manifest.
	ErrForeignRemote = errors.New("replica: remote object is not an ebreplica store manifest")
)
