// Package sealremote is client-side encryption for a store: a
// [remote.Backend] that wraps another so that the engine above it reads
// and writes plaintext while every object body below it that may carry
// user data is sealed.
//
// # Why a wrapping backend
//
// Sealing sits at the object boundary, below the codecs (segments and
// snapshot parts are compressed before they are sealed: ciphertext does not
// compress) and above the drivers. The sync protocol does not change: it
// still sees the bytes it wrote, conditional writes (PutIfAbsent,
// PutIfMatch) and ETags pass through untouched (an ETag names ciphertext,
// which is what the server compares), and a read-back compares plaintext.
// One wrapper serves S3, GCS, Azure, a directory and memory alike, and the
// conformance suite (remote/remotetest) runs over it.
//
// # What is sealed
//
// Every object except store.json (the manifest: format, store id, policy
// names, codec, and that the store is encrypted — no user data), the key
// objects under keys/ (wrapped data keys), and the probe's scratch objects.
// So log segments, snapshot parts and indexes, quarantine copies and the
// replica registries are sealed.
//
// # Object format
//
//	byte 0      format (1)
//	bytes 1-4   epoch of the data key, big-endian
//	bytes 5-28  XChaCha20-Poly1305 nonce (random)
//	then        ciphertext and its 16-byte tag
//
// The associated data is "ebreplica-seal\x00", the first five bytes, the
// store id, a NUL and the object's name (relative to the store's prefix),
// so an object cannot be swapped for another (a log segment moved to
// another position fails), moved to another store, or have its epoch
// relabelled. A body that fails to open is an error wrapping
// segment.ErrCorrupt and ErrTampered that names the object: the engine
// never applies it, and verify reports it as corrupt.
//
// # Keys
//
// The data key of an epoch is 32 random bytes, never stored in the clear.
// For each device (an age X25519 recipient) it is wrapped with age and
// stored as keys/<epoch>-r-<16 hex of SHA-256(recipient)>: {"epoch",
// "recipient", "wrapped"}. An epoch exists once its marker
// keys/<epoch>-epoch is written (create-only, after the wrapped keys, so a
// crashed rotation leaves no epoch that nobody can open): {"epoch",
// "store_id", "check", "endorsement"}. check is HMAC-SHA256 of the epoch's
// key over a label, the store id and the epoch: a wrapped key that does
// not match it is not the epoch's key (a forged or mixed-up object is
// refused). endorsement is the same HMAC of the previous epoch's key over
// the new key: only a holder of the current key can make the next epoch,
// so a device removed at epoch N+1 (which knows key N only) cannot forge
// epoch N+2 to read what is written after its removal. The first epoch is
// taken on trust (a device joining a store trusts what it finds).
//
// The current epoch is the highest epoch with a marker; new objects are
// sealed under it. Rotation (Rotate, RemoveRecipient) writes a new epoch
// wrapped for the chosen recipients; compaction re-seals the live data
// under it (a snapshot written after the rotation), and pruning deletes
// the old segments. A Backend learns of another device's rotation when it
// reads an object sealed under an epoch it does not know, before a write
// once its key listing is older than RefreshEvery (a minute), and when
// the engine starts a compaction (Refresh), so the snapshot is sealed
// under the newest epoch.
//
// # The device key
//
// A device's key is an age X25519 identity in a file of mode 0600
// (WriteKeyFile, LoadKeyFile refuses a file others may read). The engine
// records the key file's path in the replica directory at init, never the
// key, and loads it when it binds the remote; a directory copied without
// its key file cannot sync. A passphrase (scrypt) recipient is not
// offered: an unattended sync could not ask for it.
//
// The manifest records that the store is encrypted (format.Encryption)
// but not the epoch: store.json is written once, create-only, and the
// epochs live where they are made, under keys/.
package sealremote

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// Scheme is the manifest's name for this encryption (format.Encryption).
const Scheme = "age-x25519+xchacha20poly1305"

const (
	formatV1  byte = 1
	keySize        = chacha20poly1305.KeySize
	headerLen      = 1 + 4 + chacha20poly1305.NonceSizeX
	// Overhead is the bytes sealing adds to an object body.
	Overhead = headerLen + chacha20poly1305.Overhead
)

