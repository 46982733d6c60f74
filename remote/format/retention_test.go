package format_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

// TestSetRetention: a manifest without retention reads as the newest
// snapshot only; SetRetention swaps in the field and keeps every other
// field, known or not, as it was; a bad retention or a missing store
// writes nothing; setting the zero retention removes the field.
func TestSetRetention(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("m")
	old := `{"format":1,"store_id":"s1","policies":{"":"lww"},"codec":"zstd","created":"2026-01-02T03:04:05Z","future_field":{"x":[1,2]}}`
	put(t, b, remote.ManifestKey, old)
	m, ok, err := format.ReadManifest(ctx, b)
	if err != nil || !ok || m.RetentionOf() != (format.Retention{}) {
		t.Fatalf("old manifest: %+v %v %v", m.Retention, ok, err)
	}
	if err := format.SetRetention(ctx, b, format.Retention{KeepSnapshots: -1}); err == nil {
		t.Fatal("negative keep-snapshots accepted")
	}
	if obj, _ := b.Get(ctx, remote.ManifestKey); string(obj.Data) != old {
		t.Fatalf("a refused retention changed the manifest: %s", obj.Data)
	}
	want := format.Retention{KeepSnapshots: 3, KeepAgeSeconds: 7 * 24 * 3600}
	if err := format.SetRetention(ctx, b, want); err != nil {
		t.Fatal(err)
	}
	m, _, err = format.ReadManifest(ctx, b)
	if err != nil || m.RetentionOf() != want || m.RetentionOf().KeepAge() != 7*24*time.Hour {
		t.Fatalf("after set: %+v, %v", m.Retention, err)
	}
	obj, _ := b.Get(ctx, remote.ManifestKey)
	var before, after map[string]json.RawMessage
	_ = json.Unmarshal([]byte(old), &before)
	_ = json.Unmarshal(obj.Data, &after)
	for k, v := range before {
		var a, b any
		_ = json.Unmarshal(v, &a)
		_ = json.Unmarshal(after[k], &b)
		if ja, _ := json.Marshal(a); string(ja) != func() string { jb, _ := json.Marshal(b); return string(jb) }() {
			t.Errorf("field %s changed: %s -> %s", k, v, after[k])
		}
	}
	if err := format.SetRetention(ctx, b, format.Retention{}); err != nil {
		t.Fatal(err)
	}
	obj, _ = b.Get(ctx, remote.ManifestKey)
	after = nil
	_ = json.Unmarshal(obj.Data, &after)
	if _, has := after["retention"]; has {
		t.Fatalf("zero retention left the field: %s", obj.Data)
	}
	if err := format.SetRetention(ctx, memremote.New("empty"), want); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("no store: %v", err)
	}
}
