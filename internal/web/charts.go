package web

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// Charts are drawn on the server as inline SVG: no script, nothing that the
// Content-Security-Policy would have to allow, and they print.

// Bar is one bar of a horizontal bar chart.
type Bar struct {
	Label string
	Value int
	Href  string // optional link, e.g. to the devices behind the bar
}

// barChart draws labelled horizontal bars scaled to the largest value.
func barChart(bars []Bar) template.HTML {
	if len(bars) == 0 {
		return ""
	}
	const rowH, labelW, barW, width = 22, 150, 260, 480
	maxV := 1
	for _, b := range bars {
		maxV = max(maxV, b.Value)
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart bars" role="img" viewBox="0 0 %d %d" width="%d" height="%d">`,
		width, rowH*len(bars), width, rowH*len(bars))
	for i, b := range bars {
		y := i * rowH
		w := int(math.Round(float64(barW) * float64(b.Value) / float64(maxV)))
		label := html.EscapeString(truncate(b.Label, 22))
		if label == "" {
			label = "(none)"
		}
		open, end := "", ""
		if b.Href != "" {
			open, end = `<a href="`+html.EscapeString(b.Href)+`">`, "</a>"
		}
		fmt.Fprintf(&s, `%s<g><title>%s: %d</title><text x="0" y="%d" class="label">%s</text>`+
			`<rect x="%d" y="%d" width="%d" height="%d" class="bar"></rect>`+
			`<text x="%d" y="%d" class="value">%d</text></g>%s`,
			open, html.EscapeString(b.Label), b.Value, y+15, label,
			labelW, y+4, max(w, 1), rowH-8, labelW+max(w, 1)+6, y+15, b.Value, end)
	}
	s.WriteString(`</svg>`)
	return template.HTML(s.String())
}

// sparkline draws a small trend line; the last value is marked.
func sparkline(vals []float64) template.HTML {
	if len(vals) == 0 {
		return template.HTML(`<span class="muted">no data</span>`)
	}
	const w, h = 120, 24
	lo, hi := vals[0], vals[0]
	for _, v := range vals {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi == lo {
		hi = lo + 1
	}
	pts := make([]string, len(vals))
	var x, y float64
	for i, v := range vals {
		x = float64(w-4) * float64(i) / float64(max(len(vals)-1, 1))
		y = float64(h-4) - float64(h-6)*(v-lo)/(hi-lo)
		pts[i] = fmt.Sprintf("%.1f,%.1f", x+2, y+2)
	}
	return template.HTML(fmt.Sprintf(`<svg class="chart spark" role="img" viewBox="0 0 %d %d" width="%d" height="%d">`+
		`<title>%d points, last %s</title><polyline points="%s" class="line"></polyline>`+
		`<circle cx="%.1f" cy="%.1f" r="2" class="dot"></circle></svg>`,
		w, h, w, h, len(vals), trimFloat(vals[len(vals)-1]), strings.Join(pts, " "), x+2, y+2))
}

// Point is one value of a time series.
type Point struct {
	T time.Time
	V float64
}

// LineChart is a time series with an optional threshold line, e.g. a
// health statistic against the value that halts the campaign.
type LineChart struct {
	Label     string
	Points    []Point
	Threshold *float64
	// ThresholdLabel names the threshold line ("halt at").
	ThresholdLabel string
}

// labelHeight is the height of a chart's text in SVG units (app.css sets
// 11 px for svg.chart text).
const labelHeight = 11

// lineChart draws c with time on the x axis.
func lineChart(c LineChart) template.HTML {
	if len(c.Points) == 0 {
		return template.HTML(`<p class="muted">No measurements yet.</p>`)
	}
	const w, h, padL, padB, padT = 520, 180, 48, 22, 10
	t0, t1 := c.Points[0].T, c.Points[len(c.Points)-1].T
	lo, hi := c.Points[0].V, c.Points[0].V
	for _, p := range c.Points {
		lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
		if p.T.Before(t0) {
			t0 = p.T
		}
		if p.T.After(t1) {
			t1 = p.T
		}
	}
	if c.Threshold != nil {
		lo, hi = math.Min(lo, *c.Threshold), math.Max(hi, *c.Threshold)
	}
	lo = math.Min(lo, 0)
	if hi == lo {
		hi = lo + 1
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	xOf := func(t time.Time) float64 { return padL + float64(w-padL-8)*float64(t.Sub(t0))/float64(span) }
	yOf := func(v float64) float64 { return padT + float64(h-padT-padB)*(1-(v-lo)/(hi-lo)) }
	var s strings.Builder
	fmt.Fprintf(&s, `<svg class="chart line" role="img" viewBox="0 0 %d %d" width="%d" height="%d"><title>%s</title>`,
		w, h, w, h, html.EscapeString(c.Label))
	fmt.Fprintf(&s, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"></line>`, padL, h-padB, w-8, h-padB)
	fmt.Fprintf(&s, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, padL-4, yOf(hi)+4, trimFloat(hi))
	fmt.Fprintf(&s, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, padL-4, yOf(lo)+4, trimFloat(lo))
	fmt.Fprintf(&s, `<text x="%d" y="%d" class="tick">%s</text>`, padL, h-4, html.EscapeString(t0.UTC().Format("Jan 2 15:04")))
	fmt.Fprintf(&s, `<text x="%d" y="%d" class="tick" text-anchor="end">%s</text>`, w-8, h-4, html.EscapeString(t1.UTC().Format("Jan 2 15:04")))
	if c.Threshold != nil {
		y := yOf(*c.Threshold)
		fmt.Fprintf(&s, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="threshold"></line>`, padL, y, w-8, y)
		// The label sits above the line, or below it when the line is at
		// the top of the plot and the label would be cut off there.
		ly := y - 4
		if ly < padT+labelHeight {
			ly = y + labelHeight + 2
		}
		fmt.Fprintf(&s, `<text x="%d" y="%.1f" class="tick threshold-label" text-anchor="end">%s %s</text>`,
			w-8, ly, html.EscapeString(c.ThresholdLabel), trimFloat(*c.Threshold))
	}
	pts := make([]string, len(c.Points))
	for i, p := range c.Points {
		pts[i] = fmt.Sprintf("%.1f,%.1f", xOf(p.T), yOf(p.V))
	}
	fmt.Fprintf(&s, `<polyline points="%s" class="line"></polyline>`, strings.Join(pts, " "))
	last := c.Points[len(c.Points)-1]
	fmt.Fprintf(&s, `<circle cx="%.1f" cy="%.1f" r="3" class="dot"><title>%s</title></circle></svg>`,
		xOf(last.T), yOf(last.V), trimFloat(last.V))
	return template.HTML(s.String())
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3g", v)
	if strings.ContainsAny(s, "e") {
		s = fmt.Sprintf("%.2f", v)
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
