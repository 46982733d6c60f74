package inspector

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func do(t *testing.T, method, path string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w
}

// TestHandlerServesPage: GET / answers the embedded page as UTF-8 HTML
// with a Content-Security-Policy that allows exactly its inline script
// and style (by hash) and requests to its own origin only; the ETag lets
// a browser revalidate (304); HEAD answers the headers alone.
func TestHandlerServesPage(t *testing.T) {
	w := do(t, http.MethodGet, "/", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET / = %d", w.Code)
	}
	h := w.Header()
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q", cc)
	}
	if w.Body.String() != string(page) {
		t.Error("the body is not the embedded page")
	}
	csp := h.Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(string(page), -1)
		if len(m) != 1 {
			t.Fatalf("the page has %d inline <%s> elements, want 1", len(m), tag)
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';"
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy allows unsafe sources: %q", csp)
	}
	etag := h.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if w := do(t, http.MethodGet, "/", http.Header{"If-None-Match": {etag}}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("GET / with the ETag = %d with %d bytes, want 304 and none", w.Code, w.Body.Len())
	}
	if w := do(t, http.MethodGet, "/", http.Header{"If-None-Match": {`"another"`}}); w.Code != http.StatusOK {
		t.Errorf("GET / with another ETag = %d", w.Code)
	}
	if w := do(t, http.MethodHead, "/", nil); w.Code != http.StatusOK || w.Body.Len() != 0 ||
		w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD / = %d, %d bytes, %q", w.Code, w.Body.Len(), w.Header().Get("Content-Type"))
	}
}

// TestHandlerRefuses: another path is 404 and another method 405 (with
// Allow), each with the API's JSON error; neither serves the page.
func TestHandlerRefuses(t *testing.T) {
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/favicon.ico", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/index.html", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/v1/\"quoted\"\n", http.StatusNotFound, "not_found"},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, "bad_request"},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed, "bad_request"},
	} {
		req := httptest.NewRequest(c.method, "/", nil)
		req.URL.Path = c.path
		w := httptest.NewRecorder()
		Handler().ServeHTTP(w, req)
		if w.Code != c.status {
			t.Errorf("%s %q = %d, want %d", c.method, c.path, w.Code, c.status)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %q: Content-Type %q", c.method, c.path, ct)
		}
		var body struct{ Error, Code string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Code != c.code || body.Error == "" || strings.Contains(body.Error, "\n") {
			t.Errorf("%s %q: body %q (%v), want a one-line error with code %s", c.method, c.path, w.Body, err, c.code)
		}
		if c.status == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %q: Allow %q", c.method, c.path, w.Header().Get("Allow"))
		}
	}
}

// TestPageSelfContained: the page loads nothing from elsewhere (it works
// offline): no external script, style, image, font or frame, and only
// same-origin API paths.
func TestPageSelfContained(t *testing.T) {
	s := string(page)
	for _, re := range []string{
		`(?i)<script[^>]*\ssrc=`,
		`(?i)<link[^>]*rel="?stylesheet`,
		`(?i)(src|href)\s*=\s*["']?(https?:)?//`,
		`(?i)@import`,
		`(?s)<style>[^<]*url\(`,
		`(?i)<iframe`,
		`(?i)https?://`,
	} {
		if m := regexp.MustCompile(re).FindString(s); m != "" {
			t.Errorf("the page refers to something outside it: %q (matching %s)", m, re)
		}
	}
	// The only <link> is the empty icon, which keeps the browser from
	// asking for /favicon.ico.
	if links := regexp.MustCompile(`(?i)<link[^>]*>`).FindAllString(s, -1); len(links) != 1 || !strings.Contains(links[0], `href="data:,"`) {
		t.Errorf("links: %q", links)
	}
}

// TestContentPolicy: a page without inline script or style allows none.
func TestContentPolicy(t *testing.T) {
	got := contentPolicy([]byte("<!doctype html><p>hi</p>"))
	if !strings.Contains(got, "script-src 'none';") || !strings.Contains(got, "style-src 'none';") {
		t.Errorf("contentPolicy of a page without script or style = %q", got)
	}
	two := contentPolicy([]byte("<script>a()</script><script>b()</script><style>p{}</style>"))
	if n := strings.Count(two, "'sha256-"); n != 3 {
		t.Errorf("contentPolicy of two scripts and a style has %d hashes, want 3: %q", n, two)
	}
}
