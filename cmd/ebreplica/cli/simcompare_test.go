package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSimPolicies: sim --policy lww,mv,... prints one table, a row per
// policy; its --json form is {"policies":[...]} whose rows are the
// reports the policies give alone with the same seed; the same flags give
// the same bytes; a bad list is a usage error.
func TestSimPolicies(t *testing.T) {
	args := []string{"sim", "--seed", "5", "--ops", "60", "--keys", "4"}
	table := ok(t, nil, append(args, "--policy", "lww,mv,counter")...).out()
	for _, want := range []string{"3 policies on identical schedules", "lost updates", "est. cost", "\n      lww  ", "\n       mv  ", "\n  counter  "} {
		if !strings.Contains(table, want) {
			t.Fatalf("table without %q:\n%s", want, table)
		}
	}
	if again := ok(t, nil, append(args, "--policy", "lww,mv,counter")...).out(); again != table {
		t.Fatalf("two runs differ:\n%s\n%s", table, again)
	}
	var c struct {
		Policies []json.RawMessage `json:"policies"`
	}
	if err := json.Unmarshal(ok(t, nil, append(args, "--policy", "lww,mv", "--json")...).stdout, &c); err != nil || len(c.Policies) != 2 {
		t.Fatalf("--json: %v, %d rows", err, len(c.Policies))
	}
	for i, p := range []string{"lww", "mv"} {
		alone := strings.TrimSpace(ok(t, nil, append(args, "--policy", p, "--json")...).out())
		if string(c.Policies[i]) != alone {
			t.Fatalf("%s: the row\n%s\nalone\n%s", p, c.Policies[i], alone)
		}
	}
	failsWith(t, ExitUsage, nil, append(args, "--policy", "lww,nope"), `unknown policy "nope"`)
	failsWith(t, ExitUsage, nil, append(args, "--policy", "mv,mv"), "mv named twice")
	failsWith(t, ExitUsage, nil, append(args, "--policy", "lww,"), `unknown policy ""`)
}

// TestSimHTML: --html FILE writes a self-contained page and prints the
// report it prints without the flag; a path in no directory is a usage
// error before anything runs.
func TestSimHTML(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	args := []string{"sim", "--seed", "3", "--ops", "60", "--runs", "2"}
	plain := ok(t, nil, args...).out()
	if got := ok(t, nil, append(args, "--html", page)...).out(); got != plain {
		t.Fatalf("with --html:\n%s\nwithout:\n%s", got, plain)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "<!DOCTYPE html>") || strings.Count(s, "<svg") != 6 || strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, "<script") {
		t.Fatalf("page: %d bytes, %d svg", len(s), strings.Count(s, "<svg"))
	}
	ok(t, nil, append(args, "--html", page)...)
	if b2, _ := os.ReadFile(page); string(b2) != s {
		t.Fatal("the same flags wrote another page")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left in the directory: %v", entries)
	}
	failsWith(t, ExitUsage, nil, append(args, "--html", filepath.Join(dir, "no", "such", "r.html")), "no directory")
}

// TestSimTraceWatchCapture: the output of watch --json captured on two
// real replicas, one file each, replays as a trace: both replicas' local
// writes run, remote changes are skipped, and the run converges. A
// malformed line is a usage error naming file and line; nothing runs and
// no page is written.
func TestSimTraceWatchCapture(t *testing.T) {
	remote := "file://" + filepath.ToSlash(t.TempDir())
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	ok(t, nil, "init", "--dir", a, "--remote", remote)
	ok(t, nil, "init", "--dir", b, "--remote", remote)
	ok(t, nil, "put", "--dir", a, "cart/1", "apples")
	ok(t, nil, "put", "--dir", a, "cart/2", "pears")
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "put", "--dir", b, "cart/1", "plums")
	ok(t, nil, "del", "--dir", b, "cart/2")
	ok(t, nil, "put", "--dir", a, "cart/3", "figs")
	ok(t, nil, "sync", "--dir", b)
	ok(t, nil, "sync", "--dir", a)

	capture := func(dir string, locals int) string {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errb lockedBuffer
		code := make(chan int, 1)
		go func() {
			code <- Run(ctx, []string{"watch", "--since", "0", "--interval", "20ms", "--json", "--dir", dir}, nil, &out, &errb)
		}()
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(out.String(), `"origin":"local"`) < locals || strings.Count(out.String(), `"origin":"remote"`) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("watch on %s: %d local changes never showed; output:\n%s\nstderr: %s", dir, locals, out.String(), errb.String())
			}
			time.Sleep(10 * time.Millisecond) // polling a live command's output, not timing it
		}
		cancel()
		if c := <-code; c != ExitOK {
			t.Fatalf("watch: exit %d, stderr %s", c, errb.String())
		}
		f := filepath.Join(t.TempDir(), filepath.Base(dir)+".jsonl")
		if err := os.WriteFile(f, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	fa, fb := capture(a, 3), capture(b, 2)

	var rep struct {
		Converged bool   `json:"converged"`
		Replicas  int    `json:"replicas"`
		Keys      int    `json:"keys"`
		Writes    int    `json:"writes"`
		Ops       int    `json:"ops"`
		Workload  string `json:"workload"`
	}
	for _, seed := range []string{"1", "2", "3"} {
		r := ok(t, nil, "sim", "--trace", fa, "--trace", fb, "--seed", seed, "--json")
		if err := json.Unmarshal(r.stdout, &rep); err != nil {
			t.Fatal(err)
		}
		// Five writes ran (b's delete writes nothing when b has not
		// pulled the key yet in this run).
		if !rep.Converged || rep.Replicas != 2 || rep.Keys != 3 || rep.Writes < 4 || rep.Writes > 5 || rep.Ops < 5 ||
			!strings.Contains(rep.Workload, "5 writes of 3 keys by 2 replicas (A="+fa+" B="+fb+")") {
			t.Fatalf("seed %s: %s", seed, r.stdout)
		}
	}
	text := ok(t, nil, "sim", "--trace", fa, "--trace", fb, "--policy", "lww,mv,set").out()
	if !strings.Contains(text, "workload: trace "+fa+", "+fb+": 5 writes") || strings.Contains(text, "NO") {
		t.Fatalf("side by side on the capture:\n%s", text)
	}
	failsWith(t, ExitUsage, nil, []string{"sim", "--trace", fa, "--trace", fb, "--replicas", "3"}, "the trace has 2 replicas")

	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"replica":"x","op":"put","key":"k"}`+"\n\n"+`{"replica":"x","op":"put"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "r.html")
	failsWith(t, ExitUsage, nil, []string{"sim", "--trace", bad, "--html", page}, bad+`:3: no "key"`)
	failsWith(t, ExitUsage, nil, []string{"sim", "--trace", filepath.Join(t.TempDir(), "missing.jsonl")}, "--trace", "no such file")
	if _, err := os.Stat(page); !os.IsNotExist(err) {
		t.Fatalf("a page was written after a malformed trace: %v", err)
	}
}

// TestSimTraceRefusesWorkloadFlags: with --trace the trace's writes are
// the workload, so --ops, --keys and --hot, which shape a generated one,
// are usage errors instead of being silently ignored.
func TestSimTraceRefusesWorkloadFlags(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "t.jsonl")
	if err := os.WriteFile(trace, []byte(`{"replica":"a","time":1,"op":"put","key":"k","value":"v"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--ops", "--keys", "--hot"} {
		failsWith(t, ExitUsage, nil, []string{"sim", "--trace", trace, f, "5"}, f+" does not go with --trace")
	}
	ok(t, nil, "sim", "--trace", trace)
}
