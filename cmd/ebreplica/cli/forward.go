package cli

// Forwarding: while `ebreplica serve` holds a replica directory, every
// other command that opens it would fail on the directory lock. Instead,
// when DIR/api.sock exists and a server answers on it, the command line
// sends the whole command to the server (POST /v1/cli on the socket), which
// runs it in its process against the replica it holds, and streams back
// stdout, stderr and the exit code: the output and the exit code are those
// of a local run. A socket where nothing answers (a serve that crashed)
// is ignored: the command runs locally and opens the directory itself.
//
// The request body is a stream of frames (1 byte kind, 4 bytes big-endian
// length, data): first the command (forwardRequest as JSON), then stdin
// when the command reads it (put KEY, import [-]) in chunks and its end,
// and a cancel frame when SIGINT or SIGTERM stops the client, which keeps
// reading the response so the command's last words ("interrupted", exit
// 130; watch's exit 0) arrive as they would locally. The response body is
// frames too: stdout and stderr as the command writes them (flushed at
// once, so watch streams live), and last the exit code.
//
// Per command:
//
//   - init, completion, demo, sim, version, and verify --remote URL do not
//     open DIR and always run locally (init on a held directory says that
//     DIR already holds a replica, as without a server); help too.
//   - serve refuses to start when a server already answers on DIR.
//   - reidentify is refused through the server (exit 1): the engine's
//     Reidentify is safe against a concurrent sync but not against the
//     writes the server takes meanwhile; stop serve to run it.
//   - sync --watch prints the rounds of the server's live syncer as they
//     happen (--interval cannot change the server's, and is ignored); watch
//     prints the changes and leaves the syncing to the server.
//   - every other command runs through the server: FILE arguments (import
//     FILE) are resolved against the client's working directory, and
//     messages name DIR as the client gave it.
//
// Global options that choose how the replica is opened cannot change a
// replica the server holds: --low-memory ($EBREPLICA_LOW_MEMORY) is
// ignored, --timeout too (the server's own request timeout applies), and a
// non-zero --clock-offset is refused (exit 1), since it would stamp writes
// with another clock. No other environment is sent: $EBREPLICA_DIR is in
// DIR already, and the remote's credentials are the server's, whose
// replica talks to the remote. Progress drawn by the CLI (import, export,
// verify, the remote spinner) shows on the client's terminal; the engine's
// bars (push, pull, compact, a bootstrap), fixed when the server opened the
// replica, do not, and neither does pull's "loaded N records from the
// newest snapshot" (the server's syncer bootstraps a new replica first).
// status shows the server's replica as it is: "commits" counts those since
// the server opened it, and --json adds "live" (its syncer's state).

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/ebreplica/ebreplica/replica"
)

// cliPath is where the server takes forwarded commands.
const cliPath = "/v1/cli"

// Request frames.
const (
	frameCommand   = 1 // forwardRequest as JSON; the first frame
	frameStdin     = 2 // a chunk of stdin
	frameStdinEnd  = 3 // stdin ended (data: a read error's message, or empty)
	frameCancel    = 4 // the client was interrupted
	maxCommandSize = 64 << 20
)

// Response frames.
const (
	frameStdout = 1
	frameStderr = 2
	frameExit   = 3 // 4 bytes: the exit code; the last frame
)

// forwardRequest is the command the client sends. Byte slices keep
// arguments that are not UTF-8 (a binary value) as they are.
type forwardRequest struct {
	Args      [][]byte `json:"args"`       // as Run got them, global flags included
	Dir       []byte   `json:"dir"`        // DIR as the client resolved it (--dir, $EBREPLICA_DIR)
	Cwd       []byte   `json:"cwd"`        // the client's working directory
	Stdin     bool     `json:"stdin"`      // stdin frames follow
	StdoutTTY bool     `json:"stdout_tty"` // the client's stdout is a terminal
	StderrTTY bool     `json:"stderr_tty"` // the client's stderr is a terminal
}

