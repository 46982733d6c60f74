package sim

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/internal/browsertest"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// comparePage is a comparison of three policies over two runs with its
// timeline, as HTML.
func comparePage(t *testing.T) (Comparison, []byte) {
	t.Helper()
	c, err := Compare(Config{Seed: 21, Ops: 120, Keys: 5, Timeline: true}, CompareOptions{Runs: 3, Policies: []string{PolicyLWW, PolicyMV, PolicyCounter}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	return c, b.Bytes()
}

// TestHTMLSelfContained: the page names no URL, loads no script,
// stylesheet, image or font, and holds one SVG per plot: rounds per run,
// siblings and pending keys per policy, lost updates, requests, cost.
func TestHTMLSelfContained(t *testing.T) {
	c, page := comparePage(t)
	s := string(page)
	for _, bad := range []string{"http://", "https://", "<script", " src=", "<link", "url(", "@import", "<img", "<iframe"} {
		if strings.Contains(strings.ToLower(s), bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	if n, want := strings.Count(s, "<svg"), 1+2*len(c.Policies)+3; n != want {
		t.Errorf("%d <svg> elements, want %d (one per plot)", n, want)
	}
	if !strings.Contains(s, "Content-Security-Policy") {
		t.Error("no Content-Security-Policy")
	}
	wellFormedSVGs(t, s)
	for _, title := range []string{"Sync rounds to converge, per run", "Keys with concurrent versions, mv, seed 21",
		"Keys pending a push, counter, seed 21", "Lost updates per policy", "Requests per policy, by verb", "Estimated S3 request cost per policy"} {
		if !strings.Contains(s, title) {
			t.Errorf("no plot titled %q", title)
		}
	}
	// Without a timeline, the timeline plots are left out.
	c.PerRun[0][0].Timeline, c.PerRun[1][0].Timeline, c.PerRun[2][0].Timeline = nil, nil, nil
	var b bytes.Buffer
	if err := c.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "<svg"); n != 4 {
		t.Errorf("without timelines: %d plots, want 4", n)
	}
}

// TestHTMLRendersInChromium: headless Chromium renders the page with no
// error and no blocked request, every plot laid out with its axes' text;
// SIM_HTML_SCREENSHOT=FILE.png saves a screenshot of the whole page to
// look at.
func TestHTMLRendersInChromium(t *testing.T) {
	c, pg := comparePage(t)
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, pg, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bctx := browsertest.Start(t, ctx, 1100, 900)
	if _, err := chromedp.Run(bctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Navigate("file://"+file))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	type svgBox struct {
		W, H  float64
		Texts int
		Paths int
	}
	type pageInfo struct {
		Title    string
		Problems []string
		Svgs     []svgBox
		Rows     int
		Captions int
	}
	expr := `({
		Title: document.title,
		Problems: window.__problems,
		Svgs: [...document.querySelectorAll("svg")].map((s) => { const r = s.getBoundingClientRect();
			return {W: r.width, H: r.height, Texts: s.querySelectorAll("text").length, Paths: s.querySelectorAll("path").length}; }),
		Rows: document.querySelectorAll("table tr").length,
		Captions: document.querySelectorAll("figcaption").length,
	})`
	got, err := chromedp.Run(bctx, chromedp.Evaluate[pageInfo](expr))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	want := 1 + 2*len(c.Policies) + 3
	if got.Title != "ebreplica sim report" || len(got.Problems) != 0 || len(got.Svgs) != want || got.Rows != 1+len(c.Policies) || got.Captions != want {
		t.Fatalf("rendered: %+v (want %d plots)", got, want)
	}
	for i, s := range got.Svgs {
		if s.W < 300 || s.H < 150 || s.Texts < 5 || s.Paths < 3 {
			t.Errorf("plot %d rendered as %+v", i, s)
		}
	}
	if out := os.Getenv("SIM_HTML_SCREENSHOT"); out != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", out, len(png))
	}
}

// TestHTMLEscapes: a user policy's name is text on the page, never markup.
func TestHTMLEscapes(t *testing.T) {
	c := Comparison{Seed: 1, Runs: 1, Workload: `trace <b>x</b>`, Policies: []Report{{Policy: `<script>alert(1)</script>`, Runs: 1, Converged: true}},
		PerRun: [][]Report{{{Policy: `<script>alert(1)</script>`, Runs: 1}}}}
	var b bytes.Buffer
	if err := c.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script") || strings.Contains(b.String(), "<b>x") || !regexp.MustCompile(`&lt;script&gt;`).MatchString(b.String()) {
		t.Fatal("the name went into the page unescaped")
	}
}

// wellFormedSVGs checks that every plot on the page is well-formed XML
// with a title and a legend, ticks or labels as text.
func wellFormedSVGs(t *testing.T, page string) {
	t.Helper()
	for i, rest := 0, page; ; i++ {
		start := strings.Index(rest, "<svg")
		if start < 0 {
			return
		}
		end := strings.Index(rest[start:], "</svg>")
		if end < 0 {
			t.Fatalf("plot %d: no </svg>", i)
		}
		svg := rest[start : start+end+len("</svg>")]
		rest = rest[start+end:]
		d := xml.NewDecoder(strings.NewReader(svg))
		texts := 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("plot %d is not well-formed: %v", i, err)
			}
			if e, ok := tok.(xml.StartElement); ok && e.Name.Local == "text" {
				texts++
			}
		}
		if texts < 5 {
			t.Errorf("plot %d: %d texts", i, texts)
		}
	}
}

// TestHTMLManyRuns: over 16 runs, the rounds plot counts the runs that
// took each number of rounds.
func TestHTMLManyRuns(t *testing.T) {
	c, err := Compare(Config{Seed: 3, Ops: 20, Keys: 3}, CompareOptions{Runs: 17, Policies: []string{PolicyLWW, PolicyMV}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.Contains(s, "Sync rounds to converge, 17 runs") || !strings.Contains(s, "sync rounds (0: did not converge)") || strings.Count(s, "<svg") != 4 {
		t.Fatalf("no histogram of rounds over 17 runs:\n%s", s)
	}
	wellFormedSVGs(t, s)
	// The bars of each policy count all 17 runs.
	for _, p := range []string{PolicyLWW, PolicyMV} {
		sum := 0
		for _, m := range regexp.MustCompile(`<title>\d+, `+p+`: (\d+)</title>`).FindAllStringSubmatch(s, -1) {
			n, _ := strconv.Atoi(m[1])
			sum += n
		}
		if sum != 17 {
			t.Errorf("%s: the bars count %d runs, want 17", p, sum)
		}
	}
}
