package report

import (
	"bytes"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// servePage serves the HTML page of r on 127.0.0.1 as a server would,
// with the page's policy as a header too.
func servePage(t *testing.T, r *Report) string {
	t.Helper()
	page := htmlOf(t, r)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", PageCSP)
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/report.html"
}

// rowsOf returns the first cell of each body row of the table id in a
// dumped DOM, and whether the row is hidden.
func rowsOf(t *testing.T, dom, id string) (shown, hidden []string) {
	t.Helper()
	start := strings.Index(dom, `id="`+id+`"`)
	if start < 0 {
		t.Fatalf("no table %s in the DOM", id)
	}
	table := dom[start : start+strings.Index(dom[start:], "</table>")]
	body := table[strings.Index(table, "<tbody>"):]
	for _, m := range regexp.MustCompile(`<tr( hidden="")?><th scope="row">(?:<code>)?([^<]*)`).FindAllStringSubmatch(body, -1) {
		if m[1] != "" {
			hidden = append(hidden, m[2])
		} else {
			shown = append(shown, m[2])
		}
	}
	return shown, hidden
}

// TestReportHTMLInChromium opens the page of the seeded ledger in
// headless Chromium with its script: it loads with no console message,
// the fragment sorts and filters the tables, the charts hold one mark
// per data point, the text holds the seeded images, namespaces and
// counts, and a screenshot shows the charts drawn.
func TestReportHTMLInChromium(t *testing.T) {
	bin := testenv.Chromium(t)

	t.Run("the console detector sees an error", func(t *testing.T) {
		// Else a Chromium that logs differently would pass every page.
		path := filepath.Join(t.TempDir(), "broken.html")
		if err := os.WriteFile(path, []byte(`<!DOCTYPE html><title>x</title><script>undefinedFunction()</script>`), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, console := testenv.RunChromium(t, bin, "--dump-dom", "file://"+path); len(console) == 0 {
			t.Fatal("a page that throws logged no CONSOLE line: the no-console-error checks below would prove nothing")
		}
	})

	st := openSQLite(t)
	seed(t, st)
	r := build(t, st, "")
	url := servePage(t, r)

	t.Run("sorted, filtered, charted", func(t *testing.T) {
		dom, console := testenv.RunChromium(t, bin, "--dump-dom", url+"#t-images.sort=admissions&t-images.dir=desc&t-namespaces.q=SHOP")
		if len(console) > 0 {
			t.Errorf("console messages:\n%s", strings.Join(console, "\n"))
		}
		if !strings.Contains(dom, `data-ready="true"`) {
			t.Fatalf("the script did not finish:\n%s", dom)
		}
		// Admissions: nginx 3, redis 2, debian 1, prometheus 1 (ties
		// keep their order).
		shown, hidden := rowsOf(t, dom, "t-images")
		if want := []string{nginx, redis, debian, prom}; strings.Join(shown, " ") != strings.Join(want, " ") || len(hidden) != 0 {
			t.Errorf("images sorted by admissions, descending: %v (hidden %v), want %v", shown, hidden, want)
		}
		if !regexp.MustCompile(`data-key="admissions" aria-sort="descending"><button type="button" class="sort">`).MatchString(dom) {
			t.Errorf("the admissions header is not a sort button marked descending")
		}
		shown, hidden = rowsOf(t, dom, "t-namespaces")
		if strings.Join(shown, " ") != "shop" || len(hidden) != 3 || !strings.Contains(dom, "1 of 4 rows") {
			t.Errorf("namespaces filtered by SHOP: shown %v, hidden %v; want shop alone, and 1 of 4 rows", shown, hidden)
		}
		if n, tables := strings.Count(dom, `<input type="search"`), strings.Count(dom, `<table class="data"`); n != tables || tables != 8 {
			t.Errorf("%d filter boxes for %d tables, want one for each of the 8 tables", n, tables)
		}
		checkCharts(t, dom, r)
		for _, want := range []string{nginx, debian, redis, prom, "legacy", "monitoring", "payments", "shop",
			"<dt>Admissions</dt><dd>7</dd>", "<dt>Denials</dt><dd>2</dd>", "<dt>Failing images</dt><dd>1</dd>",
			`data-series="admissions" data-label="2026-12-09" data-value="6"`, `data-series="denials" data-label="2026-12-09" data-value="2"`,
			`data-series="crithigh" data-label="2026-12-09" data-value="2"`} {
			if !strings.Contains(dom, want) {
				t.Errorf("the rendered page lacks %q", want)
			}
		}
	})

	t.Run("a screenshot shows the charts", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "report.png")
		_, console := testenv.RunChromium(t, bin, "--window-size=1280,1600", "--hide-scrollbars", "--screenshot="+shot, url)
		if len(console) > 0 {
			t.Errorf("console messages:\n%s", strings.Join(console, "\n"))
		}
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		stats := pixels(img)
		if stats.colours < 64 || stats.nonWhite < stats.total/20 {
			t.Errorf("the screenshot looks blank: %d colours, %d of %d pixels not white", stats.colours, stats.nonWhite, stats.total)
		}
		// The bars are drawn in the palette's colours.
		for _, name := range []string{"sev-critical", "series-admissions"} {
			if n := stats.near[hex(name)]; n < 200 {
				t.Errorf("%d pixels of %s (%s), want the chart's bars", n, name, hex(name))
			}
		}
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), "report-screenshot.png")
			_ = os.WriteFile(keep, b, 0o644)
			t.Logf("screenshot kept at %s", keep)
		}
	})

	t.Run("hostile names stay text", func(t *testing.T) {
		dom, console := testenv.RunChromium(t, bin, "--dump-dom", servePage(t, hostileReport()))
		if len(console) > 0 {
			t.Errorf("console messages:\n%s", strings.Join(console, "\n"))
		}
		if n := strings.Count(dom, "<script"); n != 1 || strings.Contains(dom, "<img") || !strings.Contains(dom, `data-ready="true"`) {
			t.Errorf("%d script elements (want 1), an img element, or no finished script in:\n%s", n, dom)
		}
		if !strings.Contains(dom, "image\"&gt;&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("the hostile image name is not shown as text")
		}
	})
}

type pixelStats struct {
	total, nonWhite, colours int
	// near counts the pixels within a small distance of each palette
	// colour, by #rrggbb.
	near map[string]int
}

func pixels(img image.Image) pixelStats {
	s := pixelStats{near: map[string]int{}}
	seen := map[uint32]bool{}
	type rgb struct{ r, g, b int }
	var pal []rgb
	for _, c := range palette {
		v := c.Hex
		pal = append(pal, rgb{hexByte(v[1:3]), hexByte(v[3:5]), hexByte(v[5:7])})
	}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			s.total++
			if r < 250 || g < 250 || b < 250 {
				s.nonWhite++
			}
			seen[r<<16|g<<8|b] = true
			for i, p := range pal {
				if abs(int(r)-p.r) <= 6 && abs(int(g)-p.g) <= 6 && abs(int(b)-p.b) <= 6 {
					s.near[palette[i].Hex]++
				}
			}
		}
	}
	s.colours = len(seen)
	return s
}

func hexByte(s string) int {
	var v int
	for _, c := range s {
		v *= 16
		switch {
		case c >= '0' && c <= '9':
			v += int(c - '0')
		default:
			v += int(c-'a') + 10
		}
	}
	return v
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