// KeysPrefix is the folder of the key objects.
const KeysPrefix = "keys/"

// DefaultRefreshEvery bounds how old the key listing may grow before a
// write lists keys/ again.
const DefaultRefreshEvery = time.Minute

// Errors.
var (
	// ErrTampered: a sealed body failed authentication (flipped bytes, a
	// torn write, or a body sealed for another name or store).
	ErrTampered = errors.New("sealremote: sealed object failed authentication")
	// ErrNoKey: the device's key opens no key of the store (not a
	// recipient, or removed).
	ErrNoKey = errors.New("sealremote: this key cannot open the store")
	// ErrRotating: another device made the same epoch at the same time.
	ErrRotating = errors.New("sealremote: another device changed the store's keys at the same time; run the command again")
)

// IsKeyName reports whether name is a key object (keys/...).
func IsKeyName(name string) bool { return strings.HasPrefix(name, KeysPrefix) }

// plain reports whether an object is stored unsealed.
func plain(name string) bool {
	return name == remote.ManifestKey || IsKeyName(name) || strings.HasPrefix(name, remote.ProbePrefix)
}

func markerKey(epoch uint32) string { return fmt.Sprintf("%s%010d-epoch", KeysPrefix, epoch) }

func wrappedKey(epoch uint32, recipient string) string {
	return fmt.Sprintf("%s%010d-r-%s", KeysPrefix, epoch, recipientID(recipient))
}

// parseKeyName splits keys/<epoch>-epoch and keys/<epoch>-r-<id>.
func parseKeyName(name string) (epoch uint32, marker, ok bool) {
	s, found := strings.CutPrefix(name, KeysPrefix)
	if !found || len(s) < 11 || s[10] != '-' {
		return 0, false, false
	}
	e, err := strconv.ParseUint(s[:10], 10, 32)
	if err != nil || e == 0 {
		return 0, false, false
	}
	switch rest := s[11:]; {
	case rest == "epoch":
		return uint32(e), true, true
	case strings.HasPrefix(rest, "r-") && len(rest) == 18:
		return uint32(e), false, true
	}
	return 0, false, false
}

type markerBody struct {
	Epoch       uint32 `json:"epoch"`
	StoreID     string `json:"store_id"`
	Check       string `json:"check"`
	Endorsement string `json:"endorsement,omitempty"`
}

type wrappedBody struct {
	Epoch     uint32 `json:"epoch"`
	Recipient string `json:"recipient"`
	Wrapped   []byte `json:"wrapped"`
}

func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

func epochBytes(e uint32) []byte { return binary.BigEndian.AppendUint32(nil, e) }

func checkValue(key []byte, storeID string, e uint32) string {
	return base64.StdEncoding.EncodeToString(mac(key, []byte("ebreplica key check"), []byte(storeID), epochBytes(e)))
}

func endorsement(prev, key []byte, storeID string, e uint32) string {
	return base64.StdEncoding.EncodeToString(mac(prev, []byte("ebreplica endorse"), []byte(storeID), epochBytes(e), key))
}

// Backend seals the bodies of another backend. Make one with Open (or
// Create). Safe for concurrent use.
type Backend struct {
	inner   remote.Backend
	storeID string
	keys    *Keys
	// RefreshEvery: see DefaultRefreshEvery. Now is the clock (time.Now
	// when nil). Set them before use.
	RefreshEvery time.Duration
	Now          func() time.Time

	mu        sync.RWMutex
	epochs    map[uint32][]byte // data keys this device holds
	current   uint32
	refreshed time.Time
}

// Inner returns the wrapped backend.
func (b *Backend) Inner() remote.Backend { return b.inner }

// Recipient returns the public recipient of the device key it opened with.
func (b *Backend) Recipient() string { return b.keys.Recipient() }

// StoreID returns the store id the bodies are bound to.
func (b *Backend) StoreID() string { return b.storeID }

// Epoch returns the current epoch.
func (b *Backend) Epoch() uint32 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.current
}

