package sim

import (
	"fmt"
	"html"
	"io"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/internal/svgchart"
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
	add := func(ch svgchart.Chart, caption string) error {
		s, err := ch.SVG()
		if err != nil {
			return fmt.Errorf("sim: html: %w", err)
		}
		figs = append(figs, figure{s, caption})
		return nil
	}
	names := make([]string, len(c.Policies))
	for i, r := range c.Policies {
		names[i] = r.Policy
	}
	// The legend names the policies when there are several.
	legend := func(name string) string {
		if len(names) < 2 {
			return ""
		}
		return name
	}

	// Sync rounds to converge, per run: a group of bars per run (seed),
	// or, over more runs than bars can show, how many runs took each
	// number of rounds.
	if runs := len(c.PerRun[0]); runs <= 16 {
		ch := svgchart.Chart{Title: "Sync rounds to converge, per run", XLabel: "seed", YLabel: "sync rounds", IntegerY: true,
			Categories: make([]string, runs)}
		for i := range ch.Categories {
			ch.Categories[i] = fmt.Sprint(c.Seed + uint64(i))
		}
		for j, name := range names {
			s := svgchart.Series{Name: legend(name), Values: make([]float64, runs)}
			for i, r := range c.PerRun[j] {
				s.Values[i] = float64(r.Rounds)
			}
			ch.Bars = append(ch.Bars, s)
		}
		if err := add(ch, "Sync rounds each run took, after the faults stopped, until every replica held the same state (0: it did not converge)."); err != nil {
			return nil, err
		}
	} else {
		most := 0
		for j := range names {
			for _, r := range c.PerRun[j] {
				most = max(most, r.Rounds)
			}
		}
		ch := svgchart.Chart{Title: fmt.Sprintf("Sync rounds to converge, %d runs", runs), XLabel: "sync rounds (0: did not converge)", YLabel: "runs", IntegerY: true,
			Categories: make([]string, most+1)}
		for i := range ch.Categories {
			ch.Categories[i] = fmt.Sprint(i)
		}
		for j, name := range names {
			s := svgchart.Series{Name: legend(name), Values: make([]float64, most+1)}
			for _, r := range c.PerRun[j] {
				s.Values[r.Rounds]++
			}
			ch.Bars = append(ch.Bars, s)
		}
		if err := add(ch, "How many runs took each number of sync rounds, after the faults stopped, until every replica held the same state (0: the run did not converge)."); err != nil {
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
			ch := svgchart.Chart{Title: t, XLabel: "logical time (s)", YLabel: y, IntegerY: true}
			replicas := 0
			for _, s := range tl {
				replicas = max(replicas, len(s.Siblings))
			}
			for r := range replicas {
				l := svgchart.Line{Name: "replica " + replicaName(r), Step: true}
				for _, s := range tl {
					if r >= len(s.Siblings) {
						continue
					}
					v := s.Siblings[r]
					if which == "pending" {
						v = s.Pending[r]
					}
					l.Points = append(l.Points, svgchart.Point{X: s.At.Seconds(), Y: float64(v)})
				}
				ch.Lines = append(ch.Lines, l)
			}
			if err := add(ch, cap); err != nil {
				return nil, err
			}
		}
	}

	// Lost updates per policy.
	lost := svgchart.Series{Values: make([]float64, len(names))}
	for i, r := range c.Policies {
		lost.Values[i] = float64(r.LostUpdates)
	}
	if err := add(svgchart.Chart{Title: "Lost updates per policy", YLabel: "lost updates", IntegerY: true, Categories: names, Bars: []svgchart.Series{lost}},
		"Concurrent writes that lww overwrote unread, summed over the runs; the other policies keep concurrent writes (as siblings, sums or members) and lose none."); err != nil {
		return nil, err
	}

	// The request mix.
	mix := []svgchart.Series{{Name: "PUT"}, {Name: "GET"}, {Name: "LIST"}, {Name: "DELETE"}}
	for _, r := range c.Policies {
		mix[0].Values = append(mix[0].Values, float64(r.Requests.Put))
		mix[1].Values = append(mix[1].Values, float64(r.Requests.Get))
		mix[2].Values = append(mix[2].Values, float64(r.Requests.List))
		mix[3].Values = append(mix[3].Values, float64(r.Requests.Delete))
	}
	if err := add(svgchart.Chart{Title: "Requests per policy, by verb", YLabel: "requests", IntegerY: true, Categories: names, Bars: mix},
		"The requests that reached the shared store, by verb, summed over the runs."); err != nil {
		return nil, err
	}

	// The cost.
	cost := svgchart.Series{Values: make([]float64, len(names))}
	for i, r := range c.Policies {
		cost.Values[i] = r.Cost.USD * 1000
	}
	if err := add(svgchart.Chart{Title: "Estimated S3 request cost per policy", YLabel: "USD per 1,000 such workloads", Categories: names, Bars: []svgchart.Series{cost}},
		fmt.Sprintf("The requests at S3 prices (PUT and LIST $%.4f per 1,000, GET $%.4f per 1,000), for 1,000 repetitions of the runs summed.",
			PricePutListPer1000, PriceGetPer1000)); err != nil {
		return nil, err
	}
	return figs, nil
}
