// Package svgchart draws bar charts (grouped, one bar per series in each
// category) and line charts (straight or post-step) as SVG, with the
// standard library only: no font is embedded or measured, text is SVG
// <text> in the generic sans-serif family and its width is estimated.
//
// The SVG is meant to be inlined in an HTML page: it names no namespace
// (HTML puts an inline <svg> in the SVG namespace), no URL, no script and
// no stylesheet. Every label is escaped. The same chart gives the same
// bytes.
package svgchart

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The size of a chart when Chart.Width or Chart.Height is zero, in CSS
// pixels.
const (
	DefaultWidth  = 672
	DefaultHeight = 320
)

// Chart is a bar chart (Categories and Bars) or a line chart (Lines), with
// a title, axis labels, Y grid lines and ticks, and a legend of the
// series that have a name.
type Chart struct {
	// Title is drawn above the chart; XLabel and YLabel name the axes.
	// Any may be empty.
	Title, XLabel, YLabel string
	// Width and Height are the SVG's size in CSS pixels (zero: the
	// defaults).
	Width, Height float64
	// IntegerY puts the Y ticks on whole numbers only.
	IntegerY bool

	// Categories are the groups of bars along X, in order.
	Categories []string
	// Bars are the bar series: each has a value per category, drawn side
	// by side in the category's group, from zero.
	Bars []Series

	// Lines are the line series, over a numeric X axis.
	Lines []Line
}

// Series is one series of bars.
type Series struct {
	// Name is the series' legend entry ("": none).
	Name string
	// Values holds one value per category.
	Values []float64
}

// Line is one line series.
type Line struct {
	// Name is the line's legend entry ("": none).
	Name string
	// Points are the line's points, in non-decreasing X.
	Points []Point
	// Step draws the line post-step: each point's Y holds until the next
	// point's X.
	Step bool
}

// Point is a point of a line.
type Point struct{ X, Y float64 }

// Palette is the series' colours, in order (then again).
var palette = []string{"#f15a60", "#7ac36a", "#5a9bd4", "#faa75b", "#9e67ab", "#ce7058", "#d77fb4"}

// dashes are the lines' dash patterns, in order (then again), so lines
// that overlap stay told apart.
var dashes = []string{"", "6 2", "2 2", "1 1", "5 2 1 2", "10 2 2 2", "10 2 2 2 2 2"}

// Layout, in CSS pixels.
const (
	titleSize  = 14
	labelSize  = 12
	tickSize   = 11
	legendSize = 11
	charWidth  = 0.6 // an estimated average glyph width, in ems
	tickLen    = 5
	pad        = 8
	maxLabel   = 24    // category labels longer than this many characters are cut
	maxTicks   = 8     // at most this many intervals between ticks
	maxValue   = 1e300 // larger values are refused: their range would overflow
)

