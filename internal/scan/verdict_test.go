package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

func mustRef(t testing.TB, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustPolicy(t testing.TB, s config.Scanning) *Policy {
	t.Helper()
	p, err := NewPolicy(s)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}

func float(f float64) *float64 { return &f }

var testNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// thresholdKinds are the golden tables' columns: each threshold kind at
// the values that separate the test data.
var thresholdKinds = []struct {
	name string
	s    config.Scanning
}{
	{"no threshold", config.Scanning{}},
	{"failOnCritical", config.Scanning{FailOnCritical: true}},
	{"severity CRITICAL", config.Scanning{Severity: "CRITICAL"}},
	{"severity HIGH", config.Scanning{Severity: "HIGH"}},
	{"severity MEDIUM", config.Scanning{Severity: "MEDIUM"}},
	{"severity LOW", config.Scanning{Severity: "LOW"}},
	{"severity UNKNOWN", config.Scanning{Severity: "UNKNOWN"}},
	{"maxCVSS 9.8", config.Scanning{MaxCVSS: float(9.8)}},
	{"maxCVSS 8.9", config.Scanning{MaxCVSS: float(8.9)}},
	{"maxCVSS 7.5", config.Scanning{MaxCVSS: float(7.5)}},
	{"maxCVSS 5.8", config.Scanning{MaxCVSS: float(5.8)}},
	{"maxCVSS 0", config.Scanning{MaxCVSS: float(0)}},
	{"ignoreUnfixed with severity LOW", config.Scanning{Severity: "LOW", IgnoreUnfixed: true}},
	{"ignoreUnfixed with failOnCritical", config.Scanning{FailOnCritical: true, IgnoreUnfixed: true}},
	{"ignoreUnfixed with maxCVSS 5.8", config.Scanning{MaxCVSS: float(5.8), IgnoreUnfixed: true}},
}

func renderVerdict(v Verdict) string {
	var b strings.Builder
	b.WriteString(string(v.Result))
	for _, f := range v.Failing {
		fmt.Fprintf(&b, "\n    fail %s %s (%s)", f.ID, f.Package, f.Reason)
	}
	for _, ig := range v.Ignored {
		fmt.Fprintf(&b, "\n    ignored %s %s by %s", ig.ID, ig.Package, ig.By)
	}
	return b.String()
}

// TestVerdictGoldenTables judges every report in testdata under each
// threshold kind; testdata/verdicts.golden is the reviewed table.
func TestVerdictGoldenTables(t *testing.T) {
	image := mustRef(t, "registry.example.com/app:1.0@sha256:"+strings.Repeat("a", 64))
	var b strings.Builder
	for _, kind := range thresholdKinds {
		p := mustPolicy(t, kind.s)
		fmt.Fprintf(&b, "## %s\n", kind.name)
		for _, path := range reportFiles(t) {
			r := mustRead(t, path)
			fmt.Fprintf(&b, "%s: %s\n", path, renderVerdict(p.Verdict(r.Findings, image, "default", testNow)))
		}
	}
	got := b.String()
	golden := filepath.Join("testdata", "verdicts.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("verdicts differ from %s:\ngot:\n%s", golden, got)
	}
}

// The threshold semantics, each stated once on a real file.
func TestVerdictThresholdSemantics(t *testing.T) {
	image := mustRef(t, "docker.io/library/debian:10@sha256:"+strings.Repeat("b", 64))
	buster := mustRead(t, "testdata/trivy/debian-buster.json").Findings
	ghsa := mustRead(t, "testdata/grype/alpine-test-image-ghsa.json").Findings
	for _, tc := range []struct {
		name     string
		s        config.Scanning
		findings []Finding
		want     Result
		failing  []string
	}{
		{"failOnCritical fails on the CRITICAL libidn2 finding", config.Scanning{FailOnCritical: true}, buster, ResultFail, []string{"CVE-2019-18224"}},
		{"severity HIGH does not fail bash, LOW by its severity source though NVD says HIGH", config.Scanning{Severity: "HIGH"}, buster, ResultFail, []string{"CVE-2019-18224"}},
		{"maxCVSS 7.0 fails bash by its NVD v3 score 7.8", config.Scanning{MaxCVSS: float(7.0)}, buster, ResultFail, []string{"CVE-2019-18224", "CVE-2019-18276"}},
		{"maxCVSS 9.8 is not exceeded by 9.8", config.Scanning{MaxCVSS: float(9.8)}, buster, ResultPass, nil},
		{"ignoreUnfixed keeps the unfixed bash finding from failing", config.Scanning{MaxCVSS: float(7.0), IgnoreUnfixed: true}, buster, ResultFail, []string{"CVE-2019-18224"}},
		{"a finding with only a CVSS 2.0 score never trips maxCVSS", config.Scanning{MaxCVSS: float(0)}, ghsa, ResultPass, nil},
		{"no threshold passes everything", config.Scanning{}, buster, ResultPass, nil},
		{"severity is case-insensitive", config.Scanning{Severity: "critical"}, buster, ResultFail, []string{"CVE-2019-18224"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mustPolicy(t, tc.s).Verdict(tc.findings, image, "", testNow)
			var ids []string
			for _, f := range v.Failing {
				ids = append(ids, f.ID)
			}
			if v.Result != tc.want || !slices.Equal(ids, tc.failing) {
				t.Errorf("verdict %s failing %v, want %s failing %v", v.Result, ids, tc.want, tc.failing)
			}
			if v.Counts != (Counts{Critical: 1, Low: 1}) && len(tc.findings) == 2 && tc.findings[0].ID == "CVE-2019-18276" {
				t.Errorf("counts %+v, want 1 critical and 1 low", v.Counts)
			}
		})
	}
}

func TestIgnoreEntries(t *testing.T) {
	digest := "sha256:" + strings.Repeat("c", 64)
	debian := mustRef(t, "docker.io/library/debian:10@"+digest)
	buster := mustRead(t, "testdata/trivy/debian-buster.json").Findings
	entry := func(mut func(*config.IgnoreEntry)) config.Scanning {
		e := config.IgnoreEntry{ID: "CVE-2019-18224", Expires: "2026-12-31", Reason: "libidn2 is not used; SEC-1"}
		if mut != nil {
			mut(&e)
		}
		return config.Scanning{FailOnCritical: true, Ignore: []config.IgnoreEntry{e}}
	}
	endOfDay := time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)
	for _, tc := range []struct {
		name      string
		s         config.Scanning
		image     reference.Reference
		namespace string
		now       time.Time
		ignored   bool
	}{
		{"an entry suppresses its CVE", entry(nil), debian, "default", testNow, true},
		{"an entry applies through the last instant of its expiry day UTC", entry(nil), debian, "default", endOfDay, true},
		{"an entry stops applying at midnight UTC after its expiry day", entry(nil), debian, "default", endOfDay.Add(time.Nanosecond), false},
		{"an expiry day is UTC even when the caller's clock is not", entry(nil), debian, "default", endOfDay.Add(time.Nanosecond).In(time.FixedZone("UTC-10", -10*3600)), false},
		{"an entry never suppresses a different CVE", entry(func(e *config.IgnoreEntry) { e.ID = "CVE-2019-18276" }), debian, "default", testNow, false},
		{"an entry with images applies to a matching image", entry(func(e *config.IgnoreEntry) { e.Images = []string{"debian:*"} }), debian, "default", testNow, true},
		{"an image pattern matches a registry alias spelling", entry(func(e *config.IgnoreEntry) { e.Images = []string{"index.docker.io/library/debian"} }), debian, "default", testNow, true},
		{"an entry never suppresses a different image", entry(func(e *config.IgnoreEntry) { e.Images = []string{"docker.io/library/ubuntu:*"} }), debian, "default", testNow, false},
		{"an image pattern with a tag does not match another tag", entry(func(e *config.IgnoreEntry) { e.Images = []string{"debian:11"} }), debian, "default", testNow, false},
		{"an entry with namespaces applies in a matching namespace", entry(func(e *config.IgnoreEntry) { e.Namespaces = []string{"legacy-*"} }), debian, "legacy-billing", testNow, true},
		{"an entry with namespaces does not apply elsewhere", entry(func(e *config.IgnoreEntry) { e.Namespaces = []string{"legacy-*"} }), debian, "payments", testNow, false},
		{"an entry with namespaces does not apply without a namespace (the CLI)", entry(func(e *config.IgnoreEntry) { e.Namespaces = []string{"legacy-*"} }), debian, "", testNow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, tc.s)
			v := p.Verdict(buster, tc.image, tc.namespace, tc.now)
			var ignored bool
			for _, ig := range v.Ignored {
				if ig.ID == "CVE-2019-18224" {
					ignored = true
					if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); !ig.Expires.Equal(want) || ig.By != "security.scanning.ignore[0] (CVE-2019-18224)" {
						t.Errorf("ignored by %q until %s, want security.scanning.ignore[0] (CVE-2019-18224) until %s", ig.By, ig.Expires, want)
					}
				}
			}
			if ignored != tc.ignored {
				t.Fatalf("CVE-2019-18224 ignored = %t, want %t (verdict %s)", ignored, tc.ignored, renderVerdict(v))
			}
			wantResult := ResultFail
			if tc.ignored {
				wantResult = ResultPass
			}
			if v.Result != wantResult {
				t.Errorf("result %s, want %s", v.Result, wantResult)
			}
			if unused := p.Unused(v); tc.s.Ignore[0].ID == "CVE-2019-18224" && tc.ignored == (len(unused) == 1) {
				t.Errorf("Unused = %v with ignored = %t", unused, tc.ignored)
			}
		})
	}
}

