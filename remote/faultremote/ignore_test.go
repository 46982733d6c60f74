package faultremote_test

import (
	"errors"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// TestIgnoreConditionalWrites: with IgnoreIfNoneMatch a create-only put of
// an existing key overwrites it, with IgnoreIfMatch a swap on a wrong ETag
// does; each option leaves the other condition honoured, holds whether
// faults are enabled or not, and injects nothing.
func TestIgnoreConditionalWrites(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name                 string
		ifNoneMatch, ifMatch bool
	}{
		{"None", false, false}, {"IfNoneMatch", true, false}, {"IfMatch", false, true}, {"Both", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := memremote.New(t.Name())
			var faults int
			b := faultremote.New(inner, seeded(1), faultremote.Options{
				IgnoreIfNoneMatch: tc.ifNoneMatch, IgnoreIfMatch: tc.ifMatch,
				OnFault: func(faultremote.Fault) { faults++ },
			})
			for _, enabled := range []bool{true, false} {
				b.SetEnabled(enabled)
				etag, err := b.PutIfAbsent(ctx, "k", []byte("first"))
				if err != nil {
					t.Fatal(err)
				}
				_, err = b.PutIfAbsent(ctx, "k", []byte("second"))
				switch {
				case tc.ifNoneMatch && err != nil:
					t.Fatalf("enabled %v: create-only put of an existing key on a server ignoring If-None-Match: %v", enabled, err)
				case !tc.ifNoneMatch && !errors.Is(err, remote.ErrExists):
					t.Fatalf("enabled %v: create-only put of an existing key: %v, want ErrExists", enabled, err)
				}
				if tc.ifNoneMatch {
					if obj, _ := inner.Get(ctx, "k"); string(obj.Data) != "second" {
						t.Fatalf("enabled %v: k = %q after an ignored If-None-Match, want it overwritten", enabled, obj.Data)
					}
					etag = mustETag(t, inner, "k")
				}
				_, err = b.PutIfMatch(ctx, "k", []byte("third"), `"wrong"`)
				switch {
				case tc.ifMatch && err != nil:
					t.Fatalf("enabled %v: swap on a wrong etag on a server ignoring If-Match: %v", enabled, err)
				case !tc.ifMatch && !errors.Is(err, remote.ErrPrecondition):
					t.Fatalf("enabled %v: swap on a wrong etag: %v, want ErrPrecondition", enabled, err)
				}
				if tc.ifMatch {
					if obj, _ := inner.Get(ctx, "k"); string(obj.Data) != "third" {
						t.Fatalf("enabled %v: k = %q after an ignored If-Match, want it overwritten", enabled, obj.Data)
					}
					etag = mustETag(t, inner, "k")
				}
				// The right ETag works either way.
				if _, err := b.PutIfMatch(ctx, "k", []byte("fourth"), etag); err != nil {
					t.Fatalf("enabled %v: swap on the right etag: %v", enabled, err)
				}
				if err := b.Delete(ctx, "k"); err != nil {
					t.Fatal(err)
				}
			}
			if faults != 0 || b.Faults() != (faultremote.Counts{}) {
				t.Errorf("ignoring conditions reported %d faults: %+v", faults, b.Faults())
			}
			b.Heal()
			if _, err := b.PutIfAbsent(ctx, "h", []byte("1")); err != nil {
				t.Fatal(err)
			}
			if _, err := b.PutIfAbsent(ctx, "h", []byte("2")); (err == nil) != tc.ifNoneMatch {
				t.Errorf("after Heal: second create-only put: %v (ignoring If-None-Match: %v)", err, tc.ifNoneMatch)
			}

			// remote.ProbeConditional refuses exactly the ignoring servers.
			err := remote.ProbeConditional(ctx, faultremote.New(memremote.New("probe"), seeded(2), faultremote.Options{
				IgnoreIfNoneMatch: tc.ifNoneMatch, IgnoreIfMatch: tc.ifMatch}))
			if (tc.ifNoneMatch || tc.ifMatch) != errors.Is(err, remote.ErrNoConditionalWrites) {
				t.Errorf("ProbeConditional: %v", err)
			}
		})
	}
}

func mustETag(t *testing.T, b remote.Backend, key string) string {
	t.Helper()
	obj, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return obj.ETag
}