// SVG returns the chart as an <svg> element, or an error for a chart it
// cannot draw (both bars and lines; a series whose values do not match the
// categories; a value that is not a finite number within ±1e300; a line whose X goes
// back; a size too small for the axes).
func (c Chart) SVG() (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	w, h := c.Width, c.Height
	if w == 0 {
		w = DefaultWidth
	}
	if h == 0 {
		h = DefaultHeight
	}

	// The Y range and ticks: from the data, zero included (bars grow from
	// zero), up to the tick at or above the highest value.
	lo, hi := 0.0, 0.0
	for _, s := range c.Bars {
		for _, v := range s.Values {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	for _, l := range c.Lines {
		for _, p := range l.Points {
			lo, hi = min(lo, p.Y), max(hi, p.Y)
		}
	}
	yt := Ticks(lo, hi, c.IntegerY)
	ymin, ymax := yt[0].Value, yt[len(yt)-1].Value

	// The X range of a line chart: the data's, and its ticks inside it.
	var xmin, xmax float64
	var xt []Tick
	if len(c.Lines) > 0 {
		xmin, xmax = math.Inf(1), math.Inf(-1)
		for _, l := range c.Lines {
			for _, p := range l.Points {
				xmin, xmax = min(xmin, p.X), max(xmax, p.X)
			}
		}
		if xmin > xmax { // no points at all
			xmin, xmax = 0, 1
		}
		if xmin == xmax {
			xmin, xmax = xmin-0.5, xmax+0.5
		}
		for _, t := range Ticks(xmin, xmax, false) {
			if t.Value >= xmin-1e-9*(xmax-xmin) && t.Value <= xmax+1e-9*(xmax-xmin) {
				xt = append(xt, t)
			}
		}
	}

	// The legend entries.
	type entry struct {
		name string
		i    int
	}
	var legend []entry
	for i, s := range c.Bars {
		if s.Name != "" {
			legend = append(legend, entry{s.Name, i})
		}
	}
	for i, l := range c.Lines {
		if l.Name != "" {
			legend = append(legend, entry{l.Name, i})
		}
	}

	// Margins around the plot area.
	left := float64(pad)
	if c.YLabel != "" {
		left += labelSize + 6
	}
	widest := 0.0
	for _, t := range yt {
		widest = max(widest, textWidth(t.Label, tickSize))
	}
	left += widest + 4 + tickLen
	right := float64(pad) + 8
	if len(xt) > 0 {
		right = max(right, textWidth(xt[len(xt)-1].Label, tickSize)/2+4)
	}
	top := float64(pad)
	if c.Title != "" {
		top += titleSize + 6
	}
	pw := w - left - right

	// The legend, in rows above the plot area.
	type placed struct {
		entry
		x, y float64
	}
	var legendAt []placed
	if len(legend) > 0 {
		x, row := left, 0
		for _, e := range legend {
			ew := 14 + 4 + textWidth(e.name, legendSize) + 14
			if x > left && x+ew > left+pw {
				x, row = left, row+1
			}
			legendAt = append(legendAt, placed{e, x, top + float64(row)*16 + legendSize})
			x += ew
		}
		top += float64(row+1)*16 + 4
	}
	top += 6 // room for the top tick's label

	// Category labels: level, or slanted when they do not fit their slot.
	cats := make([]string, len(c.Categories))
	slant := false
	catHeight := float64(tickSize)
	if len(c.Categories) > 0 {
		slot := pw / float64(len(c.Categories))
		long := 0.0
		for i, name := range c.Categories {
			cats[i] = cut(name)
			long = max(long, textWidth(cats[i], tickSize))
		}
		if long > slot*0.95 {
			slant = true
			catHeight = long*math.Sin(35*math.Pi/180) + tickSize
		}
	}
	bottom := float64(pad) + tickLen + 3 + catHeight
	if c.XLabel != "" {
		bottom += 6 + labelSize
	}
	ph := h - top - bottom
	if pw < 40 || ph < 40 {
		return "", fmt.Errorf("svgchart: %gx%g is too small for the chart's axes and labels", w, h)
	}

	y := func(v float64) float64 { return top + ph - (v-ymin)/(ymax-ymin)*ph }
	x := func(v float64) float64 { return left + (v-xmin)/(xmax-xmin)*pw }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg role="img" width="%s" height="%s" viewBox="0 0 %s %s" font-family="sans-serif" font-size="%d"`, num(w), num(h), num(w), num(h), tickSize)
	if c.Title != "" {
		fmt.Fprintf(&b, ` aria-label="%s"`, esc(c.Title))
	}
	b.WriteString(">\n")
	if c.Title != "" {
		fmt.Fprintf(&b, "<title>%s</title>\n", esc(c.Title))
	}
	b.WriteString(`<rect x="0" y="0" width="100%" height="100%" fill="#fff"/>` + "\n")
	if c.Title != "" {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-size="%d" font-weight="bold">%s</text>`+"\n",
			num(left+pw/2), num(pad+titleSize), titleSize, esc(c.Title))
	}

	// Grid lines at the Y ticks (and the X ticks of a line chart).
	var grid strings.Builder
	for _, t := range yt {
		fmt.Fprintf(&grid, "M%s %sH%s", num(left), num(y(t.Value)), num(left+pw))
	}
	for _, t := range xt {
		fmt.Fprintf(&grid, "M%s %sV%s", num(x(t.Value)), num(top), num(top+ph))
	}
	fmt.Fprintf(&b, `<path class="grid" d="%s" stroke="#ddd" stroke-width="1" fill="none"/>`+"\n", grid.String())

	// The data.
	if len(c.Categories) > 0 {
		slot := pw / float64(len(c.Categories))
		n := max(len(c.Bars), 1)
		bw := min(40, slot*0.8/float64(n))
		for s, ser := range c.Bars {
			fmt.Fprintf(&b, `<g class="bars" fill="%s">`+"\n", palette[s%len(palette)])
			for i, v := range ser.Values {
				bx := left + slot*(float64(i)+0.5) + bw*(float64(s)-float64(n)/2)
				y0, y1 := y(max(v, 0)), y(min(v, 0))
				fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>`+"\n",
					num(bx), num(y0), num(bw), num(y1-y0), esc(barTitle(c.Categories[i], ser.Name, v)))
			}
			b.WriteString("</g>\n")
		}
	}
	for i, l := range c.Lines {
		style := fmt.Sprintf(`stroke="%s" stroke-width="1.5"`, palette[i%len(palette)])
		if d := dashes[i%len(dashes)]; d != "" {
			style += fmt.Sprintf(` stroke-dasharray="%s"`, d)
		}
		switch len(l.Points) {
		case 0:
		case 1:
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2" fill="%s"/>`+"\n", num(x(l.Points[0].X)), num(y(l.Points[0].Y)), palette[i%len(palette)])
		default:
			fmt.Fprintf(&b, `<path class="line" d="%s" %s fill="none" stroke-linejoin="round"/>`+"\n", linePath(l, x, y), style)
		}
	}

	// The axes, their ticks and labels.
	fmt.Fprintf(&b, `<path class="axes" d="M%s %sV%sH%s" stroke="#000" stroke-width="1" fill="none"/>`+"\n",
		num(left), num(top), num(top+ph), num(left+pw))
	var ticks strings.Builder
	for _, t := range yt {
		fmt.Fprintf(&ticks, "M%s %sh%d", num(left-tickLen), num(y(t.Value)), tickLen)
	}
	for _, t := range xt {
		fmt.Fprintf(&ticks, "M%s %sv%d", num(x(t.Value)), num(top+ph), tickLen)
	}
	slot := 0.0
	if len(c.Categories) > 0 {
		slot = pw / float64(len(c.Categories))
		for i := range c.Categories {
			fmt.Fprintf(&ticks, "M%s %sv%d", num(left+slot*(float64(i)+0.5)), num(top+ph), tickLen)
		}
	}
	fmt.Fprintf(&b, `<path class="ticks" d="%s" stroke="#000" stroke-width="1" fill="none"/>`+"\n", ticks.String())
	for _, t := range yt {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" dy="0.35em">%s</text>`+"\n",
			num(left-tickLen-3), num(y(t.Value)), esc(t.Label))
	}
	ly := top + ph + tickLen + 3 + tickSize
	for _, t := range xt {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", num(x(t.Value)), num(ly), esc(t.Label))
	}
	for i, name := range cats {
		cx := left + slot*(float64(i)+0.5)
		full := ""
		if name != c.Categories[i] {
			full = "<title>" + esc(c.Categories[i]) + "</title>"
		}
		if slant {
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" transform="rotate(-35 %s %s)">%s%s</text>`+"\n",
				num(cx), num(ly-3), num(cx), num(ly-3), full, esc(name))
		} else {
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s%s</text>`+"\n", num(cx), num(ly), full, esc(name))
		}
	}
	if c.XLabel != "" {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-size="%d">%s</text>`+"\n",
			num(left+pw/2), num(h-pad), labelSize, esc(c.XLabel))
	}
	if c.YLabel != "" {
		lx, lyy := float64(pad+labelSize), top+ph/2
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-size="%d" transform="rotate(-90 %s %s)">%s</text>`+"\n",
			num(lx), num(lyy), labelSize, num(lx), num(lyy), esc(c.YLabel))
	}

	// The legend.
	for _, e := range legendAt {
		col := palette[e.i%len(palette)]
		if len(c.Bars) > 0 {
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="10" height="10" fill="%s"/>`+"\n", num(e.x+2), num(e.y-9), col)
		} else {
			dash := ""
			if d := dashes[e.i%len(dashes)]; d != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, d)
			}
			fmt.Fprintf(&b, `<path d="M%s %sh14" stroke="%s" stroke-width="1.5"%s/>`+"\n", num(e.x), num(e.y-4), col, dash)
		}
		fmt.Fprintf(&b, `<text x="%s" y="%s" font-size="%d">%s</text>`+"\n", num(e.x+18), num(e.y), legendSize, esc(e.name))
	}
	b.WriteString("</svg>\n")
	return b.String(), nil
}