// forwarded is what run returns when the server ran the command: its
// output is written, and Run returns code.
type forwarded struct{ code int }

func (f *forwarded) Error() string { return fmt.Sprintf("forwarded: exit %d", f.code) }

// heldEnv is set on an env that runs a forwarded command in the server.
type heldEnv struct {
	dir string // DIR as the client gave it, for messages
	cwd string // the client's working directory
	// tty: the client's stdout and stderr are terminals.
	stdoutTTY, stderrTTY bool
	// rounds: the rounds of the server's live syncer (nil: none runs).
	rounds *roundHub
}

// localOnly names the commands that never run through the server.
var localOnly = map[string]bool{"init": true, "completion": true, "demo": true, "sim": true, "version": true, "serve": true}

// opensDir reports whether the command (with its flags) opens DIR.
func (e *env) opensDir() bool {
	if localOnly[e.cmd.name] {
		return false
	}
	if _, ok := e.flags.value("remote"); ok && e.cmd.name == "verify" {
		return false
	}
	return true
}

// readsStdin reports whether the command reads stdin.
func (e *env) readsStdin() bool {
	switch e.cmd.name {
	case "put":
		return len(e.args) == 1
	case "import":
		return len(e.args) == 0 || e.args[0] == "-"
	}
	return false
}

// path resolves a file name the user gave: relative to the client's
// working directory when the command came through the server.
func (e *env) path(name string) string {
	if e.held == nil || e.held.cwd == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(e.held.cwd, name)
}

// isTerminal reports whether w is a terminal (for a forwarded command: the
// client's stdout or stderr).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// viaServer decides where the parsed command runs. In the client, when a
// server answers on DIR and the command opens DIR, it forwards the command
// and returns (true, *forwarded or an error); serve refuses to start when
// one answers. In the server, it refuses what cannot run on a held
// replica. (false, nil): run the command here.
func (e *env) viaServer(ctx context.Context, args []string) (bool, error) {
	if e.held != nil {
		e.dir = e.held.dir
		return false, e.heldRefusal()
	}
	sock := filepath.Join(e.dir, serveSocket)
	if e.cmd.name == "serve" {
		if c, ok := dialServer(ctx, sock); ok {
			c.Close()
			return true, errorf(nil, "a server already runs on %s (%s)", e.dir, serveSocket)
		}
		return false, nil
	}
	if !e.opensDir() {
		return false, nil
	}
	conn, ok := dialServer(ctx, sock)
	if !ok {
		return false, nil
	}
	code, err := e.forward(ctx, conn, args)
	if err != nil {
		return true, err
	}
	return true, &forwarded{code: code}
}

// dialServer connects to the server's socket; false when there is none or
// nothing answers on it.
func dialServer(ctx context.Context, sock string) (net.Conn, bool) {
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, false
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, false
	}
	return c, true
}

// heldRefusal is the error for a forwarded command that cannot run on the
// replica the server holds (nil when it can).
func (e *env) heldRefusal() error {
	name := e.cmd.name
	switch {
	case !e.opensDir():
		return errorf(nil, "%s does not run through the server", name)
	case e.wall != nil:
		return errorf(nil, "--clock-offset cannot change the clock of the replica `ebreplica serve` holds in %s; stop serve to run with it", e.dir)
	case name == "reidentify":
		return errorf(nil, "`ebreplica serve` holds %s and takes writes while the id would change; stop serve, run reidentify, then start serve again", e.dir)
	}
	return nil
}

