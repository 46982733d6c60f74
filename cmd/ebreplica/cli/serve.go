package cli

import (
	"context"
	"errors"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/internal/server"
	"github.com/ebreplica/ebreplica/internal/server/inspector"
	"github.com/ebreplica/ebreplica/replica"
)

var serveCmd = &command{
	name:    "serve",
	summary: "hold the replica open, sync it live and answer the HTTP API on DIR/api.sock (and --listen ADDR)",
	help: `Answers the local HTTP API (API.md) on the unix socket DIR/api.sock
(mode 0600) and, with --listen, on a TCP address: a loopback one
(127.0.0.1:PORT, [::1]:PORT, localhost:PORT) unless --token-file F is given,
whose token (the file's content, trimmed) every TCP request must then carry
as "Authorization: Bearer <token>" (401 otherwise, nothing changed;
requests on the socket need none: its mode admits only its owner). It syncs
live meanwhile, as sync --watch does (pull every --interval, default 5s;
push soon after each write; back off on errors). Log lines go to stderr:
where it listens, each failed sync round, the shutdown. SIGINT or SIGTERM
shut it down gracefully (exit 0): it stops accepting, finishes the requests
in flight, stops the syncer, closes the replica and removes api.sock. A
write answered with success is on disk. A second serve on DIR fails with
"a server already runs on DIR".`,
	flags: []flagDef{
		{name: "listen", value: true, arg: "ADDR", usage: "also answer on TCP ADDR (loopback unless --token-file is given)"},
		{name: "token-file", value: true, arg: "F", usage: "require the bearer token in file F on TCP requests"},
		{name: "interval", value: true, arg: "D", usage: "pull every D (default 5s, jittered)"},
	},
	maxArgs: 0,
	run:     runServe,
}

func runServe(ctx context.Context, e *env) error {
	var interval time.Duration
	if s, ok := e.flags.value("interval"); ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return usageErrorf("--interval %q is not a positive Go duration (such as 5s, 1m)", s)
		}
		interval = d
	}
	var token string
	if f, ok := e.flags.value("token-file"); ok {
		b, err := os.ReadFile(f)
		if err != nil {
			return errorf(err, "reading the token file: %v", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return errorf(nil, "the token file %s is empty", f)
		}
	}
	listen, hasListen := e.flags.value("listen")
	if hasListen {
		if err := checkListen(listen, token != ""); err != nil {
			return err
		}
	}

	reg := replica.NewMetricsRegistry()
	e.tune = func(o *replica.Options) { o.Metrics = reg }
	r, err := e.open()
	if err != nil {
		return err
	}
	logger := log.New(e.stderr, "ebreplica: serve: ", 0) // a Logger serialises its writes

	sock := filepath.Join(e.dir, serveSocket)
	unixL, err := listenSocket(ctx, e.dir, sock)
	if err != nil {
		return err
	}
	listeners := []net.Listener{unixL}
	defer os.Remove(sock)
	logger.Printf("listening on %s", sock)
	if hasListen {
		tcpL, err := net.Listen("tcp", listen)
		if err != nil {
			unixL.Close()
			return errorf(err, "listening on %s: %v", listen, err)
		}
		listeners = append(listeners, tcpL)
		logger.Printf("listening on http://%s", tcpL.Addr())
	}

	var rounds *roundHub // the syncer's rounds, for a forwarded sync --watch
	if r.RemoteURL() != "" {
		rounds = &roundHub{}
	}
	srv := server.New(r, server.Options{Token: token, Metrics: reg, ErrorLog: logger, CLI: forwardCLI(ctx, r, e.standIns, rounds),
		Inspector: inspector.Handler()})

	syncCtx, stopSync := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if r.RemoteURL() != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failing := false
			_ = r.Run(syncCtx, replica.LiveOptions{Interval: interval, OnRound: func(rd replica.Round) {
				rounds.publish(rd)
				if rd.Err == nil {
					e.releaseStartupPages()
				}
				switch {
				case rd.Err != nil:
					failing = true
					logger.Printf("sync: %s; next try in %v", trimLib(rd.Err), rd.Backoff.Round(time.Millisecond))
				case failing:
					failing = false
					logger.Printf("sync: online again")
				}
			}})
		}()
	} else {
		e.releaseStartupPages() // no syncer: open is the last of start-up
	}

	served, logged := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(logged)
		select {
		case <-ctx.Done():
		case <-served:
			if ctx.Err() == nil {
				return // a listener failed: its error says so
			}
		}
		logger.Printf("shutting down: finishing the requests in flight")
	}()
	serr := srv.Serve(ctx, listeners...)
	close(served)
	<-logged
	logger.Printf("stopping the syncer, closing the replica")
	stopSync()
	wg.Wait()
	cerr := r.Close()
	e.rep = nil
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) && serr == nil {
		serr = err
	}
	if serr != nil {
		return errorf(serr, "%v", serr)
	}
	if cerr != nil {
		return errorf(cerr, "closing replica in %s: %s", e.dir, trimLib(cerr))
	}
	logger.Printf("stopped")
	return nil
}

// checkListen refuses a TCP address that is not loopback unless a token
// guards it.
func checkListen(addr string, haveToken bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageErrorf("--listen %q is not HOST:PORT (such as 127.0.0.1:8080): %v", addr, err)
	}
	if haveToken || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usageErrorf("--listen %s is not a loopback address: anyone who reaches it could read and write the replica; give --token-file F to require a bearer token, or listen on 127.0.0.1 or [::1]", addr)
}

// listenSocket listens on the unix socket sock in dir, mode 0600. The
// caller holds the replica's directory lock, so a socket file there is a
// stale one unless something answers on it (then this fails). The socket
// is bound under a temporary name, made 0600, then renamed into place, so
// it is never reachable with a wider mode.
func listenSocket(ctx context.Context, dir, sock string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(sock); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, errorf(nil, "%s exists and is not a socket: move it away to serve %s", sock, dir)
		}
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := d.DialContext(dctx, "unix", sock)
		cancel()
		if err == nil {
			c.Close()
			return nil, errorf(nil, "a server already runs on %s (%s)", dir, serveSocket)
		}
		if err := os.Remove(sock); err != nil {
			return nil, errorf(err, "removing the stale socket %s: %v", sock, err)
		}
	}
	// Only this process holds dir: a fixed temporary name is safe, and one
	// left by a server that died is stale.
	tmp := filepath.Join(dir, "."+serveSocket)
	if len(tmp) > maxSocketPath {
		return nil, errorf(nil, "cannot listen on %s: a unix socket's path is at most %d bytes, and %s is %d; give a shorter --dir (or a symbolic link to it)", sock, maxSocketPath, tmp, len(tmp))
	}
	_ = os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, errorf(err, "listening on %s: %v", sock, err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, errorf(err, "listening on %s: %v", sock, err)
	}
	if err := os.Rename(tmp, sock); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, errorf(err, "listening on %s: %v", sock, err)
	}
	return l, nil
}

// serveSocket is the server's unix socket in the replica directory.
const serveSocket = "api.sock"

// maxSocketPath is the longest path a unix socket may have (sun_path
// holds 108 bytes on Linux, 104 on the BSDs and macOS, with its NUL).
const maxSocketPath = 103
