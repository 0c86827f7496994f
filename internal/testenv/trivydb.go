package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TrivyDBSchemaVersion is the trivy-db schema TrivyVersion reads
// (trivy-db's db.SchemaVersion). metadata.json must say exactly this or
// Trivy refuses --skip-db-update.
const TrivyDBSchemaVersion = 2

// TrivyVuln is one advisory of the synthetic database: ID affects the
// Alpine package Package (at AlpineVersion's minor release) below
// FixedVersion.
type TrivyVuln struct {
	// ID is the vulnerability id ("CVE-2099-0001"). Invent ids that no
	// real database has, so that nobody mistakes a fixture for a finding.
	ID string
	// Package is the apk origin, the source package: Trivy looks
	// advisories up by an installed package's origin (ApkPackage.Origin)
	// and reports them under the installed package's own name.
	Package string
	// FixedVersion is the first apk version that is not vulnerable
	// ("1.2.5-r1"). Empty means no fix: Trivy then reports every installed
	// version, with Status "affected".
	FixedVersion string
	// Severity is NVD's severity (UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL),
	// which Trivy reports with SeveritySource "nvd" because Alpine's
	// advisories carry none.
	Severity string
	// VendorSeverity adds severities by Trivy source id ("alpine",
	// "redhat", ...). A severity from the advisory's own source ("alpine")
	// wins over NVD's in Trivy's severity selection.
	VendorSeverity map[string]string
	// CVSSv3 and CVSSv3Vector are NVD's CVSS v3 base score and vector;
	// a zero score means none.
	CVSSv3       float64
	CVSSv3Vector string
	// Title is the vulnerability's one-line title.
	Title string
}

// trivySeverities are trivy-db's severity numbers (types.Severity).
var trivySeverities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// The bucket layout of trivy-db schema 2, as trivy-db's vulnsrc packages
// write it and Trivy's detectors read it.
const (
	// trivyVulnBucket maps a vulnerability id to its details (JSON of
	// types.Vulnerability).
	trivyVulnBucket = "vulnerability"
	// trivyDataSourceBucket maps an advisory bucket ("alpine 3.22") to
	// its source (types.DataSource). Without it the advisories have no
	// source id, and a vendor severity of the source is never chosen.
	trivyDataSourceBucket = "data-source"
	// trivyNVD is NVD's source id.
	trivyNVD = "nvd"
)

// trivyAlpineSource is the data source trivy-db records for Alpine's
// secdb.
var trivyAlpineSource = map[string]string{"ID": "alpine", "Name": "Alpine Secdb", "URL": "https://secdb.alpinelinux.org/"}

// WriteTrivyDB writes a Trivy cache directory whose vulnerability database
// (db/trivy.db, db/metadata.json) holds just vulns, for Alpine
// AlpineVersion images, and returns the directory: the --cache-dir of
// TrivyCommand and StartTrivyServer. metadata.json says the database was
// just downloaded and is current, which --skip-db-update needs.
//
// The database is written with bbolt, the store trivy-db uses, in the
// layout Trivy's own fixtures (bolt-fixtures YAML) describe:
//
//	alpine 3.22 → PACKAGE → ID: {"FixedVersion": ...}
//	vulnerability → ID: {"Title", "Severity", "VendorSeverity", "CVSS"}
//	data-source → alpine 3.22: {"ID": "alpine", ...}
func WriteTrivyDB(t testing.TB, vulns []TrivyVuln) string {
	t.Helper()
	cacheDir := t.TempDir()
	if err := writeTrivyDB(filepath.Join(cacheDir, "db"), vulns, time.Now()); err != nil {
		t.Fatalf("writing the Trivy database: %v", err)
	}
	return cacheDir
}

func writeTrivyDB(dir string, vulns []TrivyVuln, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	db, err := bolt.Open(filepath.Join(dir, "trivy.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	advisories := "alpine " + alpineMinor(AlpineVersion)
	err = db.Update(func(tx *bolt.Tx) error {
		if err := putJSON(tx, []string{trivyDataSourceBucket}, advisories, trivyAlpineSource); err != nil {
			return err
		}
		for i, v := range vulns {
			advisory, detail, err := v.records()
			if err != nil {
				return fmt.Errorf("vulns[%d] %s: %w", i, v.ID, err)
			}
			if err := putJSON(tx, []string{advisories, v.Package}, v.ID, advisory); err != nil {
				return err
			}
			if err := putJSON(tx, []string{trivyVulnBucket}, v.ID, detail); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// trivy-db's metadata.Metadata; Trivy reads it before it opens the
	// database.
	meta, err := json.Marshal(map[string]any{
		"Version":      TrivyDBSchemaVersion,
		"NextUpdate":   now.Add(24 * time.Hour).UTC(),
		"UpdatedAt":    now.UTC(),
		"DownloadedAt": now.UTC(),
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "metadata.json"), meta, 0o600)
}

// records are v's advisory (types.Advisory) and vulnerability details
// (types.Vulnerability), as JSON-ready values.
func (v TrivyVuln) records() (advisory, detail map[string]any, err error) {
	if v.ID == "" || v.Package == "" {
		return nil, nil, errors.New("ID and Package are required")
	}
	advisory = map[string]any{}
	if v.FixedVersion != "" {
		advisory["FixedVersion"] = v.FixedVersion
	}
	detail = map[string]any{}
	if v.Title != "" {
		detail["Title"] = v.Title
	}
	vendor := map[string]int{}
	if v.Severity != "" {
		n, err := trivySeverity(v.Severity)
		if err != nil {
			return nil, nil, fmt.Errorf("field Severity: %w", err)
		}
		vendor[trivyNVD] = n
		// Severity is deprecated in the schema but still written by
		// trivy-db; Trivy falls back to it when no vendor severity fits.
		detail["Severity"] = trivySeverities[n]
	}
	for source, s := range v.VendorSeverity {
		n, err := trivySeverity(s)
		if err != nil {
			return nil, nil, fmt.Errorf("field VendorSeverity[%s]: %w", source, err)
		}
		vendor[source] = n
	}
	if len(vendor) > 0 {
		detail["VendorSeverity"] = vendor
	}
	if v.CVSSv3 != 0 || v.CVSSv3Vector != "" {
		cvss := map[string]any{}
		if v.CVSSv3 != 0 {
			cvss["V3Score"] = v.CVSSv3
		}
		if v.CVSSv3Vector != "" {
			cvss["V3Vector"] = v.CVSSv3Vector
		}
		detail["CVSS"] = map[string]any{trivyNVD: cvss}
	}
	return advisory, detail, nil
}

// trivySeverity is trivy-db's number for a severity name.
func trivySeverity(s string) (int, error) {
	n := slices.Index(trivySeverities, strings.ToUpper(s))
	if n < 0 {
		return 0, fmt.Errorf("%q is not one of %s", s, strings.Join(trivySeverities, ", "))
	}
	return n, nil
}

// putJSON stores value as JSON under key in the nested buckets path,
// creating them.
func putJSON(tx *bolt.Tx, path []string, key string, value any) error {
	b, err := tx.CreateBucketIfNotExists([]byte(path[0]))
	for _, name := range path[1:] {
		if err != nil {
			break
		}
		b, err = b.CreateBucketIfNotExists([]byte(name))
	}
	if err != nil {
		return fmt.Errorf("bucket %q: %w", strings.Join(path, " → "), err)
	}
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}