// check refuses a chart SVG cannot draw.
func (c Chart) check() error {
	if c.Width < 0 || c.Height < 0 || math.IsNaN(c.Width) || math.IsNaN(c.Height) || math.IsInf(c.Width, 0) || math.IsInf(c.Height, 0) {
		return fmt.Errorf("svgchart: size %gx%g: not a size", c.Width, c.Height)
	}
	if len(c.Lines) > 0 && (len(c.Bars) > 0 || len(c.Categories) > 0) {
		return errors.New("svgchart: a chart holds bars or lines, not both")
	}
	if len(c.Bars) > 0 && len(c.Categories) == 0 {
		return errors.New("svgchart: bars without categories")
	}
	for _, s := range c.Bars {
		if len(s.Values) != len(c.Categories) {
			return fmt.Errorf("svgchart: series %q has %d values for %d categories", s.Name, len(s.Values), len(c.Categories))
		}
		for i, v := range s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxValue {
				return fmt.Errorf("svgchart: series %q, category %q: %g is not a finite number within ±1e300", s.Name, c.Categories[i], v)
			}
		}
	}
	for _, l := range c.Lines {
		for i, p := range l.Points {
			if !(math.Abs(p.X) <= maxValue && math.Abs(p.Y) <= maxValue) {
				return fmt.Errorf("svgchart: line %q, point %d: (%g, %g) is not a finite point within ±1e300", l.Name, i, p.X, p.Y)
			}
			if i > 0 && p.X < l.Points[i-1].X {
				return fmt.Errorf("svgchart: line %q, point %d: X goes back from %g to %g", l.Name, i, l.Points[i-1].X, p.X)
			}
		}
	}
	return nil
}

