package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// issueExample is security.scanning exactly as the public contract shows it.
const issueExample = `
security:
  scanning:
    enabled: true
    provider: trivy          # trivy | grype: which JSON the scanner prints
    command: [trivy, image, --format, json, --quiet, --scanners, vuln]   # default per provider; image@digest is appended
    timeout: 5m
    concurrency: 2
    platforms: [linux/amd64, linux/arm64]  # default; of an index, the platforms scanned (those present)
    failOnCritical: true     # deny images with a CRITICAL finding
    severity: HIGH           # deny images with a finding at or above this severity
    maxCVSS: 8.9             # deny images with a finding whose CVSS v3 base score is above this
    ignoreUnfixed: false     # findings without a fixed version never deny
    pending: deny            # deny (default) | warn | allow: admission while no verdict exists yet
    rescanAfter: 24h
    skipImages: ["registry.internal.example.com/base/*"]   # never scanned, never denied by the gate
    ignore:
      - id: CVE-2019-18276
        images: ["docker.io/library/debian:*"]   # optional: only these images
        namespaces: ["legacy-*"]                  # optional: only these namespaces
        expires: 2027-01-31                       # required: entries end
        reason: "bash is not reachable; SEC-123"  # required
    vex: [/etc/image-swapper/vex/openvex.json]   # OpenVEX documents: not_affected statements ignore findings
`

func TestParseLoadsTheScanningContract(t *testing.T) {
	cfg := mustParse(t, issueExample)
	maxCVSS := 8.9
	want := Scanning{
		Enabled:        true,
		Provider:       "trivy",
		Command:        []string{"trivy", "image", "--format", "json", "--quiet", "--scanners", "vuln"},
		Timeout:        &metav1.Duration{Duration: 5 * time.Minute},
		Concurrency:    2,
		Platforms:      []string{"linux/amd64", "linux/arm64"},
		FailOnCritical: true,
		Severity:       "HIGH",
		MaxCVSS:        &maxCVSS,
		Pending:        PendingDeny,
		RescanAfter:    &metav1.Duration{Duration: 24 * time.Hour},
		SkipImages:     []string{"registry.internal.example.com/base/*"},
		Ignore: []IgnoreEntry{{
			ID: "CVE-2019-18276", Images: []string{"docker.io/library/debian:*"}, Namespaces: []string{"legacy-*"},
			Expires: "2027-01-31", Reason: "bash is not reachable; SEC-123",
		}},
		VEX: []string{"/etc/image-swapper/vex/openvex.json"},
	}
	if !reflect.DeepEqual(cfg.Security.Scanning, want) {
		t.Errorf("security.scanning =\n%#v\nwant\n%#v", cfg.Security.Scanning, want)
	}
	end, ok := cfg.Security.Scanning.Ignore[0].IgnoreExpiry()
	if !ok || !end.Equal(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("IgnoreExpiry = %v, %t; want the start of 2027-02-01 UTC", end, ok)
	}

	out, err := Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("marshalled.yaml", out)
	if err != nil {
		t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("Parse(Marshal(cfg)) differs:\n%s", out)
	}
	if !strings.Contains(string(out), "maxCVSS: 8.9\n") {
		t.Errorf("Marshal wrote maxCVSS other than as 8.9:\n%s", out)
	}
}

func TestScanningDefaults(t *testing.T) {
	s := Scanning{Provider: "grype"}
	if got := s.EffectiveCommand(); !reflect.DeepEqual(got, []string{"grype", "-o", "json", "--quiet"}) {
		t.Errorf("grype command %q", got)
	}
	s.Provider = "trivy"
	if got := s.EffectiveCommand(); !reflect.DeepEqual(got, []string{"trivy", "image", "--format", "json", "--quiet", "--scanners", "vuln"}) {
		t.Errorf("trivy command %q", got)
	}
	if s.ScanTimeout() != 5*time.Minute || s.ScanConcurrency() != 2 || s.PendingPolicy() != PendingDeny ||
		s.RescanInterval() != 24*time.Hour || !reflect.DeepEqual(s.ScanPlatforms(), []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("defaults: timeout %s, concurrency %d, pending %s, rescanAfter %s, platforms %v",
			s.ScanTimeout(), s.ScanConcurrency(), s.PendingPolicy(), s.RescanInterval(), s.ScanPlatforms())
	}
	cmd := s.EffectiveCommand()
	_ = append(cmd[:1], "mutated")
	if s.EffectiveCommand()[1] != "image" {
		t.Error("EffectiveCommand returned the shared default, which a caller's append mutated")
	}
}

