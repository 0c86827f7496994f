package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// grypeReport is the part of Grype's JSON document (`grype -o json`) that
// the gate reads.
type grypeReport struct {
	Matches *[]grypeMatch `json:"matches"`
	Source  *struct {
		Type   string          `json:"type"`
		Target json.RawMessage `json:"target"`
	} `json:"source"`
	Descriptor *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		DB      *struct {
			Built string `json:"built"`
		} `json:"db"`
	} `json:"descriptor"`
}

type grypeMatch struct {
	Vulnerability struct {
		grypeRecord
		Fix struct {
			Versions []string `json:"versions"`
			State    string   `json:"state"`
		} `json:"fix"`
	} `json:"vulnerability"`
	RelatedVulnerabilities []grypeRecord `json:"relatedVulnerabilities"`
	Artifact               struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		PURL    string `json:"purl"`
	} `json:"artifact"`
}

type grypeRecord struct {
	ID        string      `json:"id"`
	Namespace string      `json:"namespace"`
	Severity  string      `json:"severity"`
	CVSS      []grypeCVSS `json:"cvss"`
}

type grypeCVSS struct {
	Source  string `json:"source"`
	Type    string `json:"type"`
	Version string `json:"version"`
	Metrics struct {
		BaseScore *float64 `json:"baseScore"`
	} `json:"metrics"`
}

// grypeFixed is the fix.state of a vulnerability with a fixed version;
// "not-fixed", "wont-fix", "unknown" and "" are all unfixed.
const grypeFixed = "fixed"

// parseGrype reads a Grype JSON document.
func parseGrype(data []byte) (*Report, error) {
	var g grypeReport
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("reading Grype report: %w", err)
	}
	if g.Matches == nil {
		return nil, errors.New("not a Grype report: \"matches\" is null, want a list")
	}
	r := &Report{Format: FormatGrype}
	if d := g.Descriptor; d != nil {
		r.ScannerVersion = d.Version
		if d.DB != nil && d.DB.Built != "" {
			if t, err := time.Parse(time.RFC3339, d.DB.Built); err == nil {
				r.DBTime = t
			}
		}
	}
	if g.Source != nil && g.Source.Type == "image" {
		// For images, target is an object; for directories a string.
		var t struct {
			UserInput      string `json:"userInput"`
			ManifestDigest string `json:"manifestDigest"`
		}
		if json.Unmarshal(g.Source.Target, &t) == nil {
			r.Artifact, r.Digest = t.UserInput, t.ManifestDigest
		}
	}
	for _, m := range *g.Matches {
		r.Findings = append(r.Findings, m.finding())
	}
	return r, nil
}

func (m grypeMatch) finding() Finding {
	v := m.Vulnerability
	f := Finding{
		ID:        v.ID,
		Package:   m.Artifact.Name,
		Installed: m.Artifact.Version,
		PURL:      m.Artifact.PURL,
		Severity:  severityOf(v.Severity),
		Status:    v.Fix.State,
		Unfixed:   v.Fix.State != grypeFixed,
	}
	if !f.Unfixed {
		f.Fixed = strings.Join(v.Fix.Versions, ", ")
	}
	records := append([]grypeRecord{v.grypeRecord}, m.RelatedVulnerabilities...)
	for _, rel := range m.RelatedVulnerabilities {
		if rel.ID != "" && rel.ID != v.ID {
			f.Aliases = append(f.Aliases, rel.ID)
		}
	}
	f.CVSS, f.HasCVSS = grypeScore(records)
	return f
}

// grypeScore is the NVD v3 base score of the match (the vulnerability's
// own record or a related one), preferring NVD's Primary score, else the
// highest v3 score of any source.
func grypeScore(records []grypeRecord) (float64, bool) {
	var nvd, nvdPrimary, any score
	for _, rec := range records {
		for _, c := range rec.CVSS {
			if !strings.HasPrefix(c.Version, "3") || c.Metrics.BaseScore == nil {
				continue
			}
			s := *c.Metrics.BaseScore
			any.max(s)
			// Older Grype leaves source empty on the record's own entries;
			// the record's namespace ("nvd:cpe") then says whose they are.
			isNVD := strings.Contains(strings.ToLower(c.Source), "nvd") ||
				c.Source == "" && strings.HasPrefix(rec.Namespace, "nvd")
			if isNVD {
				nvd.max(s)
				if strings.EqualFold(c.Type, "Primary") {
					nvdPrimary.max(s)
				}
			}
		}
	}
	for _, s := range []score{nvdPrimary, nvd, any} {
		if s.ok {
			return s.v, true
		}
	}
	return 0, false
}

type score struct {
	v  float64
	ok bool
}

func (s *score) max(v float64) {
	if !s.ok || v > s.v {
		s.v, s.ok = v, true
	}
}
