// Package cli implements the ebreplica command line:
//
//	ebreplica [global flags] COMMAND [flags] [args]
//
// Run is the whole program (main only wires it to the process), so tests
// drive it directly with their own arguments, streams and directories.
//
// The surface — command names, flags, output formats and exit codes — is a
// contract that outside scripts depend on: add to it, change none of it.
//
// Adding a command: write one file declaring a *command (name, synopsis,
// flags, argument counts, run function) and list it in commandTable.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/internal/residency"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

// Exit codes (the contract).
const (
	ExitOK       = 0 // success
	ExitError    = 1 // error; a one-line message on stderr
	ExitUsage    = 2 // usage error
	ExitNotFound = 3 // key not found
	ExitConflict = 4 // key has concurrent versions under the mv policy
	// ExitInterrupted: SIGINT (Ctrl-C) or SIGTERM stopped the command;
	// what was done stays done. 128 + SIGINT, as shells report it.
	ExitInterrupted = 130
)

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis of the arguments, "KEY [VALUE]"
	summary string // one line for the command list
	help    string // longer description for `ebreplica help NAME`; may be ""
	flags   []flagDef
	minArgs int
	maxArgs int // -1: no limit
	run     func(ctx context.Context, e *env) error
}

// commandTable lists the commands in help order. Later commands (push,
// pull, sync, incr, sadd, srem, smembers, compact, verify, sim, demo,
// reidentify) are added here, one file each.
func commandTable() []*command {
	return []*command{
		initCmd,
		putCmd,
		getCmd,
		delCmd,
		lsCmd,
		lenCmd,
		importCmd,
		exportCmd,
		pendingCmd,
		statusCmd,
		incrCmd,
		saddCmd,
		sremCmd,
		smembersCmd,
		patchCmd,
		pushCmd,
		pullCmd,
		syncCmd,
		watchCmd,
		serveCmd,
		compactCmd,
		verifyCmd,
		replicasCmd,
		snapshotsCmd,
		logCmd,
		historyCmd,
		restoreCmd,
		revertCmd,
		retentionCmd,
		completionCmd,
		reidentifyCmd,
		keyCmd,
		demoCmd,
		simCmd,
		versionCmd,
	}
}

func lookup(name string) *command {
	for _, c := range commandTable() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// env is what a command runs with: the streams, the global options, its
// parsed flags and arguments, and the replica once opened.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	cmd            *command

	dir  string
	json bool
	wall func() time.Time // nil: time.Now
	// lowMemory: --low-memory or $EBREPLICA_LOW_MEMORY chose the small
	// profile (a 32-bit build uses it whatever this says).
	lowMemory bool
	// released: a long-running command under the small profile gave its
	// start-up pages back (releaseStartupPages).
	released sync.Once
	// timeout bounds every remote request (--timeout; 0: the default).
	timeout time.Duration

	flags *parsed // the command's flags and positional arguments
	args  []string

	rep *replica.Replica // opened by open, closed by Run (unless held)
	// held: this env runs a command forwarded to the server, on the
	// replica the server holds (rep, never closed here); see forward.go.
	held *heldEnv
	// standIns names the library policies (merge.NewFunc) the replica
	// records and the command line does not have: open gave it stand-ins,
	// so that their keys read as raw versions and refuse writes.
	standIns map[string]bool
	// booted is set when this command loaded a snapshot into a new
	// replica (a bootstrap), with the records it loaded.
	booted     bool
	bootLoaded int64
	// tune, when set, adjusts the options open uses (serve: its metrics
	// registry).
	tune func(*replica.Options)

	// Progress shown on a terminal (progress.go).
	barsMu    sync.Mutex
	bars      []*bar
	stopTrack func()
}

// bootstrapNote is what pull and sync say before their counts when the
// command bootstrapped the replica from a snapshot ("" otherwise): the
// log's counts alone said "pulled 0 records" after 200,000 were loaded.
func (e *env) bootstrapNote() string {
	if !e.booted {
		return ""
	}
	return fmt.Sprintf("loaded %d records from the newest snapshot (a new replica starts from it); then ", e.bootLoaded)
}

