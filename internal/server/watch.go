package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/replica"
)

// watchQueue is how many changes a watch stream holds between the feed
// and its client: the feed is read from the store as the client takes
// them, so a slow client costs this much memory at most, and never holds
// a writer up.
const watchQueue = 64

// feedTooOld is the answer to a watch resumed after a change the feed no
// longer keeps.
func feedTooOld(err error) *apiError {
	return &apiError{status: http.StatusGone, code: codeNotFound,
		msg:   libMessage(err) + ": re-read the keys, then watch from now",
		extra: map[string]any{"reason": "feed_too_old"}}
}

// watch answers GET /v1/watch?prefix=P&since=SEQ with Server-Sent Events:
// one event per change, its id the change's sequence number, its data the
// line `watch --json` prints. A Last-Event-ID header (an EventSource's
// reconnect) resumes after that number, as since does; without either the
// stream starts from now. A resume older than the feed keeps is 410
// before the stream starts, or an "error" event ending it when a client
// falls that far behind. Idle streams carry a comment every Heartbeat. A
// client that takes no event for WriteTimeout is dropped.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	prefix := q.Get("prefix")
	var since uint64
	if id := strings.TrimSpace(r.Header.Get("Last-Event-ID")); id != "" {
		if since, err = strconv.ParseUint(id, 10, 64); err != nil {
			s.failErr(w, r, badRequest("Last-Event-ID %q is not a sequence number", id))
			return
		}
	} else if v := q.Get("since"); v != "" {
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			s.failErr(w, r, badRequest("query parameter since=%q is not a sequence number", v))
			return
		}
	} else if since, err = s.r.FeedSeq(); err != nil {
		s.failErr(w, r, err)
		return
	}
	// A resume the feed cannot serve is an error answer, not a stream:
	// the first read of a watch whose context has ended tells, at once.
	probe, stop := context.WithCancel(r.Context())
	stop()
	for _, err := range s.r.Watch(probe, prefix, since) {
		if err != nil {
			if errors.Is(err, replica.ErrFeedTooOld) {
				s.failWith(w, r, feedTooOld(err))
			} else {
				s.failErr(w, r, err)
			}
			return
		}
		break
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	type event struct {
		c   replica.Change
		err error
	}
	events := make(chan event, watchQueue)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(events)
		for c, err := range s.r.Watch(ctx, prefix, since) {
			select {
			case events <- event{c, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { cancel(); <-done }()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	send := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.o.WriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		buf.Reset()
		return rc.Flush() == nil
	}
	add := func(e event) (ok bool) {
		if e.err != nil {
			ae := libError(e.err)
			if errors.Is(e.err, replica.ErrFeedTooOld) {
				ae = feedTooOld(e.err)
			}
			obj := map[string]any{"error": oneLine(ae.msg), "code": ae.code}
			for k, v := range ae.extra {
				obj[k] = v
			}
			b, _ := marshal(orderedError{obj})
			fmt.Fprintf(&buf, "event: error\ndata: %s\n", b)
			return false
		}
		b, err := marshal(e.c)
		if err != nil {
			return false
		}
		fmt.Fprintf(&buf, "id: %d\ndata: %s\n", e.c.Seq, b)
		return true
	}
	fmt.Fprintf(&buf, ": watching %q after %d\n\n", prefix, since)
	if !send() {
		return
	}
	hb := time.NewTicker(s.o.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			more := add(e)
			// Take what else is queued, then write it at once.
			for more && len(events) > 0 && buf.Len() < 32<<10 {
				e, ok = <-events
				if !ok {
					more = false
					break
				}
				more = add(e)
			}
			if !send() || !more {
				return
			}
		case <-hb.C:
			buf.WriteString(": heartbeat\n\n")
			if !send() {
				return
			}
		case <-s.closing:
			return
		case <-ctx.Done():
			return
		}
	}
}