func TestValidateChecksEveryScanningKey(t *testing.T) {
	ig := func(mut func(*IgnoreEntry)) func(c *Config) {
		return func(c *Config) {
			e := IgnoreEntry{ID: "CVE-2019-18276", Expires: "2027-01-31", Reason: "SEC-123"}
			mut(&e)
			c.Security.Scanning.Ignore = []IgnoreEntry{e}
		}
	}
	checkSpoiled(t, []spoilCase{
		{"the command may not be an empty list", func(c *Config) { c.Security.Scanning.Command = []string{} },
			`security.scanning.command: must not be empty; leave it out for the provider's default`},
		{"the command names an executable", func(c *Config) { c.Security.Scanning.Command = []string{" ", "image"} },
			`security.scanning.command[0]: must name the scanner executable, e.g. trivy`},
		{"the timeout is positive", func(c *Config) { c.Security.Scanning.Timeout = &metav1.Duration{} },
			`security.scanning.timeout: 0s must be more than 0s (default 5m0s)`},
		{"concurrency is bounded", func(c *Config) { c.Security.Scanning.Concurrency = 33 },
			`security.scanning.concurrency: 33 must be between 1 and 32 (0 means the default, 2)`},
		{"a platform is os/arch", func(c *Config) { c.Security.Scanning.Platforms = []string{"linux/amd64", "amd64"} },
			`security.scanning.platforms[1]: "amd64" is not a platform os/architecture[/variant], e.g. linux/arm64`},
		{"the severity is a known one", func(c *Config) { c.Security.Scanning.Severity = "SEVERE" },
			`security.scanning.severity: "SEVERE" is not one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL`},
		{"maxCVSS is a CVSS score", func(c *Config) { f := 11.0; c.Security.Scanning.MaxCVSS = &f },
			`security.scanning.maxCVSS: 11 must be between 0 and 10, a CVSS base score`},
		{"pending is deny, warn or allow", func(c *Config) { c.Security.Scanning.Pending = "block" },
			`security.scanning.pending: "block" is not one of deny, warn, allow`},
		{"rescanAfter is positive", func(c *Config) { c.Security.Scanning.RescanAfter = &metav1.Duration{Duration: -time.Hour} },
			`security.scanning.rescanAfter: -1h0m0s must be more than 0s (default 24h0m0s)`},
		{"skipImages are image patterns", func(c *Config) { c.Security.Scanning.SkipImages = []string{""} },
			`security.scanning.skipImages[0]: must not be empty`},
		{"an ignore entry needs an id", ig(func(e *IgnoreEntry) { e.ID = "" }),
			`security.scanning.ignore[0].id: required: the vulnerability id as the scanner reports it, e.g. CVE-2019-18276`},
		{"an ignore id is not a wildcard", ig(func(e *IgnoreEntry) { e.ID = "CVE-2019-*" }),
			`security.scanning.ignore[0].id: "CVE-2019-*" must be one vulnerability id, without whitespace or wildcards`},
		{"an ignore entry must expire", ig(func(e *IgnoreEntry) { e.Expires = "" }),
			`security.scanning.ignore[0].expires: required: the last day the entry applies, YYYY-MM-DD (exceptions must end)`},
		{"an expiry is a date", ig(func(e *IgnoreEntry) { e.Expires = "2027-01-31T00:00:00Z" }),
			`security.scanning.ignore[0].expires: "2027-01-31T00:00:00Z" is not a date YYYY-MM-DD, e.g. 2027-01-31`},
		{"an ignore entry needs a reason", ig(func(e *IgnoreEntry) { e.Reason = " " }),
			`security.scanning.ignore[0].reason: required: say why the finding is acceptable, e.g. a ticket`},
		{"ignore images are image patterns", ig(func(e *IgnoreEntry) { e.Images = []string{"debian *"} }),
			`security.scanning.ignore[0].images[0]: "debian *": pattern must not contain whitespace`},
		{"ignore namespaces are namespace patterns", ig(func(e *IgnoreEntry) { e.Namespaces = []string{"Legacy"} }),
			`security.scanning.ignore[0].namespaces[0]: "Legacy" is not a namespace name or wildcard (lowercase letters, digits, '-', '*' and '?')`},
		{"a VEX path is not empty", func(c *Config) { c.Security.Scanning.VEX = []string{""} },
			`security.scanning.vex[0]: must not be empty; give the path of an OpenVEX document`},
	})
}

func TestParseReportsAScoreOfTheWrongType(t *testing.T) {
	_, err := Parse("c.yaml", []byte("security:\n  scanning:\n    maxCVSS: high\n"))
	if err == nil || !strings.Contains(err.Error(), `line 3: security.scanning.maxCVSS: expected a number, got the string "high"`) {
		t.Errorf("Parse error %v", err)
	}
	cfg := mustParse(t, "security:\n  scanning:\n    maxCVSS: 9\n")
	if cfg.Security.Scanning.MaxCVSS == nil || *cfg.Security.Scanning.MaxCVSS != 9 {
		t.Errorf("maxCVSS: 9 decoded as %v", cfg.Security.Scanning.MaxCVSS)
	}
}
