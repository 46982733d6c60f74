package cli

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	defs := append(append([]flagDef{}, globalFlags...),
		flagDef{name: "prefix", value: true}, flagDef{name: "all"})
	for _, tc := range []struct {
		args   []string
		values map[string][]string
		bools  map[string]bool
		pos    []string
		err    string
	}{
		{args: []string{"k", "v"}, pos: []string{"k", "v"}},
		{args: []string{"k", "--dir", "D", "v"}, values: map[string][]string{"dir": {"D"}}, pos: []string{"k", "v"}},
		{args: []string{"--dir=D", "-json", "k"}, values: map[string][]string{"dir": {"D"}}, bools: map[string]bool{"json": true}, pos: []string{"k"}},
		{args: []string{"-dir", "D", "--json=false", "k"}, values: map[string][]string{"dir": {"D"}}, bools: map[string]bool{"json": false}, pos: []string{"k"}},
		{args: []string{"--prefix", "a", "--prefix=b"}, values: map[string][]string{"prefix": {"a", "b"}}},
		{args: []string{"--prefix", "--json"}, values: map[string][]string{"prefix": {"--json"}}},
		{args: []string{"--prefix="}, values: map[string][]string{"prefix": {""}}},
		{args: []string{"hits", "-3"}, pos: []string{"hits", "-3"}},
		{args: []string{"-3.5", "-.5", "-1e9"}, pos: []string{"-3.5", "-.5", "-1e9"}},
		{args: []string{"--clock-offset", "-36h", "k"}, values: map[string][]string{"clock-offset": {"-36h"}}, pos: []string{"k"}},
		{args: []string{"k", "--", "--json", "--dir", "x"}, pos: []string{"k", "--json", "--dir", "x"}},
		{args: []string{"--", "--"}, pos: []string{"--"}},
		{args: []string{"-", "---x", "-=x"}, pos: []string{"-", "---x", "-=x"}},
		{args: []string{"--unknown"}, err: "unknown flag --unknown"},
		{args: []string{"k", "-x"}, err: "unknown flag -x"},
		{args: []string{"--unknown=1", "k"}, err: "unknown flag --unknown=1"},
		{args: []string{"--", "--unknown", "-x"}, pos: []string{"--unknown", "-x"}},
		{args: []string{"-h"}, bools: map[string]bool{"help": true}},
		{args: []string{"--all", "k"}, bools: map[string]bool{"all": true}, pos: []string{"k"}},
		{args: []string{"--dir"}, err: "needs a value"},
		{args: []string{"--json=maybe"}, err: "=true or =false"},
	} {
		p := &parsed{}
		_, err := parseFlags(tc.args, defs, p, false)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(err) != ExitUsage {
				t.Errorf("%q: err %v, want usage error %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(p.values, tc.values) || !reflect.DeepEqual(p.bools, tc.bools) || !reflect.DeepEqual(p.args, tc.pos) {
			t.Errorf("%q: values %v bools %v args %q; want %v %v %q", tc.args, p.values, p.bools, p.args, tc.values, tc.bools, tc.pos)
		}
	}
}

func TestParseGlobalStopsAtCommand(t *testing.T) {
	t.Parallel()
	p := &parsed{}
	rest, err := parseFlags([]string{"--json", "--dir", "D", "put", "--json", "k"}, globalFlags, p, true)
	if err != nil || !reflect.DeepEqual(rest, []string{"put", "--json", "k"}) || !p.bool("json") {
		t.Fatalf("rest %q, err %v, parsed %+v", rest, err, p)
	}
	if _, err := parseFlags([]string{"--prefix", "x", "ls"}, globalFlags, &parsed{}, true); exitCode(err) != ExitUsage {
		t.Errorf("a command flag before the command: %v", err)
	}
}

// Global flags stand before or after the command name, in every form.
func TestGlobalFlagsAnywhere(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	ok(t, nil, "put", "k", "v", "--dir", dir)
	ok(t, nil, "--dir", dir, "put", "k2", "v2")
	ok(t, nil, "put", "--dir="+dir, "k3", "v3")
	ok(t, nil, "put", "-dir", dir, "k4", "v4")
	for _, args := range [][]string{
		{"--json", "--dir", dir, "get", "k"},
		{"get", "k", "--json", "--dir", dir},
		{"get", "-json", "-dir=" + dir, "k"},
		{"--dir", "/elsewhere", "get", "--dir", dir, "k", "--json=true"}, // the later --dir wins
	} {
		m := decodeOne(t, ok(t, nil, args...).stdout)
		if m["key"] != "k" || m["value"] != "v" {
			t.Errorf("%q: %v", args, m)
		}
	}
	if got := ok(t, nil, "get", "--json=false", "--dir", dir, "k").out(); got != "v" {
		t.Errorf("--json=false: %q", got)
	}
	if got := ok(t, nil, "ls", "--dir", dir, "--prefix", "k").out(); got != "k\nk2\nk3\nk4\n" {
		t.Errorf("ls = %q", got)
	}
}