// Overhead returns the bytes sealing adds to the body of the object name
// (0 for objects stored unsealed).
func (b *Backend) Overhead(name string) int64 {
	if plain(name) {
		return 0
	}
	return Overhead
}

func (b *Backend) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Create makes the first epoch of a new store: a random data key wrapped
// for k's recipient, under inner's keys/, then its marker naming storeID.
// The caller then writes store.json naming the store id Create returns.
//
// Create resumes one that failed or crashed part way, so that an init can
// be run again: a wrapped key of epoch 1 that k opens is reused, and a
// marker whose key k opens gives its store id (the store.json that was
// not written yet names that one). keys/ holding an epoch 1 that k cannot
// open fails with an error wrapping ErrRotating.
func Create(ctx context.Context, inner remote.Backend, storeID string, k *Keys) (*Backend, string, error) {
	b := &Backend{inner: inner, storeID: storeID, keys: k, epochs: map[uint32][]byte{}}
	for attempt := 0; ; attempt++ {
		st, err := b.listKeysAnyStore(ctx)
		if err != nil {
			return nil, "", err
		}
		key, err := b.ownWrapped(ctx, 1)
		if err != nil {
			return nil, "", err
		}
		if m, ok := st.markers[1]; ok {
			if key == nil || !hmac.Equal([]byte(checkValue(key, m.StoreID, 1)), []byte(m.Check)) {
				return nil, "", fmt.Errorf("%w: %s on %s holds the keys of another store", ErrRotating, KeysPrefix, inner)
			}
			b.storeID = m.StoreID // resumed: the store id of the keys
			b.epochs[1], b.current, b.refreshed = key, 1, b.now()
			return b, m.StoreID, nil
		}
		if key == nil {
			key = make([]byte, keySize)
			if _, err := rand.Read(key); err != nil {
				return nil, "", err
			}
			if err := b.putWrapped(ctx, 1, key, k.Recipient()); err != nil {
				return nil, "", err
			}
		}
		err = b.putMarker(ctx, 1, key, nil)
		if errors.Is(err, ErrRotating) && attempt == 0 {
			continue // a marker landed meanwhile (ours, or another's): look again
		}
		if err != nil {
			return nil, "", err
		}
		b.epochs[1], b.current, b.refreshed = key, 1, b.now()
		return b, storeID, nil
	}
}

// ownWrapped returns the data key of epoch e wrapped for this device, nil
// when there is none.
func (b *Backend) ownWrapped(ctx context.Context, e uint32) ([]byte, error) {
	name := wrappedKey(e, b.keys.Recipient())
	obj, err := b.inner.Get(ctx, name)
	if errors.Is(err, remote.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sealremote: read %s on %s: %w", name, b.inner, err)
	}
	var w wrappedBody
	if json.Unmarshal(obj.Data, &w) != nil || w.Epoch != e {
		return nil, fmt.Errorf("%w: %s on %s: not a wrapped key", segment.ErrCorrupt, name, b.inner)
	}
	key, ok, err := b.keys.unwrap(w.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("%w: %s on %s: %v", segment.ErrCorrupt, name, b.inner, err)
	}
	if !ok {
		return nil, nil
	}
	return key, nil
}

func (b *Backend) putWrapped(ctx context.Context, e uint32, key []byte, rs string) error {
	r, err := ParseRecipient(rs)
	if err != nil {
		return err
	}
	w, err := wrap(key, r)
	if err != nil {
		return fmt.Errorf("sealremote: wrap for %s: %w", rs, err)
	}
	body, _ := json.Marshal(wrappedBody{Epoch: e, Recipient: rs, Wrapped: w})
	if _, err := b.inner.PutIfAbsent(ctx, wrappedKey(e, rs), body); err != nil {
		if errors.Is(err, remote.ErrExists) {
			return fmt.Errorf("%w (%s exists)", ErrRotating, wrappedKey(e, rs))
		}
		return fmt.Errorf("sealremote: write %s on %s: %w", wrappedKey(e, rs), b.inner, err)
	}
	return nil
}

