package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/scan"
)

func htmlOf(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

var markRE = regexp.MustCompile(`class="mark"(?: data-series="([^"]*)")?`)

// chartMarks counts the marks of one chart by series ("" for stacked
// bars, whose segments carry the series).
func chartMarks(t *testing.T, page, id string) map[string]int {
	t.Helper()
	start := strings.Index(page, `id="`+id+`"`)
	if start < 0 {
		t.Fatalf("no chart %s in the page", id)
	}
	end := strings.Index(page[start:], "</svg>")
	counts := map[string]int{}
	for _, m := range markRE.FindAllStringSubmatch(page[start:start+end], -1) {
		counts[m[1]]++
	}
	return counts
}

// checkCharts checks that each chart has one mark per data point.
func checkCharts(t *testing.T, page string, r *Report) {
	t.Helper()
	days := len(r.Trend)
	if got := chartMarks(t, page, "chart-requests"); got["admissions"] != days || got["denials"] != days || len(got) != 2 {
		t.Errorf("requests chart marks %v, want %d admissions and %d denials", got, days, days)
	}
	if got := chartMarks(t, page, "chart-images"); got["images"] != days || got["scanned"] != days || got["crithigh"] != days || len(got) != 3 {
		t.Errorf("images chart marks %v, want %d of each series", got, days)
	}
	if got := chartMarks(t, page, "chart-namespaces"); got[""] != len(r.Namespaces) || len(got) != 1 {
		t.Errorf("namespace chart marks %v, want one bar for each of %d namespaces", got, len(r.Namespaces))
	}
	critical := 0
	for _, img := range r.Images {
		if img.Scan.Counts.Critical > 0 {
			critical++
		}
	}
	if got := chartMarks(t, page, "chart-top-images"); got["critical"] != min(critical, topN) || len(got) != 1 {
		t.Errorf("top images chart marks %v, want %d", got, min(critical, topN))
	}
}

func TestReportHTMLFromTheLedger(t *testing.T) {
	st := openSQLite(t)
	seed(t, st)
	r := build(t, st, "")
	page := htmlOf(t, r)
	checkCharts(t, page, r)
	for _, want := range []string{
		"<!DOCTYPE html>", `<html lang="en">`, "@media print",
		nginx, debian, redis, prom, nginxMirror, "CVE-2099-0001", "security.scanning.ignore[3] (CVE-2000-0000)",
		`<th scope="row">shop</th>`, `<th scope="row">2026-12-09</th>`, "lost 3 records",
		`<span class="badge b-fail">fail</span>`, `<em>matches nothing</em>`, "1 critical, 1 low",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "src=", "@import", "url(http", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q: it must load nothing", bad)
		}
	}
}

// TestReportHTMLCSPAllowsOnlyTheInlineAssets checks that the hashes of
// the page's policy are those of its one stylesheet and one script.
func TestReportHTMLCSPAllowsOnlyTheInlineAssets(t *testing.T) {
	page := htmlOf(t, &Report{SchemaVersion: SchemaVersion, Generated: now})
	inline := func(tag string) string {
		re := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`)
		all := re.FindAllStringSubmatch(page, -1)
		if len(all) != 1 {
			t.Fatalf("%d <%s> elements, want 1", len(all), tag)
		}
		sum := sha256.Sum256([]byte(all[0][1]))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	for _, want := range []string{"default-src 'none'", "style-src " + inline("style"), "script-src " + inline("script")} {
		if !strings.Contains(PageCSP, want) {
			t.Errorf("CSP %q lacks %s", PageCSP, want)
		}
	}
	meta := regexp.MustCompile(`http-equiv="Content-Security-Policy" content="([^"]*)"`).FindStringSubmatch(page)
	if meta == nil || html.UnescapeString(meta[1]) != PageCSP {
		t.Errorf("the page's meta element %q does not carry PageCSP %q", meta, PageCSP)
	}
	for _, id := range []string{"chart-requests", "chart-images", "chart-namespaces", "chart-top-images"} {
		if !strings.Contains(page, `id="`+id+`-figure"`) {
			t.Errorf("an empty report lacks the figure %s", id)
		}
	}
}