// forward sends the command to the server on conn and copies its output to
// e's streams; it returns the command's exit code.
func (e *env) forward(ctx context.Context, conn net.Conn, args []string) (int, error) {
	cwd, _ := os.Getwd()
	fr := forwardRequest{Dir: []byte(e.dir), Cwd: []byte(cwd), Stdin: e.readsStdin(),
		StdoutTTY: isClearing(e.stdout), StderrTTY: isTerminal(e.stderr)}
	for _, a := range args {
		fr.Args = append(fr.Args, []byte(a))
	}
	hello, err := json.Marshal(fr)
	if err != nil {
		return 0, errorf(err, "forwarding to the server on %s: %v", e.dir, err)
	}

	// The request outlives an interrupt of ctx: the cancel goes as a frame
	// and the command's last output still comes back. abort drops it.
	reqCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	once := false
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		if !once {
			once = true
			return conn, nil
		}
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(e.dir, serveSocket))
	}, DisableKeepAlives: true,
		// The server answers at once, before the command runs: one that
		// does not (stopped, hung) is not waited for without end.
		ResponseHeaderTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	pr, pw := io.Pipe()
	body := &frameWriter{w: pw}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, "http://ebreplica"+cliPath, pr)
	if err != nil {
		return 0, errorf(err, "forwarding to the server on %s: %v", e.dir, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	done := make(chan struct{})
	defer close(done)
	defer pw.Close()
	sent := make(chan struct{}) // the command frame went first
	go func() {
		err := body.frame(frameCommand, hello)
		close(sent)
		if err != nil || !fr.Stdin {
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := e.stdin.Read(buf)
			if n > 0 && body.frame(frameStdin, buf[:n]) != nil {
				return
			}
			if err == io.EOF {
				body.frame(frameStdinEnd, nil)
				return
			}
			if err != nil {
				body.frame(frameStdinEnd, []byte(err.Error()))
				return
			}
		}
	}()
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		select {
		case <-done:
			return
		case <-sent:
		}
		body.frame(frameCancel, nil)
		// A server that does not end the command soon is left.
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			abort()
		}
	}()

	resp, err := tr.RoundTrip(req)
	if err != nil {
		return e.lostServer(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, errorf(nil, "the server on %s did not take the command: %s %s (is it an older ebreplica? stop it to run commands here)",
			e.dir, resp.Status, oneLine(strings.TrimSpace(string(msg))))
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		kind, n, err := readFrameHeader(br)
		if err != nil {
			return e.lostServer(ctx, err)
		}
		switch kind {
		case frameStdout, frameStderr:
			w := &errWriter{w: e.stdout}
			if kind == frameStderr {
				w.w = e.stderr
			}
			if _, err := io.CopyN(w, br, int64(n)); err != nil {
				if w.err == nil {
					return e.lostServer(ctx, err)
				}
				if kind == frameStdout {
					// As a local command whose stdout went away.
					abort()
					return 0, outputError(err)
				}
				return 0, errorf(err, "writing to stderr: %v", err)
			}
		case frameExit:
			var b [4]byte
			if n != 4 {
				return 0, errorf(nil, "the server on %s sent a malformed exit frame", e.dir)
			}
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return e.lostServer(ctx, err)
			}
			pw.Close() // the request ends; the server's handler returns
			return int(int32(binary.BigEndian.Uint32(b[:]))), nil
		default:
			return 0, errorf(nil, "the server on %s sent an unknown frame (kind %d)", e.dir, kind)
		}
	}
}

// lostServer is the error when the server's answer broke off.
func (e *env) lostServer(ctx context.Context, err error) (int, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err() // Run reports the interrupt
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return 0, errorf(err, "the server on %s stopped before the command ended: %v", e.dir, err)
}

// errWriter keeps the error of a failed write, to tell it from a failed
// read.
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// isClearing reports whether w is the terminal stdout wrapper of Run.
func isClearing(w io.Writer) bool {
	_, ok := w.(*clearingWriter)
	return ok
}

// frameWriter writes frames to w, one at a time.
type frameWriter struct {
	mu    sync.Mutex
	w     io.Writer
	flush func() error // after each frame, when set
}

