package vulngate

import (
	"time"

	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
)

// Record is the ledger's record of one finished scan: of the platform
// manifest manifestDigest of image, which resolved to indexDigest (equal
// for a single-platform image).
func Record(image, indexDigest, manifestDigest string, rep *scan.Report, at time.Time) store.ScanRecord {
	r := store.ScanRecord{
		Time:           at,
		Image:          image,
		IndexDigest:    indexDigest,
		ManifestDigest: manifestDigest,
		Scanner:        rep.Format,
		ScannerVersion: rep.ScannerVersion,
		DBTime:         rep.DBTime,
		Counts:         scan.CountFindings(rep.Findings).Map(),
		Report:         rep.Raw,
	}
	for _, f := range rep.Findings {
		r.Findings = append(r.Findings, store.Finding{
			ID: f.ID, Package: f.Package, InstalledVersion: f.Installed, FixedVersion: f.Fixed,
			Severity: f.Severity.String(), CVSS: f.CVSS, Status: f.Status,
		})
	}
	return r
}

// storedFindings are the findings of a stored scan: its raw report parsed
// again, which keeps what the findings table does not (aliases, package
// URLs, whether a score exists); else the table's rows.
func storedFindings(rec *store.ScanRecord) []scan.Finding {
	if len(rec.Report) > 0 {
		if rep, err := scan.Parse("stored report of "+rec.ManifestDigest, rec.Report); err == nil {
			return rep.Findings
		}
	}
	out := make([]scan.Finding, 0, len(rec.Findings))
	for _, f := range rec.Findings {
		sev, err := scan.ParseSeverity(f.Severity)
		if err != nil {
			sev = scan.SeverityUnknown
		}
		out = append(out, scan.Finding{
			ID: f.ID, Package: f.Package, Installed: f.InstalledVersion, Fixed: f.FixedVersion,
			Severity: sev, CVSS: f.CVSS, HasCVSS: f.CVSS > 0, Unfixed: f.FixedVersion == "", Status: f.Status,
		})
	}
	return out
}