// hostile is what an attacker who names an image, or a careless
// configuration, could put into the ledger.
const hostile = `"><script>alert(1)</script><img src=x onerror=alert(2)>'`

// hostileReport has the hostile string in every field the page shows.
func hostileReport() *Report {
	h := func(what string) string { return what + hostile }
	at := now.Add(-time.Hour)
	expires := "2027-01-01"
	cvss := 9.8
	img := Image{Image: h("image"), Target: h("target"), Digests: []string{"sha256:" + hostile}, Namespaces: []string{h("ns")},
		Workloads: []Workload{{Namespace: h("ns"), Kind: h("kind"), Name: h("name")}}, FirstAdmission: at, LastAdmission: at, Admissions: 1, Denials: 1,
		DenialsByRule: map[string]int64{h("rule"): 1}, Violations: []Violation{{Rule: h("rule"), Mode: h("mode"), Count: 1, Message: h("message")}},
		Mirror: Mirror{Status: h("mirror"), LastCopy: &Copy{Time: at, Result: h("result"), Error: h("error")}},
		Scan: Scan{Status: ScanFail, Scanner: h("scanner"), ScannerVersion: h("version"), Counts: scan.Counts{Critical: 2},
			Failing: []Finding{{ID: h("id"), Severity: h("severity"), CVSS: &cvss, Package: h("package"), Installed: h("installed"), Fixed: h("fixed"), Reason: h("reason"), Namespaces: []string{h("ns")}}},
			Ignored: []Ignored{{ID: h("id"), Severity: "LOW", Package: h("package"), By: h("by"), Expires: &expires}}},
		Usage: []Usage{{Namespace: h("ns"), Admissions: 1, ScanStatus: h("status"), Worst: h("worst")}}}
	return &Report{SchemaVersion: SchemaVersion, Generated: now, NamespaceFilter: h("filter"), Images: []Image{img},
		Namespaces: []Namespace{{Namespace: h("ns"), Images: 1, Counts: scan.Counts{Critical: 2}}},
		Trend:      []Day{{Date: "2026-12-09", Admissions: 1, Images: 1}},
		Exceptions: []Exception{{Entry: h("entry"), ID: h("id"), Images: []string{h("image")}, Namespaces: []string{h("ns")}, Expires: h("expires"),
			Reason: h("reason"), Status: h("status"), Suppresses: []string{h("image")}}}}
}

func TestReportHTMLEscapesHostileNames(t *testing.T) {
	page := htmlOf(t, hostileReport())
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("%d <script elements, want only the page's own", n)
	}
	if n := strings.Count(page, "</script"); n != 1 {
		t.Errorf("%d </script, want 1", n)
	}
	for _, bad := range []string{"<img", "<script>alert", hostile, `"&gt;&lt;script`} {
		if strings.Contains(page, bad) {
			i := strings.Index(page, bad)
			t.Errorf("the page holds %q unescaped: ...%s...", bad, page[max(0, i-80):min(len(page), i+80)])
		}
	}
	escaped := "&lt;script&gt;alert(1)&lt;/script&gt;"
	for _, field := range []string{"image", "target", "ns", "message", "reason", "error", "entry", "package", "filter", "by"} {
		if !strings.Contains(page, field+"&#34;&gt;"+escaped) {
			t.Errorf("the page does not show the %s field escaped", field)
		}
	}
}

// luminance is the WCAG relative luminance of a #rrggbb colour.
func luminance(t *testing.T, hexColour string) float64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(hexColour, "#"), 16, 32)
	if err != nil || len(hexColour) != 7 {
		t.Fatalf("colour %q: want #rrggbb", hexColour)
	}
	lin := func(c uint64) float64 {
		s := float64(c) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(v>>16&0xff) + 0.7152*lin(v>>8&0xff) + 0.0722*lin(v&0xff)
}