// linePath is the path of a line's points (two or more): straight from
// point to point, or post-step, where a run of points of one Y is one
// horizontal stroke.
func linePath(l Line, x, y func(float64) float64) string {
	var d strings.Builder
	p := l.Points
	fmt.Fprintf(&d, "M%s %s", num(x(p[0].X)), num(y(p[0].Y)))
	if !l.Step {
		for _, q := range p[1:] {
			fmt.Fprintf(&d, "L%s %s", num(x(q.X)), num(y(q.Y)))
		}
		return d.String()
	}
	cur := p[0].Y
	for _, q := range p[1:] {
		if q.Y != cur {
			fmt.Fprintf(&d, "H%sV%s", num(x(q.X)), num(y(q.Y)))
			cur = q.Y
		}
	}
	fmt.Fprintf(&d, "H%s", num(x(p[len(p)-1].X)))
	return d.String()
}

// Tick is a tick on an axis.
type Tick struct {
	Value float64
	Label string
}

// Ticks returns evenly spaced ticks from at or below lo to at or above hi
// (lo <= hi), at most 8 intervals, at multiples of 1, 2, 2.5 or 5 times a
// power of ten (whole numbers only with integer), labelled without
// trailing zeros. An empty range (lo == hi) gets a unit range; a range
// wider than a float64 holds gets its two ends.
func Ticks(lo, hi float64, integer bool) []Tick {
	if integer {
		lo, hi = math.Floor(lo), math.Ceil(hi)
	}
	if hi <= lo {
		hi = lo + 1
	}
	if !(hi-lo <= math.MaxFloat64) { // not finite, or a span that overflows
		return []Tick{{lo, strconv.FormatFloat(lo, 'g', 3, 64)}, {hi, strconv.FormatFloat(hi, 'g', 3, 64)}}
	}
	step, m, decimals, first, last := niceStep(lo, hi, integer)
	// Very small or large numbers in exponent form, with the significant
	// digits that tell the ticks apart.
	big := max(math.Abs(first), math.Abs(last)) * step
	exp := decimals > 6 || big >= 1e9
	digits := int(math.Floor(math.Log10(max(math.Abs(first), math.Abs(last), 1)))) + 2
	if m == 2.5 {
		digits++
	}
	var ticks []Tick
	for k := first; k <= last; k++ {
		v := k * step
		if v == 0 {
			v = 0 // not -0
		}
		var label string
		if exp {
			label = strconv.FormatFloat(v, 'g', digits, 64)
		} else {
			label = strconv.FormatFloat(v, 'f', decimals, 64)
			if strings.Contains(label, ".") {
				label = strings.TrimRight(strings.TrimRight(label, "0"), ".")
			}
		}
		ticks = append(ticks, Tick{v, label})
	}
	return ticks
}

