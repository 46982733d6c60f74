package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// onTerminal runs the command line as a second process whose stderr is a
// pseudo-terminal (stdout a pipe, stdin from in) and returns what the
// terminal showed and stdout.
func onTerminal(t *testing.T, in []byte, args ...string) (term, stdout string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), execEnv+"=1")
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	shown := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once the child has exited
		shown <- b
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ebreplica %q: %v", args, err)
	}
	return string(<-shown), out.String()
}

// Long commands show progress on a terminal, and only there (issue 15):
// what a person sees is checked through a pseudo-terminal.
func TestProgressOnTerminal(t *testing.T) {
	dir := newReplica(t)
	var in strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&in, `{"key":"k%05d","value":"%s"}`+"\n", i, strings.Repeat("v", 200))
	}
	term, out := onTerminal(t, []byte(in.String()), "import", "--dir", dir)
	if out != "imported 5000\n" {
		t.Errorf("stdout %q", out)
	}
	for _, want := range []string{"import  20% |", "(1000/5000, ", " records/s)", "import  80% |"} {
		if !strings.Contains(term, want) {
			t.Errorf("the terminal did not show %q: %q", want, term)
		}
	}

	term, out = onTerminal(t, nil, "push", "--dir", dir)
	if !strings.HasPrefix(out, "pushed ") {
		t.Errorf("push stdout %q", out)
	}
	if !strings.Contains(term, " push ") {
		t.Errorf("push: the terminal showed %q", term)
	}
	// Once staged, the bytes a push sends are known: a bar with a
	// percentage and the bytes (the engine's "push" progress).
	// (one segment here: drawn at 0%, cleared when it completes), with
	// elapsed and remaining time.
	if !strings.Contains(term, "push   0% |") || !strings.Contains(term, "[0s:") {
		t.Errorf("push: no bar of the bytes to send on the terminal: %q", term)
	}

	// compact: a bar of the records written to the snapshot.
	term, _ = onTerminal(t, nil, "compact", "--dir", dir)
	if !strings.Contains(term, "compact   0% |") || !strings.Contains(term, "/5000, ") {
		t.Errorf("compact: no bar of the records written on the terminal: %q", term)
	}

	// verify: a bar of the log's bytes checked, with its times.
	term, _ = onTerminal(t, nil, "verify", "--dir", dir)
	if !strings.Contains(term, "verify   0% |") || !strings.Contains(term, "[0s:") {
		t.Errorf("verify: no bar of the bytes to check on the terminal: %q", term)
	}

	// Under --json nothing but the JSON, even on a terminal.
	term, out = onTerminal(t, nil, "export", "--json", "--dir", dir)
	if term != "" || strings.Count(out, "\n") != 5000 {
		t.Errorf("export --json on a terminal: terminal %q, %d lines", term, strings.Count(out, "\n"))
	}

	// Not a terminal: nothing on stderr.
	if r := cli(t, nil, "export", "--dir", dir); r.stderr != "" || r.code != 0 {
		t.Errorf("export to a pipe: exit %d, stderr %q", r.code, r.stderr)
	}

	// A new replica's bootstrap shows a bar too.
	ok(t, nil, "compact", "--dir", dir)
	remote := decodeOne(t, ok(t, nil, "status", "--json", "--dir", dir).stdout)["remote"].(string)
	b := filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", b, "--remote", remote)
	term, out = onTerminal(t, nil, "pull", "--dir", b)
	if !strings.HasPrefix(out, "loaded 5000 records") || !strings.Contains(term, "bootstrap   0% |") {
		t.Errorf("bootstrap: stdout %q, terminal %q", out, term)
	}
}
