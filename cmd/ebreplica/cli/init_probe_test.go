package cli

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/memremote"
	"github.com/ebreplica/ebreplica/remote/remoteurl"
)

// TestInitRefusesServerIgnoringConditionalWrites points init at a server
// that ignores If-None-Match (or If-Match): init fails with a message that
// names the missing feature, leaves no directory and no object behind, and
// the same directory then initialises on a good server. Not parallel: it
// swaps openRemote (parallel tests run only after it returns).
func TestInitRefusesServerIgnoringConditionalWrites(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		ifNoneMatch, ifMatch bool
		want                 string
	}{
		{"IfNoneMatch", true, false, "ignores If-None-Match"},
		{"IfMatch", false, true, "ignores If-Match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := memremote.New("ignoring")
			bad := true
			openRemote = func(ctx context.Context, raw string) (remote.Backend, error) {
				if !bad {
					return inner, nil
				}
				return faultremote.New(inner, rand.New(rand.NewPCG(1, 1)), faultremote.Options{
					IgnoreIfNoneMatch: tc.ifNoneMatch, IgnoreIfMatch: tc.ifMatch}), nil
			}
			t.Cleanup(func() { openRemote = remoteurl.Open })

			// A directory that does not exist yet is not created.
			dir := filepath.Join(t.TempDir(), "new", "a")
			// The URL only names the remote: openRemote above opens inner.
			someRemote := "file://" + filepath.ToSlash(t.TempDir())
			args := []string{"init", "--dir", dir, "--remote", someRemote}
			failsWith(t, ExitError, nil, args, tc.want, "If-None-Match", "If-Match", "nothing was created")
			noDir(t, filepath.Dir(dir))
			// An existing empty directory stays empty.
			empty := t.TempDir()
			failsWith(t, ExitError, nil, []string{"init", "--dir", empty, "--remote", someRemote}, tc.want)
			if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
				t.Errorf("init left %d entries in %s (%v)", len(ents), empty, err)
			}
			if objs := inner.Objects(); len(objs) != 0 {
				t.Errorf("a refused init left %d objects on the remote", len(objs))
			}

			bad = false
			ok(t, nil, args...)
			ok(t, nil, "put", "--dir", dir, "k", "v")
		})
	}
}
