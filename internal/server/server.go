// Package server answers the local HTTP API of ebreplica (the contract is
// API.md, `ebreplica serve`) over one open replica: keys, batches, paged
// listings, versions, counters, sets, the change feed as Server-Sent
// Events, sync triggers, status, health and metrics. The inspector page and
// the command line's forwarding are handlers given in Options.
//
// Errors are one JSON object {"error":"one line","code":C} with the
// matching status:
//
//	400 bad_request   invalid key, malformed JSON (the field named), a bad
//	                  query parameter, a write of the wrong kind for the
//	                  key's policy; 405 (wrong method, with Allow) also says
//	                  bad_request
//	401 unauthorized  missing or wrong bearer token
//	404 not_found     key not live, unknown path
//	409 conflict      concurrent versions under the mv policy
//	410 not_found     /v1/watch resumed after a change the feed no longer
//	                  keeps ("reason":"feed_too_old")
//	413 too_large     a value or request body over the limit; nothing written
//	503 unavailable   the remote failed a sync, push or pull; the replica is
//	                  closing
//
// Nothing is written by a request that is answered with an error (but a
// set POST's add and remove are two writes: a store failure between them
// keeps the add).
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ebreplica/ebreplica/replica"
)

// Defaults of Options.
const (
	// DefaultMaxBatchSize bounds the body of POST /v1/batch.
	DefaultMaxBatchSize = 64 << 20
	// DefaultReadHeaderTimeout bounds reading a request's headers (a
	// client sending them a byte at a time is cut off).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included.
	DefaultReadTimeout = 2 * time.Minute
	// DefaultIdleTimeout closes a kept-alive connection idle this long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultWriteTimeout bounds writing one response, or one event of a
	// /v1/watch stream: a client that reads nothing for this long is
	// dropped.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultHeartbeat is how often an idle /v1/watch stream sends an
	// SSE comment.
	DefaultHeartbeat = 15 * time.Second
	// DefaultShutdownTimeout bounds how long Serve waits for in-flight
	// requests when its context ends.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultListLimit and MaxListLimit: the page size of GET /v1/kv when
	// limit is not given, and the largest one taken.
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// Token, when set, must be carried by every request as
	// "Authorization: Bearer <token>" (all paths, /healthz, /metrics and /
	// included), else 401 and nothing changes. A request that arrives on
	// a unix socket served by Serve needs none: the socket's file mode
	// (0600) admits only its owner.
	Token string
	// Inspector serves GET / (404 when nil).
	Inspector http.Handler
	// CLI serves /v1/cli and the paths under it (404 when nil): the
	// command line's forwarding.
	CLI http.Handler
	// Metrics is gathered for GET /metrics (404 when nil).
	Metrics prometheus.Gatherer
	// MaxValueSize is the largest value a request may carry
	// (replica.DefaultMaxValueSize when 0); give the replica's when it
	// was opened with another. A larger body is 413 before it is read.
	MaxValueSize int
	// MaxBatchSize bounds the body of POST /v1/batch (DefaultMaxBatchSize).
	MaxBatchSize int64
	// ReadHeaderTimeout, ReadTimeout, IdleTimeout: the http.Server's (see
	// the defaults). There is no overall write timeout (the watch stream
	// is long-lived): WriteTimeout bounds each response write and each
	// event instead.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	WriteTimeout                                time.Duration
	// Heartbeat is the interval of a watch stream's keep-alive comments.
	Heartbeat time.Duration
	// ShutdownTimeout bounds Serve's wait for in-flight requests.
	ShutdownTimeout time.Duration
	// ErrorLog receives the http.Server's errors (nil: the log package's
	// standard logger).
	ErrorLog *log.Logger
}

