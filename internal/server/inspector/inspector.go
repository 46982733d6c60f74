// Package inspector is the inspector page of `ebreplica serve` (GET /): one
// HTML file with its style and script inline, embedded in the binary, with
// no build step and nothing loaded from elsewhere, so it works offline.
//
// The page shows the replica's status (live sync online or not, lag,
// pending keys, clock skew, last error), refreshed every few seconds and
// after changes; the live keys under a prefix typed in its search box,
// paged, conflicted keys first and flagged; and for a chosen key every
// concurrent version with its origin (replica id), HLC, dot, deleted flag
// and value (text when it is printable UTF-8, else base64), the key's
// version vector when the server gives it, and its causal context. It
// follows the change feed (/v1/watch): keys written, deleted or merged by
// a pull appear, change or go without a reload, and the open key's
// versions are read again when it changes.
//
// It uses only the HTTP API of the server that serves it (same origin):
// GET /v1/status, GET /v1/kv?prefix=&after=&limit=, GET /v1/kv/{key}?all=1
// and GET /v1/watch?since=. It reads the feed with fetch rather than
// EventSource so that every request, the feed included, can carry a bearer
// token: on a server started with a token, open the page as /#token=TOKEN
// (the fragment never leaves the browser; the page keeps the token for
// the tab in sessionStorage and takes it out of the address bar), or type
// it into the form the page shows on a 401.
package inspector

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

//go:embed index.html
var page []byte

// etag names this build's page: a browser revalidates (Cache-Control
// no-cache) and gets 304 until the binary serves another page.
var etag = func() string {
	sum := sha256.Sum256(page)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// policy is the page's Content-Security-Policy: nothing may load from
// anywhere but the page's own inline style and script, allowed by their
// hashes, and its requests go only to its own origin.
var policy = contentPolicy(page)

var inlineRE = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

// contentPolicy returns the Content-Security-Policy that allows exactly the
// inline <script> and <style> elements of html (by their SHA-256).
func contentPolicy(html []byte) string {
	var scripts, styles []string
	for _, m := range inlineRE.FindAllSubmatch(html, -1) {
		sum := sha256.Sum256(m[2])
		h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if string(m[1]) == "script" {
			scripts = append(scripts, h)
		} else {
			styles = append(styles, h)
		}
	}
	none := func(hs []string) string {
		if len(hs) == 0 {
			return "'none'"
		}
		return strings.Join(hs, " ")
	}
	return "default-src 'none'; script-src " + none(scripts) + "; style-src " + none(styles) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// Handler serves the page at "/" (GET and HEAD), with Content-Type
// text/html; charset=utf-8, the Content-Security-Policy above, an ETag and
// Cache-Control: no-cache. Any other path answers 404 and any other method
// 405, each with the API's JSON error body, so the handler can be mounted
// as the server's catch-all.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		jsonError(w, http.StatusNotFound, "not_found", "no such resource: "+r.Method+" "+r.URL.EscapedPath())
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		jsonError(w, http.StatusMethodNotAllowed, "bad_request", "method "+r.Method+" not allowed on / (allowed: GET, HEAD)")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", policy)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(page))
}

// jsonError answers as the API does: {"error","code"} with the status.
func jsonError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{msg, code})
}
