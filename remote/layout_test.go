package remote_test

import (
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/remote"
)

// TestNamesRoundTrip: every name the layout builds parses back to what
// built it, and what it does not build does not parse.
func TestNamesRoundTrip(t *testing.T) {
	for _, pos := range []uint64{0, 1, 42, 1<<64 - 1} {
		if p, ok := remote.ParseLogKey(remote.LogKey(pos)); !ok || p != pos {
			t.Errorf("ParseLogKey(LogKey(%d)) = %d, %v", pos, p, ok)
		}
		key := remote.SnapKey(pos)
		if !strings.HasPrefix(key, remote.SnapDir(pos)) || !strings.HasPrefix(remote.SnapDir(pos), remote.SnapPrefix) {
			t.Errorf("SnapKey(%d) = %q outside SnapDir %q", pos, key, remote.SnapDir(pos))
		}
		if p, rest, ok := remote.ParseSnapKey(key); !ok || p != pos || rest != "index" {
			t.Errorf("ParseSnapKey(%q) = %d, %q, %v", key, p, rest, ok)
		}
		for _, n := range []int{0, 7, 9999, 12345} {
			part := remote.PartKey(pos, "0123abcdef", n)
			p, rest, ok := remote.ParseSnapKey(part)
			if !ok || p != pos || !remote.IsPartName(rest) || !strings.HasPrefix(part, remote.PartPrefix(pos)) {
				t.Errorf("PartKey(%d, n=%d) = %q: ParseSnapKey %d %q %v, IsPartName %v", pos, n, part, p, rest, ok, remote.IsPartName(rest))
			}
		}
	}
	id := clock.NewReplicaID()
	if got, ok := remote.ParseRegistryKey(remote.RegistryKey(id)); !ok || got != id {
		t.Errorf("ParseRegistryKey(RegistryKey(%s)) = %s, %v", id, got, ok)
	}
	if got := remote.QuarantineLogKey(42, 1234, "abc123"); got != "quarantine/log-00000000000000000042-1234-abc123" {
		t.Errorf("QuarantineLogKey = %q", got)
	}
	// The names in the layout's documentation, byte for byte.
	for got, want := range map[string]string{
		remote.LogKey(42):                      "log/00000000000000000042",
		remote.SnapKey(42):                     "snap/00000000000000000042/index",
		remote.PartKey(42, "ab", 3):            "snap/00000000000000000042/part-ab-0003",
		remote.PartPrefix(42):                  "snap/00000000000000000042/part-",
		remote.RegistryKey(clock.ReplicaID{1}): "replicas/01000000-0000-0000-0000-000000000000.json",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestNamesRejected(t *testing.T) {
	for _, key := range []string{
		"snap/", "snap/42/index", "snap/0000000000000000004x/index", "snap/00000000000000000042", "snap/00000000000000000042-index",
		"log/00000000000000000042/index",
	} {
		if _, _, ok := remote.ParseSnapKey(key); ok {
			t.Errorf("ParseSnapKey(%q) ok", key)
		}
	}
	for _, rest := range []string{"index", "part-", "part-ab", "part--0001", "part-ab-001", "part-AB-0001", "part-ab-00x1", "part-g1-0001", "xpart-ab-0001"} {
		if remote.IsPartName(rest) {
			t.Errorf("IsPartName(%q)", rest)
		}
	}
	id := clock.NewReplicaID()
	for _, key := range []string{
		"replicas/" + id.String(), "replicas/" + id.String() + ".json.tmp", "replicas/" + strings.ToUpper(id.String()) + ".json",
		"replicas/00000000-0000-0000-0000-000000000000.json", "replicas/x.json", id.String() + ".json",
	} {
		if _, ok := remote.ParseRegistryKey(key); ok {
			t.Errorf("ParseRegistryKey(%q) ok", key)
		}
	}
}