func (b *Backend) putMarker(ctx context.Context, e uint32, key, prev []byte) error {
	m := markerBody{Epoch: e, StoreID: b.storeID, Check: checkValue(key, b.storeID, e)}
	if prev != nil {
		m.Endorsement = endorsement(prev, key, b.storeID, e)
	}
	body, _ := json.Marshal(m)
	if _, err := b.inner.PutIfAbsent(ctx, markerKey(e), body); err != nil {
		if errors.Is(err, remote.ErrExists) {
			return fmt.Errorf("%w (%s exists)", ErrRotating, markerKey(e))
		}
		return fmt.Errorf("sealremote: write %s on %s: %w", markerKey(e), b.inner, err)
	}
	return nil
}

// writeEpoch writes the wrapped keys of a new epoch, then its marker.
func (b *Backend) writeEpoch(ctx context.Context, e uint32, key, prev []byte, recipients []string) error {
	for _, rs := range recipients {
		if err := b.putWrapped(ctx, e, key, rs); err != nil {
			return err
		}
	}
	return b.putMarker(ctx, e, key, prev)
}

// Open reads the store's key objects and unwraps the data keys k holds.
// It fails with ErrNoKey (saying which) when k cannot open the current
// epoch.
func Open(ctx context.Context, inner remote.Backend, storeID string, k *Keys) (*Backend, error) {
	return OpenClock(ctx, inner, storeID, k, nil)
}

// OpenClock is Open with the clock that RefreshEvery is measured on
// (time.Now when nil): the engine passes its wall clock, so that under the
// simulator's logical time a run repeats.
func OpenClock(ctx context.Context, inner remote.Backend, storeID string, k *Keys, now func() time.Time) (*Backend, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: no key given", ErrNoKey)
	}
	b := &Backend{inner: inner, storeID: storeID, keys: k, epochs: map[uint32][]byte{}, Now: now}
	if err := b.refresh(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// keyState is what a listing of keys/ says.
type keyState struct {
	markers map[uint32]markerBody
	wrapped map[uint32][]string // object names by epoch
	highest uint32              // of any key object, marker or not
}

func (b *Backend) listKeys(ctx context.Context) (keyState, error) { return b.listKeysOf(ctx, true) }

// listKeysAnyStore lists keys/ without requiring the markers to name this
// store (Create looks for an earlier attempt's).
func (b *Backend) listKeysAnyStore(ctx context.Context) (keyState, error) {
	return b.listKeysOf(ctx, false)
}

func (b *Backend) listKeysOf(ctx context.Context, sameStore bool) (keyState, error) {
	st := keyState{markers: map[uint32]markerBody{}, wrapped: map[uint32][]string{}}
	var markers []string
	for info, err := range b.inner.List(ctx, KeysPrefix, "") {
		if err != nil {
			return st, fmt.Errorf("sealremote: list %s on %s: %w", KeysPrefix, b.inner, err)
		}
		e, marker, ok := parseKeyName(info.Key)
		if !ok {
			continue
		}
		st.highest = max(st.highest, e)
		if marker {
			markers = append(markers, info.Key)
		} else {
			st.wrapped[e] = append(st.wrapped[e], info.Key)
		}
	}
	for _, name := range markers {
		obj, err := b.inner.Get(ctx, name)
		if errors.Is(err, remote.ErrNotExist) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("sealremote: read %s on %s: %w", name, b.inner, err)
		}
		var m markerBody
		e, _, _ := parseKeyName(name)
		if json.Unmarshal(obj.Data, &m) != nil || m.Epoch != e {
			return st, fmt.Errorf("%w: %s on %s: not a key epoch marker", segment.ErrCorrupt, name, b.inner)
		}
		if sameStore && m.StoreID != b.storeID {
			return st, fmt.Errorf("%w: %s on %s belongs to store %s, not %s", segment.ErrCorrupt, name, b.inner, m.StoreID, b.storeID)
		}
		st.markers[e] = m
	}
	return st, nil
}

