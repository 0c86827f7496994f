package scan

import (
	"os"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

func TestVEXSuppressesNotAffectedFindingsOfTheNamedProducts(t *testing.T) {
	c, d, e := "sha256:"+strings.Repeat("c", 64), "sha256:"+strings.Repeat("d", 64), "sha256:"+strings.Repeat("e", 64)
	p := mustPolicy(t, config.Scanning{Severity: "LOW", VEX: []string{"testdata/vex/debian.openvex.json", "testdata/vex/ruby-v001.openvex.json"}})
	buster := mustRead(t, "testdata/trivy/debian-buster.json").Findings
	ruby := mustRead(t, "testdata/grype/chainguard-ruby-wolfi.json").Findings
	for _, tc := range []struct {
		name     string
		image    string
		findings []Finding
		ignored  []string // "ID pkg"
		failing  int
	}{
		{"an image reference with the digest and a subcomponent, and an oci purl, suppress their CVEs", "debian:10@" + c, buster,
			[]string{"CVE-2019-18276 bash", "CVE-2019-18224 libidn2-0"}, 0},
		{"the same statements do not apply to another digest of the image", "debian:10@" + e, buster, nil, 2},
		{"the same digest in another repository is not the product", "registry.example.com/library/debian:10@" + c, buster, nil, 2},
		{"a later affected statement overrides an earlier not_affected one", "debian:10@" + d, buster, nil, 2},
		{"a package purl product suppresses the CVE and its GHSA alias in that package only", "cgr.dev/chainguard/ruby:latest-3.0@" + e, ruby,
			[]string{"CVE-2023-28755 uri", "GHSA-hv5j-3h9f-99c2 uri"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := p.Verdict(tc.findings, mustRef(t, tc.image), "default", testNow)
			var got []string
			for _, ig := range v.Ignored {
				got = append(got, ig.ID+" "+ig.Package)
				if !strings.HasPrefix(ig.By, "testdata/vex/") || !strings.Contains(ig.By, "not_affected") || !ig.Expires.IsZero() {
					t.Errorf("ignored by %q until %v, want a VEX statement without expiry", ig.By, ig.Expires)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.ignored, ",") || len(v.Failing) != tc.failing {
				t.Errorf("ignored %v and %d failing, want ignored %v and %d failing\n%s", got, len(v.Failing), tc.ignored, tc.failing, renderVerdict(v))
			}
		})
	}
}

func TestVEXSubcomponentsLimitTheStatement(t *testing.T) {
	c := "sha256:" + strings.Repeat("c", 64)
	v, err := ParseVEX("sub.json", []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[
		{"vulnerability":{"name":"CVE-2019-18224"},"products":[{"@id":"docker.io/library/debian@`+c+`","subcomponents":[{"@id":"pkg:deb/debian/bash"}]}],"status":"not_affected","justification":"component_not_present"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	f := find(t, mustRead(t, "testdata/trivy/debian-buster.json"), "CVE-2019-18224", "libidn2-0")
	img := mustRef(t, "debian@"+c)
	if _, ok := v.suppresses(&f, img, reference.Spellings(img)); ok {
		t.Error("a statement about bash suppressed a finding in libidn2-0")
	}
}

func TestParseVEXErrorsNameTheDocumentAndStatement(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"not json", `{`, "v.json: not an OpenVEX document"},
		{"wrong context", `{"@context":"https://cyclonedx.org/schema"}`, "@context"},
		{"unknown status", `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"x"}],"status":"maybe"}]}`, "v.json: statements[0]: status \"maybe\""},
		{"no products", `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{"name":"CVE-1"},"status":"fixed"}]}`, "statements[0]: names no products"},
		{"no vulnerability", `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{},"products":["x"],"status":"fixed"}]}`, "statements[0]: vulnerability"},
		{"bad timestamp", `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":"CVE-1","products":["x"],"status":"fixed","timestamp":"yesterday"}]}`, "timestamp \"yesterday\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseVEX("v.json", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseVEX error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParseVEX: any input either fails naming the document or gives
// statements that judge a finding without panicking.
func FuzzParseVEX(f *testing.F) {
	for _, p := range []string{"testdata/vex/debian.openvex.json", "testdata/vex/ruby-v001.openvex.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	img := reference.Reference{Registry: "docker.io", Repository: "library/debian", Tag: "10", Digest: "sha256:" + strings.Repeat("c", 64)}
	finding := Finding{ID: "CVE-2019-18224", Aliases: []string{"CVE-2019-18276"}, Package: "libidn2-0", PURL: "pkg:deb/debian/libidn2-0@2.0.5-1?arch=amd64"}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVEX("fuzz.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json: ") {
				t.Fatalf("error %q does not name the document", err)
			}
			return
		}
		if s, ok := v.suppresses(&finding, img, reference.Spellings(img)); ok && s.status != VEXNotAffected {
			t.Fatalf("suppressed by a %s statement", s.status)
		}
	})
}