func (f *frameWriter) frame(kind byte, data []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(data)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.w.Write(h[:]); err != nil {
		return err
	}
	if len(data) > 0 {
		if _, err := f.w.Write(data); err != nil {
			return err
		}
	}
	if f.flush != nil {
		return f.flush()
	}
	return nil
}

// stream is an io.Writer that sends each write as a frame of kind.
type stream struct {
	f    *frameWriter
	kind byte
}

func (s stream) Write(p []byte) (int, error) {
	const max = 1 << 20
	for i := 0; i < len(p); i += max {
		if err := s.f.frame(s.kind, p[i:min(i+max, len(p))]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// readFrameHeader reads a frame's kind and length.
func readFrameHeader(r io.Reader) (byte, uint32, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	return h[0], binary.BigEndian.Uint32(h[1:]), nil
}

// forwardHandler serves POST /v1/cli: it runs forwarded commands against
// r, the replica the server holds (never closing it), with the policies
// standIns names given stand-ins when r was opened (see env.standIns).
// When stop ends (the server shuts down), the commands that run until
// interrupted (watch, sync --watch) end as if interrupted (exit 0); the
// others finish.
//
// rounds, when the server runs a live syncer, carries its rounds to a
// forwarded sync --watch (nil: sync --watch runs its own syncer).
func forwardHandler(stop context.Context, r *replica.Replica, standIns map[string]bool, rounds *roundHub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, `{"error":"POST a command","code":"bad_request"}`, http.StatusMethodNotAllowed)
			return
		}
		// Only on the unix socket (mode 0600: this user): a command may read
		// the user's files (import FILE).
		if a, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); !ok || a.Network() != "unix" {
			http.Error(w, `{"error":"commands are taken on the unix socket only","code":"unauthorized"}`, http.StatusForbidden)
			return
		}
		rc := http.NewResponseController(w)
		// Stdin (and a cancel) arrive while the output goes back.
		if err := rc.EnableFullDuplex(); err != nil {
			http.Error(w, `{"error":"full duplex unavailable","code":"unavailable"}`, http.StatusInternalServerError)
			return
		}
		in := bufio.NewReaderSize(req.Body, 64<<10)
		fr, err := readCommand(in)
		if err != nil {
			msg, _ := json.Marshal(struct {
				Error string `json:"error"`
				Code  string `json:"code"`
			}{err.Error(), "bad_request"})
			http.Error(w, string(msg), http.StatusBadRequest)
			return
		}
		// A command runs as long as it runs (watch until interrupted): the
		// server's read and write timeouts are for API requests.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		out := &frameWriter{w: w, flush: rc.Flush}
		if out.flush() != nil {
			return
		}

		args := make([]string, len(fr.Args))
		for i, a := range fr.Args {
			args[i] = string(a)
		}
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		if endless(args) {
			defer context.AfterFunc(stop, cancel)()
		}
		var stdin io.Reader = strings.NewReader("")
		spr, spw := io.Pipe()
		if fr.Stdin {
			stdin = spr
		}
		defer spr.Close()
		if !fr.Stdin {
			spr.Close() // stdin frames of a client that said none are dropped
		}
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			readRequestFrames(in, spw, cancel)
		}()

		e := &env{stdin: stdin, stderr: stream{out, frameStderr}, rep: r, standIns: standIns,
			held: &heldEnv{dir: string(fr.Dir), cwd: string(fr.Cwd), stdoutTTY: fr.StdoutTTY, stderrTTY: fr.StderrTTY, rounds: rounds}}
		e.stdout = stream{out, frameStdout}
		if fr.StdoutTTY {
			e.stdout = &clearingWriter{w: e.stdout, e: e}
		}
		code := e.execute(ctx, args)
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
		if out.frame(frameExit, b[:]) != nil {
			return
		}
		// The client ends its side when the exit frame arrives.
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case <-readDone:
		case <-req.Context().Done():
		case <-t.C:
		}
	})
}

