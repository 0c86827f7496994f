package scan

import (
	"encoding/json"
	"fmt"
	"strings"
)

// trivyReport is the part of Trivy's JSON report (SchemaVersion 2, `trivy
// image --format json`) that the gate reads.
type trivyReport struct {
	SchemaVersion int    `json:"SchemaVersion"`
	ArtifactName  string `json:"ArtifactName"`
	Trivy         *struct {
		Version string `json:"Version"`
	} `json:"Trivy"`
	// Metadata is absent for some artifact types (repositories).
	Metadata *struct {
		RepoDigests []string `json:"RepoDigests"`
	} `json:"Metadata"`
	Results []struct {
		Target          string      `json:"Target"`
		Vulnerabilities []trivyVuln `json:"Vulnerabilities"`
	} `json:"Results"`
}

type trivyVuln struct {
	VulnerabilityID string `json:"VulnerabilityID"`
	PkgName         string `json:"PkgName"`
	PkgIdentifier   *struct {
		PURL string `json:"PURL"`
	} `json:"PkgIdentifier"`
	InstalledVersion string               `json:"InstalledVersion"`
	FixedVersion     string               `json:"FixedVersion"`
	Status           string               `json:"Status"`
	Severity         string               `json:"Severity"`
	SeveritySource   string               `json:"SeveritySource"`
	VendorSeverity   map[string]int       `json:"VendorSeverity"`
	CVSS             map[string]trivyCVSS `json:"CVSS"`
}

type trivyCVSS struct {
	V3Vector string   `json:"V3Vector"`
	V3Score  *float64 `json:"V3Score"`
}

// trivyNVD is the CVSS source key of NVD in Trivy reports.
const trivyNVD = "nvd"

// parseTrivy reads a Trivy schema-2 report.
func parseTrivy(data []byte) (*Report, error) {
	var t trivyReport
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("reading Trivy report: %w", err)
	}
	if t.SchemaVersion != 2 {
		return nil, fmt.Errorf("unsupported Trivy report: SchemaVersion %d, want 2", t.SchemaVersion)
	}
	r := &Report{Format: FormatTrivy, Artifact: t.ArtifactName}
	if t.Trivy != nil {
		r.ScannerVersion = t.Trivy.Version
	}
	if t.Metadata != nil {
		for _, rd := range t.Metadata.RepoDigests {
			if _, d, ok := strings.Cut(rd, "@"); ok {
				r.Digest = d
				break
			}
		}
	}
	for _, res := range t.Results {
		for _, v := range res.Vulnerabilities {
			r.Findings = append(r.Findings, v.finding())
		}
	}
	return r, nil
}

func (v trivyVuln) finding() Finding {
	f := Finding{
		ID:        v.VulnerabilityID,
		Package:   v.PkgName,
		Installed: v.InstalledVersion,
		Fixed:     v.FixedVersion,
		Status:    v.Status,
		Unfixed:   strings.TrimSpace(v.FixedVersion) == "",
		Severity:  severityOf(v.Severity),
	}
	if v.PkgIdentifier != nil {
		f.PURL = v.PkgIdentifier.PURL
	}
	// Severity is deprecated in favour of VendorSeverity[SeveritySource]:
	// Trivy copies one into the other today, but the vendor map is what
	// it guarantees.
	if s, ok := v.VendorSeverity[v.SeveritySource]; ok && v.SeveritySource != "" && s >= int(SeverityUnknown) && s <= int(SeverityCritical) {
		f.Severity = Severity(s)
	}
	f.CVSS, f.HasCVSS = trivyScore(v.CVSS)
	return f
}

// trivyScore is the NVD v3 base score, else the highest v3 score of any
// source.
func trivyScore(m map[string]trivyCVSS) (float64, bool) {
	if c, ok := m[trivyNVD]; ok && c.V3Score != nil {
		return *c.V3Score, true
	}
	best, found := 0.0, false
	for _, c := range m {
		if c.V3Score != nil && (!found || *c.V3Score > best) {
			best, found = *c.V3Score, true
		}
	}
	return best, found
}
