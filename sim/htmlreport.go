package sim

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/ebreplica/ebreplica/store"
)

// Sample is what each replica held after one operation (Config.Timeline).
type Sample struct {
	// At is the logical time.
	At time.Duration
	// Siblings counts, by replica, the keys holding concurrent versions.
	Siblings []int
	// Pending counts, by replica, the keys waiting for a push.
	Pending []int
}

// sample appends a Sample of every replica to the report's timeline.
func (w *World) sample() {
	s := Sample{At: w.now, Siblings: make([]int, len(w.nodes)), Pending: make([]int, len(w.nodes))}
	for i, n := range w.nodes {
		if n.r == nil {
			continue
		}
		st := n.r.Store()
		s.Pending[i] = int(st.OutboxLen())
		_ = st.View(func(v *store.View) error {
			return v.Records("", "", func(_ string, rec store.Stored) (bool, error) {
				if len(rec.Versions) > 1 {
					s.Siblings[i]++
				}
				return true, nil
			})
		})
	}
	w.rep.Timeline = append(w.rep.Timeline, s)
}

// The plots' size.
const (
	plotWidth  = 7 * vg.Inch
	plotHeight = 3.2 * vg.Inch
)

// WriteHTML writes the comparison as one self-contained HTML page: the
// table, and plots drawn as inline SVG (no script, no stylesheet or font
// fetched, no network): sync rounds to converge per run and policy; for
// each policy, the keys with concurrent versions and the keys pending a
// push over logical time per replica, in the first run (with
// Config.Timeline; the plots are left out otherwise); lost updates per
// policy; requests by verb per policy; the estimated cost per policy. The
// same comparison gives the same bytes.
func (c Comparison) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	title := "ebreplica sim report"
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	// Nothing to fetch and nothing to run: the browser holds the page to it.
	b.WriteString(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">` + "\n")
	b.WriteString(`<meta name="viewport" content="width=device-width, initial-scale=1">` + "\n")
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(title))
	b.WriteString(`<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
.no { color: #b00; font-weight: bold; }
</style>
</head>
<body>
`)
	runs := fmt.Sprintf("seed %d", c.Seed)
	if c.Runs > 1 {
		runs = fmt.Sprintf("%d runs, seeds %d..%d", c.Runs, c.Seed, c.Seed+uint64(c.Runs)-1)
	}
	fmt.Fprintf(&b, "<h1>%s</h1>\n<p>%s; %d replicas, %d keys, engine %s, durability %s; %d policies on identical schedules.<br>Workload: %s.</p>\n",
		esc(title), esc(runs), c.Replicas, c.Keys, esc(c.Engine), esc(c.Durability), len(c.Policies), esc(c.Workload))
	b.WriteString("<div class=\"wide\"><table>\n<tr><th>policy</th><th>converged</th><th>sync rounds</th><th>lost updates</th><th>conflicts</th><th>max siblings</th><th>writes</th><th>PUT</th><th>GET</th><th>LIST</th><th>DELETE</th><th>bytes out</th><th>bytes in</th><th>estimated cost</th></tr>\n")
	for _, r := range c.Policies {
		conv := "yes"
		if !r.Converged {
			conv = fmt.Sprintf(`<span class="no">NO (%d of %d runs failed)</span>`, r.Failed, r.Runs)
		}
		lost := "-"
		if r.Policy == PolicyLWW {
			lost = fmt.Sprint(r.LostUpdates)
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>$%.6f</td></tr>\n",
			esc(r.Policy), conv, r.Rounds, lost, r.Conflicts, r.MaxSiblings, r.Writes,
			r.Requests.Put, r.Requests.Get, r.Requests.List, r.Requests.Delete, r.BytesOut, r.BytesIn, r.Cost.USD)
	}
	b.WriteString("</table></div>\n")
	fmt.Fprintf(&b, "<p>Cost at S3 request prices: PUT and LIST $%.4f per 1,000, GET $%.4f per 1,000 (DELETE free; transfer and storage not counted).</p>\n",
		PricePutListPer1000, PriceGetPer1000)

	figs, err := c.plots()
	if err != nil {
		return err
	}
	for _, f := range figs {
		fmt.Fprintf(&b, "<figure>\n%s<figcaption>%s</figcaption>\n</figure>\n", f.svg, esc(f.caption))
	}
	for _, r := range c.Policies {
		if r.Failure != "" {
			fmt.Fprintf(&b, "<h2>First failure under %s</h2>\n<pre>%s</pre>\n", esc(r.Policy), esc(r.Failure))
		}
	}
	b.WriteString("</body>\n</html>\n")
	_, err = io.WriteString(w, b.String())
	return err
}