func TestDoubleDashAndNegativeNumbers(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	ok(t, nil, "put", "--dir", dir, "--", "--json", "-v")
	ok(t, nil, "put", "--dir", dir, "n", "-3")
	ok(t, nil, "put", "--dir", dir, "-5", "-2.5")
	ok(t, nil, "--dir", dir, "put", "--", "-", "--dir")
	if got := ok(t, nil, "get", "--dir", dir, "--", "--json").out(); got != "-v" {
		t.Errorf("get -- --json = %q", got)
	}
	if got := ok(t, nil, "get", "--dir", dir, "n").out(); got != "-3" {
		t.Errorf("get n = %q", got)
	}
	if got := ok(t, nil, "get", "-5", "--dir", dir).out(); got != "-2.5" {
		t.Errorf("get -5 = %q", got)
	}
	if got := ok(t, nil, "get", "--dir", dir, "-").out(); got != "--dir" {
		t.Errorf("get - = %q", got)
	}
	// A flag-like token that names no flag is a usage error, never data
	// (issue 15: `put --jsno k` wrote a key "--jsno"); after -- it is a key.
	failsWith(t, ExitUsage, nil, []string{"put", "--dir", dir, "--jsno", "k"}, "unknown flag --jsno", "goes after --")
	failsWith(t, ExitUsage, nil, []string{"put", "--dir", dir, "k", "-x"}, "unknown flag -x")
	failsWith(t, ExitUsage, nil, []string{"ls", "--dir", dir, "--prefx", "a"}, "unknown flag --prefx")
	ok(t, nil, "put", "--dir", dir, "--", "--not-a-flag", "x")
	if got := ok(t, nil, "ls", "--dir", dir).out(); got != "-\n--json\n--not-a-flag\n-5\nn\n" {
		t.Errorf("ls = %q", got)
	}
	failsWith(t, ExitUsage, nil, []string{"get", "--dir", dir, "a", "b"}, `unexpected argument "b"`)
}

func TestDefaultDir(t *testing.T) {
	// No t.Parallel: it sets the environment and the working directory.
	envDir := filepath.Join(t.TempDir(), "from-env")
	t.Setenv("EBREPLICA_DIR", envDir)
	ok(t, nil, "init", "--remote", "file://"+filepath.ToSlash(t.TempDir()))
	ok(t, nil, "put", "k", "env")
	if got := ok(t, nil, "get", "--dir", envDir, "k").out(); got != "env" {
		t.Errorf("$EBREPLICA_DIR: %q", got)
	}

	t.Setenv("EBREPLICA_DIR", "")
	wd := t.TempDir()
	t.Chdir(wd)
	ok(t, nil, "init", "--remote", "file://"+filepath.ToSlash(t.TempDir()))
	ok(t, nil, "put", "k", "cwd")
	if got := ok(t, nil, "get", "--dir", filepath.Join(wd, ".ebreplica"), "k").out(); got != "cwd" {
		t.Errorf("./.ebreplica: %q", got)
	}
	failsWith(t, ExitUsage, nil, []string{"len", "--dir", ""}, "--dir")
}

// The main help fits 80 columns (issue 15: it was 278 wide), and so does
// each command's usage line and flag list.
func TestHelpWidth(t *testing.T) {
	t.Parallel()
	check := func(what, text string) {
		t.Helper()
		for _, line := range strings.Split(text, "\n") {
			if len(line) > 80 {
				t.Errorf("%s: a line of %d columns: %q", what, len(line), line)
			}
		}
	}
	main := ok(t, nil, "help").out()
	check("help", main)
	for _, c := range commandTable() {
		if !strings.Contains(main, "\n  "+c.name) {
			t.Errorf("help does not list %s", c.name)
		}
		check("help "+c.name, ok(t, nil, "help", c.name).out())
	}
}
