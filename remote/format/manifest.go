package format

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
)

// Manifest is store.json, written once, create-only, by the first replica
// of a store:
//
//	{"format": 1,                       // FormatVersion of its writer
//	 "store_id": "<uuid>",              // names the store; never empty
//	 "policies": {"<prefix>": "<policy name>", ...},
//	 "segment_cap": 8388608,            // raw bytes; 0 means DefaultSegmentCap
//	 "codec": "zstd",                   // of segments: "raw", "none", "" or "zstd"
//	 "created": "<RFC 3339 time>",
//	 "encryption": {"scheme": "age-x25519+xchacha20poly1305"},  // encrypted stores only
//	 "retention": {"keep_snapshots": 3, "keep_age_seconds": 604800}}  // optional
//
// Unknown fields are ignored (a later minor addition reads as absent).
// An encrypted store's manifest has format EncryptedFormat, so that a
// build from before encryption refuses the store (ErrNewerFormat) instead
// of writing plaintext into it; its keys and sealed bodies are described
// in package remote/sealremote. The manifest itself holds no user data.
type Manifest struct {
	Format     int               `json:"format"`
	RemoteID   string            `json:"store_id"`
	Policies   map[string]string `json:"policies"`
	SegmentCap int               `json:"segment_cap"`
	Codec      string            `json:"codec"`
	Created    time.Time         `json:"created"`
	// Encryption, when set, says every object body but store.json, keys/
	// and probes is sealed (see remote/sealremote).
	Encryption *Encryption `json:"encryption,omitempty"`
	// Retention, when set, is how much history compact --prune keeps
	// (see retention.go); absent, only the newest snapshot.
	Retention *Retention `json:"retention,omitempty"`
}

// Encryption is the manifest's note that a store is encrypted.
type Encryption struct {
	Scheme string `json:"scheme"`
}

// EncryptedFormat is the manifest format of an encrypted store.
const EncryptedFormat = 2

// Encrypted reports whether the store is encrypted.
func (m Manifest) Encrypted() bool { return m.Encryption != nil }

// Newer reports whether the manifest is of a format this build cannot
// read: above FormatVersion, except EncryptedFormat with its encryption.
func (m Manifest) Newer() bool {
	if m.Format == EncryptedFormat && m.Encryption != nil {
		return false
	}
	return m.Format > FormatVersion
}

// Registry builds the policy registry the manifest names, from built-ins
// and funcs.
func (m Manifest) Registry(funcs map[string]merge.Policy) (*merge.Registry, error) {
	specs := make([]string, 0, len(m.Policies))
	for prefix, name := range m.Policies {
		specs = append(specs, prefix+"="+name)
	}
	return merge.ParsePolicies(specs, funcs)
}

// ReadManifest reads a store's manifest; ok is false when the store does
// not exist yet. The manifest is read until two reads agree (ReadStable);
// one that does not parse or names no store is ErrForeignRemote, one of a
// newer format ErrNewerFormat. New replicas that were given no policies
// adopt the manifest's (see Manifest.Registry).
func ReadManifest(ctx context.Context, b remote.Backend) (m Manifest, ok bool, err error) {
	obj, err := ReadStable(ctx, b, remote.ManifestKey)
	if errors.Is(err, remote.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("replica: read %s on %s: %w", remote.ManifestKey, b, err)
	}
	if err := json.Unmarshal(obj.Data, &m); err != nil || m.RemoteID == "" {
		return m, false, fmt.Errorf("%w: %s on %s", ErrForeignRemote, remote.ManifestKey, b)
	}
	if m.Newer() {
		return m, false, fmt.Errorf("%w: store format %d, this build supports %d", ErrNewerFormat, m.Format, FormatVersion)
	}
	return m, true, nil
}

// stableReads bounds the reads of ReadStable after the first.
const stableReads = 4

// ReadStable reads an object that carries no checksum of its own until two
// consecutive reads return the same bytes, so one damaged read never
// becomes a verdict or a saved copy. It returns the later of the two;
// reads that differ every time (five in all) fail with an error wrapping
// remote.ErrTransient, and a read that fails fails it.
func ReadStable(ctx context.Context, b remote.Backend, key string) (remote.Object, error) {
	prev, err := b.Get(ctx, key)
	if err != nil {
		return prev, err
	}
	for range stableReads {
		obj, err := b.Get(ctx, key)
		if err != nil {
			return obj, err
		}
		if bytes.Equal(obj.Data, prev.Data) {
			return obj, nil
		}
		prev = obj
	}
	return prev, fmt.Errorf("%w: %s on %s reads differently every time", remote.ErrTransient, key, b)
}