type figure struct{ svg, caption string }

func (c Comparison) plots() ([]figure, error) {
	var figs []figure
	add := func(p *plot.Plot, caption string) error {
		s, err := inlineSVG(p)
		if err != nil {
			return err
		}
		figs = append(figs, figure{s, caption})
		return nil
	}
	names := make([]string, len(c.Policies))
	for i, r := range c.Policies {
		names[i] = r.Policy
	}

	// Sync rounds to converge, per run: a group of bars per run (seed),
	// or, over more runs than bars can show, how many runs took each
	// number of rounds.
	if runs := len(c.PerRun[0]); runs <= 16 {
		p := newPlot("Sync rounds to converge, per run", "seed", "sync rounds")
		seeds := make([]string, runs)
		vals := make([]plotter.Values, len(names))
		top := 0.0
		for i := range seeds {
			seeds[i] = fmt.Sprint(c.Seed + uint64(i))
		}
		for j := range names {
			vals[j] = make(plotter.Values, runs)
			for i, r := range c.PerRun[j] {
				vals[j][i] = float64(r.Rounds)
				top = max(top, vals[j][i])
			}
		}
		if err := bars(p, seeds, names, vals); err != nil {
			return nil, err
		}
		headroom(p, top, len(names))
		integerTicks(p)
		if err := add(p, "Sync rounds each run took, after the faults stopped, until every replica held the same state (0: it did not converge)."); err != nil {
			return nil, err
		}
	} else {
		p := newPlot(fmt.Sprintf("Sync rounds to converge, %d runs", runs), "sync rounds (0: did not converge)", "runs")
		most := 0
		for j := range names {
			for _, r := range c.PerRun[j] {
				most = max(most, r.Rounds)
			}
		}
		labels := make([]string, most+1)
		for i := range labels {
			labels[i] = fmt.Sprint(i)
		}
		vals := make([]plotter.Values, len(names))
		top := 0.0
		for j := range names {
			vals[j] = make(plotter.Values, most+1)
			for _, r := range c.PerRun[j] {
				vals[j][r.Rounds]++
				top = max(top, vals[j][r.Rounds])
			}
		}
		if err := bars(p, labels, names, vals); err != nil {
			return nil, err
		}
		headroom(p, top, len(names))
		integerTicks(p)
		if err := add(p, "How many runs took each number of sync rounds, after the faults stopped, until every replica held the same state (0: the run did not converge)."); err != nil {
			return nil, err
		}
	}

	// Siblings and pending keys over logical time, per replica, first run.
	for j, name := range names {
		tl := c.PerRun[j][0].Timeline
		if len(tl) == 0 {
			continue
		}
		for _, which := range []string{"siblings", "pending"} {
			var t, y, cap string
			if which == "siblings" {
				t, y = fmt.Sprintf("Keys with concurrent versions, %s, seed %d", name, c.Seed), "keys with siblings"
				cap = fmt.Sprintf("Under %s, seed %d: how many keys each replica held with concurrent versions (siblings), after each operation, over logical time.", name, c.Seed)
			} else {
				t, y = fmt.Sprintf("Keys pending a push, %s, seed %d", name, c.Seed), "pending keys"
				cap = fmt.Sprintf("Under %s, seed %d: how many keys each replica had written and not yet pushed, after each operation, over logical time.", name, c.Seed)
			}
			p := newPlot(t, "logical time (s)", y)
			replicas := 0
			for _, s := range tl {
				replicas = max(replicas, len(s.Siblings))
			}
			top := 0.0
			for r := range replicas {
				var xys plotter.XYs
				for _, s := range tl {
					if r >= len(s.Siblings) {
						continue
					}
					v := s.Siblings[r]
					if which == "pending" {
						v = s.Pending[r]
					}
					xys = append(xys, plotter.XY{X: s.At.Seconds(), Y: float64(v)})
					top = max(top, float64(v))
				}
				l, err := plotter.NewLine(xys)
				if err != nil {
					return nil, err
				}
				l.StepStyle = plotter.PostStep
				l.Color = plotutil.Color(r)
				l.Dashes = plotutil.Dashes(r)
				l.Width = vg.Points(1.5)
				p.Add(l)
				p.Legend.Add("replica "+replicaName(r), l)
			}
			headroom(p, top, replicas)
			integerTicks(p)
			p.X.Tick.Marker = plainTicks{}
			if err := add(p, cap); err != nil {
				return nil, err
			}
		}
	}

	// Lost updates per policy.
	lost := make(plotter.Values, len(names))
	for i, r := range c.Policies {
		lost[i] = float64(r.LostUpdates)
	}
	p := newPlot("Lost updates per policy", "", "lost updates")
	if err := bars(p, names, []string{"lost updates"}, []plotter.Values{lost}); err != nil {
		return nil, err
	}
	headroom(p, maxOf(lost), 0)
	integerTicks(p)
	if err := add(p, "Concurrent writes that lww overwrote unread, summed over the runs; the other policies keep concurrent writes (as siblings, sums or members) and lose none."); err != nil {
		return nil, err
	}

	// The request mix.
	verbs := []string{"PUT", "GET", "LIST", "DELETE"}
	mix := make([]plotter.Values, len(verbs))
	for v := range verbs {
		mix[v] = make(plotter.Values, len(names))
	}
	for i, r := range c.Policies {
		mix[0][i], mix[1][i], mix[2][i], mix[3][i] = float64(r.Requests.Put), float64(r.Requests.Get), float64(r.Requests.List), float64(r.Requests.Delete)
	}
	p = newPlot("Requests per policy, by verb", "", "requests")
	if err := bars(p, names, verbs, mix); err != nil {
		return nil, err
	}
	headroom(p, max(maxOf(mix[0]), maxOf(mix[1]), maxOf(mix[2]), maxOf(mix[3])), len(verbs))
	if err := add(p, "The requests that reached the shared store, by verb, summed over the runs."); err != nil {
		return nil, err
	}

	// The cost.
	cost := make(plotter.Values, len(names))
	for i, r := range c.Policies {
		cost[i] = r.Cost.USD * 1000
	}
	p = newPlot("Estimated S3 request cost per policy", "", "USD per 1,000 such workloads")
	if err := bars(p, names, []string{"cost"}, []plotter.Values{cost}); err != nil {
		return nil, err
	}
	headroom(p, maxOf(cost), 0)
	if err := add(p, fmt.Sprintf("The requests at S3 prices (PUT and LIST $%.4f per 1,000, GET $%.4f per 1,000), for 1,000 repetitions of the runs summed.",
		PricePutListPer1000, PriceGetPer1000)); err != nil {
		return nil, err
	}
	return figs, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// headroom leaves room above the highest value top for a legend of
// entries lines.
func headroom(p *plot.Plot, top float64, entries int) {
	p.Y.Min = 0
	p.Y.Max = max(top*max(1.35, 1.15+0.1*float64(entries)), 1)
}

func maxOf(v plotter.Values) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// plainTicks are the default ticks, labelled without trailing zeros.
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// integerTicks labels the Y axis with whole numbers only.
func integerTicks(p *plot.Plot) {
	p.Y.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		var ticks []plot.Tick
		step := 1.0
		for (max-min)/step > 8 {
			step *= 2
		}
		for v := 0.0; v <= max+step/2; v += step {
			if v >= min {
				ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprint(v)})
			}
		}
		return ticks
	})
}

