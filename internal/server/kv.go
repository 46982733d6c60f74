package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

// pathKey decodes the URL-path-escaped key of a resource path and checks
// it (400 naming what is wrong).
func pathKey(escaped string) (string, error) {
	key, err := url.PathUnescape(escaped)
	if err != nil {
		return "", badRequest("invalid key: the path is not properly escaped: %v", err)
	}
	if err := replica.ValidateKey(key); err != nil {
		return "", badRequest("%s", libMessage(err))
	}
	return key, nil
}

// query parses the query string, refusing a malformed one.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: %v", err)
	}
	return q, nil
}

// flag reads a boolean query parameter ("1", "true"; absent: false).
func flag(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %s=%q is not a boolean (1 or 0)", name, v)
	}
	return b, nil
}

// contextHeader carries a read's causal context (opaque): answered with
// every read of a key, honoured by PUT and DELETE, which then supersede
// only the versions that read saw.
const contextHeader = "X-Ebreplica-Context"

func (s *Server) kv(w http.ResponseWriter, r *http.Request, escaped string) {
	key, err := pathKey(escaped)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r, key)
	case http.MethodPut:
		s.put(w, r, key)
	case http.MethodDelete:
		s.del(w, r, key)
	case http.MethodPatch:
		s.patch(w, r, key)
	default:
		s.notAllowed(w, r, "GET, HEAD, PUT, PATCH, DELETE")
	}
}

// versionJSON is one concurrent version, as ?all=1 and a 409 show it:
// API.md's fields (value_b64, deleted, replica_id, hlc as a decimal
// string) and, additively, the value as text when it is UTF-8, the HLC as
// text, the dot's counter and whether the policy reads it.
type versionJSON struct {
	ValueB64  string  `json:"value_b64"`
	Value     *string `json:"value,omitempty"`
	Deleted   bool    `json:"deleted"`
	ReplicaID string  `json:"replica_id"`
	HLC       uint64  `json:"hlc,string"`
	Time      string  `json:"time"`
	Counter   uint64  `json:"counter"`
	Winner    bool    `json:"winner"`
}

func (s *Server) versionsJSON(key string, vs []replica.Version) []versionJSON {
	pol := s.r.Policies().For(key).Name()
	isDoc := pol == merge.NameJSON || pol == merge.NameJSONMV
	out := make([]versionJSON, 0, len(vs))
	for _, v := range vs {
		val := v.Value
		if isDoc && !v.Deleted {
			val = versionDocument(val)
		}
		j := versionJSON{ValueB64: base64.StdEncoding.EncodeToString(val), Deleted: v.Deleted,
			ReplicaID: v.Replica.String(), HLC: uint64(v.Time), Time: v.Time.String(),
			Counter: v.Counter, Winner: v.Winner}
		if !v.Deleted && utf8.Valid(val) {
			t := string(val)
			j.Value = &t
		}
		out = append(out, j)
	}
	return out
}

// versionDocument is the document one version of a json key holds (as get
// --all shows it): its state as JSON, {} when it has no fields, or the raw
// bytes when they are not a document state.
func versionDocument(state []byte) []byte {
	st, err := merge.DecodeDoc(state)
	if err != nil {
		return state
	}
	if doc, ok := st.Document(); ok {
		return doc
	}
	return []byte("{}")
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, key string) {
	q, err := query(r)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	all, err := flag(q, "all")
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	if all {
		vs, cc, err := s.r.VersionsWithContext(key)
		if err == nil && len(vs) == 0 {
			err = fmt.Errorf("%w: %q", replica.ErrNotFound, key)
		}
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		vec, err := replica.ContextVector(cc)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		w.Header().Set(contextHeader, string(cc))
		s.writeJSON(w, r, http.StatusOK, struct {
			Versions []versionJSON     `json:"versions"`
			Context  string            `json:"context"`
			Vector   map[string]uint64 `json:"vector"`
		}{s.versionsJSON(key, vs), string(cc), vec})
		return
	}
	v, cc, err := s.r.GetWithContext(key)
	if cc != "" {
		// Also with a 404 (a deleted key's tombstone) and a 409: a write
		// that carries it supersedes what this read saw.
		w.Header().Set(contextHeader, string(cc))
	}
	if err != nil {
		var ce *replica.ConflictError
		if errors.As(err, &ce) {
			ae := libError(err)
			ae.extra = map[string]any{"versions": s.versionsJSON(key, ce.Versions), "context": string(cc)}
			s.failWith(w, r, ae)
			return
		}
		s.failErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(v)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		s.writeDeadline(w)
		_, _ = w.Write(v)
	}
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, key string) {
	body, err := readBody(w, r, int64(s.o.MaxValueSize))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	cc := replica.CausalContext(r.Header.Get(contextHeader))
	if err := s.r.PutWithContext(r.Context(), key, body, cc); err != nil {
		s.failErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// patch answers PATCH /v1/kv/{key} for a key under the json policy: the
// body is a JSON merge patch (RFC 7396, with the counter and set
// operations of merge.JSON), applied as Replica.Patch does, so only the
// fields it names are stamped; 204. A key of another policy, a body that
// is not a JSON object or holds a malformed operation, or an operation on
// a field of another kind is 400, a patch over the value limit 413; each
// writes nothing.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, key string) {
	body, err := readBody(w, r, int64(s.o.MaxValueSize))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	if err := s.r.Patch(r.Context(), key, body); err != nil {
		s.failErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) del(w http.ResponseWriter, r *http.Request, key string) {
	cc := replica.CausalContext(r.Header.Get(contextHeader))
	if err := s.r.DeleteWithContext(r.Context(), key, cc); err != nil {
		s.failErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// list answers GET /v1/kv?prefix=P&after=K&limit=N: the live keys under P
// after K, in order, at most N (DefaultListLimit, at most MaxListLimit),
// with next the last key given when more follow, else null. With
// conflicts=1 only the keys their policy reads as a conflict (as ls
// --conflicts' mv keys), paged the same way.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	prefix, after := q.Get("prefix"), q.Get("after")
	conflicts, err := flag(q, "conflicts")
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	limit := DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			s.failErr(w, r, badRequest("query parameter limit=%q is not a positive number", v))
			return
		}
		limit = min(n, MaxListLimit)
	}
	for name, v := range map[string]string{"prefix": prefix, "after": after} {
		if !utf8.ValidString(v) {
			s.failErr(w, r, badRequest("query parameter %s is not valid UTF-8", name))
			return
		}
	}
	type item struct {
		Key      string `json:"key"`
		Size     int    `json:"size"`
		Versions int    `json:"versions"`
		Conflict bool   `json:"conflict"`
	}
	start := ""
	if after != "" {
		start = after + "\x00" // the first key after it in byte order
	}
	items := make([]item, 0, min(limit, 64))
	more := false
	for it, err := range s.r.ScanFrom(prefix, start) {
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		if conflicts && !it.Conflict {
			continue
		}
		if len(items) == limit {
			more = true
			break
		}
		items = append(items, item{Key: it.Key, Size: len(it.Value), Versions: it.NumVersions, Conflict: it.Conflict})
	}
	var next *string
	if more {
		next = &items[len(items)-1].Key
	}
	s.writeJSON(w, r, http.StatusOK, struct {
		Items []item  `json:"items"`
		Next  *string `json:"next"`
	}{items, next})
}
