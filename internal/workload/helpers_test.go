package workload

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
)

// testdataKinds are the custom kinds that testdata/custom.yaml exercises.
var testdataKinds = []config.CustomKind{
	{Kind: "Prometheus|Alertmanager", APIVersion: `monitoring\.coreos\.com/v1`, Images: []string{"{.spec.image}", "{.spec.containers[*].image}"}},
	{Kind: "Rollout", Images: []string{".spec.template.spec.containers[*].image", "spec.sidecars[*].image", "{.spec.annotations['example.com/image']}"}},
}

func mustLocator(t testing.TB, custom ...config.CustomKind) *Locator {
	t.Helper()
	l, err := NewLocator(custom)
	if err != nil {
		t.Fatalf("NewLocator: %v", err)
	}
	return l
}

func mustParse(t testing.TB, l *Locator, yml string) *Parsed {
	t.Helper()
	p, err := l.Parse(Document{Raw: []byte(yml)})
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, yml)
	}
	return p
}

// mirror is the rewrite the golden files were made with.
func mirror(v string) string { return "registry.example.com/mirror/" + v }

// rewriteAll rewrites every image of every document with fn and returns the
// stream, the documents' outputs and the (old, new) pairs applied.
func rewriteAll(t testing.TB, ps []*Parsed, fn func(string) string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, p := range ps {
		nv := make(map[int]string)
		for i, img := range p.Images() {
			nv[i] = fn(img.Value)
		}
		b, err := p.Rewrite(nv)
		if err != nil {
			t.Fatalf("Rewrite of document %d: %v", p.Document().Index, err)
		}
		out.Write(b)
	}
	return out.Bytes()
}

// imageList renders images as one line each, for comparisons.
func imageList(ps ...*Parsed) []string {
	var s []string
	for _, p := range ps {
		for _, img := range p.Images() {
			s = append(s, fmt.Sprintf("%d %s/%s %s %s %s=%s", p.Document().Index, img.Object.Kind, img.Object.Name, img.Field, img.Container, img.Path, img.Value))
		}
	}
	return s
}

// assertOnlyImagesChanged compares orig and out line by line: they must have
// the same lines, except lines where old image values (in any quoting)
// was replaced by its new value (in any quoting). It is independent of how
// Rewrite finds spans.
func assertOnlyImagesChanged(t testing.TB, orig, out []byte, pairs map[string]string) {
	t.Helper()
	ol, nl := splitLinesKeepEOL(orig), splitLinesKeepEOL(out)
	if len(ol) != len(nl) {
		t.Fatalf("line count changed from %d to %d", len(ol), len(nl))
	}
	for i := range ol {
		if ol[i] == nl[i] {
			continue
		}
		if !lineChangedByImages(ol[i], nl[i], pairs) {
			t.Errorf("line %d changed beyond an image value:\n- %q\n+ %q", i+1, ol[i], nl[i])
		}
	}
}

// lineChangedByImages reports whether n is o with some old image values
// (in any quoting) replaced by their new values (in any quoting).
func lineChangedByImages(o, n string, pairs map[string]string) bool {
	if o == n {
		return true
	}
	d := 0 // length of the common prefix
	for d < len(o) && d < len(n) && o[d] == n[d] {
		d++
	}
	quotes := func(v string) []string {
		return []string{`"` + strings.ReplaceAll(v, `"`, `\"`) + `"`, "'" + strings.ReplaceAll(v, "'", "''") + "'", v}
	}
	for old, nw := range pairs {
		for _, qo := range quotes(old) {
			// A replacement must start no later than the first difference.
			for k := 0; k <= d; k++ {
				if !strings.HasPrefix(o[k:], qo) {
					continue
				}
				for _, qn := range quotes(nw) {
					if strings.HasPrefix(n[k:], qn) && lineChangedByImages(o[k+len(qo):], n[k+len(qn):], pairs) {
						return true
					}
				}
			}
		}
	}
	return false
}

func splitLinesKeepEOL(b []byte) []string {
	return strings.SplitAfter(string(b), "\n")
}