// refresh lists keys/ and unwraps the keys of epochs this device does not
// hold yet.
func (b *Backend) refresh(ctx context.Context) error {
	st, err := b.listKeys(ctx)
	if err != nil {
		return err
	}
	if len(st.markers) == 0 {
		return fmt.Errorf("%w: %s has no keys (%s is empty): the store is not encrypted, or its keys were deleted", ErrNoKey, b.inner, KeysPrefix)
	}
	b.mu.RLock()
	held := make(map[uint32][]byte, len(b.epochs))
	for e, k := range b.epochs {
		held[e] = k
	}
	b.mu.RUnlock()
	var current uint32
	epochs := make([]uint32, 0, len(st.markers))
	for e := range st.markers {
		epochs = append(epochs, e)
		current = max(current, e)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	name := wrappedKey(0, b.keys.Recipient())[len(KeysPrefix)+10:] // "-r-<id>"
	for _, e := range epochs {
		if held[e] != nil {
			continue
		}
		key := fmt.Sprintf("%s%010d%s", KeysPrefix, e, name)
		obj, err := b.inner.Get(ctx, key)
		if errors.Is(err, remote.ErrNotExist) {
			continue // not wrapped for this device
		}
		if err != nil {
			return fmt.Errorf("sealremote: read %s on %s: %w", key, b.inner, err)
		}
		var w wrappedBody
		if json.Unmarshal(obj.Data, &w) != nil || w.Epoch != e {
			return fmt.Errorf("%w: %s on %s: not a wrapped key", segment.ErrCorrupt, key, b.inner)
		}
		dk, ok, err := b.keys.unwrap(w.Wrapped)
		if err != nil {
			return fmt.Errorf("%w: %s on %s: %v", segment.ErrCorrupt, key, b.inner, err)
		}
		if !ok {
			continue
		}
		m := st.markers[e]
		if !hmac.Equal([]byte(checkValue(dk, b.storeID, e)), []byte(m.Check)) {
			return fmt.Errorf("%w: %s on %s does not hold the key of epoch %d (its check value differs)", segment.ErrCorrupt, key, b.inner, e)
		}
		if prev := held[e-1]; e > 1 && prev != nil {
			if !hmac.Equal([]byte(endorsement(prev, dk, b.storeID, e)), []byte(m.Endorsement)) {
				return fmt.Errorf("%w: %s on %s: epoch %d is not endorsed by the key of epoch %d (made by someone who did not hold the store's current key)", segment.ErrCorrupt, markerKey(e), b.inner, e, e-1)
			}
		}
		held[e] = dk
	}
	if held[current] == nil {
		last := uint32(0)
		for e := range held {
			last = max(last, e)
		}
		if last > 0 {
			return fmt.Errorf("%w: key %s was removed from the store's recipients (it holds epoch %d, the store is at epoch %d)", ErrNoKey, b.keys.Recipient(), last, current)
		}
		return fmt.Errorf("%w: key %s is not among the store's recipients (a device that is can add it: ebreplica key add %s)", ErrNoKey, b.keys.Recipient(), b.keys.Recipient())
	}
	b.mu.Lock()
	b.epochs, b.current, b.refreshed = held, current, b.now()
	b.mu.Unlock()
	return nil
}

// Refresh lists keys/ again, so that what is sealed from now on uses the
// newest epoch (compaction calls it before it re-seals the store).
func (b *Backend) Refresh(ctx context.Context) error { return b.refresh(ctx) }

func (b *Backend) aad(name string, hdr []byte) []byte {
	ad := make([]byte, 0, 15+5+len(b.storeID)+1+len(name))
	ad = append(ad, "ebreplica-seal\x00"...)
	ad = append(ad, hdr[:5]...)
	ad = append(ad, b.storeID...)
	ad = append(ad, 0)
	return append(ad, name...)
}

// seal returns the sealed body of name.
func (b *Backend) seal(ctx context.Context, name string, data []byte) ([]byte, error) {
	b.mu.RLock()
	stale := b.RefreshEvery >= 0 && b.now().Sub(b.refreshed) > b.refreshEvery()
	b.mu.RUnlock()
	if stale {
		if err := b.refresh(ctx); err != nil {
			return nil, err
		}
	}
	b.mu.RLock()
	e, key := b.current, b.epochs[b.current]
	b.mu.RUnlock()
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerLen, headerLen+len(data)+chacha20poly1305.Overhead)
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:5], e)
	if _, err := rand.Read(out[5:headerLen]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[5:headerLen], data, b.aad(name, out)), nil
}

