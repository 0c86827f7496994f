package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/image-swapper/image-swapper/internal/scan"
)

// colour is one named colour of the page. The palette is the only place
// colours are chosen: the stylesheet's custom properties and the charts'
// fills come from it, and a test checks the contrast of each pair that
// is read together (WCAG 2.2: 4.5:1 for text, 3:1 for chart marks).
type colour struct{ Name, Hex string }

var palette = []colour{
	{"fg", "#1b1b1b"},
	{"bg", "#ffffff"},
	{"muted", "#555555"},
	{"link", "#0b57a4"},
	{"focus", "#0b57a4"},
	{"rule", "#c4c4c4"},
	{"grid", "#e2e2e2"},
	{"head-bg", "#eef1f4"},
	{"stripe", "#f7f8f9"},
	{"fail-fg", "#9b1c1c"}, {"fail-bg", "#fdecec"},
	{"pass-fg", "#1d6b35"}, {"pass-bg", "#e8f5ec"},
	{"warn-fg", "#7a4a00"}, {"warn-bg", "#fff4d8"},
	{"none-fg", "#474747"}, {"none-bg", "#f0f0f0"},
	{"sev-critical", "#9b1c1c"},
	{"sev-high", "#b54300"},
	{"sev-medium", "#806300"},
	{"sev-low", "#1f5fa8"},
	{"sev-unknown", "#5f6368"},
	{"series-admissions", "#1f5fa8"},
	{"series-denials", "#b54300"},
	{"series-images", "#5f6368"},
	{"series-scanned", "#1f5fa8"},
	{"series-crithigh", "#9b1c1c"},
}

func hex(name string) string {
	for _, c := range palette {
		if c.Name == name {
			return c.Hex
		}
	}
	panic("report: no colour " + name)
}

// paletteCSS declares the palette as custom properties.
func paletteCSS() string {
	var b strings.Builder
	b.WriteString(":root {")
	for _, c := range palette {
		fmt.Fprintf(&b, " --%s: %s;", c.Name, c.Hex)
	}
	b.WriteString(" }\n")
	return b.String()
}

// pattern is a fill that tells a series apart without its colour: solid,
// stripes at an angle, or dots, in the series' colour with white.
type pattern struct {
	ID, Colour, Kind string
	Rotate           int
}

// series is how one data series is drawn and named.
type series struct {
	Key, Label string
	Colour     string
	// Fill is the colour or the pattern (url(#...)) of bars.
	Fill string
	// Shape and Dash draw line series: marker shape and stroke-dasharray.
	Shape, Dash string
}

var (
	severitySeries = []series{
		{Key: "critical", Label: "Critical", Colour: hex("sev-critical"), Fill: hex("sev-critical")},
		{Key: "high", Label: "High", Colour: hex("sev-high"), Fill: "url(#pat-high)"},
		{Key: "medium", Label: "Medium", Colour: hex("sev-medium"), Fill: "url(#pat-medium)"},
		{Key: "low", Label: "Low", Colour: hex("sev-low"), Fill: "url(#pat-low)"},
		{Key: "unknown", Label: "Unknown", Colour: hex("sev-unknown"), Fill: "url(#pat-unknown)"},
	}
	admissionsSeries = series{Key: "admissions", Label: "Admissions", Colour: hex("series-admissions"), Fill: hex("series-admissions")}
	denialsSeries    = series{Key: "denials", Label: "Denials", Colour: hex("series-denials"), Fill: "url(#pat-denials)"}
	imageSeries      = []series{
		{Key: "images", Label: "Images admitted", Colour: hex("series-images"), Shape: "triangle", Dash: "2 3"},
		{Key: "scanned", Label: "Scanned", Colour: hex("series-scanned"), Shape: "square", Dash: "6 3"},
		{Key: "crithigh", Label: "With critical or high findings", Colour: hex("series-crithigh"), Shape: "circle"},
	}
	patterns = []pattern{
		{ID: "pat-high", Colour: hex("sev-high"), Kind: "stripes", Rotate: 45},
		{ID: "pat-medium", Colour: hex("sev-medium"), Kind: "dots"},
		{ID: "pat-low", Colour: hex("sev-low"), Kind: "stripes", Rotate: -45},
		{ID: "pat-unknown", Colour: hex("sev-unknown"), Kind: "stripes", Rotate: 90},
		{ID: "pat-denials", Colour: hex("series-denials"), Kind: "stripes", Rotate: 45},
	}
)

