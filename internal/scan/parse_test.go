package scan

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// reportFiles are every real report in testdata, by format.
func reportFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"trivy", "grype"} {
		m, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) != 11 {
		t.Fatalf("found %d report files in testdata, want the 7 Trivy and 4 Grype reports", len(files))
	}
	return files
}

func mustRead(t testing.TB, path string) *Report {
	t.Helper()
	r, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", path, err)
	}
	return r
}

// renderFindings is the golden form of a report: one line per finding.
func renderFindings(r *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "format=%s version=%s artifact=%s digest=%s dbtime=%s\n", r.Format, r.ScannerVersion, r.Artifact, r.Digest, r.DBTime.Format("2006-01-02T15:04:05Z07:00"))
	for _, f := range r.Findings {
		cvss := "none"
		if f.HasCVSS {
			cvss = fmt.Sprintf("%g", f.CVSS)
		}
		fmt.Fprintf(&b, "%s pkg=%s installed=%s fixed=%q severity=%s cvss=%s unfixed=%t status=%s aliases=%v purl=%s\n",
			f.ID, f.Package, f.Installed, f.Fixed, f.Severity, cvss, f.Unfixed, f.Status, f.Aliases, f.PURL)
	}
	c := CountFindings(r.Findings)
	fmt.Fprintf(&b, "counts critical=%d high=%d medium=%d low=%d unknown=%d\n", c.Critical, c.High, c.Medium, c.Low, c.Unknown)
	return b.String()
}

func TestParseEveryReportMatchesItsGolden(t *testing.T) {
	for _, path := range reportFiles(t) {
		t.Run(path, func(t *testing.T) {
			got := renderFindings(mustRead(t, path))
			golden := filepath.Join("testdata", "findings", strings.TrimSuffix(strings.TrimPrefix(path, "testdata/"), ".json")+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("findings of %s differ from %s:\ngot:\n%s\nwant:\n%s", path, golden, got, want)
			}
		})
	}
}

func find(t *testing.T, r *Report, id, pkg string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.ID == id && (pkg == "" || f.Package == pkg) {
			return f
		}
	}
	t.Fatalf("no finding %s %s in report", id, pkg)
	return Finding{}
}