func TestSkipImagesAreNeverDenied(t *testing.T) {
	p := mustPolicy(t, config.Scanning{FailOnCritical: true, SkipImages: []string{"registry.internal.example.com/base/*"}})
	buster := mustRead(t, "testdata/trivy/debian-buster.json").Findings
	skipped := mustRef(t, "registry.internal.example.com/base/debian:10")
	if !p.Skip(skipped) {
		t.Fatal("Skip = false for an image under skipImages")
	}
	if v := p.Verdict(buster, skipped, "default", testNow); v.Result != ResultPass || len(v.Failing) != 0 {
		t.Errorf("skipped image verdict %s, want pass", renderVerdict(v))
	}
	other := mustRef(t, "registry.internal.example.com/apps/debian:10")
	if p.Skip(other) || p.Verdict(buster, other, "default", testNow).Result != ResultFail {
		t.Error("an image outside skipImages was skipped")
	}
}

func TestCombineIsTheWorstPlatform(t *testing.T) {
	buster := mustRead(t, "testdata/trivy/debian-buster.json").Findings
	p := mustPolicy(t, config.Scanning{FailOnCritical: true})
	img := mustRef(t, "debian:10")
	fail := p.Verdict(buster, img, "", testNow)
	pass := p.Verdict(nil, img, "", testNow)
	for _, tc := range []struct {
		name string
		in   []Verdict
		want Result
	}{
		{"pass and fail is fail", []Verdict{pass, fail}, ResultFail},
		{"pass and error is error", []Verdict{pass, Errored(fmt.Errorf("boom"))}, ResultError},
		{"pass and pending is pending", []Verdict{Pending(), pass}, ResultPending},
		{"fail beats error", []Verdict{Errored(fmt.Errorf("boom")), fail}, ResultFail},
		{"pass and pass is pass", []Verdict{pass, pass}, ResultPass},
		{"nothing is pending", nil, ResultPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Combine(tc.in...); got.Result != tc.want {
				t.Errorf("Combine = %s, want %s", got.Result, tc.want)
			}
		})
	}
	if c := Combine(fail, fail); len(c.Failing) != 1 || c.Counts != (Counts{Critical: 1, Low: 1}) {
		t.Errorf("Combine of two equal platforms = %d failing, counts %+v; want each finding once", len(c.Failing), c.Counts)
	}
}

func TestNewPolicyErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    config.Scanning
		want string
	}{
		{"bad severity", config.Scanning{Severity: "SEVERE"}, "security.scanning.severity"},
		{"bad expiry", config.Scanning{Ignore: []config.IgnoreEntry{{ID: "CVE-1", Expires: "31/01/2027", Reason: "r"}}}, "security.scanning.ignore[0].expires"},
		{"missing VEX file", config.Scanning{VEX: []string{"testdata/vex/missing.json"}}, "security.scanning.vex"},
		{"not a VEX file", config.Scanning{VEX: []string{"testdata/trivy/gomod.json"}}, "testdata/trivy/gomod.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPolicy(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPolicy error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestVerdictMessageNamesTheWorstFindingsAndTheWayOut(t *testing.T) {
	p := mustPolicy(t, config.Scanning{Severity: "LOW"})
	v := p.Verdict(mustRead(t, "testdata/trivy/debian-buster.json").Findings, mustRef(t, "debian:10"), "default", testNow)
	got := v.Message("docker.io/library/debian:10", 1)
	want := "docker.io/library/debian:10 has 2 failing vulnerabilities: CVE-2019-18224 (CRITICAL, libidn2-0 2.0.5-1, fixed in 2.0.5-1+deb10u1), and 1 more; " +
		"to accept one, add it to security.scanning.ignore with images, expires and reason"
	if got != want {
		t.Errorf("Message =\n%s\nwant\n%s", got, want)
	}
	if m := Pending().Message("nginx", 3); m != "nginx is being scanned for vulnerabilities; retry in a minute" {
		t.Errorf("pending message %q", m)
	}
	if m := p.Verdict(nil, mustRef(t, "nginx"), "", testNow).Message("nginx", 3); m != "" {
		t.Errorf("pass message %q, want none", m)
	}
}
