package server

import (
	"net/http"
	"time"

	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/replica"
)

// syncOp answers POST /v1/sync, /v1/push and /v1/pull: it runs one now and
// answers the stats object the command's --json prints (the same bytes).
// An error is 503 unavailable, with a push's "pending" count.
func (s *Server) syncOp(w http.ResponseWriter, r *http.Request, op string) {
	var (
		stats   any
		err     error
		pending int64 = -1
	)
	switch op {
	case "sync":
		var st replica.SyncStats
		st, err = s.r.Sync(r.Context())
		stats, pending = st, st.Push.Pending
	case "push":
		var st replica.PushStats
		st, err = s.r.Push(r.Context())
		stats, pending = st, st.Pending
	case "pull":
		stats, err = s.r.Pull(r.Context())
	}
	if err != nil {
		ae := libError(err)
		ae.msg = op + ": " + ae.msg
		if op != "pull" {
			ae.extra = map[string]any{"pending": pending}
		}
		s.failWith(w, r, ae)
		return
	}
	s.writeJSON(w, r, http.StatusOK, stats)
}

// liveJSON is the "live" object of GET /v1/status: API.md's fields
// (online, last_ok, last_error, lag; null when none) and the rest of the
// syncer's state under the names replica.LiveStatus gives them (status
// --json run through the server shows that object).
type liveJSON struct {
	Online      bool          `json:"online"`
	LastOK      *time.Time    `json:"last_ok"`
	LastError   *string       `json:"last_error"`
	Lag         uint64        `json:"lag"`
	Running     bool          `json:"running"`
	Rounds      int64         `json:"rounds"`
	LastSuccess *time.Time    `json:"last_success"` // = last_ok, the engine's name
	LastErrorAt *time.Time    `json:"last_error_at"`
	ErrorsInRow int64         `json:"errors_in_row"`
	Errors      int64         `json:"errors"`
	Backoff     time.Duration `json:"backoff_ns"`
}

// statusJSON is GET /v1/status: what `status --json` prints (the replica's
// Status, its remote URL redacted) followed by "live".
type statusJSON struct {
	replica.Status
	Live liveJSON `json:"live"`
}

// statusObject is the object GET /v1/status answers: the replica's status
// as `ebreplica status --json` prints it, plus "live" (the live syncer's
// state; running false when none runs).
func statusObject(r *replica.Replica) (any, error) {
	st, err := r.Status()
	if err != nil {
		return nil, err
	}
	st.RemoteURL = remoteurl.Redact(st.RemoteURL)
	out := statusJSON{Status: st}
	if l := st.Live; l != nil {
		out.Live = liveJSON{Online: l.Online, LastOK: l.LastSuccess, LastSuccess: l.LastSuccess, Lag: l.Lag, Running: l.Running,
			Rounds: l.Rounds, LastErrorAt: l.LastErrorAt, ErrorsInRow: l.ErrorsInRow, Errors: l.Errors, Backoff: l.Backoff}
		if l.LastError != "" {
			msg := l.LastError
			out.Live.LastError = &msg
		}
	}
	out.Status.Live = nil
	return out, nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := statusObject(s.r)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, st)
}