// options returns the replica options every command opens with.
func (e *env) options() *replica.Options {
	o := &replica.Options{Wall: e.wall, Progress: e.progress(), LowMemory: e.lowMemory, RequestTimeout: e.timeout}
	if store.ProfileFor(e.lowMemory) == store.ProfileSmall && os.Getenv("GOMEMLIMIT") == "" {
		// The small profile's soft memory limit (a process-wide setting:
		// the command line owns its process; $GOMEMLIMIT overrides it).
		o.SoftMemoryLimit = replica.SmallMemoryLimit
	}
	if e.tune != nil {
		e.tune(o)
	}
	return o
}

// releaseStartupPages is called by the long-running commands (sync
// --watch, serve, watch) after their first round that reached the remote
// (without a remote: once the replica is open): under the small profile it
// drops the resident pages of the binary that start-up touched (package
// initialisation, flags, open, the catch-up), which a live replica rarely
// needs again: 17.9 → 12.1 MiB of binary pages at the peak of a live sync
// (BENCHMARKS.md "Profiles"; see internal/residency). Once per process;
// best effort (nothing to do outside Linux, or under qemu-user).
func (e *env) releaseStartupPages() {
	if store.ProfileFor(e.lowMemory) != store.ProfileSmall {
		return
	}
	e.released.Do(func() { _, _ = releaseExecutable() })
}

// releaseExecutable is residency.ReleaseExecutable; tests count its calls.
var releaseExecutable = residency.ReleaseExecutable

// progress returns the replica's progress callback: it notes a bootstrap
// (see bootstrapNote) and shows how far it got when stderr is a terminal.
func (e *env) progress() func(stage string, done, total int64) {
	show := e.terminalProgress()
	return func(stage string, done, total int64) {
		if stage == "bootstrap" {
			e.booted, e.bootLoaded = true, done
		}
		if show != nil {
			show(stage, done, total)
		}
	}
}

// terminalProgress returns a progress bar printer when progress shows
// (stderr a terminal, no --json; see progress.go), else nil.
func (e *env) terminalProgress() func(stage string, done, total int64) {
	if !e.showProgress() {
		return nil
	}
	bars := map[string]*bar{}
	return func(stage string, done, total int64) {
		b := bars[stage]
		if b == nil {
			switch stage {
			case "push", "verify": // bytes (staged segments; log segments checked), with rate and ETA
				b = e.newBytesBar(stage, total)
			case "pull":
				b = e.newBar(stage, "segments", total, false)
			default:
				b = e.newBar(stage, "records", total, false)
			}
			bars[stage] = b
		}
		b.set(done)
		if done >= total {
			b.finish()
		}
	}
}

// open opens the replica in the directory. Run closes it after the command.
// An uninitialised directory is reported, never created.
func (e *env) open() (*replica.Replica, error) {
	if e.rep != nil {
		return e.rep, nil
	}
	o := e.options()
	r, err := replica.Open(e.dir, o)
	// A store made by a program with its own OnConflict policies: each
	// such name gets a stand-in (one per failed open, as the engine names
	// one at a time), so that the rest of the store works.
	for i := 0; err != nil && errors.Is(err, merge.ErrUnknownPolicy) && i < 64; i++ {
		name := unknownPolicyName(err)
		if name == "" || e.standIns[name] {
			break
		}
		if o.Funcs == nil {
			o.Funcs = map[string]merge.Policy{}
			e.standIns = map[string]bool{}
		}
		o.Funcs[name] = standInPolicy(name)
		e.standIns[name] = true
		r, err = replica.Open(e.dir, o)
	}
	if err != nil {
		return nil, openError(e.dir, err)
	}
	e.rep = r
	return r, nil
}