func (o Options) withDefaults() Options {
	if o.MaxValueSize <= 0 {
		o.MaxValueSize = replica.DefaultMaxValueSize
	}
	if o.MaxBatchSize <= 0 {
		o.MaxBatchSize = DefaultMaxBatchSize
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	return o
}

// Server answers the API over one replica. It is an http.Handler; Serve
// runs it on listeners with the timeouts of Options.
type Server struct {
	r       *replica.Replica
	o       Options
	token   [sha256.Size]byte
	metrics http.Handler

	batchSlots chan struct{} // one per batch being read or applied (batchReaders)

	closeOnce sync.Once
	closing   chan struct{} // closed when Serve shuts down: watch streams end
	inflight  sync.WaitGroup
}

// New returns a server over r. The caller keeps r open while the server
// runs and closes it after Serve has returned.
func New(r *replica.Replica, o Options) *Server {
	s := &Server{r: r, o: o.withDefaults(), closing: make(chan struct{}), batchSlots: make(chan struct{}, batchReaders)}
	if s.o.Token != "" {
		s.token = sha256.Sum256([]byte(s.o.Token))
	}
	if s.o.Metrics != nil {
		s.metrics = promhttp.HandlerFor(s.o.Metrics, promhttp.HandlerOpts{})
	}
	return s
}

// batchReaders is how many POST /v1/batch requests are read and applied at
// once.
const batchReaders = 4

type unixConnKey struct{}

// Serve answers requests on every listener until ctx ends, then shuts down
// gracefully: it stops accepting, ends the watch streams, waits for the
// requests in flight (at most ShutdownTimeout, after which their
// connections are closed) and returns nil. A listener that fails ends
// Serve the same way, returning its error. The listeners are closed on
// return.
func (s *Server) Serve(ctx context.Context, listeners ...net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.o.ReadHeaderTimeout,
		ReadTimeout:       s.o.ReadTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		ErrorLog:          s.o.ErrorLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if _, ok := c.(*net.UnixConn); ok {
				return context.WithValue(ctx, unixConnKey{}, true)
			}
			return ctx
		},
	}
	hs.RegisterOnShutdown(s.closeStreams)
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- hs.Serve(l) }()
	}
	var err error
	pending := len(listeners) // hs.Serve calls yet to return
	select {
	case <-ctx.Done():
	case err = <-errc:
		pending--
	}
	s.closeStreams()
	sctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownTimeout)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		_ = hs.Close()
	}
	// Handlers still running after a forced close see their contexts
	// cancelled; the replica must not be closed under them.
	s.inflight.Wait()
	for range pending {
		if e := <-errc; err == nil && !errors.Is(e, http.ErrServerClosed) {
			err = e
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) closeStreams() { s.closeOnce.Do(func() { close(s.closing) }) }

// authorized reports whether r may be served.
func (s *Server) authorized(r *http.Request) bool {
	if s.o.Token == "" {
		return true
	}
	if v, _ := r.Context().Value(unixConnKey{}).(bool); v {
		return true
	}
	auth := r.Header.Get("Authorization")
	const scheme = "Bearer "
	if len(auth) < len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(scheme):])))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
}

// csrf refuses a state-changing request that a browser sent from another
// origin (Sec-Fetch-Site, or Origin against Host).
var csrf = http.NewCrossOriginProtection()

// browserAbuse names why a request that a web page in a browser could have
// made must be refused ("" when it may be served), without a token to stop
// it:
//   - a write (any method but GET, HEAD, OPTIONS) sent cross-origin: a page
//     of another site posting to the loopback API (CSRF);
//   - on TCP without a token, a Host that is not a loopback name: a page
//     whose site name was rebound to 127.0.0.1 (DNS rebinding) reading or
//     writing the API as its own origin.
//
// The unix socket is not reachable from a browser; the inspector page's
// own requests are same-origin with a loopback Host and pass both.
func (s *Server) browserAbuse(r *http.Request) string {
	if v, _ := r.Context().Value(unixConnKey{}).(bool); v {
		return ""
	}
	if err := csrf.Check(r); err != nil {
		return "cross-origin request refused (a page of another site may not write to this API)"
	}
	if s.o.Token == "" && !loopbackHost(r.Host) {
		return fmt.Sprintf("Host %q is not a loopback address or localhost: refused without a token (DNS rebinding)", r.Host)
	}
	return ""
}