func contrast(t *testing.T, a, b string) float64 {
	la, lb := luminance(t, hex(a)), luminance(t, hex(b))
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

// TestReportPaletteContrast checks the palette against WCAG 2.2: text
// 4.5:1 on every background it is drawn on (1.4.3), chart marks and
// focus rings 3:1 on the page (1.4.11).
func TestReportPaletteContrast(t *testing.T) {
	text := map[string][]string{
		"fg":      {"bg", "stripe", "head-bg"},
		"muted":   {"bg", "stripe", "head-bg"},
		"link":    {"bg"},
		"fail-fg": {"fail-bg"}, "pass-fg": {"pass-bg"}, "warn-fg": {"warn-bg"}, "none-fg": {"none-bg"},
		"sev-critical": {"bg", "stripe"}, "sev-high": {"bg", "stripe"}, "sev-medium": {"bg", "stripe"}, "sev-low": {"bg", "stripe"}, "sev-unknown": {"bg", "stripe"},
	}
	for fg, bgs := range text {
		for _, bg := range bgs {
			if c := contrast(t, fg, bg); c < 4.5 {
				t.Errorf("text %s on %s: contrast %.2f:1, want at least 4.5:1", fg, bg, c)
			}
		}
	}
	for _, c := range palette {
		if strings.HasPrefix(c.Name, "sev-") || strings.HasPrefix(c.Name, "series-") || c.Name == "focus" {
			if r := contrast(t, c.Name, "bg"); r < 3 {
				t.Errorf("mark %s on the page: contrast %.2f:1, want at least 3:1", c.Name, r)
			}
		}
	}
}

// syntheticReport is a large report: images across namespaces, each with
// two usages and some findings, over days of trend.
func syntheticReport(images, namespaces, days int) *Report {
	r := &Report{SchemaVersion: SchemaVersion, Generated: now}
	for i := range images {
		ns := []string{"team-" + strconv.Itoa(i%namespaces), "team-" + strconv.Itoa((i+1)%namespaces)}
		img := Image{Image: "registry.example.com/org/app-" + strconv.Itoa(i) + ":1." + strconv.Itoa(i%7), Namespaces: ns,
			FirstAdmission: now.Add(-48 * time.Hour), LastAdmission: now, Admissions: int64(i%50 + 1),
			Mirror: Mirror{Status: MirrorPresent}, Scan: Scan{Status: ScanFail, Scanner: "trivy", Counts: scan.Counts{Critical: i % 3, High: i % 5, Low: 2}}}
		for _, n := range ns {
			img.Usage = append(img.Usage, Usage{Namespace: n, Admissions: img.Admissions / 2, ScanStatus: ScanFail, Failing: 1})
		}
		img.Scan.Failing = []Finding{{ID: "CVE-2099-" + strconv.Itoa(i), Severity: "CRITICAL", Package: "openssl", Installed: "3.0.1", Fixed: "3.0.2", Reason: "CRITICAL (failOnCritical)"}}
		r.Images = append(r.Images, img)
	}
	for i := range namespaces {
		r.Namespaces = append(r.Namespaces, Namespace{Namespace: "team-" + strconv.Itoa(i), Images: 2 * images / namespaces, Counts: scan.Counts{Critical: i, High: 2 * i, Low: 5}})
	}
	for d := range days {
		r.Trend = append(r.Trend, Day{Date: now.AddDate(0, 0, d-days).Format(time.DateOnly), Admissions: int64(1000 + d), Denials: int64(d), Images: images, Scanned: images - d})
	}
	return r
}

func BenchmarkWriteHTML10000Images(b *testing.B) {
	r := syntheticReport(10_000, 100, 30)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteHTML(&buf, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len())/1e6, "MB/page")
}