// niceStep is the smallest step of the form 1, 2, 2.5 or 5 times a power
// of ten (at least 1 and whole with integer) whose multiples first*step
// <= lo and last*step >= hi are at most maxTicks intervals apart, and the
// decimals its multiples' labels need; m is the step's 1, 2, 2.5 or 5.
func niceStep(lo, hi float64, integer bool) (step, m float64, decimals int, first, last float64) {
	k := int(max(math.Floor(math.Log10((hi-lo)/maxTicks)), -320))
	for ; k <= 308; k++ {
		p := math.Pow(10, float64(k))
		for _, m = range []float64{1, 2, 2.5, 5} {
			step = m * p
			if integer && (k < 0 || (k == 0 && m == 2.5)) {
				continue
			}
			// The tolerance keeps a bound that is a multiple of the step,
			// give or take rounding, on the tick.
			first, last = math.Floor(lo/step+1e-9), math.Ceil(hi/step-1e-9)
			if last-first <= maxTicks {
				decimals = max(0, -k)
				if m == 2.5 {
					decimals = max(0, 1-k)
				}
				return step, m, decimals, first, last
			}
		}
	}
	// Only a span near the largest float64 gets here.
	step = hi - lo
	return step, 1, 0, math.Floor(lo / step), math.Ceil(hi / step)
}

// barTitle is a bar's tooltip: its category, series and value.
func barTitle(cat, series string, v float64) string {
	name := cat
	if series != "" {
		name += ", " + series
	}
	return name + ": " + strconv.FormatFloat(v, 'g', 6, 64)
}

// cut shortens a category label to maxLabel characters.
func cut(s string) string {
	if utf8.RuneCountInString(s) <= maxLabel {
		return s
	}
	r := []rune(s)
	return string(r[:maxLabel-1]) + "…"
}

// textWidth estimates the width of s in the generic sans-serif family.
func textWidth(s string, size float64) float64 {
	return float64(utf8.RuneCountInString(s)) * size * charWidth
}

// num formats a coordinate with at most two decimals.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// esc makes s text or an attribute value of XML (and HTML): it escapes
// the markup characters, and replaces invalid UTF-8 and the characters
// XML forbids with U+FFFD.
func esc(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&#34;")
		case r == '\'':
			b.WriteString("&#39;")
		case r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r < 0xD800) || (r >= 0xE000 && r < 0xFFFE) || r >= 0x10000:
			b.WriteRune(r)
		default:
			b.WriteRune('\uFFFD')
		}
	}
	return b.String()
}
