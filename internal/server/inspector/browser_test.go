package inspector_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/browsertest"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ebreplica/ebreplica/internal/server"
	"github.com/ebreplica/ebreplica/internal/server/inspector"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

// awaitWithin bounds each wait for the page: what it waits for takes
// milliseconds, and a failure still reads the page to say what it showed.
const awaitWithin = 20 * time.Second

// await polls the page until the JavaScript expression is truthy.
func await(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(awaitWithin))); err != nil {
		t.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, pageState(ctx))
	}
}

// pageState describes the key list and detail for a failure message.
func pageState(ctx context.Context) string {
	short, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(short, chromedp.Evaluate[string](`JSON.stringify({
		feed: document.getElementById("feed").textContent,
		keys: [...document.querySelectorAll("#keys li")].map((li) => li.dataset.key + (li.dataset.conflict === "true" ? " (conflict)" : "")),
		detail: document.getElementById("detail").hidden ? "(none open)" : document.getElementById("detail").innerText.replace(/\s+/g, " "),
		error: document.getElementById("error").textContent,
		problems: window.__problems,
	})`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// click clicks the element the CSS selector names, once it exists, in one
// step of the page's own thread: the key list is re-rendered on every
// change-feed event, so a node found by one DevTools call can be gone by
// the next (chromedp.Click's "Could not find node with given id").
func click(t *testing.T, ctx context.Context, selector string) {
	t.Helper()
	expr := fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.click(); return true; })()`, selector)
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(awaitWithin))); err != nil {
		t.Fatalf("clicking %s: %v\npage: %s", selector, err, pageState(ctx))
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// fixture is a served replica a, with replica b of the same store (the
// prefix mv/ under the mv policy, so concurrent writes stay siblings).
type fixture struct {
	a, b  *replica.Replica
	url   string
	token string
}

// serve opens a and b on a file:// remote, runs a's live syncer, and
// serves a with server.New on loopback, the inspector at /. With a token
// every request but the page's own load (GET /, which holds no data)
// must carry it.
func serve(t *testing.T, ctx context.Context, token string) *fixture {
	t.Helper()
	remoteDir := t.TempDir()
	reg, err := merge.ParsePolicies([]string{"mv/=mv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{token: token}
	for _, p := range []**replica.Replica{&f.a, &f.b} {
		r, err := replica.Init(filepath.Join(t.TempDir(), "r"), "file://"+remoteDir, &replica.Options{Policies: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		*p = r
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- f.a.Run(runCtx, replica.LiveOptions{}) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("live sync: %v", err)
		}
	})
	var h http.Handler = server.New(f.a, server.Options{Token: token, Inspector: inspector.Handler()})
	if token != "" {
		api := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				inspector.Handler().ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	// Closed after the browser (cleanups run last first), whose end
	// closes the feed's connection.
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// call makes a request of the HTTP API and checks its status.
func (f *fixture) call(t *testing.T, ctx context.Context, method, path, body string, want int) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("%s %s: %s %s", method, path, res.Status, msg)
	}
}

// TestInspectorInBrowser loads the inspector page of a served replica in
// headless Chromium and checks that it shows the status and the keys
// listed at load; that a key written through the API appears through the
// change feed without a reload; that a conflict merged in from another
// replica is flagged and listed first, and that the key shows both
// versions with their replica ids, HLC and values, and the version vector;
// that the open key's versions follow a later write; that a deleted key
// goes; that a binary value shows as base64; that the prefix search
// filters; and that the keys past a page come with "more". The page must run under its Content-Security-Policy
// without an error.
func TestInspectorInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := serve(t, ctx, "")
	a, b := f.a, f.b
	if err := a.Put(ctx, "b/listed", []byte("at load")); err != nil {
		t.Fatal(err)
	}

	bctx := browsertest.Start(t, ctx, 0, 0)
	if err := chromedp.Do(bctx, chromedp.Navigate(f.url+"/")); err != nil {
		t.Fatal(err)
	}
	// A marker that a reload would lose.
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`)); err != nil {
		t.Fatal(err)
	}
	await(t, bctx, "the feed to connect", `document.getElementById("feed").dataset.state === "live"`)
	await(t, bctx, "the status", fmt.Sprintf(`document.getElementById("replica-id").textContent === %q &&
		document.getElementById("st-online").textContent === "online" && /^\d+$/.test(document.getElementById("st-pending").textContent) &&
		/^\d+$/.test(document.getElementById("st-lag").textContent)`, a.ID().String()))
	await(t, bctx, "the key written before the load", `!!document.querySelector('#keys li[data-key="b/listed"]')`)

	// A key written through the API appears from the feed.
	f.call(t, ctx, http.MethodPut, "/v1/kv/c%2Fwritten", "hello", http.StatusNoContent)
	await(t, bctx, "the key written through the API", `!!document.querySelector('#keys li[data-key="c/written"][data-conflict="false"]')`)

	// A conflict: a and b write mv/doc concurrently, then sync.
	f.call(t, ctx, http.MethodPut, "/v1/kv/mv%2Fdoc", "from-a", http.StatusNoContent)
	if err := b.Put(ctx, "mv/doc", []byte("from-b")); err != nil {
		t.Fatal(err)
	}
	f.call(t, ctx, http.MethodPost, "/v1/push", "", http.StatusOK)
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	f.call(t, ctx, http.MethodPost, "/v1/pull", "", http.StatusOK)
	await(t, bctx, "mv/doc flagged as conflicted and listed first",
		`document.querySelector("#keys li").dataset.key === "mv/doc" && document.querySelector("#keys li").dataset.conflict === "true"`)

	click(t, bctx, `#keys li[data-key="mv/doc"] button`)
	await(t, bctx, "both versions of mv/doc", `document.getElementById("detail-key").textContent === "mv/doc" &&
		document.querySelectorAll('#versions tr[data-testid="version"]').length === 2`)
	type version struct{ Replica, HLC, Value string }
	raw := eval[string](t, bctx, `JSON.stringify([...document.querySelectorAll('#versions tr[data-testid="version"]')].map((tr) => ({
		Replica: tr.dataset.replica, HLC: tr.cells[1].textContent, Value: tr.querySelector('[data-testid="value"]').textContent })))`)
	var got []version
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y version) int { return strings.Compare(x.Value, y.Value) })
	want := [][2]string{{a.ID().String(), "from-a"}, {b.ID().String(), "from-b"}}
	for i, v := range got {
		if v.Replica != want[i][0] || v.Value != want[i][1] || !strings.Contains(v.HLC, "T") {
			t.Fatalf("versions shown: %+v; want replicas and values %v, each with its HLC time", got, want)
		}
	}
	vector := eval[[]string](t, bctx, `[...document.querySelectorAll('#vector tr[data-testid="vector-entry"]')].map((tr) => tr.cells[0].textContent)`)
	if !slices.Contains(vector, a.ID().String()) || !slices.Contains(vector, b.ID().String()) {
		t.Errorf("the version vector shows replicas %q, want %s and %s", vector, a.ID(), b.ID())
	}

	// A write that settles the conflict: the open key's versions follow,
	// and the flag goes.
	f.call(t, ctx, http.MethodPut, "/v1/kv/mv%2Fdoc", "settled", http.StatusNoContent)
	await(t, bctx, "the open key to show the settling write", `document.querySelectorAll('#versions tr[data-testid="version"]').length === 1 &&
		document.querySelector('#versions [data-testid="value"]').textContent === "settled" &&
		document.querySelector('#keys li[data-key="mv/doc"]').dataset.conflict === "false"`)

	// A key deleted goes from the list; a value that is not text shows as
	// base64.
	f.call(t, ctx, http.MethodDelete, "/v1/kv/b%2Flisted", "", http.StatusNoContent)
	await(t, bctx, "the deleted key to go", `!document.querySelector('#keys li[data-key="b/listed"]')`)
	binary := []byte{0, 1, 0xfe, 0xff, 'x'}
	f.call(t, ctx, http.MethodPut, "/v1/kv/d%2Fbinary", string(binary), http.StatusNoContent)
	await(t, bctx, "the binary key", `!!document.querySelector('#keys li[data-key="d/binary"]')`)
	click(t, bctx, `#keys li[data-key="d/binary"] button`)
	await(t, bctx, "the binary value as base64", fmt.Sprintf(`document.getElementById("detail-key").textContent === "d/binary" &&
		document.querySelector('#versions [data-testid="value"]').dataset.kind === "base64" &&
		document.querySelector('#versions [data-testid="value"]').textContent === %q`, base64.StdEncoding.EncodeToString(binary)))

	// The prefix search lists only the keys under it.
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("search"), "c/")); err != nil {
		t.Fatal(err)
	}
	await(t, bctx, "the search for c/", `(() => { const ks = [...document.querySelectorAll("#keys li")].map((li) => li.dataset.key);
		return ks.length === 1 && ks[0] === "c/written"; })()`)

	// More keys than a page: the rest come with the "more" button.
	var ops []string
	for i := range 205 {
		ops = append(ops, fmt.Sprintf(`{"op":"put","key":"p/%03d","value":"v"}`, i))
	}
	f.call(t, ctx, http.MethodPost, "/v1/batch", `{"ops":[`+strings.Join(ops, ",")+`]}`, http.StatusNoContent)
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("search"), kb.Backspace+kb.Backspace+"p/")); err != nil {
		t.Fatal(err)
	}
	await(t, bctx, "the first page of p/", `document.querySelectorAll("#keys li").length === 200 && !document.getElementById("more").hidden &&
		document.querySelector("#keys li:last-child").dataset.key === "p/199"`)
	click(t, bctx, `#more`)
	await(t, bctx, "every key of p/", `document.querySelectorAll("#keys li").length === 205 && document.getElementById("more").hidden &&
		document.querySelector("#keys li:last-child").dataset.key === "p/204"`)

	// A conflicted key past the first page shows first at once (the page
	// asks for the prefix's conflicted keys beside its first page).
	ops = ops[:0]
	for i := range 205 {
		ops = append(ops, fmt.Sprintf(`{"op":"put","key":"mv/a%03d","value":"v"}`, i))
	}
	f.call(t, ctx, http.MethodPost, "/v1/batch", `{"ops":[`+strings.Join(ops, ",")+`]}`, http.StatusNoContent)
	f.call(t, ctx, http.MethodPut, "/v1/kv/mv%2Fzz", "from-a", http.StatusNoContent)
	if err := b.Put(ctx, "mv/zz", []byte("from-b")); err != nil {
		t.Fatal(err)
	}
	f.call(t, ctx, http.MethodPost, "/v1/push", "", http.StatusOK)
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	f.call(t, ctx, http.MethodPost, "/v1/pull", "", http.StatusOK)
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("search"), kb.Backspace+kb.Backspace+"mv/")); err != nil {
		t.Fatal(err)
	}
	await(t, bctx, "mv/zz, past the first page, listed first as conflicted", `document.querySelectorAll("#keys li").length === 201 &&
		document.querySelector("#keys li").dataset.key === "mv/zz" && document.querySelector("#keys li").dataset.conflict === "true" &&
		!document.getElementById("more").hidden`)

	if !eval[bool](t, bctx, `window.__sameDocument === true`) {
		t.Error("the page reloaded")
	}
	noProblems(t, bctx)
}