// These pin the facts the testdata README states about each file, so the
// goldens cannot drift into accepting a wrong reading.
func TestParseReadsTheDocumentedEdgeCases(t *testing.T) {
	t.Run("trivy vendor severity of the severity source, NVD CVSS, affected without fix", func(t *testing.T) {
		r := mustRead(t, "testdata/trivy/debian-buster.json")
		f := find(t, r, "CVE-2019-18276", "bash")
		if f.Severity != SeverityLow || !f.HasCVSS || f.CVSS != 7.8 || !f.Unfixed || f.Status != "affected" {
			t.Errorf("CVE-2019-18276 = %+v, want LOW (debian), CVSS 7.8 (nvd), unfixed, affected", f)
		}
		f = find(t, r, "CVE-2019-18224", "libidn2-0")
		if f.Severity != SeverityCritical || f.CVSS != 9.8 || f.Unfixed {
			t.Errorf("CVE-2019-18224 = %+v, want CRITICAL, 9.8, fixed", f)
		}
	})
	t.Run("trivy report without Metadata, unknown severities without CVSS", func(t *testing.T) {
		r := mustRead(t, "testdata/trivy/gomod.json")
		if len(r.Findings) != 5 {
			t.Fatalf("%d findings, want 5", len(r.Findings))
		}
		f := find(t, r, "GMS-2022-20", "")
		if f.Severity != SeverityUnknown || f.HasCVSS {
			t.Errorf("GMS-2022-20 = %+v, want UNKNOWN without CVSS", f)
		}
		if c := CountFindings(r.Findings); c.Unknown != 4 || c.Medium != 1 {
			t.Errorf("counts %+v, want 4 unknown and 1 medium", c)
		}
	})
	t.Run("trivy lang-pkgs result with HIGH from ghsa", func(t *testing.T) {
		r := mustRead(t, "testdata/trivy/fluentd-gems.json")
		f := find(t, r, "CVE-2020-8165", "activesupport")
		if f.Severity != SeverityHigh || f.Fixed != "6.0.3.1, 5.2.4.3" {
			t.Errorf("CVE-2020-8165 = %+v, want HIGH fixed in 6.0.3.1, 5.2.4.3", f)
		}
	})
	t.Run("trivy 0.74 output names the scanned digest in RepoDigests", func(t *testing.T) {
		r := mustRead(t, "testdata/trivy/trivy-0.74-synthetic-alpine.json")
		if r.ScannerVersion != "0.74.0" || r.Digest != "sha256:091ae1efd5a32fd6071fda320cb4f4a51e208f13515d3c4bf485c2b0bc8b5f19" {
			t.Errorf("version %q, digest %q", r.ScannerVersion, r.Digest)
		}
		f := find(t, r, "CVE-2099-0002", "busybox")
		if f.Severity != SeverityLow || f.HasCVSS || !f.Unfixed {
			t.Errorf("CVE-2099-0002 = %+v, want LOW without CVSS, unfixed", f)
		}
	})
	t.Run("grype wont-fix is unfixed, related NVD score is used", func(t *testing.T) {
		r := mustRead(t, "testdata/grype/keycloak-rhel9.json")
		if len(r.Findings) != 6 || r.ScannerVersion != "0.66.0" || !strings.HasPrefix(r.Digest, "sha256:") {
			t.Fatalf("report = %d findings, version %q, digest %q", len(r.Findings), r.ScannerVersion, r.Digest)
		}
		f := find(t, r, "CVE-2020-12413", "nss")
		if f.Severity != SeverityLow || f.CVSS != 5.9 || !f.Unfixed || f.Status != "wont-fix" || f.Fixed != "" {
			t.Errorf("CVE-2020-12413 = %+v, want Low, 5.9, unfixed wont-fix", f)
		}
		if r.DBTime.IsZero() {
			t.Error("DBTime not read from descriptor.db.built")
		}
	})
	t.Run("grype empty vulnerability.cvss takes relatedVulnerabilities' score", func(t *testing.T) {
		r := mustRead(t, "testdata/grype/chainguard-ruby-wolfi.json")
		f := find(t, r, "GHSA-hv5j-3h9f-99c2", "uri")
		if !f.HasCVSS || f.CVSS != 7.5 || f.Unfixed || f.Fixed != "0.10.2" || len(f.Aliases) != 1 || f.Aliases[0] != "CVE-2023-28755" {
			t.Errorf("GHSA-hv5j-3h9f-99c2 = %+v, want 7.5 from the related CVE, fixed in 0.10.2, alias CVE-2023-28755", f)
		}
		f = find(t, r, "CVE-2023-28755", "uri")
		if !f.Unfixed || f.Status != "unknown" {
			t.Errorf("CVE-2023-28755 in uri = %+v, want unfixed (fix.state unknown)", f)
		}
	})
	t.Run("grype CVSS 2.0 only gives no v3 score", func(t *testing.T) {
		r := mustRead(t, "testdata/grype/alpine-test-image-ghsa.json")
		for _, f := range r.Findings {
			if f.HasCVSS {
				t.Errorf("%s has CVSS %g, want none: the file has only CVSS 2.0", f.ID, f.CVSS)
			}
		}
	})
	t.Run("grype Critical, and empty fix.state is unfixed", func(t *testing.T) {
		r := mustRead(t, "testdata/grype/synthetic-presenter-image.json")
		f := find(t, r, "CVE-1999-0002", "")
		if f.Severity != SeverityCritical || !f.Unfixed || f.CVSS != 8.5 {
			t.Errorf("CVE-1999-0002 = %+v, want Critical, unfixed, 8.5", f)
		}
	})
}

func TestParseRejectsWhatIsNeitherFormat(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"empty file", "", "empty report"},
		{"legacy trivy array", `[{"Target":"x","Vulnerabilities":[]}]`, "legacy format"},
		{"cyclonedx sbom", `{"bomFormat":"CycloneDX","specVersion":"1.5"}`, "not a Trivy"},
		{"not json", `<html>`, "not a Trivy"},
		{"both formats' keys", `{"SchemaVersion":2,"matches":[]}`, "both"},
		{"trivy schema 1", `{"SchemaVersion":1,"Results":[]}`, "SchemaVersion 1"},
		{"trivy with wrong types", `{"SchemaVersion":2,"Results":{}}`, "reading Trivy report"},
		{"grype with null matches", `{"matches":null}`, "\"matches\" is null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("report.json", []byte(tc.data))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "report.json: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the file or does not say %q", err, tc.want)
			}
		})
	}
	_, err := Parse("sbom.json", []byte(`{"bomFormat":"CycloneDX"}`))
	if !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("error %v does not match ErrUnknownFormat", err)
	}
}

