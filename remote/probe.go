package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoConditionalWrites: the store does not honour conditional writes. The
// sync protocol cannot run on such a store: two pushers at one tip would
// both "create" the next log position, and the second would silently
// overwrite the first. ProbeConditional returns it.
var ErrNoConditionalWrites = errors.New("remote: the store does not honour conditional writes (If-None-Match / If-Match)")

// ProbeAttempts is how many times ProbeConditional runs the probe (each
// time on a fresh scratch key) before it gives up on transient errors.
const ProbeAttempts = 3

// probeCleanupTimeout bounds the delete of the scratch object.
const probeCleanupTimeout = 30 * time.Second

// noConditionalError is the verdict of a probe: it unwraps to
// ErrNoConditionalWrites and names the missing feature.
type noConditionalError struct{ msg string }

func (e *noConditionalError) Error() string { return e.msg }
func (e *noConditionalError) Unwrap() error { return ErrNoConditionalWrites }

// errRetryProbe marks an answer that is wrong, but that an interfering
// write could also explain: the probe runs again before it gives the verdict.
var errRetryProbe = errors.New("remote: probe inconclusive")

// ProbeConditional checks that b honours the conditional writes the sync
// protocol depends on. On a scratch object ProbePrefix+<random nonce>, which
// no other object shares a name or "folder" with, it makes a create-only
// put (which must succeed), a second create-only put (which must fail with
// ErrExists), a compare-and-swap put with a wrong ETag (which must fail
// with ErrPrecondition) and one with the ETag of the first put (which must
// succeed), then deletes the scratch object (best effort, even when ctx is
// cancelled: a failed delete is not reported). It costs four PUTs and one
// DELETE, and writes nothing else.
//
// It returns nil when every answer is right. A wrong answer returns an
// error wrapping ErrNoConditionalWrites whose message names the feature the
// server lacks ("ignores If-None-Match", "ignores If-Match"). A transient
// error (ErrTransient) restarts the probe on a fresh scratch key, at most
// ProbeAttempts times in all, so an ambiguous write is never taken for a
// verdict; so does a swap refused on the object's own ETag (a stray write
// could explain it), which is a verdict only when every attempt gets it.
// When the attempts run out, or on any other error (a cancelled ctx,
// ErrAccessDenied, ErrBucketNotFound, an answer of the wrong kind), that
// error is returned, wrapped, and never the verdict.
func ProbeConditional(ctx context.Context, b Backend) error {
	var err error
	for range ProbeAttempts {
		err = probeOnce(ctx, b, ProbePrefix+probeNonce())
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil && errors.Is(err, errRetryProbe):
			return fmt.Errorf("remote: probe conditional writes on %s: %w", b, ctx.Err())
		case ctx.Err() != nil:
			return err
		case !errors.Is(err, ErrTransient) && !errors.Is(err, errRetryProbe):
			return err
		}
	}
	if v := (*noConditionalError)(nil); errors.Is(err, errRetryProbe) && errors.As(err, &v) {
		return v // the same wrong answer on every fresh key: a verdict after all
	}
	return err
}

// probeOnce runs the probe once on key.
func probeOnce(ctx context.Context, b Backend, key string) error {
	body := func(step string) []byte { return []byte("ebreplica conditional-write probe " + key + " " + step) }
	fail := func(step string, err error) error {
		return fmt.Errorf("remote: probe conditional writes on %s: %s %s: %w", b, step, key, err)
	}
	verdict := func(why string) error {
		return &noConditionalError{msg: fmt.Sprintf("remote: %s does not honour conditional writes: the server %s", b, why)}
	}

	defer func() {
		// Best effort, even when the create failed (it may have landed
		// all the same) and after ctx is cancelled: only this call knows
		// the name of the object.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeCleanupTimeout)
		defer cancel()
		_ = b.Delete(dctx, key)
	}()
	etag, err := b.PutIfAbsent(ctx, key, body("create"))
	if err != nil {
		return fail("create-only put", err)
	}

	switch _, err := b.PutIfAbsent(ctx, key, body("create again")); {
	case err == nil:
		return verdict("ignores If-None-Match: create-only writes overwrite existing objects")
	case !errors.Is(err, ErrExists):
		return fail("second create-only put", err)
	}

	wrong := `"` + strings.Repeat("0", 32) + `"`
	if wrong == etag {
		wrong = `"` + strings.Repeat("1", 32) + `"`
	}
	switch _, err := b.PutIfMatch(ctx, key, body("swap on a wrong etag"), wrong); {
	case err == nil:
		return verdict("ignores If-Match: compare-and-swap writes overwrite whatever the ETag")
	case !errors.Is(err, ErrPrecondition):
		return fail("compare-and-swap put with a wrong etag", err)
	}

	switch _, err := b.PutIfMatch(ctx, key, body("swap"), etag); {
	case errors.Is(err, ErrPrecondition):
		v := verdict("refuses If-Match with the ETag it returned: compare-and-swap writes never succeed")
		return fmt.Errorf("%w: %w", errRetryProbe, v)
	case err != nil:
		return fail("compare-and-swap put", err)
	}
	return nil
}

// probeNonce returns 32 random hex digits.
func probeNonce() string {
	var n [16]byte
	_, _ = rand.Read(n[:]) // never fails
	return hex.EncodeToString(n[:])
}