// loopbackHost reports whether a Host header names this machine: a
// loopback IP literal or localhost, with or without a port.
func loopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ServeHTTP routes a request. Paths are matched on their escaped form, so a
// key holding "/" or "%2F" is one path element of /v1/kv/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ebreplica"`)
		s.fail(w, r, http.StatusUnauthorized, codeUnauthorized, "missing or wrong bearer token (Authorization: Bearer <token>)")
		return
	}
	if msg := s.browserAbuse(r); msg != "" {
		s.fail(w, r, http.StatusForbidden, codeUnauthorized, msg)
		return
	}
	p := r.URL.EscapedPath()
	switch {
	case p == "/healthz":
		if s.method(w, r, http.MethodGet) {
			s.writeJSON(w, r, http.StatusOK, struct {
				OK bool `json:"ok"`
			}{true})
		}
	case p == "/":
		if s.o.Inspector == nil {
			s.fail(w, r, http.StatusNotFound, codeNotFound, "no inspector page in this server")
			return
		}
		if s.method(w, r, http.MethodGet) {
			s.o.Inspector.ServeHTTP(w, r)
		}
	case p == "/metrics":
		if s.metrics == nil {
			s.fail(w, r, http.StatusNotFound, codeNotFound, "no metrics in this server")
			return
		}
		if s.method(w, r, http.MethodGet) {
			s.metrics.ServeHTTP(w, r)
		}
	case p == "/v1/kv":
		if s.method(w, r, http.MethodGet) {
			s.list(w, r)
		}
	case strings.HasPrefix(p, "/v1/kv/"):
		s.kv(w, r, strings.TrimPrefix(p, "/v1/kv/"))
	case p == "/v1/batch":
		if s.method(w, r, http.MethodPost) {
			s.batch(w, r)
		}
	case strings.HasPrefix(p, "/v1/counter/"):
		s.counter(w, r, strings.TrimPrefix(p, "/v1/counter/"))
	case strings.HasPrefix(p, "/v1/set/"):
		s.set(w, r, strings.TrimPrefix(p, "/v1/set/"))
	case p == "/v1/watch":
		if r.Method != http.MethodGet {
			s.notAllowed(w, r, http.MethodGet)
			return
		}
		s.watch(w, r)
	case p == "/v1/sync" || p == "/v1/push" || p == "/v1/pull":
		if s.method(w, r, http.MethodPost) {
			s.syncOp(w, r, strings.TrimPrefix(p, "/v1/"))
		}
	case p == "/v1/status":
		if s.method(w, r, http.MethodGet) {
			s.status(w, r)
		}
	case p == "/v1/cli" || strings.HasPrefix(p, "/v1/cli/"):
		if s.o.CLI == nil {
			s.fail(w, r, http.StatusNotFound, codeNotFound, "no command forwarding in this server")
			return
		}
		// A forwarded command streams its stdin (and a cancel) in the
		// body for as long as it runs: ReadTimeout must not cut it.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		s.o.CLI.ServeHTTP(w, r)
	default:
		s.fail(w, r, http.StatusNotFound, codeNotFound, "no such resource: "+r.Method+" "+p)
	}
}

// method reports whether r's method is want (GET also admits HEAD);
// otherwise it answers 405.
func (s *Server) method(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method == want || want == http.MethodGet && r.Method == http.MethodHead {
		return true
	}
	allow := want
	if want == http.MethodGet {
		allow += ", HEAD"
	}
	s.notAllowed(w, r, allow)
	return false
}

func (s *Server) notAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	s.fail(w, r, http.StatusMethodNotAllowed, codeBadRequest, "method "+r.Method+" not allowed on "+r.URL.EscapedPath()+" (allowed: "+allow+")")
}