func TestParseAcceptsEmptyReports(t *testing.T) {
	for _, tc := range []struct{ name, data, format string }{
		{"trivy without Results", `{"SchemaVersion":2,"ArtifactName":"x"}`, FormatTrivy},
		{"trivy with empty Results", `{"SchemaVersion":2,"Results":[]}`, FormatTrivy},
		{"trivy result without vulnerabilities", `{"SchemaVersion":2,"Results":[{"Target":"alpine 3.20","Class":"os-pkgs"}]}`, FormatTrivy},
		{"grype with no matches", `{"matches":[],"source":{"type":"image","target":{"userInput":"x"}}}`, FormatGrype},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse("r.json", []byte(tc.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Format != tc.format || len(r.Findings) != 0 {
				t.Errorf("got format %q with %d findings, want %q with none", r.Format, len(r.Findings), tc.format)
			}
		})
	}
}

// The fuzz tests: run them with a bounded minimisation, e.g.
//
//	go test -run '^$' -fuzz FuzzParseTrivy -fuzztime 1m -fuzzminimizetime 200x ./internal/scan
//
// The default (a minute of minimising per new input, in this large
// instrumented binary) leaves the fuzzer minimising rather than fuzzing.
func FuzzParseTrivy(f *testing.F) {
	for _, p := range []string{"alpine-310", "debian-buster", "distroless-base", "fluentd-gems", "gomod", "ubuntu-1804"} {
		f.Add(smallSeed(f, "testdata/trivy/"+p+".json"))
	}
	f.Add([]byte(`{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","SeveritySource":"x","VendorSeverity":{"x":9}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, data) })
}

func FuzzParseGrype(f *testing.F) {
	for _, p := range []string{"alpine-test-image-ghsa", "chainguard-ruby-wolfi", "keycloak-rhel9", "synthetic-presenter-image"} {
		f.Add(smallSeed(f, "testdata/grype/"+p+".json"))
	}
	f.Add([]byte(`{"matches":[{"vulnerability":{"id":"CVE-1","cvss":[{"version":"3.0","metrics":{}}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, data) })
}

// bulkyKeys hold prose, URLs and image internals that the parsers never
// read; smallSeed drops them.
var bulkyKeys = map[string]bool{
	"Description": true, "References": true, "Title": true, "ImageConfig": true, "DiffIDs": true, "Layer": true,
	"DataSource": true, "CweIDs": true, "PrimaryURL": true, "Fingerprint": true,
	"description": true, "urls": true, "matchDetails": true, "locations": true, "cpes": true, "licenses": true,
	"advisories": true, "layers": true, "manifest": true, "config": true, "configuration": true, "upstreams": true,
}

// smallSeed is a real report cut down to two findings per list and
// without bulky keys: the fuzzer mutates kilobytes well and stalls on the
// tens of kilobytes the real files have.
func smallSeed(f *testing.F, path string) []byte {
	f.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		f.Fatal(err)
	}
	out, err := json.Marshal(prune(v))
	if err != nil {
		f.Fatal(err)
	}
	return out
}

func prune(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if bulkyKeys[k] {
				delete(v, k)
				continue
			}
			v[k] = prune(e)
		}
	case []any:
		if len(v) > 2 {
			v = v[:2]
		}
		for i, e := range v {
			v[i] = prune(e)
		}
		return v
	}
	return v
}

// checkParse asserts what holds for any input: no panic, an error names
// the input, and a report's findings have in-range severities and scores.
func checkParse(t *testing.T, data []byte) {
	r, err := Parse("fuzz.json", data)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "fuzz.json: ") {
			t.Fatalf("error %q does not name the input", err)
		}
		return
	}
	if r.Format != FormatTrivy && r.Format != FormatGrype {
		t.Fatalf("format %q", r.Format)
	}
	for _, f := range r.Findings {
		if f.Severity < SeverityUnknown || f.Severity > SeverityCritical {
			t.Fatalf("finding %q has severity %d out of range", f.ID, f.Severity)
		}
		if !f.HasCVSS && f.CVSS != 0 {
			t.Fatalf("finding %q has a score %g but HasCVSS false", f.ID, f.CVSS)
		}
		if f.Unfixed && r.Format == FormatTrivy && strings.TrimSpace(f.Fixed) != "" {
			t.Fatalf("finding %q is unfixed with fixed version %q", f.ID, f.Fixed)
		}
	}
}