// unknownPolicyName is the policy name an open's ErrUnknownPolicy names.
func unknownPolicyName(err error) string {
	var u *merge.UnknownPolicyError
	if errors.As(err, &u) {
		return u.Name
	}
	return ""
}

// standInPolicy stands for a library policy the command line does not
// have. It is deterministic and decides only what the local store needs
// while it merges (whether the key is live: it is while a version is), and
// the command line neither prints nor writes what it picks: reads show
// the raw versions, writes are refused (see libraryPolicy).
func standInPolicy(name string) merge.Policy {
	return merge.NewFunc(name, func(_ string, a, b merge.Version) (merge.Version, error) {
		if a.Deleted && !b.Deleted {
			return b, nil
		}
		return a, nil
	})
}

// libraryPolicy returns the name of key's policy when it is a stand-in for
// a library policy (see standInPolicy).
func (e *env) libraryPolicy(r *replica.Replica, key string) (string, bool) {
	name := r.Policies().For(key).Name()
	return name, e.standIns[name]
}

// refuseLibraryWrite is the error for a write to a key whose policy is a
// library callback this command line does not have.
func refuseLibraryWrite(key, policy string) error {
	return errorf(nil, "key %q is under policy %q, a library OnConflict callback of the program that made this store, which the command line does not have: write it from that program (get shows its raw versions)", key, policy)
}

// Run runs the command line args (without the program name) and returns the
// process exit code. Output goes to stdout, the one-line error message of a
// failure to stderr.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	e := &env{stdin: stdin, stderr: stderr}
	e.stdout = outputClearing(e, stdout)
	return e.execute(ctx, args)
}

// execute runs args in e, prints the error line of a failure to e.stderr,
// and returns the exit code.
func (e *env) execute(ctx context.Context, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	err := run(ctx, e, args)
	e.finishBars()
	var fw *forwarded
	if errors.As(err, &fw) {
		return fw.code // the server's output, and its exit code
	}
	if e.rep != nil && e.held == nil {
		if cerr := e.rep.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing replica in %s: %w", e.dir, cerr)
		}
	}
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil {
		// Interrupted: whatever the command's error says (a canceled
		// request deep in an SDK, a wrapped context error), the user
		// pressed Ctrl-C, and is told so; a message of the command's
		// own that says so already (import: how many records were
		// written before) is kept.
		msg := "interrupted"
		var ce *cliError
		if errors.As(err, &ce) && strings.HasPrefix(ce.msg, "interrupted") {
			msg = ce.msg
		}
		err = &cliError{code: ExitInterrupted, msg: msg, err: err}
	}
	name := ""
	if e.cmd != nil {
		name = e.cmd.name
	}
	line := errorLine(name, err)
	fmt.Fprintln(stderr, line)
	code := exitCode(err)
	var ce *cliError
	if (e.json || wantsJSON(args)) && !(errors.As(err, &ce) && ce.reported) {
		// Under --json the error is also one JSON object on stdout, for
		// scripts that read only stdout.
		_ = writeJSON(stdout, struct {
			Error string `json:"error"`
			Code  int    `json:"code"`
		}{strings.TrimPrefix(line, "ebreplica: "), code})
	}
	return code
}

// wantsJSON reports whether args ask for --json (the last one given
// before any "--" counts), for errors found before the flags were parsed.
func wantsJSON(args []string) bool {
	want := false
	for _, a := range args {
		if a == "--" {
			break
		}
		if name, val, hasVal, ok := splitFlag(a); ok && name == "json" {
			b, err := strconv.ParseBool(val)
			want = !hasVal || err == nil && b
		}
	}
	return want
}

