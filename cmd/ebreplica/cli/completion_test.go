package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// completion prints a script for bash, zsh and fish naming every command;
// the bash one completes commands and flags when bash runs it.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out := ok(t, nil, "completion", sh).out()
		for _, c := range commandTable() {
			if !strings.Contains(out, c.name) {
				t.Errorf("%s completion does not name %s", sh, c.name)
			}
		}
		if !strings.Contains(out, "snapshots") || !strings.Contains(out, "dry-run") {
			t.Errorf("%s completion lacks snapshots or --dry-run", sh)
		}
	}
	failsWith(t, ExitUsage, nil, []string{"completion", "tcsh"}, `"tcsh"`)
	failsWith(t, ExitUsage, nil, []string{"completion"}, "missing")

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "ebreplica.bash")
	if err := os.WriteFile(script, ok(t, nil, "completion", "bash").stdout, 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ebreplica; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, append([]string{"-c", prog, "bash", script}, words...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"ebreplica", "snap"}, "snapshots"},
		{[]string{"ebreplica", "--dir", "d", "rep"}, "replicas"},
		{[]string{"ebreplica", "compact", "--dr"}, "--dry-run"},
		{[]string{"ebreplica", "ls", "--con"}, "--conflicts"},
		{[]string{"ebreplica", "get", "--js"}, "--json"},
		{[]string{"ebreplica", "completion", "fi"}, "fish"},
		{[]string{"ebreplica", "help", "verif"}, "verify"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.words, got, tc.want)
		}
	}
}
