package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// A new replica that loads a snapshot says so (issue 15: it printed
// "pulled 0 records in 0 segments" after loading every record).
func TestBootstrapSaysWhatItLoaded(t *testing.T) {
	t.Parallel()
	remoteURL := "file://" + filepath.ToSlash(t.TempDir())
	a := filepath.Join(t.TempDir(), "a")
	ok(t, nil, "init", "--dir", a, "--remote", remoteURL)
	var in strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&in, `{"key":"k%03d","value":"v"}`+"\n", i)
	}
	ok(t, []byte(in.String()), "import", "--dir", a)
	ok(t, nil, "push", "--dir", a)
	ok(t, nil, "compact", "--dir", a)
	for _, cmd := range []string{"pull", "sync"} {
		b := filepath.Join(t.TempDir(), "b")
		ok(t, nil, "init", "--dir", b, "--remote", remoteURL)
		if got := ok(t, nil, cmd, "--dir", b).out(); !strings.HasPrefix(got, "loaded 300 records from the newest snapshot") {
			t.Errorf("%s on a new replica: %q", cmd, got)
		}
		if got := ok(t, nil, cmd, "--dir", b).out(); strings.Contains(got, "loaded") {
			t.Errorf("a second %s: %q", cmd, got)
		}
	}
}
