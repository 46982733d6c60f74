package sealremote

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// Recipients returns the recipients the current epoch's key is wrapped
// for, sorted.
func (b *Backend) Recipients(ctx context.Context) ([]string, error) {
	if err := b.refresh(ctx); err != nil {
		return nil, err
	}
	st, err := b.listKeys(ctx)
	if err != nil {
		return nil, err
	}
	return b.recipientsOf(ctx, st, b.Epoch())
}

func (b *Backend) recipientsOf(ctx context.Context, st keyState, e uint32) ([]string, error) {
	var out []string
	for _, name := range st.wrapped[e] {
		obj, err := b.inner.Get(ctx, name)
		if errors.Is(err, remote.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sealremote: read %s on %s: %w", name, b.inner, err)
		}
		var w wrappedBody
		if json.Unmarshal(obj.Data, &w) != nil || w.Epoch != e || wrappedKey(e, w.Recipient) != name {
			return nil, fmt.Errorf("%w: %s on %s: not a wrapped key", segment.ErrCorrupt, name, b.inner)
		}
		out = append(out, w.Recipient)
	}
	slices.Sort(out)
	return out, nil
}

// AddRecipient wraps every data key this device holds for recipient, so
// the new device reads what the store holds now and later. Adding a
// recipient that has them already changes nothing. It reports whether
// anything was written.
func (b *Backend) AddRecipient(ctx context.Context, recipient string) (bool, error) {
	r, err := ParseRecipient(recipient)
	if err != nil {
		return false, err
	}
	recipient = r.(interface{ String() string }).String()
	if err := b.refresh(ctx); err != nil {
		return false, err
	}
	b.mu.RLock()
	held := make(map[uint32][]byte, len(b.epochs))
	for e, k := range b.epochs {
		held[e] = k
	}
	b.mu.RUnlock()
	epochs := make([]uint32, 0, len(held))
	for e := range held {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	wrote := false
	for _, e := range epochs {
		w, err := wrap(held[e], r)
		if err != nil {
			return wrote, fmt.Errorf("sealremote: wrap for %s: %w", recipient, err)
		}
		body, _ := json.Marshal(wrappedBody{Epoch: e, Recipient: recipient, Wrapped: w})
		_, err = b.inner.PutIfAbsent(ctx, wrappedKey(e, recipient), body)
		if errors.Is(err, remote.ErrExists) {
			continue
		}
		if err != nil {
			return wrote, fmt.Errorf("sealremote: write %s on %s: %w", wrappedKey(e, recipient), b.inner, err)
		}
		wrote = true
	}
	return wrote, nil
}

// Rotate makes a new epoch whose random key is wrapped for the current
// epoch's recipients except those in without, endorsed by the current
// key; objects written from now on are sealed under it. It returns the new
// epoch. Removing every recipient, or this device's own, is refused
// (nobody, or not this device, could make the next epoch).
func (b *Backend) Rotate(ctx context.Context, without ...string) (uint32, error) {
	if err := b.refresh(ctx); err != nil {
		return 0, err
	}
	st, err := b.listKeys(ctx)
	if err != nil {
		return 0, err
	}
	cur := b.Epoch()
	recips, err := b.recipientsOf(ctx, st, cur)
	if err != nil {
		return 0, err
	}
	for _, w := range without {
		if w == b.keys.Recipient() {
			return 0, fmt.Errorf("sealremote: %s is this device's own key; remove it from another device", w)
		}
		if !slices.Contains(recips, w) {
			return 0, fmt.Errorf("sealremote: %s is not a recipient of the store (ebreplica key list shows them)", w)
		}
	}
	keep := slices.DeleteFunc(slices.Clone(recips), func(s string) bool { return slices.Contains(without, s) })
	if !slices.Contains(keep, b.keys.Recipient()) {
		keep = append(keep, b.keys.Recipient())
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return 0, err
	}
	b.mu.RLock()
	prev := b.epochs[cur]
	b.mu.RUnlock()
	// Past any epoch a crashed or lost rotation started (objects without
	// a marker), so this one never mixes with its leftovers.
	next := max(st.highest, cur) + 1
	if err := b.writeEpoch(ctx, next, key, prev, keep); err != nil {
		return 0, err
	}
	b.mu.Lock()
	b.epochs[next], b.current, b.refreshed = key, next, b.now()
	b.mu.Unlock()
	return next, nil
}
