package format

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ebreplica/ebreplica/remote"
)

// Retention is the manifest's "retention": how much history compact
// --prune keeps for history, restore and revert.
//
//	{"keep_snapshots": N,          // the newest N snapshots (0 or 1: the newest only)
//	 "keep_age_seconds": S}        // every snapshot younger than S, and the newest older one
//
// A manifest without it (every store made before it existed) keeps only
// the newest snapshot, as before. It is the one field of store.json that
// changes after creation: SetRetention swaps the manifest by
// compare-and-swap, keeping every other field (known or not) byte for
// byte. A build from before retention ignores it and prunes to the
// newest snapshot: set retention only once every device runs a build
// that knows it.
type Retention struct {
	KeepSnapshots  int   `json:"keep_snapshots,omitempty"`
	KeepAgeSeconds int64 `json:"keep_age_seconds,omitempty"`
}

// KeepAge is the retention's age as a duration.
func (r Retention) KeepAge() time.Duration { return time.Duration(r.KeepAgeSeconds) * time.Second }

// Validate refuses a negative count or age.
func (r Retention) Validate() error {
	if r.KeepSnapshots < 0 || r.KeepAgeSeconds < 0 {
		return fmt.Errorf("replica: retention: negative keep-snapshots (%d) or keep-age (%ds)", r.KeepSnapshots, r.KeepAgeSeconds)
	}
	return nil
}

// RetentionOf is the retention a manifest asks for (the zero Retention,
// the newest snapshot only, when it names none).
func (m Manifest) RetentionOf() Retention {
	if m.Retention == nil {
		return Retention{}
	}
	return *m.Retention
}

// SetRetention writes ret into the manifest of the store on b by
// compare-and-swap on the ETag of a stable read, leaving every other field
// as it was (retrying when another writer swapped it meanwhile). A store
// with no manifest is remote.ErrNotExist; a bad retention changes nothing.
func SetRetention(ctx context.Context, b remote.Backend, ret Retention) error {
	if err := ret.Validate(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		obj, err := ReadStable(ctx, b, remote.ManifestKey)
		if err != nil {
			return fmt.Errorf("replica: read %s on %s: %w", remote.ManifestKey, b, err)
		}
		var fields map[string]json.RawMessage
		var m Manifest
		if json.Unmarshal(obj.Data, &fields) != nil || json.Unmarshal(obj.Data, &m) != nil || m.RemoteID == "" {
			return fmt.Errorf("%w: %s on %s", ErrForeignRemote, remote.ManifestKey, b)
		}
		if m.Newer() {
			return fmt.Errorf("%w: store format %d, this build supports %d", ErrNewerFormat, m.Format, FormatVersion)
		}
		if ret == (Retention{}) {
			delete(fields, "retention")
		} else {
			fields["retention"], _ = json.Marshal(ret)
		}
		data, _ := json.MarshalIndent(fields, "", "  ")
		_, err = b.PutIfMatch(ctx, remote.ManifestKey, data, obj.ETag)
		if err == nil {
			return nil
		}
		if !errors.Is(err, remote.ErrPrecondition) && !errors.Is(err, remote.ErrTransient) || attempt >= 4 {
			return fmt.Errorf("replica: write %s on %s: %w", remote.ManifestKey, b, err)
		}
		// Swapped meanwhile (or an ambiguous answer): read again; writing
		// the same retention twice is harmless.
	}
}