// noProblems checks that the page threw nothing, broke no
// Content-Security-Policy rule and shows no error.
func noProblems(t *testing.T, bctx context.Context) {
	t.Helper()
	if p := eval[[]string](t, bctx, `window.__problems`); len(p) > 0 {
		t.Errorf("the page reported problems: %q", p)
	}
	if msg := eval[string](t, bctx, `document.getElementById("error").hidden ? "" : document.getElementById("error").textContent`); msg != "" {
		t.Errorf("the page shows an error: %s", msg)
	}
}

// TestInspectorToken: against a server with a bearer token, the page
// (loaded without one) asks for it; given in its form, or as #token= in
// the address (then taken out of it), every request carries it, the
// change feed included; a wrong token is asked for again.
func TestInspectorToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const token = "s3cret-token"
	f := serve(t, ctx, token)
	if err := f.a.Put(ctx, "k/1", []byte("v")); err != nil {
		t.Fatal(err)
	}
	bctx := browsertest.Start(t, ctx, 0, 0)

	if err := chromedp.Do(bctx, chromedp.Navigate(f.url+"/")); err != nil {
		t.Fatal(err)
	}
	await(t, bctx, "the token form", `!document.getElementById("auth").hidden && document.getElementById("feed").dataset.state === "stopped"`)
	if n := eval[int](t, bctx, `document.querySelectorAll("#keys li").length`); n != 0 {
		t.Fatalf("without the token the page lists %d keys", n)
	}
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("token-input"), token)); err != nil {
		t.Fatal(err)
	}
	// The form reloads the page.
	if _, err := chromedp.Run(bctx, chromedp.WaitEvent(page.LoadEventFired, nil,
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))); err != nil {
		t.Fatal(err)
	}
	await(t, bctx, "the page with the form's token", `document.getElementById("feed").dataset.state === "live" &&
		document.getElementById("auth").hidden && !!document.querySelector('#keys li[data-key="k/1"]') && location.hash === ""`)
	f.call(t, ctx, http.MethodPut, "/v1/kv/k%2F2", "w", http.StatusNoContent)
	await(t, bctx, "a key from the feed", `!!document.querySelector('#keys li[data-key="k/2"]')`)
	noProblems(t, bctx)

	// A fresh tab given the token in the address.
	tctx, closeTab := chromedp.NewContext(bctx)
	defer closeTab()
	if err := chromedp.Do(tctx, chromedp.Navigate(f.url+"/#token="+token)); err != nil {
		t.Fatal(err)
	}
	await(t, tctx, "the page with #token=", `document.getElementById("feed").dataset.state === "live" && location.hash === "" &&
		!!document.querySelector('#keys li[data-key="k/2"]')`)

	// A wrong one, typed into the address of the open page (which reloads
	// it), is refused and asked for again.
	if _, err := chromedp.Run(tctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Navigate(f.url+"/#token=wrong"))); err != nil {
		t.Fatal(err)
	}
	await(t, tctx, "the token form after a wrong token", `!document.getElementById("auth").hidden && document.querySelectorAll("#keys li").length === 0`)
}
