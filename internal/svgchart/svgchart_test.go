package svgchart

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// node is an element of a parsed SVG.
type node struct {
	name     string
	attr     map[string]string
	text     string // the element's own character data
	children []*node
}

// parse reads svg as XML (failing the test if it is not well formed) and
// returns its root element.
func parse(t *testing.T, svg string) *node {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	d.Strict = true
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name.Local, attr: map[string]string{}}
			for _, a := range tok.Attr {
				n.attr[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else if root != nil {
				t.Fatalf("two root elements")
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if root == nil || root.name != "svg" {
		t.Fatalf("no <svg> root:\n%s", svg)
	}
	return root
}

// all returns the elements under n (n included) that match.
func (n *node) all(match func(*node) bool) []*node {
	var out []*node
	if match(n) {
		out = append(out, n)
	}
	for _, c := range n.children {
		out = append(out, c.all(match)...)
	}
	return out
}

func (n *node) f(t *testing.T, attr string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.attr[attr], 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.name, attr, n.attr[attr], err)
	}
	return v
}

// bars returns the bars of each series, in order.
func bars(root *node) [][]*node {
	var out [][]*node
	for _, g := range root.all(func(n *node) bool { return n.name == "g" && n.attr["class"] == "bars" }) {
		out = append(out, g.all(func(n *node) bool { return n.name == "rect" }))
	}
	return out
}

// yTicks maps each Y tick label to its height on the page.
func yTicks(t *testing.T, root *node) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, n := range root.all(func(n *node) bool {
		return n.name == "text" && n.attr["text-anchor"] == "end" && n.attr["transform"] == ""
	}) {
		m[n.text] = n.f(t, "y")
	}
	return m
}

// baseline is the height of the X axis: the axes path is "M x top V
// baseline H right".
func baseline(t *testing.T, root *node) float64 {
	t.Helper()
	axes := root.all(func(n *node) bool { return n.name == "path" && n.attr["class"] == "axes" })
	if len(axes) != 1 {
		t.Fatalf("%d axes paths", len(axes))
	}
	d := axes[0].attr["d"]
	i, j := strings.Index(d, "V"), strings.Index(d, "H")
	v, err := strconv.ParseFloat(d[i+1:j], 64)
	if i < 0 || j < i || err != nil {
		t.Fatalf("axes path %q", d)
	}
	return v
}

