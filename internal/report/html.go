package report

import (
	"bufio"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed assets/report.tmpl assets/report.css assets/report.js
var assets embed.FS

var (
	pageCSS, pageJS string
	// PageCSP is the Content-Security-Policy of the HTML page: it loads
	// nothing, and runs only its own script and stylesheet (by hash). The
	// page carries it in a meta element; a server should also send it as
	// a header.
	PageCSP  string
	pageTmpl *template.Template
)

func init() {
	css, err := assets.ReadFile("assets/report.css")
	if err != nil {
		panic(err)
	}
	js, err := assets.ReadFile("assets/report.js")
	if err != nil {
		panic(err)
	}
	pageCSS, pageJS = paletteCSS()+string(css), string(js)
	PageCSP = "default-src 'none'; style-src '" + sha(pageCSS) + "'; script-src '" + sha(pageJS) + "'; img-src 'none'; base-uri 'none'; form-action 'none'"
	pageTmpl = template.Must(template.New("report.tmpl").Funcs(pageFuncs).ParseFS(assets, "assets/report.tmpl"))
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// htmlPage is what the template renders.
type htmlPage struct {
	R        *Report
	S        htmlSummary
	Charts   []svgChart
	Patterns []pattern
	CSS      template.CSS
	JS       template.JS
	CSP      string
}

// htmlSummary are the page's headline numbers.
type htmlSummary struct {
	Images, Namespaces, FailingImages, CriticalImages int
	// ToMirror counts the images that have something to mirror,
	// Mirrored the share of those present; ToScan the images not
	// skipped, Scanned the share of those with a scan.
	ToMirror, ToScan  int
	Mirrored, Scanned float64
	Admissions        int64
	Denials           int64
	// Rows of the tables that list what images hold.
	Usage, FailingFindings, IgnoredFindings, Violations int
	Expiring, Expired                                   int
}

func summarize(r *Report) htmlSummary {
	s := htmlSummary{Images: len(r.Images), Namespaces: len(r.Namespaces)}
	mirrored, scanned := 0, 0
	for _, img := range r.Images {
		s.Admissions += img.Admissions
		s.Denials += img.Denials
		s.Usage += len(img.Usage)
		s.FailingFindings += len(img.Scan.Failing)
		s.IgnoredFindings += len(img.Scan.Ignored)
		s.Violations += len(img.Violations)
		if img.Scan.Status == ScanFail {
			s.FailingImages++
		}
		if img.Scan.Counts.Critical > 0 {
			s.CriticalImages++
		}
		if img.Mirror.Status != MirrorNone {
			s.ToMirror++
			if img.Mirror.Status == MirrorPresent {
				mirrored++
			}
		}
		if img.Scan.Status != ScanSkipped {
			s.ToScan++
			if img.Scan.Status == ScanPass || img.Scan.Status == ScanFail {
				scanned++
			}
		}
	}
	s.Mirrored, s.Scanned = share(mirrored, s.ToMirror), share(scanned, s.ToScan)
	for _, e := range r.Exceptions {
		switch e.Status {
		case ExceptionExpiring:
			s.Expiring++
		case ExceptionExpired:
			s.Expired++
		}
	}
	return s
}

// WriteHTML writes r as one self-contained HTML page: a summary, inline
// SVG charts (the trend by day, the findings by severity per namespace,
// the images with the most critical findings) and the report's tables.
// The page loads nothing: its stylesheet and script are inline, and its
// Content-Security-Policy (PageCSP) forbids anything else. It reads
// without script; the script adds sorting and filtering to the tables.
// Every value from the ledger or the configuration is escaped by
// html/template.
func WriteHTML(w io.Writer, r *Report) error {
	page := htmlPage{R: r, S: summarize(r), Patterns: patterns, CSS: template.CSS(pageCSS), JS: template.JS(pageJS), CSP: PageCSP,
		Charts: []svgChart{trendRequestsChart(r.Trend), trendImagesChart(r.Trend), namespaceChart(r.Namespaces), topImagesChart(r.Images)}}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := pageTmpl.ExecuteTemplate(bw, "page", page); err != nil {
		return fmt.Errorf("writing the HTML report: %w", err)
	}
	return bw.Flush()
}

var pageFuncs = template.FuncMap{
	"num":      num,
	"sub":      func(a, b float64) float64 { return a - b },
	"triangle": triangle,
	"when":     when,
	"unix":     unix,
	"pct":      pct,
	"join":     func(s []string) string { return strings.Join(s, ", ") },
	"workloads": func(ws []Workload) string {
		var out []string
		for _, w := range ws {
			out = append(out, w.Kind+"/"+w.Name)
		}
		return strings.Join(out, ", ")
	},
	"short": func(digest string) string {
		if alg, hex, ok := strings.Cut(digest, ":"); ok && len(hex) > 12 {
			return alg + ":" + hex[:12] + "…"
		}
		return digest
	},
	"rules": func(m map[string]int64) string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, k+": "+strconv.FormatInt(m[k], 10))
		}
		return strings.Join(out, ", ")
	},
	"badge":    badge,
	"rank":     statusRank,
	"sevrank":  severityRank,
	"sevclass": func(s string) string { return "sev-" + strings.ToLower(s) },
	"cvss": func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', 1, 64)
	},
	"dur": func(secs *float64) string {
		if secs == nil {
			return ""
		}
		return (time.Duration(*secs) * time.Second).String()
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
}

// triangle is the path of a triangle marker centred on x, y.
func triangle(x, y float64) string {
	return "M" + num(x) + " " + num(y-5) + " L" + num(x+5) + " " + num(y+4) + " L" + num(x-5) + " " + num(y+4) + " Z"
}

// when formats a time (a time.Time or *time.Time) for people, in UTC;
// "" for none.
func when(v any) string {
	var t time.Time
	switch v := v.(type) {
	case time.Time:
		t = v
	case *time.Time:
		if v != nil {
			t = *v
		}
	}
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func unix(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// badge is the class of a status badge. The status is always written
// out: the colour only repeats it.
func badge(status string) string {
	switch status {
	case ScanPass, MirrorPresent:
		return "b-pass"
	case ScanFail, MirrorFailed, ExceptionExpired, "enforce":
		return "b-fail"
	case MirrorMissing, ScanPending, ExceptionExpiring, "warn":
		return "b-warn"
	}
	return "b-none"
}

// statusRank sorts statuses worst first when sorted descending.
func statusRank(status string) int {
	switch badge(status) {
	case "b-fail":
		return 3
	case "b-warn":
		return 2
	case "b-pass":
		return 0
	}
	return 1
}

func severityRank(s string) string {
	switch strings.ToUpper(s) {
	case "CRITICAL":
		return "5"
	case "HIGH":
		return "4"
	case "MEDIUM":
		return "3"
	case "LOW":
		return "2"
	case "UNKNOWN":
		return "1"
	}
	return "0"
}