// forwardCLI is forwardHandler, for serve, set by init (as completionCmd's
// run): serve's command would otherwise reach commandTable, which lists
// it, through the forwarded commands (an initialization cycle).
var forwardCLI func(stop context.Context, r *replica.Replica, standIns map[string]bool, rounds *roundHub) http.Handler

func init() { forwardCLI = forwardHandler }

// endless reports whether args run until interrupted (watch, sync --watch).
func endless(args []string) bool {
	rest, err := parseFlags(args, globalFlags, &parsed{}, true)
	if err != nil || len(rest) == 0 {
		return false
	}
	c := lookup(rest[0])
	if c == nil {
		return false
	}
	p := &parsed{}
	if _, err := parseFlags(rest[1:], append(append([]flagDef{}, globalFlags...), c.flags...), p, false); err != nil {
		return false
	}
	return c.name == "watch" || c.name == "sync" && p.bool("watch")
}

// readCommand reads the first frame of a forwarded command.
func readCommand(in io.Reader) (forwardRequest, error) {
	var fr forwardRequest
	kind, n, err := readFrameHeader(in)
	if err != nil {
		return fr, fmt.Errorf("reading the command: %v", err)
	}
	if kind != frameCommand || n > maxCommandSize {
		return fr, fmt.Errorf("the first frame must be the command (kind %d, at most %d bytes)", frameCommand, maxCommandSize)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(in, b); err != nil {
		return fr, fmt.Errorf("reading the command: %v", err)
	}
	if err := json.Unmarshal(b, &fr); err != nil {
		return fr, fmt.Errorf("the command: %v", err)
	}
	return fr, nil
}

// copyStdin passes a stdin frame of n bytes to stdin while the command reads
// it (open), and drops it after; false when the request broke off.
func copyStdin(in io.Reader, stdin *io.PipeWriter, n uint32, open *bool) bool {
	var buf [32 << 10]byte
	for left := int(n); left > 0; {
		m, err := io.ReadFull(in, buf[:min(left, len(buf))])
		left -= m
		if err != nil {
			return false
		}
		if *open {
			if _, err := stdin.Write(buf[:m]); err != nil {
				*open = false // the command stopped reading
			}
		}
	}
	return true
}

// readRequestFrames passes the stdin frames after the command to stdin, and
// cancels the command when the client asks or its request breaks off.
func readRequestFrames(in io.Reader, stdin *io.PipeWriter, cancel func()) {
	stdinOpen := true
	defer func() {
		if stdinOpen {
			stdin.CloseWithError(errors.New("the client went away"))
		}
	}()
	for {
		kind, n, err := readFrameHeader(in)
		if errors.Is(err, io.EOF) {
			// The body ended cleanly: the client has nothing more to say
			// (ours ends it once it has the exit code; a request made by
			// hand may end it at once). A client that goes away breaks
			// the body instead (below), or its connection ends the
			// request's context.
			return
		}
		if err != nil {
			cancel() // a broken body: the client is gone
			return
		}
		switch kind {
		case frameStdin:
			if !copyStdin(in, stdin, n, &stdinOpen) {
				cancel()
				return
			}
		case frameStdinEnd:
			msg := make([]byte, min(n, 4<<10))
			if _, err := io.ReadFull(in, msg); err != nil {
				cancel()
				return
			}
			if _, err := io.CopyN(io.Discard, in, int64(n)-int64(len(msg))); err != nil {
				cancel()
				return
			}
			if stdinOpen {
				if len(msg) > 0 {
					stdin.CloseWithError(errors.New(string(msg)))
				} else {
					stdin.Close()
				}
				stdinOpen = false
			}
		case frameCancel:
			cancel()
			if stdinOpen { // a command waiting for stdin stops too
				stdin.CloseWithError(context.Canceled)
				stdinOpen = false
			}
		default:
			cancel()
			return
		}
	}
}