func (b *Backend) refreshEvery() time.Duration {
	if b.RefreshEvery == 0 {
		return DefaultRefreshEvery
	}
	return b.RefreshEvery
}

// Unseal opens the sealed body of name (as stored), the way Get does.
func (b *Backend) Unseal(ctx context.Context, name string, data []byte) ([]byte, error) {
	if plain(name) {
		return data, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: %s on %s: %w (%s)", segment.ErrCorrupt, name, b.inner, ErrTampered, why)
	}
	if len(data) < Overhead {
		return nil, bad(fmt.Sprintf("%d bytes, shorter than a sealed body", len(data)))
	}
	if data[0] != formatV1 {
		return nil, bad(fmt.Sprintf("unknown seal format %d", data[0]))
	}
	e := binary.BigEndian.Uint32(data[1:5])
	b.mu.RLock()
	key, current := b.epochs[e], b.current
	b.mu.RUnlock()
	if key == nil && e > current {
		// Sealed under an epoch made since this device listed the keys.
		if err := b.refresh(ctx); err != nil {
			return nil, err
		}
		b.mu.RLock()
		key = b.epochs[e]
		b.mu.RUnlock()
	}
	if key == nil {
		return nil, bad(fmt.Sprintf("sealed under epoch %d, which this device holds no key of", e))
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out, err := aead.Open(nil, data[5:headerLen], data[headerLen:], b.aad(name, data))
	if err != nil {
		return nil, bad("its bytes were changed, or it was sealed for another object or store")
	}
	return out, nil
}

// Get reads and opens an object.
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	obj, err := b.inner.Get(ctx, key)
	if err != nil || plain(key) {
		return obj, err
	}
	obj.Data, err = b.Unseal(ctx, key, obj.Data)
	return obj, err
}

// GetSealed reads an object as stored (verify judges the stored bytes).
func (b *Backend) GetSealed(ctx context.Context, key string) (remote.Object, error) {
	return b.inner.Get(ctx, key)
}

func (b *Backend) sealFor(ctx context.Context, key string, data []byte) ([]byte, error) {
	if err := remote.ValidateKey(key); err != nil {
		return nil, err
	}
	if plain(key) {
		return data, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return b.seal(ctx, key, data)
}

// Put seals and stores an object.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	sealed, err := b.sealFor(ctx, key, data)
	if err != nil {
		return "", err
	}
	return b.inner.Put(ctx, key, sealed)
}

// PutIfAbsent seals and creates an object create-only.
func (b *Backend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	sealed, err := b.sealFor(ctx, key, data)
	if err != nil {
		return "", err
	}
	return b.inner.PutIfAbsent(ctx, key, sealed)
}

// PutIfMatch seals and swaps an object on its ETag.
func (b *Backend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	sealed, err := b.sealFor(ctx, key, data)
	if err != nil {
		return "", err
	}
	return b.inner.PutIfMatch(ctx, key, sealed, etag)
}

// Delete deletes an object.
func (b *Backend) Delete(ctx context.Context, key string) error { return b.inner.Delete(ctx, key) }

// List lists objects; a sealed object's Size is its plaintext's.
func (b *Backend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		for info, err := range b.inner.List(ctx, prefix, startAfter) {
			if err == nil && !plain(info.Key) {
				info.Size = max(0, info.Size-Overhead)
			}
			if !yield(info, err) {
				return
			}
		}
	}
}

// Stats returns the wrapped backend's counters: requests and the bytes on
// the wire (sealed bodies, Overhead bytes more than the plaintext each).
func (b *Backend) Stats() *remote.Stats { return b.inner.Stats() }

// MaxKeyLen returns the longest key the wrapped backend accepts (see
// remotetest.MaxKeyLen): remote.MaxKeyLen, or less when it says so.
func (b *Backend) MaxKeyLen() int {
	if l, ok := b.inner.(interface{ MaxKeyLen() int }); ok {
		return min(l.MaxKeyLen(), remote.MaxKeyLen)
	}
	return remote.MaxKeyLen
}

// String names the wrapped backend.
func (b *Backend) String() string { return b.inner.String() }
