package server

import (
	"errors"
	"net/http"

	"github.com/ebreplica/ebreplica/replica"
)

// smallBody bounds the JSON bodies of counter and set requests: the
// members of a set request are values of the key, so the value limit, with
// room for the JSON around them.
func (s *Server) smallBody() int64 { return int64(s.o.MaxValueSize) + 64<<10 }

// counter answers GET and POST {"delta":n} on /v1/counter/{key}: {"value":n}.
func (s *Server) counter(w http.ResponseWriter, r *http.Request, escaped string) {
	key, err := pathKey(escaped)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	type answer struct {
		Value int64 `json:"value"`
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		v, err := s.r.CounterValue(key)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, answer{v})
	case http.MethodPost:
		body, err := readBody(w, r, s.smallBody())
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		var req struct {
			Delta *int64 `json:"delta"`
		}
		if err := decodeJSON(body, &req); err != nil {
			s.failErr(w, r, err)
			return
		}
		if req.Delta == nil {
			s.failErr(w, r, &apiError{status: http.StatusBadRequest, code: codeBadRequest,
				msg: `field "delta" is missing: {"delta":n}`, extra: map[string]any{"field": "delta"}})
			return
		}
		v, err := s.r.CounterAdd(r.Context(), key, *req.Delta)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, answer{v})
	default:
		s.notAllowed(w, r, "GET, HEAD, POST")
	}
}

// set answers GET and POST {"add":[..],"remove":[..]} on /v1/set/{key}:
// {"members":[..]}. A POST adds, then removes (two writes: an add lands
// even when the remove then fails).
func (s *Server) set(w http.ResponseWriter, r *http.Request, escaped string) {
	key, err := pathKey(escaped)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	type answer struct {
		Members []string `json:"members"`
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		m, err := s.r.SetMembers(key)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, answer{nonNil(m)})
	case http.MethodPost:
		body, err := readBody(w, r, s.smallBody())
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		var req struct {
			Add    []string `json:"add"`
			Remove []string `json:"remove"`
		}
		if err := decodeJSON(body, &req); err != nil {
			s.failErr(w, r, err)
			return
		}
		if len(req.Add) == 0 && len(req.Remove) == 0 {
			s.failErr(w, r, &apiError{status: http.StatusBadRequest, code: codeBadRequest,
				msg: `fields "add" and "remove" are both empty: {"add":[..],"remove":[..]}`, extra: map[string]any{"field": "add"}})
			return
		}
		if len(req.Add) > 0 {
			if err := s.r.SetAdd(r.Context(), key, req.Add...); err != nil {
				s.failErr(w, r, err)
				return
			}
		}
		if len(req.Remove) > 0 {
			if err := s.r.SetRemove(r.Context(), key, req.Remove...); err != nil {
				s.failErr(w, r, err)
				return
			}
		}
		m, err := s.r.SetMembers(key)
		if err != nil && !errors.Is(err, replica.ErrNotFound) {
			s.failErr(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, answer{nonNil(m)})
	default:
		s.notAllowed(w, r, "GET, HEAD, POST")
	}
}

func nonNil(m []string) []string {
	if m == nil {
		return []string{}
	}
	return m
}