func run(ctx context.Context, e *env, args []string) error {
	global := &parsed{}
	rest, err := parseFlags(args, globalFlags, global, true)
	if err != nil {
		return err
	}
	if global.bool("help") {
		return printUsage(e.stdout)
	}
	if len(rest) == 0 {
		return usageErrorf("no command given")
	}
	name := rest[0]
	if name == "help" {
		return helpCommand(e.stdout, rest[1:])
	}
	c := lookup(name)
	if c == nil {
		return usageErrorf("unknown command %q", name)
	}
	e.cmd = c

	p := &parsed{}
	defs := append(append([]flagDef{}, globalFlags...), c.flags...)
	if _, err := parseFlags(rest[1:], defs, p, false); err != nil {
		return err
	}
	if p.bool("help") {
		return printCommandUsage(e.stdout, c)
	}
	global.merge(p)
	if err := e.setGlobals(global); err != nil {
		return err
	}
	e.flags, e.args = p, p.args
	if err := checkArgs(c, p.args); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if done, err := e.viaServer(ctx, args); done || err != nil {
		return err
	}
	return c.run(ctx, e)
}

// setGlobals applies the global flags.
func (e *env) setGlobals(p *parsed) error {
	if d, ok := p.value("dir"); ok {
		if d == "" {
			return usageErrorf("--dir must not be empty")
		}
		e.dir = d
	} else if d := os.Getenv("EBREPLICA_DIR"); d != "" {
		e.dir = d
	} else {
		e.dir = ".ebreplica"
	}
	e.json = p.bool("json")
	e.lowMemory = p.bool("low-memory") || store.LowMemoryFromEnv()
	if s, ok := p.value("timeout"); ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return usageErrorf("--timeout %q is not a positive Go duration (such as 30s, 2m)", s)
		}
		e.timeout = d
	}
	if s, ok := p.value("clock-offset"); ok {
		off, err := time.ParseDuration(s)
		if err != nil {
			return usageErrorf("--clock-offset %q is not a Go duration (such as -90s, 24h, -36h)", s)
		}
		if off != 0 {
			e.wall = func() time.Time { return time.Now().Add(off) }
		}
	}
	return nil
}

func checkArgs(c *command, args []string) error {
	if len(args) < c.minArgs {
		missing := strings.Fields(strings.NewReplacer("[", "", "]", "", "...", "").Replace(c.args))
		what := "an argument"
		if len(args) < len(missing) {
			what = missing[len(args)]
		}
		return usageErrorf("missing %s (usage: ebreplica %s %s)", what, c.name, c.args)
	}
	if c.maxArgs >= 0 && len(args) > c.maxArgs {
		extra := args[c.maxArgs]
		if looksLikeFlag(extra) {
			return usageErrorf("unknown flag %s (an argument that starts with - goes after --)", extra)
		}
		return usageErrorf("unexpected argument %q (usage: ebreplica %s %s)", extra, c.name, strings.TrimSpace(c.args))
	}
	return nil
}

func printUsage(w io.Writer) error {
	var b strings.Builder
	b.WriteString("ebreplica: a multi-writer replicated key-value store\n\n")
	b.WriteString("usage: ebreplica [global flags] COMMAND [flags] [args]\n\ncommands:\n")
	// Short synopses (long ones lose their flags), summaries wrapped: the
	// text fits 80 columns (it was 278 wide); `ebreplica help COMMAND`
	// shows every flag.
	var rows [][2]string
	for _, c := range commandTable() {
		s := synopsis(c)
		if len(s) > 24 {
			s = strings.TrimSpace(c.name + " " + c.args)
		}
		rows = append(rows, [2]string{s, c.summary})
	}
	rows = append(rows, [2]string{"help [COMMAND]", "this text, or one command's"})
	writeColumns(&b, rows)
	b.WriteString("\nglobal flags (before or after the command):\n")
	writeFlags(&b, globalFlags)
	b.WriteString(`
An unknown flag is a usage error; -- ends flags (a key that starts with -
goes after it), and a negative number is an argument. Flags take
--name VALUE, --name=VALUE or -name forms.

exit codes: 0 ok, 1 error, 2 usage error, 3 key not found,
            4 key has concurrent versions (use get --all), 130 interrupted
`)
	_, err := io.WriteString(w, b.String())
	return outputError(err)
}