func svgOf(t *testing.T, c Chart) string {
	t.Helper()
	s, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBarsProportional: each bar stands on the X axis, its height
// proportional to its value, its top level with the tick of its value;
// the series of a group stand side by side, in order, without overlap.
func TestBarsProportional(t *testing.T) {
	c := Chart{Title: "t", YLabel: "y", IntegerY: true, Categories: []string{"a", "b", "c"},
		Bars: []Series{{Name: "one", Values: []float64{1, 2, 4}}, {Name: "two", Values: []float64{3, 0, 8}}}}
	root := parse(t, svgOf(t, c))
	got := bars(root)
	if len(got) != 2 || len(got[0]) != 3 || len(got[1]) != 3 {
		t.Fatalf("bars: %d series", len(got))
	}
	base := baseline(t, root)
	ticks := yTicks(t, root)
	unit := (base - ticks["8"]) / 8 // pixels per 1
	if unit <= 0 || math.IsNaN(unit) {
		t.Fatalf("no tick labelled 8: %v", ticks)
	}
	for s, ser := range c.Bars {
		for i, v := range ser.Values {
			r := got[s][i]
			y, h := r.f(t, "y"), r.f(t, "height")
			if math.Abs(h-v*unit) > 0.02 || math.Abs(y+h-base) > 0.02 {
				t.Errorf("series %d, bar %d (value %g): y %g height %g; want height %g on the axis at %g", s, i, v, y, h, v*unit, base)
			}
			if tick, ok := ticks[strconv.FormatFloat(v, 'f', -1, 64)]; ok && math.Abs(tick-y) > 0.02 {
				t.Errorf("series %d, bar %d (value %g): top at %g, its tick at %g", s, i, v, y, tick)
			}
		}
	}
	for i := range c.Categories {
		a, b := got[0][i], got[1][i]
		if a.f(t, "x")+a.f(t, "width") > b.f(t, "x")+0.01 {
			t.Errorf("group %d: series one's bar overlaps or follows series two's", i)
		}
		if i > 0 && got[1][i-1].f(t, "x")+got[1][i-1].f(t, "width") > a.f(t, "x") {
			t.Errorf("group %d overlaps group %d", i, i-1)
		}
	}
	// The legend names both series; one unnamed series has none.
	if texts := textsOf(root); !contains(texts, "one") || !contains(texts, "two") {
		t.Errorf("legend: %q", texts)
	}
	one := Chart{Categories: []string{"a"}, Bars: []Series{{Values: []float64{5}}}}
	if n := len(parse(t, svgOf(t, one)).all(func(n *node) bool { return n.name == "rect" && n.attr["width"] == "10" })); n != 0 {
		t.Errorf("an unnamed series has %d legend swatches", n)
	}
}

func textsOf(root *node) []string {
	var out []string
	for _, n := range root.all(func(n *node) bool { return n.name == "text" }) {
		out = append(out, n.text)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestEscapes: a label with markup is text, never markup, and reads back
// as it was; invalid UTF-8 and characters XML forbids still give XML.
func TestEscapes(t *testing.T) {
	evil := `<script>alert("x" & 'y')</script>`
	for _, c := range []Chart{
		{Title: evil + "t", XLabel: evil + "x", YLabel: evil + "y", Categories: []string{evil + "c"}, Bars: []Series{{Name: evil + "s", Values: []float64{1}}}},
		{Title: evil + "t", XLabel: evil + "x", YLabel: evil + "y", Lines: []Line{{Name: evil + "s", Points: []Point{{0, 1}, {1, 2}}}}},
	} {
		s := svgOf(t, c)
		if strings.Contains(s, "<script") || strings.Contains(s, `"x"`) {
			t.Fatalf("a label went in unescaped:\n%s", s)
		}
		root := parse(t, s)
		texts := textsOf(root)
		for _, want := range []string{evil + "t", evil + "x", evil + "y", evil + "s"} {
			if !contains(texts, want) {
				t.Errorf("no text %q in %q", want, texts)
			}
		}
		if len(c.Categories) > 0 {
			// Too long for its slot: cut, in full in its tooltip.
			tips := root.all(func(n *node) bool { return n.name == "title" && n.text == evil+"c" })
			if len(tips) != 1 {
				t.Errorf("no category %q in a tooltip", evil+"c")
			}
		}
		if root.attr["aria-label"] != evil+"t" {
			t.Errorf("aria-label %q", root.attr["aria-label"])
		}
	}
	odd := "a\x00b\x1bc\xffd\ufffe"
	root := parse(t, svgOf(t, Chart{Title: odd, Categories: []string{odd}, Bars: []Series{{Name: odd, Values: []float64{1}}}}))
	if !contains(textsOf(root), "a\ufffdb\ufffdc\ufffdd\ufffd") {
		t.Errorf("texts %q", textsOf(root))
	}
}

// TestDegenerate: no data, all zeros, one value, one point: no division
// by zero (no NaN or Inf anywhere), well-formed XML, zero-height bars on
// the axis, the axes and a tick range still drawn.
func TestDegenerate(t *testing.T) {
	for name, c := range map[string]Chart{
		"nothing":         {},
		"no series":       {Categories: []string{"a", "b"}},
		"zeros":           {Categories: []string{"a", "b"}, Bars: []Series{{Name: "z", Values: []float64{0, 0}}}, IntegerY: true},
		"one value":       {Categories: []string{"a"}, Bars: []Series{{Values: []float64{7}}}},
		"tiny value":      {Categories: []string{"a"}, Bars: []Series{{Values: []float64{1e-300}}}},
		"no points":       {Lines: []Line{{Name: "l"}}},
		"one point":       {Lines: []Line{{Name: "l", Points: []Point{{3, 4}}, Step: true}}},
		"one time":        {Lines: []Line{{Name: "l", Points: []Point{{3, 4}, {3, 0}}, Step: true}}},
		"flat zero":       {Lines: []Line{{Name: "l", Points: []Point{{0, 0}, {5, 0}}, Step: true}}, IntegerY: true},
		"negative values": {Categories: []string{"a", "b"}, Bars: []Series{{Values: []float64{-3, 2}}}},
	} {
		t.Run(name, func(t *testing.T) {
			s := svgOf(t, c)
			if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
				t.Fatalf("NaN or Inf:\n%s", s)
			}
			root := parse(t, s)
			base := baseline(t, root)
			ticks := yTicks(t, root)
			if len(ticks) < 2 {
				t.Errorf("ticks %v", ticks)
			}
			for _, ser := range bars(root) {
				for _, r := range ser {
					if h := r.f(t, "height"); h < 0 || r.f(t, "y") > base+0.01 {
						t.Errorf("bar y %s height %s below the axis at %g", r.attr["y"], r.attr["height"], base)
					}
				}
			}
			if name == "zeros" {
				for _, r := range bars(root)[0] {
					if r.f(t, "height") != 0 || math.Abs(r.f(t, "y")-base) > 0.01 {
						t.Errorf("a zero bar: y %s height %s", r.attr["y"], r.attr["height"])
					}
				}
			}
			if name == "negative values" {
				r := bars(root)[0]
				if zero := ticks["0"]; math.Abs(r[0].f(t, "y")-zero) > 0.01 || math.Abs(r[1].f(t, "y")+r[1].f(t, "height")-zero) > 0.01 {
					t.Errorf("bars do not grow from the zero tick at %g: %v %v", zero, r[0].attr, r[1].attr)
				}
			}
			if name == "one point" && len(root.all(func(n *node) bool { return n.name == "circle" })) != 1 {
				t.Error("a line of one point is not drawn")
			}
		})
	}
}

// TestStepLine: a post-step line holds each value until the next point's
// X, a run of one value being one stroke, at the heights of its ticks;
// a straight line joins its points.
func TestStepLine(t *testing.T) {
	c := Chart{IntegerY: true, Lines: []Line{
		{Name: "A", Step: true, Points: []Point{{0, 0}, {1, 2}, {2, 2}, {4, 1}}},
		{Name: "B", Points: []Point{{0, 1}, {4, 2}}},
	}}
	root := parse(t, svgOf(t, c))
	lines := root.all(func(n *node) bool { return n.name == "path" && n.attr["class"] == "line" })
	if len(lines) != 2 {
		t.Fatalf("%d line paths", len(lines))
	}
	ticks := yTicks(t, root)
	x := map[string]float64{}
	for _, n := range root.all(func(n *node) bool { return n.name == "text" && n.attr["text-anchor"] == "middle" }) {
		x[n.text] = n.f(t, "x")
	}
	want := fmt.Sprintf("M%s %sH%sV%sH%sV%sH%s", num(x["0"]), num(ticks["0"]), num(x["1"]), num(ticks["2"]), num(x["4"]), num(ticks["1"]), num(x["4"]))
	if got := lines[0].attr["d"]; got != want {
		t.Errorf("step line %q, want %q (ticks %v, x %v)", got, want, ticks, x)
	}
	if got, want := lines[1].attr["d"], fmt.Sprintf("M%s %sL%s %s", num(x["0"]), num(ticks["1"]), num(x["4"]), num(ticks["2"])); got != want {
		t.Errorf("straight line %q, want %q", got, want)
	}
	if lines[0].attr["stroke"] == lines[1].attr["stroke"] || lines[0].attr["stroke-dasharray"] == lines[1].attr["stroke-dasharray"] {
		t.Error("two lines drawn alike")
	}
	if texts := textsOf(root); !contains(texts, "A") || !contains(texts, "B") {
		t.Errorf("legend %q", texts)
	}
}

// TestTicks: ticks cover the range, at most 8 intervals, evenly spaced,
// whole numbers with integer, labelled with their values.
func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi  float64
		integer bool
		want    string
	}{
		{0, 20, true, "0 5 10 15 20"},
		{0, 3, true, "0 1 2 3"},
		{0, 0, true, "0 1"},
		{0, 0, false, "0 0.2 0.4 0.6 0.8 1"},
		{0, 2.2, false, "0 0.5 1 1.5 2 2.5"},
		{0, 0.3, false, "0 0.05 0.1 0.15 0.2 0.25 0.3"},
		{0, 4034, true, "0 1000 2000 3000 4000 5000"},
		{0, 1e-300, false, "0 2e-301 4e-301 6e-301 8e-301 1e-300"},
		{-1e308, 1e308, false, "-1e+308 1e+308"},
		{0, 3e12, true, "0 5e+11 1e+12 1.5e+12 2e+12 2.5e+12 3e+12"},
		{0, 0.9, true, "0 1"},
		{-3, 2, false, "-3 -2 -1 0 1 2"},
		{0, 12.5, false, "0 2 4 6 8 10 12 14"},
		{0, 25, false, "0 5 10 15 20 25"},
		{0, 0.025, false, "0 0.005 0.01 0.015 0.02 0.025"},
	} {
		var labels []string
		for _, tk := range Ticks(tc.lo, tc.hi, tc.integer) {
			labels = append(labels, tk.Label)
		}
		if got := strings.Join(labels, " "); got != tc.want {
			t.Errorf("Ticks(%g, %g, %v) = %s, want %s", tc.lo, tc.hi, tc.integer, got, tc.want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		scale := math.Pow(10, float64(r.IntN(12)-6))
		lo, hi := 0.0, r.Float64()*scale
		if r.IntN(3) == 0 {
			lo = -r.Float64() * scale
		}
		integer := r.IntN(2) == 0
		ticks := Ticks(lo, hi, integer)
		if len(ticks) < 2 || len(ticks) > maxTicks+1 {
			t.Fatalf("Ticks(%g, %g, %v): %d ticks", lo, hi, integer, len(ticks))
		}
		first, last := ticks[0].Value, ticks[len(ticks)-1].Value
		step := ticks[1].Value - ticks[0].Value
		if first > lo || last < hi {
			t.Fatalf("Ticks(%g, %g, %v) = %v: does not cover the range", lo, hi, integer, ticks)
		}
		for i, tk := range ticks {
			v, err := strconv.ParseFloat(tk.Label, 64)
			if err != nil || math.Abs(v-tk.Value) > step*1e-6 || math.Abs(tk.Value-(first+float64(i)*step)) > step*1e-6 {
				t.Fatalf("Ticks(%g, %g, %v) = %v: tick %d off", lo, hi, integer, ticks, i)
			}
			if integer && tk.Value != math.Trunc(tk.Value) {
				t.Fatalf("Ticks(%g, %g, true) = %v: not whole", lo, hi, ticks)
			}
		}
	}
}

// TestBadCharts: a chart SVG cannot draw is an error, not a picture.
func TestBadCharts(t *testing.T) {
	two := []Point{{0, 1}, {1, 2}}
	for name, c := range map[string]Chart{
		"bars and lines":  {Categories: []string{"a"}, Bars: []Series{{Values: []float64{1}}}, Lines: []Line{{Points: two}}},
		"too few values":  {Categories: []string{"a", "b"}, Bars: []Series{{Name: "s", Values: []float64{1}}}},
		"no categories":   {Bars: []Series{{Values: []float64{1}}}},
		"NaN bar":         {Categories: []string{"a"}, Bars: []Series{{Values: []float64{math.NaN()}}}},
		"infinite bar":    {Categories: []string{"a"}, Bars: []Series{{Values: []float64{math.Inf(1)}}}},
		"huge bar":        {Categories: []string{"a", "b"}, Bars: []Series{{Values: []float64{-1e308, 1e308}}}},
		"huge X":          {Lines: []Line{{Points: []Point{{-1e308, 0}, {1e308, 1}}}}},
		"NaN point":       {Lines: []Line{{Points: []Point{{0, math.NaN()}}}}},
		"X goes back":     {Lines: []Line{{Name: "l", Points: []Point{{1, 1}, {0, 2}}}}},
		"negative width":  {Width: -1, Lines: []Line{{Points: two}}},
		"too small":       {Width: 50, Height: 40, Lines: []Line{{Points: two}}},
		"infinite height": {Height: math.Inf(1), Lines: []Line{{Points: two}}},
	} {
		if s, err := c.SVG(); err == nil || s != "" {
			t.Errorf("%s: no error (%d bytes)", name, len(s))
		} else if !strings.HasPrefix(err.Error(), "svgchart: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestLayout: the same chart gives the same bytes; its size is the one
// asked for; labels too long for their slot are slanted, a very long one
// cut (in full in its tooltip); no namespace or URL is named.
func TestLayout(t *testing.T) {
	long := strings.Repeat("policy-name-", 4)
	c := Chart{Title: "T", Width: 500, Height: 260, Categories: []string{long, "b", "c", "d", "e", "f"}, Bars: []Series{{Values: []float64{1, 2, 3, 4, 5, 6}}}}
	s := svgOf(t, c)
	if s2 := svgOf(t, c); s != s2 {
		t.Fatal("two renderings differ")
	}
	if strings.Contains(s, "xmlns") || strings.Contains(s, "http") {
		t.Error("the SVG names a namespace or URL")
	}
	root := parse(t, s)
	if root.attr["width"] != "500" || root.attr["height"] != "260" || root.attr["viewBox"] != "0 0 500 260" {
		t.Errorf("size %v", root.attr)
	}
	slanted := root.all(func(n *node) bool { return n.name == "text" && strings.HasPrefix(n.attr["transform"], "rotate(-35") })
	if len(slanted) != 6 {
		t.Fatalf("%d slanted category labels, want 6", len(slanted))
	}
	if got := slanted[0].text; got != long[:maxLabel-1]+"…" || len(slanted[0].children) != 1 || slanted[0].children[0].text != long {
		t.Errorf("long label %q, tooltip %v", got, slanted[0].children)
	}
	for _, n := range root.all(func(n *node) bool { return n.attr["x"] != "" }) {
		if x := n.f(t, "x"); x < 0 || x > 500 {
			t.Errorf("<%s> at x %g, outside the chart", n.name, x)
		}
	}
	// Short labels stay level.
	c.Categories[0] = "a"
	if n := len(parse(t, svgOf(t, c)).all(func(n *node) bool { return strings.HasPrefix(n.attr["transform"], "rotate(-35") })); n != 0 {
		t.Errorf("%d slanted labels for short names", n)
	}
}
