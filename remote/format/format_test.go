package format_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/segment"
)

func put(t *testing.T, b remote.Backend, key, body string) {
	t.Helper()
	if _, err := b.Put(context.Background(), key, []byte(body)); err != nil {
		t.Fatal(err)
	}
}

func TestReadManifest(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, body string // "" body: no store.json
		ok         bool
		err        error
		want       format.Manifest
	}{
		{name: "absent"},
		{name: "good", body: `{"format":1,"store_id":"s1","policies":{"":"lww","c/":"counter"},"segment_cap":1024,"codec":"zstd","created":"2026-01-01T00:00:00Z"}`,
			ok: true, want: format.Manifest{Format: 1, RemoteID: "s1", Policies: map[string]string{"": "lww", "c/": "counter"}, SegmentCap: 1024, Codec: "zstd",
				Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "unknown field ignored", body: `{"format":1,"store_id":"s1","later":true}`, ok: true, want: format.Manifest{Format: 1, RemoteID: "s1"}},
		{name: "not JSON", body: `{"format":1,"store_id":`, err: format.ErrForeignRemote},
		{name: "no store id", body: `{"format":1}`, err: format.ErrForeignRemote},
		{name: "wrong type", body: `{"format":"1","store_id":"s1"}`, err: format.ErrForeignRemote},
		{name: "newer format", body: `{"format":2,"store_id":"s1"}`, err: format.ErrNewerFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memremote.New("m")
			if tc.body != "" {
				put(t, b, remote.ManifestKey, tc.body)
			}
			m, ok, err := format.ReadManifest(ctx, b)
			if ok != tc.ok || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("ReadManifest = %v, %v; want ok %v, err %v", ok, err, tc.ok, tc.err)
			}
			if ok {
				got, _ := json.Marshal(m)
				want, _ := json.Marshal(tc.want)
				if string(got) != string(want) {
					t.Fatalf("manifest %s, want %s", got, want)
				}
			}
		})
	}
}

func TestManifestRegistry(t *testing.T) {
	m := format.Manifest{Policies: map[string]string{"": "lww", "c/": "counter"}}
	reg, err := m.Registry(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.For("c/x").Name(); got != "counter" {
		t.Fatalf("policy of c/x: %q", got)
	}
	if _, err := (format.Manifest{Policies: map[string]string{"": "mine"}}).Registry(nil); err == nil {
		t.Fatal("an unknown policy without its func was accepted")
	}
	if _, err := (format.Manifest{Policies: map[string]string{"": "mine"}}).Registry(map[string]merge.Policy{"mine": merge.NewFunc("mine", func(_ string, a, _ merge.Version) (merge.Version, error) { return a, nil })}); err != nil {
		t.Fatalf("a func policy: %v", err)
	}
}

// flaky answers Get with bytes of its own choosing: read n returns
// reads[min(n, len-1)].
type flaky struct {
	remote.Backend
	reads []string
	n     atomic.Int64
}

func (f *flaky) Get(ctx context.Context, key string) (remote.Object, error) {
	n := int(f.n.Add(1)) - 1
	return remote.Object{Data: []byte(f.reads[min(n, len(f.reads)-1)]), ETag: "e"}, nil
}

func TestReadStable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		reads []string
		want  string
		gets  int64
		err   error
	}{
		{name: "agree at once", reads: []string{"a"}, want: "a", gets: 2},
		{name: "one damaged read", reads: []string{"x", "a", "a"}, want: "a", gets: 3},
		{name: "agree late", reads: []string{"x", "y", "z", "a", "a"}, want: "a", gets: 5},
		{name: "never agree", reads: []string{"1", "2", "3", "4", "5", "6"}, gets: 5, err: remote.ErrTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flaky{Backend: memremote.New("m"), reads: tc.reads}
			obj, err := format.ReadStable(ctx, f, "k")
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && string(obj.Data) != tc.want {
				t.Fatalf("read %q, want %q", obj.Data, tc.want)
			}
			if got := f.n.Load(); got != tc.gets {
				t.Fatalf("%d reads, want %d", got, tc.gets)
			}
		})
	}
	if _, err := format.ReadStable(ctx, memremote.New("m"), "absent"); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("absent: %v", err)
	}
}

