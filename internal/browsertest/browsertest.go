// Package browsertest starts a headless Chromium for the tests that look at
// a page in a real browser (the inspector, the simulator's HTML report).
//
// The browser is Debian's chromium package at Path, which `make test`
// installs (scripts/chromium.sh). Without it a test is skipped with a
// message, except under CI=true, where that fails it: CI never skips.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Path is where Debian's chromium package puts the browser.
const Path = "/usr/bin/chromium"

// problems is run in every document before its own scripts: it records
// the errors thrown in it (a failed resource load too), the promises
// rejected unhandled, and the Content-Security-Policy violations it
// reports, in window.__problems, for the test to read.
const problems = `
	window.__problems = [];
	window.addEventListener("error", (e) => window.__problems.push("error: " + (e.message || (e.target && e.target.outerHTML))), true);
	window.addEventListener("unhandledrejection", (e) => window.__problems.push("rejection: " + e.reason));
	document.addEventListener("securitypolicyviolation", (e) =>
		window.__problems.push("CSP violation: " + e.violatedDirective + " " + e.blockedURI));
`

// Start starts a headless Chromium with a fresh profile, a window of
// width × height (0: the default), and no network chatter of its own (on
// a closed network its lookups would hang it), and returns the context to
// drive it with; it ends with the test. It skips the test when there is
// no browser (fails it under CI=true).
func Start(t *testing.T, ctx context.Context, width, height int) context.Context {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		msg := fmt.Sprintf("no headless browser at %s (install it with scripts/chromium.sh install): %v", Path, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	if width > 0 && height > 0 {
		opts = append(opts, chromedp.WindowSize(width, height))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: problems}); err != nil {
		t.Fatalf("starting %s: %v", Path, err)
	}
	return bctx
}