// bars draws grouped bars: one group per name, one bar per series.
func bars(p *plot.Plot, names, series []string, vals []plotter.Values) error {
	w := vg.Points(min(40, 0.8*440/float64(len(names)*len(series))))
	for s := range series {
		bc, err := plotter.NewBarChart(vals[s], w)
		if err != nil {
			return err
		}
		bc.LineStyle.Width = vg.Length(0)
		bc.Color = plotutil.Color(s)
		bc.Offset = w * vg.Length(float64(s)-float64(len(series)-1)/2)
		p.Add(bc)
		if len(series) > 1 {
			p.Legend.Add(series[s], bc)
		}
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	p.Y.Min = 0
	return nil
}

// inlineSVG renders p as an <svg> element for an HTML page: without the
// XML prolog and namespace attributes (HTML places an inline svg in its
// namespace), so the page names no URL at all.
func inlineSVG(p *plot.Plot) (string, error) {
	c := vgsvg.New(plotWidth, plotHeight)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", err
	}
	s := buf.String()
	i := strings.Index(s, "<svg")
	if i < 0 {
		return "", fmt.Errorf("sim: html: the plot renders no <svg>")
	}
	s = s[i:]
	s = strings.Replace(s, "\n\txmlns=\"http://www.w3.org/2000/svg\"", "", 1)
	s = strings.Replace(s, "\n\txmlns:xlink=\"http://www.w3.org/1999/xlink\"", "", 1)
	s = strings.Replace(s, "<svg ", `<svg role="img" `, 1)
	return s, nil
}