// index returns a good index of the snapshot at 42 of store s1, changed by
// edit (a JSON object edited as a map).
func index(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	id := clock.NewReplicaID().String()
	idx := format.SnapIndex{
		Format: format.FormatVersion, RemoteID: "s1", Position: 42, Origin: id, Nonce: "ab",
		G: map[string]uint64{id: 3}, Records: 5,
		Parts: []format.PartInfo{
			{Name: remote.PartKey(42, "ab", 0), Size: 10, SHA256: "00", Records: 2},
			{Name: remote.PartKey(42, "ab", 1), Size: 10, SHA256: "00", Records: 3},
		},
	}
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return string(b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	return string(b)
}

func TestDecodeIndex(t *testing.T) {
	parts := func(m map[string]any) []any { return m["parts"].([]any) }
	for _, tc := range []struct {
		name    string
		body    string
		storeID string
		err     error
		why     string // in the error
	}{
		{name: "good", body: index(t, nil), storeID: "s1"},
		{name: "good, any store", body: index(t, nil)},
		{name: "older fields only", body: index(t, func(m map[string]any) { delete(m, "top"); delete(m, "created") })},
		{name: "unknown field", body: index(t, func(m map[string]any) { m["prts"] = m["parts"] }), err: segment.ErrCorrupt, why: "unknown field"},
		// A bit flip in a field name ('t' 0x74 to 'u' 0x75); one that only
		// changes case names the same field (encoding/json matches names
		// case-insensitively), so it reads the same.
		{name: "flipped field name", body: strings.Replace(index(t, nil), `"parts"`, `"parus"`, 1), err: segment.ErrCorrupt, why: "unknown field"},
		{name: "flipped case", body: strings.Replace(index(t, nil), `"parts"`, `"pArts"`, 1)},
		{name: "not JSON", body: index(t, nil)[:30], err: segment.ErrCorrupt, why: "not a snapshot index"},
		{name: "newer format", body: index(t, func(m map[string]any) { m["format"] = format.FormatVersion + 1; m["new"] = 1 }), err: format.ErrNewerFormat},
		{name: "other position", body: index(t, func(m map[string]any) { m["position"] = 41 }), err: segment.ErrCorrupt, why: "names position 41"},
		{name: "other store", body: index(t, nil), storeID: "s2", err: segment.ErrCorrupt, why: "another store"},
		{name: "no parts", body: index(t, func(m map[string]any) { m["parts"] = []any{}; m["records"] = 0 }), err: segment.ErrCorrupt, why: "no parts"},
		{name: "part outside", body: index(t, func(m map[string]any) {
			parts(m)[1].(map[string]any)["name"] = remote.PartKey(41, "ab", 1)
		}), err: segment.ErrCorrupt, why: "part "},
		{name: "negative size", body: index(t, func(m map[string]any) { parts(m)[0].(map[string]any)["size"] = -1 }), err: segment.ErrCorrupt, why: "part "},
		{name: "negative records", body: index(t, func(m map[string]any) {
			parts(m)[0].(map[string]any)["records"] = -1
			m["records"] = 2
		}), err: segment.ErrCorrupt, why: "part "},
		{name: "records do not add up", body: index(t, func(m map[string]any) { m["records"] = 6 }), err: segment.ErrCorrupt, why: "hold 5 records, it says 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx, err := format.DecodeIndex([]byte(tc.body), 42, tc.storeID, "snap/x")
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("DecodeIndex = %v, want %v (%q)", err, tc.err, tc.why)
			}
			if err == nil && (idx.Position != 42 || len(idx.Parts) != 2 || idx.Records != 5) {
				t.Fatalf("decoded %+v", idx)
			}
		})
	}
}

func TestReadIndex(t *testing.T) {
	ctx := context.Background()
	b := memremote.New("m")
	if _, err := format.ReadIndex(ctx, b, 42, ""); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("absent: %v", err)
	}
	put(t, b, remote.SnapKey(42), index(t, nil))
	if idx, err := format.ReadIndex(ctx, b, 42, "s1"); err != nil || idx.RemoteID != "s1" {
		t.Fatalf("ReadIndex = %+v, %v", idx, err)
	}
	put(t, b, remote.SnapKey(42), index(t, func(m map[string]any) { m["position"] = 43 }))
	if _, err := format.ReadIndex(ctx, b, 42, "s1"); !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), remote.SnapKey(42)+" on ") {
		t.Fatalf("wrong position: %v", err)
	}
}

// TestBodiesFieldNames: the JSON names of every body, as documented and as
// stores already hold them.
func TestBodiesFieldNames(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{format.Manifest{}, `{"format":0,"store_id":"","policies":null,"segment_cap":0,"codec":"","created":"0001-01-01T00:00:00Z"}`},
		{format.RegistryBody{}, `{"format":0,"replica_id":"","seq":0,"nonce":"","ack":0,"retired":false,"skew_capped":0,"wall":"0001-01-01T00:00:00Z"}`},
		{format.RegistryBody{RetiredNonce: "n"}, `{"format":0,"replica_id":"","seq":0,"nonce":"","ack":0,"retired":false,"retired_nonce":"n","skew_capped":0,"wall":"0001-01-01T00:00:00Z"}`},
		{format.SnapIndex{}, `{"format":0,"store_id":"","position":0,"origin":"","nonce":"","g":null,"records":0,"parts":null,"created":"0001-01-01T00:00:00Z"}`},
		{format.PartInfo{}, `{"name":"","size":0,"sha256":"","records":0}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T: %s, want %s (%v)", tc.v, b, tc.want, err)
		}
	}
}

func TestVectorFromJSON(t *testing.T) {
	id := clock.NewReplicaID()
	v, err := format.VectorFromJSON(map[string]uint64{id.String(): 3, clock.NewReplicaID().String(): 0})
	if err != nil || len(v) != 1 || v.Get(id) != 3 {
		t.Fatalf("VectorFromJSON = %v, %v", v, err)
	}
	if _, err := format.VectorFromJSON(map[string]uint64{"nope": 1}); err == nil {
		t.Fatal("a bad id was accepted")
	}
}