// svgChart is one chart as the template draws it: shapes in the
// coordinates of its viewBox. Every data point is one element of Marks,
// carrying its series, label and value as data attributes and a
// tooltip.
type svgChart struct {
	ID, Title, Desc string
	// Note says what the chart leaves out, if anything.
	Note string
	// Empty, when set, replaces the chart: there is nothing to draw.
	Empty  string
	W, H   float64
	Lines  []svgLine
	Texts  []svgText
	Paths  []svgPath
	Marks  []svgMark
	Legend []series
}

type svgLine struct {
	X1, Y1, X2, Y2 float64
	Class          string
}

type svgText struct {
	X, Y   float64
	Anchor string // start, middle, end
	Class  string
	Text   string
	// Title is the full text of a shortened label.
	Title string
}

type svgPath struct {
	Points, Stroke, Dash string
}

type svgMark struct {
	// Shape is rect, circle, square, triangle or stack.
	Shape      string
	X, Y, W, H float64
	Fill       string
	Stroke     string
	Series     string
	Label      string
	Value      string
	Title      string
	// Segs are the parts of a stacked bar (Shape stack).
	Segs []svgSeg
}

type svgSeg struct {
	X, Y, W, H          float64
	Fill, Series, Value string
	Title               string
}

// num formats a coordinate.
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64)
}

// niceScale is the top of an axis from 0 that holds maxV, and its tick
// step: 1, 2 or 5 times a power of ten, at least 1 (the charts count).
func niceScale(maxV float64) (top, step float64) {
	if maxV <= 0 {
		return 1, 1
	}
	raw := maxV / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	step = max(step, 1)
	return math.Ceil(maxV/step) * step, step
}

