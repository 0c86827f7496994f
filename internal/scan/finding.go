// Package scan reads vulnerability reports (Trivy and Grype JSON), judges
// them against the security.scanning policy, and runs the scanner command
// for images through a bounded, deduplicating queue.
//
// The pieces are independent so that admission and the CLI can share them:
// Parse turns a report into Findings, a Policy turns Findings into a
// Verdict, and a Queue runs a Runner (the scanner command) once per digest.
package scan

import (
	"fmt"
	"strings"
	"time"
)

// Severity orders findings: SeverityUnknown < SeverityLow < SeverityMedium
// < SeverityHigh < SeverityCritical.
type Severity int

// The severities, from least to most severe.
const (
	SeverityUnknown Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// String is the upper-case name Trivy uses ("CRITICAL").
func (s Severity) String() string {
	if s < SeverityUnknown || s > SeverityCritical {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name in any case. Grype's "Negligible" is
// SeverityLow: it is below Medium in Grype's own order and LOW is the
// least severity a threshold can name.
func ParseSeverity(s string) (Severity, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "NEGLIGIBLE" {
		return SeverityLow, nil
	}
	for i, n := range severityNames {
		if u == n {
			return Severity(i), nil
		}
	}
	return SeverityUnknown, fmt.Errorf("%q is not a severity (one of %s)", s, strings.Join(severityNames[:], ", "))
}

// severityOf is ParseSeverity for report values: a scanner that invents a
// new severity name reports an UNKNOWN finding rather than an unreadable
// report, so the rest of the report still counts.
func severityOf(s string) Severity {
	sev, err := ParseSeverity(s)
	if err != nil {
		return SeverityUnknown
	}
	return sev
}

// Finding is one vulnerability of one package in a scanned image.
type Finding struct {
	// ID is the vulnerability id as the scanner reports it
	// ("CVE-2019-18276", "GHSA-hv5j-3h9f-99c2").
	ID string
	// Aliases are other ids of the same vulnerability that the report
	// names (Grype's relatedVulnerabilities). Only VEX statements use
	// them: ignore entries name the id exactly.
	Aliases []string
	// Package, Installed and Fixed say what is vulnerable and what
	// version fixes it ("" when none does; Trivy may list several,
	// comma-separated).
	Package   string
	Installed string
	Fixed     string
	// PURL is the package URL of the vulnerable package, when known.
	PURL string
	// Severity is the scanner's severity: for Trivy the vendor severity
	// of SeveritySource when the report has it (Severity is deprecated),
	// else Severity.
	Severity Severity
	// CVSS is the CVSS v3 base score the finding is judged by: the NVD
	// score when there is one, else the highest v3 score of any source.
	// HasCVSS is false when the report has no v3 score; such a finding
	// never trips maxCVSS.
	CVSS    float64
	HasCVSS bool
	// Unfixed says no fixed version exists: Trivy reports no
	// FixedVersion, or Grype's fix.state is not "fixed".
	Unfixed bool
	// Status is the scanner's own word for it (Trivy Status, Grype
	// fix.state).
	Status string
}

// Report is a parsed scanner report.
type Report struct {
	// Format is "trivy" or "grype".
	Format string
	// ScannerVersion is the scanner's version, when the report says.
	ScannerVersion string
	// Artifact is the image the report says it scanned, as the scanner
	// names it (possibly a local file name).
	Artifact string
	// Digest is the scanned manifest's digest, when the report says.
	Digest string
	// DBTime is when the vulnerability database was built, when the
	// report says; zero otherwise.
	DBTime   time.Time
	Findings []Finding
	// Raw is the report as the scanner printed it, for the record store.
	Raw []byte
}

// Counts are the numbers of findings by severity.
type Counts struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Unknown  int `json:"unknown"`
}

// CountFindings counts findings by severity.
func CountFindings(findings []Finding) Counts {
	var c Counts
	for _, f := range findings {
		c.add(f.Severity, 1)
	}
	return c
}

func (c *Counts) add(s Severity, n int) {
	switch s {
	case SeverityCritical:
		c.Critical += n
	case SeverityHigh:
		c.High += n
	case SeverityMedium:
		c.Medium += n
	case SeverityLow:
		c.Low += n
	default:
		c.Unknown += n
	}
}

// Map returns the counts keyed by severity name ("CRITICAL"), as the
// record store keeps them.
func (c Counts) Map() map[string]int {
	return map[string]int{"CRITICAL": c.Critical, "HIGH": c.High, "MEDIUM": c.Medium, "LOW": c.Low, "UNKNOWN": c.Unknown}
}
