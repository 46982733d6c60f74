package engine

// Client-side encryption (issue 16). An encrypted store's manifest says so
// (format.Encryption); the engine then reads and writes the remote through
// a sealremote.Backend, which seals every object body that may carry user
// data (see that package). The sync protocol does not change: the engine
// sees plaintext, and conditional writes and ETags pass through.
//
// The binding is decided by the manifest, never by the caller alone: once
// connected to an encrypted store the engine refuses to go on without the
// device's key (it would write plaintext into it), and a key given for a
// store that is not encrypted is refused too. The device's key is
// Options.Keys, else the key file whose path the replica recorded at init
// (Options.KeyFile): the path is kept, never the key.

import (
	"context"
	"errors"
	"fmt"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/sealremote"
)

// Encryption errors.
var (
	// ErrKeyRequired: the store is encrypted and this replica has no
	// usable key (none given or recorded, or the key file cannot be read).
	ErrKeyRequired = errors.New("replica: the store is encrypted and needs this device's key")
	// ErrNotEncrypted: a key or Encrypt was given for a store that is not
	// encrypted.
	ErrNotEncrypted = errors.New("replica: the store is not encrypted")
	// ErrNoKey: the device's key is not among the store's recipients (or
	// was removed); see sealremote.ErrNoKey.
	ErrNoKey = sealremote.ErrNoKey
)

const metaKeyFile = "key_file"

// KeyFile returns the key file path recorded at init ("" for none).
func (r *Engine) KeyFile() string {
	v, _ := r.meta(metaKeyFile)
	return string(v)
}

// deviceKeys returns this device's key: Options.Keys, else the recorded
// key file's.
func (r *Engine) deviceKeys() (*sealremote.Keys, error) {
	if r.opts.Keys != nil {
		return r.opts.Keys, nil
	}
	path := r.KeyFile()
	if path == "" {
		return nil, fmt.Errorf("%w: no key file is recorded for this replica (give one with --key-file or EBREPLICA_KEY_FILE)", ErrKeyRequired)
	}
	k, err := sealremote.LoadKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyRequired, err)
	}
	return k, nil
}

// unsealed returns the backend under a sealing wrapper.
func unsealed(b remote.Backend) remote.Backend {
	if sb, ok := b.(*sealremote.Backend); ok {
		return sb.Inner()
	}
	return b
}

// bindSeal makes r.opts.Backend seal when m says the store is encrypted,
// and refuses a key for a store that is not. Called with syncMu held.
func (r *Engine) bindSeal(ctx context.Context, m Manifest) error {
	sb, isSealed := r.opts.Backend.(*sealremote.Backend)
	if !m.Encrypted() {
		if isSealed || r.opts.Encrypt || r.opts.Keys != nil {
			return fmt.Errorf("%w: %s was created without encryption (a key is only for an encrypted store)", ErrNotEncrypted, r.opts.Backend)
		}
		return nil
	}
	if isSealed {
		if sb.StoreID() != m.RemoteID {
			return fmt.Errorf("%w: the sealing backend is bound to store %s, the remote holds %s", ErrForeignRemote, sb.StoreID(), m.RemoteID)
		}
		return nil
	}
	k, err := r.deviceKeys()
	if err != nil {
		return err
	}
	sb, err = sealremote.OpenClock(ctx, r.opts.Backend, m.RemoteID, k, r.opts.Wall)
	if err != nil {
		return fmt.Errorf("replica: %s: %w", r.opts.Backend, err)
	}
	r.opts.Backend = sb
	return nil
}

// createKeys writes the first key epoch of a new encrypted store (before
// its manifest, which names the store id the keys are bound to) and
// returns the store id to write: storeID, or the one of the keys an
// earlier attempt wrote before it failed (sealremote.Create resumes it).
// When keys/ holds another device's keys and store.json exists, the store
// was made by another: ensureManifest adopts it.
//
// resumed is true when the id is not storeID: keys/ was there before (an
// earlier attempt's, or another replica's that made the store first).
func (r *Engine) createKeys(ctx context.Context, storeID string) (id string, resumed bool, err error) {
	if r.opts.Keys == nil {
		return "", false, fmt.Errorf("%w: Encrypt needs Options.Keys", ErrKeyRequired)
	}
	b := unsealed(r.opts.Backend)
	_, id, err = sealremote.Create(ctx, b, storeID, r.opts.Keys)
	if errors.Is(err, sealremote.ErrRotating) {
		if _, ok, merr := format.ReadManifest(ctx, b); merr == nil && ok {
			return storeID, true, nil
		}
		return "", false, fmt.Errorf("replica: %s holds another device's keys (%s) but no %s: an encrypted init that crashed? Delete %s to start again: %w",
			b, sealremote.KeysPrefix, remote.ManifestKey, sealremote.KeysPrefix, err)
	}
	return id, id != storeID, err
}

// Seal returns b wrapped in the sealing layer when this replica's copy of
// the store manifest says the store is encrypted. decided is false when
// the replica has not connected yet (no copy): b is returned as it is, and
// Connect binds the sealing itself.
func (r *Engine) Seal(ctx context.Context, b remote.Backend) (_ remote.Backend, decided bool, err error) {
	var m Manifest
	ok, err := r.loadJSON("manifest", &m)
	if err != nil || !ok {
		return b, false, err
	}
	if !m.Encrypted() {
		return b, true, nil
	}
	if sb, isSealed := b.(*sealremote.Backend); isSealed && sb.StoreID() == m.RemoteID {
		return b, true, nil
	}
	k, err := r.deviceKeys()
	if err != nil {
		return nil, true, err
	}
	sb, err := sealremote.OpenClock(ctx, unsealed(b), m.RemoteID, k, r.opts.Wall)
	if err != nil {
		return nil, true, fmt.Errorf("replica: %s: %w", b, err)
	}
	return sb, true, nil
}

// refreshSeal makes an encrypted store's sealing use its newest key epoch
// (compaction: the snapshot it writes re-seals the store under it, even in
// a process that has run since another device rotated).
func (r *Engine) refreshSeal(ctx context.Context) error {
	if sb, ok := r.opts.Backend.(*sealremote.Backend); ok {
		if err := sb.Refresh(ctx); err != nil {
			return fmt.Errorf("replica: %s: %w", sb, err)
		}
	}
	return nil
}

// checkStoreExists refuses a device key without Encrypt for a store that
// does not exist yet, before anything is written: such a replica would
// make a plain store and then refuse it (ErrNotEncrypted).
func (r *Engine) checkStoreExists(ctx context.Context) error {
	b := unsealed(r.opts.Backend)
	_, ok, err := format.ReadManifest(ctx, b)
	if err != nil || ok {
		return err
	}
	return fmt.Errorf("%w: there is no store on %s yet (Encrypt creates an encrypted one)", ErrNotEncrypted, b)
}