func synopsis(c *command) string {
	s := c.name
	for _, f := range c.flags {
		switch {
		case f.value && f.need:
			s += fmt.Sprintf(" --%s %s", f.name, f.arg)
		case f.value:
			s += fmt.Sprintf(" [--%s %s]", f.name, f.arg)
		}
		if f.value {
			if f.multi {
				s += "..."
			}
		} else {
			s += fmt.Sprintf(" [--%s]", f.name)
		}
	}
	if c.args != "" {
		s += " " + c.args
	}
	return s
}

func printCommandUsage(w io.Writer, c *command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n%s\n", wrapWords("usage: ebreplica "+synopsis(c), 6), wrapWords(c.summary, 0))
	if c.help != "" {
		fmt.Fprintf(&b, "\n%s\n", wrapLong(strings.TrimSpace(c.help)))
	}
	if len(c.flags) > 0 {
		b.WriteString("\nflags:\n")
		writeFlags(&b, c.flags)
	}
	b.WriteString("\nglobal flags:\n")
	writeFlags(&b, globalFlags)
	_, err := io.WriteString(w, b.String())
	return outputError(err)
}

func helpCommand(w io.Writer, args []string) error {
	switch len(args) {
	case 0:
		return printUsage(w)
	case 1:
		c := lookup(args[0])
		if c == nil {
			return usageErrorf("unknown command %q", args[0])
		}
		return printCommandUsage(w, c)
	default:
		return usageErrorf("help takes at most one command name")
	}
}

func writeFlags(b *strings.Builder, defs []flagDef) {
	var rows [][2]string
	for _, f := range defs {
		if f.alias != "" {
			continue
		}
		name := "--" + f.name
		if f.value {
			name += " " + f.arg
		}
		rows = append(rows, [2]string{name, f.usage})
	}
	writeColumns(b, rows)
}

// wrapWords wraps s at word boundaries within helpWidth, indenting the
// lines after the first by indent spaces.
func wrapWords(s string, indent int) string {
	var b strings.Builder
	line := 0
	var words []string
	for _, w := range strings.Fields(s) {
		if len(w) > helpWidth-indent {
			// A word too long for any line (a JSON field list) breaks
			// after its commas.
			words = append(words, strings.SplitAfter(w, ",")...)
			continue
		}
		words = append(words, w)
	}
	for i, word := range words {
		switch {
		case i == 0:
		case line+1+len(word) > helpWidth:
			b.WriteString("\n" + strings.Repeat(" ", indent))
			line = indent
		default:
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}

// wrapLong wraps the lines of text longer than helpWidth, each at word
// boundaries with its own indentation; shorter lines stay as written.
func wrapLong(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if len(l) <= helpWidth {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " "))
		lines[i] = strings.Repeat(" ", indent) + wrapWords(l[indent:], indent)
	}
	return strings.Join(lines, "\n")
}

// helpWidth is the width help text keeps within.
const helpWidth = 80

// writeColumns writes rows as two columns indented by two spaces, the
// second wrapped at word boundaries to stay within helpWidth (a first
// column too wide for that puts its text on the lines below).
func writeColumns(b *strings.Builder, rows [][2]string) {
	w := 0
	for _, r := range rows {
		w = max(w, len(r[0]))
	}
	indent := 2 + w + 2
	if helpWidth-indent < 30 {
		indent = 8
	}
	for _, r := range rows {
		b.WriteString("  " + r[0])
		col := 2 + len(r[0])
		if col+2 > indent {
			b.WriteString("\n")
			col = 0
		}
		line := col
		first := true
		for _, word := range strings.Fields(r[1]) {
			if !first && line+1+len(word) > helpWidth {
				b.WriteString("\n")
				line = 0
				first = true
			}
			if first {
				b.WriteString(strings.Repeat(" ", indent-line))
				line = indent
			} else {
				b.WriteString(" ")
				line++
			}
			b.WriteString(word)
			line += len(word)
			first = false
		}
		b.WriteString("\n")
	}
}