// yAxis draws the horizontal grid and its labels for values 0..top.
func (c *svgChart) yAxis(left, right, top, height, topV, step float64) func(float64) float64 {
	y := func(v float64) float64 { return top + height - v/topV*height }
	for v := 0.0; v <= topV+step/2; v += step {
		c.Lines = append(c.Lines, svgLine{X1: left, Y1: y(v), X2: right, Y2: y(v), Class: "grid"})
		c.Texts = append(c.Texts, svgText{X: left - 6, Y: y(v) + 4, Anchor: "end", Class: "axis", Text: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	c.Lines = append(c.Lines, svgLine{X1: left, Y1: y(0), X2: right, Y2: y(0), Class: "baseline"})
	return y
}

// xAxis draws the vertical grid of a bar chart for values 0..topV over
// width from left, between top and axisY, with its labels, baseline and
// title under it.
func (c *svgChart) xAxis(left, width, top, axisY, topV, step float64, title string) func(float64) float64 {
	x := func(v float64) float64 { return left + v/topV*width }
	for v := 0.0; v <= topV+step/2; v += step {
		c.Lines = append(c.Lines, svgLine{X1: x(v), Y1: top, X2: x(v), Y2: axisY, Class: "grid"})
		c.Texts = append(c.Texts, svgText{X: x(v), Y: axisY + 16, Anchor: "middle", Class: "axis", Text: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	c.Lines = append(c.Lines, svgLine{X1: left, Y1: top, X2: left, Y2: axisY, Class: "baseline"})
	c.Texts = append(c.Texts, svgText{X: left + width/2, Y: axisY + 34, Anchor: "middle", Class: "axis", Text: title})
	return x
}

// dayAxis labels the days under a chart, at most about eight of them.
func (c *svgChart) dayAxis(days []Day, x func(int) float64, y float64) {
	every := max(1, int(math.Ceil(float64(len(days))/8)))
	for i, d := range days {
		if i%every == 0 {
			c.Texts = append(c.Texts, svgText{X: x(i), Y: y + 16, Anchor: "middle", Class: "axis", Text: d.Date[5:], Title: d.Date})
		}
	}
	caption := "Day (UTC), " + days[0].Date
	if len(days) > 1 {
		caption += " to " + days[len(days)-1].Date
	}
	c.Texts = append(c.Texts, svgText{X: c.W / 2, Y: y + 34, Anchor: "middle", Class: "axis", Text: caption})
}

const (
	chartW  = 720.0
	trendH  = 280.0
	rowH    = 24.0
	maxRows = 40
	topN    = 10
)

// trendRequestsChart draws admissions and denials by day as pairs of
// bars.
func trendRequestsChart(days []Day) svgChart {
	c := svgChart{ID: "chart-requests", Title: "Admissions and denials by day", W: chartW, H: trendH,
		Desc:   "Bar chart of the admission requests and the denials of each day; the Trend table below holds the same numbers.",
		Legend: []series{admissionsSeries, denialsSeries}}
	if len(days) == 0 {
		c.Empty = "No admissions in this window."
		return c
	}
	left, right, top, bottom := 52.0, 12.0, 14.0, 44.0
	pw, ph := c.W-left-right, c.H-top-bottom
	var maxV int64
	for _, d := range days {
		maxV = max(maxV, d.Admissions, d.Denials)
	}
	topV, step := niceScale(float64(maxV))
	y := c.yAxis(left, c.W-right, top, ph, topV, step)
	band := pw / float64(len(days))
	bw := min(band*0.38, 28)
	x := func(i int) float64 { return left + band*(float64(i)+0.5) }
	for i, d := range days {
		for j, s := range []struct {
			series
			v int64
		}{{admissionsSeries, d.Admissions}, {denialsSeries, d.Denials}} {
			bx := x(i) - bw - 0.5
			if j == 1 {
				bx = x(i) + 0.5
			}
			c.Marks = append(c.Marks, svgMark{Shape: "rect", X: bx, Y: y(float64(s.v)), W: bw, H: y(0) - y(float64(s.v)), Fill: s.Fill,
				Series: s.Key, Label: d.Date, Value: strconv.FormatInt(s.v, 10), Title: fmt.Sprintf("%s: %d %s", d.Date, s.v, strings.ToLower(s.Label))})
		}
	}
	c.dayAxis(days, x, y(0))
	return c
}

// trendImagesChart draws, by day, the images admitted, those scanned and
// those with critical or high findings, as lines with markers.
func trendImagesChart(days []Day) svgChart {
	c := svgChart{ID: "chart-images", Title: "Images admitted, scanned and with critical or high findings, by day", W: chartW, H: trendH,
		Desc:   "Line chart of the distinct images admitted each day, those with a scan by the end of the day, and those whose scan had critical or high findings; the Trend table below holds the same numbers.",
		Legend: imageSeries}
	if len(days) == 0 {
		c.Empty = "No admissions in this window."
		return c
	}
	left, right, top, bottom := 52.0, 12.0, 14.0, 44.0
	pw, ph := c.W-left-right, c.H-top-bottom
	maxV := 0
	for _, d := range days {
		maxV = max(maxV, d.Images, d.Scanned, d.ImagesCriticalHigh)
	}
	topV, step := niceScale(float64(maxV))
	y := c.yAxis(left, c.W-right, top, ph, topV, step)
	band := pw / float64(len(days))
	x := func(i int) float64 { return left + band*(float64(i)+0.5) }
	values := func(d Day) []int { return []int{d.Images, d.Scanned, d.ImagesCriticalHigh} }
	for k, s := range imageSeries {
		var pts []string
		for i, d := range days {
			v := values(d)[k]
			px, py := x(i), y(float64(v))
			pts = append(pts, num(px)+","+num(py))
			c.Marks = append(c.Marks, svgMark{Shape: s.Shape, X: px, Y: py, W: 8, H: 8, Fill: s.Colour, Series: s.Key, Label: d.Date,
				Value: strconv.Itoa(v), Title: fmt.Sprintf("%s: %d %s", d.Date, v, strings.ToLower(s.Label))})
		}
		c.Paths = append(c.Paths, svgPath{Points: strings.Join(pts, " "), Stroke: s.Colour, Dash: s.Dash})
	}
	c.dayAxis(days, x, y(0))
	return c
}

func severityValues(c scan.Counts) []int {
	return []int{c.Critical, c.High, c.Medium, c.Low, c.Unknown}
}

func bySeverity(a, b []int) int {
	for i := range a {
		if c := cmp.Compare(b[i], a[i]); c != 0 {
			return c
		}
	}
	return 0
}

// shorten keeps at most n characters of s: its end when keepEnd (the
// repository and tag of an image), else its start.
func shorten(s string, n int, keepEnd bool) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	if keepEnd {
		return "…" + string(r[len(r)-n+1:])
	}
	return string(r[:n-1]) + "…"
}

// namespaceChart draws the findings of each namespace's images by
// severity as stacked bars, the namespaces with the worst first.
func namespaceChart(nss []Namespace) svgChart {
	c := svgChart{ID: "chart-namespaces", Title: "Findings by severity per namespace",
		Desc:   "Stacked bar chart of the vulnerability findings of each namespace's scanned images, by severity; the Namespaces table below holds the same numbers.",
		Legend: severitySeries, W: chartW}
	if len(nss) == 0 {
		c.Empty = "No namespace in this window."
		return c
	}
	sorted := slices.Clone(nss)
	slices.SortStableFunc(sorted, func(a, b Namespace) int {
		return cmp.Or(bySeverity(severityValues(a.Counts), severityValues(b.Counts)), cmp.Compare(a.Namespace, b.Namespace))
	})
	if len(sorted) > maxRows {
		c.Note = fmt.Sprintf("The %d namespaces with the most critical findings, of %d; the Namespaces table lists all.", maxRows, len(sorted))
		sorted = sorted[:maxRows]
	}
	left, right, top, bottom := 150.0, 190.0, 8.0, 40.0
	pw := c.W - left - right
	c.H = top + rowH*float64(len(sorted)) + bottom
	maxV := 0
	for _, n := range sorted {
		maxV = max(maxV, total(n.Counts))
	}
	topV, step := niceScale(float64(maxV))
	axisY := top + rowH*float64(len(sorted))
	x := c.xAxis(left, pw, top, axisY, topV, step, "Findings of the namespace's scanned images")
	for i, n := range sorted {
		y := top + rowH*float64(i)
		label := shorten(n.Namespace, 22, false)
		c.Texts = append(c.Texts, svgText{X: left - 8, Y: y + rowH/2 + 4, Anchor: "end", Text: label, Title: n.Namespace})
		m := svgMark{Shape: "stack", Label: n.Namespace, Value: strconv.Itoa(total(n.Counts))}
		var parts []string
		at := 0.0
		for k, v := range severityValues(n.Counts) {
			if v == 0 {
				continue
			}
			s := severitySeries[k]
			m.Segs = append(m.Segs, svgSeg{X: x(at), Y: y + 4, W: x(at+float64(v)) - x(at), H: rowH - 8, Fill: s.Fill, Series: s.Key,
				Value: strconv.Itoa(v), Title: fmt.Sprintf("%s: %d %s", n.Namespace, v, strings.ToLower(s.Label))})
			parts = append(parts, fmt.Sprintf("%d %s", v, strings.ToLower(s.Label)))
			at += float64(v)
		}
		summary := strings.Join(parts, ", ")
		if summary == "" {
			summary = "no findings"
			if n.Scanned == 0 {
				summary = "not scanned"
			}
		}
		m.Title = n.Namespace + ": " + summary
		c.Marks = append(c.Marks, m)
		c.Texts = append(c.Texts, svgText{X: x(at) + 6, Y: y + rowH/2 + 4, Anchor: "start", Text: shorten(summary, 30, false), Title: summary})
	}
	return c
}

func total(c scan.Counts) int { return c.Critical + c.High + c.Medium + c.Low + c.Unknown }

// topImagesChart draws the images with the most critical findings.
func topImagesChart(images []Image) svgChart {
	c := svgChart{ID: "chart-top-images", Title: fmt.Sprintf("Top %d images by critical findings", topN), W: chartW,
		Desc: "Bar chart of the images with the most critical findings in their newest scan; the Images table below holds the same numbers."}
	var top []Image
	for _, img := range images {
		if img.Scan.Counts.Critical > 0 {
			top = append(top, img)
		}
	}
	if len(top) == 0 {
		c.Empty = "No image has a critical finding."
		return c
	}
	slices.SortStableFunc(top, func(a, b Image) int {
		return cmp.Or(cmp.Compare(b.Scan.Counts.Critical, a.Scan.Counts.Critical), cmp.Compare(b.Scan.Counts.High, a.Scan.Counts.High),
			cmp.Compare(a.Image, b.Image))
	})
	if len(top) > topN {
		c.Note = fmt.Sprintf("%d images have critical findings; the Images table lists all.", len(top))
		top = top[:topN]
	}
	left, right, top0, bottom := 290.0, 110.0, 8.0, 40.0
	pw := c.W - left - right
	c.H = top0 + rowH*float64(len(top)) + bottom
	topV, step := niceScale(float64(top[0].Scan.Counts.Critical))
	axisY := top0 + rowH*float64(len(top))
	x := c.xAxis(left, pw, top0, axisY, topV, step, "Critical findings")
	crit := severitySeries[0]
	for i, img := range top {
		y := top0 + rowH*float64(i)
		v := img.Scan.Counts.Critical
		c.Texts = append(c.Texts, svgText{X: left - 8, Y: y + rowH/2 + 4, Anchor: "end", Text: shorten(img.Image, 40, true), Title: img.Image})
		c.Marks = append(c.Marks, svgMark{Shape: "rect", X: left, Y: y + 4, W: x(float64(v)) - left, H: rowH - 8, Fill: crit.Fill, Series: crit.Key,
			Label: img.Image, Value: strconv.Itoa(v), Title: fmt.Sprintf("%s: %d critical, %d high", img.Image, v, img.Scan.Counts.High)})
		c.Texts = append(c.Texts, svgText{X: x(float64(v)) + 6, Y: y + rowH/2 + 4, Anchor: "start", Text: fmt.Sprintf("%d critical", v)})
	}
	return c
}
