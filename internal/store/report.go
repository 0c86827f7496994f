package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/image-swapper/image-swapper/internal/glob"
)

// The read methods of this file aggregate in SQL and stream their result
// through a callback, one row at a time, so that a report over millions of
// records holds only its aggregates in memory. The callback runs while the
// query's cursor is open: it must not call the store.

// AdmissionGroup aggregates the admission records of one UTC day that
// share everything but their time, uid, operation, container and user.
type AdmissionGroup struct {
	// Day is the UTC midnight the records' day starts at.
	Day      time.Time
	Endpoint string
	// Namespace, Pod, OwnerKind and OwnerName are the workload, as in
	// AdmissionRecord.
	Namespace string
	Pod       string
	OwnerKind string
	OwnerName string
	// Image is the normalised reference, or the reference as written when
	// it did not normalise.
	Image      string
	Target     string
	Digest     string
	Action     string
	Rule       string
	DryRun     bool
	Fallback   bool
	Violations []Violation
	// Records is how many records the group holds, Requests how many
	// admission requests (distinct uids) they came from.
	Records  int64
	Requests int64
	// First and Last are the times of its oldest and newest record.
	First time.Time
	Last  time.Time
}

// CopySummary aggregates the copy records of one source, target and
// result.
type CopySummary struct {
	Source string
	Target string
	Result string
	// Count is how many copies the summary holds; First and Last are the
	// times of the oldest and newest.
	Count int64
	First time.Time
	Last  time.Time
	// Latest is the newest of the copies.
	Latest CopyRecord
}

// Summarizer reads aggregates of the ledger, streamed, for reports. Store
// embeds it.
type Summarizer interface {
	// AdmissionGroups calls fn for each AdmissionGroup of the admission
	// records matching q (Limit is ignored), oldest day first.
	AdmissionGroups(ctx context.Context, q Query, fn func(*AdmissionGroup) error) error
	// CopySummaries calls fn for each CopySummary of the copy records at
	// or after since (zero: all).
	CopySummaries(ctx context.Context, since time.Time, fn func(*CopySummary) error) error
	// LatestScans calls fn for the newest scan of each pair of index and
	// manifest digest, with its findings and without its raw report.
	LatestScans(ctx context.Context, fn func(*ScanRecord) error) error
	// ScanSummaries calls fn for every scan record, oldest first, without
	// findings and raw report.
	ScanSummaries(ctx context.Context, fn func(*ScanRecord) error) error
}

var _ Summarizer = (*sqlStore)(nil)

const dayMillis = 24 * 60 * 60 * 1000

// AdmissionGroups implements Summarizer.
func (s *sqlStore) AdmissionGroups(ctx context.Context, q Query, fn func(*AdmissionGroup) error) error {
	var nsPat, imgPat *glob.Pattern
	if q.Namespace != "" {
		p, err := glob.Compile(q.Namespace)
		if err != nil {
			return fmt.Errorf("namespace: %w", err)
		}
		nsPat = &p
	}
	if q.Image != "" {
		p, err := glob.Compile(q.Image)
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		imgPat = &p
	}
	// Grouping by ids and joining the names afterwards keeps the
	// aggregation over small integers.
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT g.day, COALESCE(ep.value, ''),
		COALESCE(ns.name, ''), COALESCE(w.pod, ''), COALESCE(ok.value, ''), COALESCE(w.owner_name, ''),
		COALESCE(i.ref, ''), COALESCE(t.ref, ''), COALESCE(d.digest, ''), COALESCE(ac.value, ''), COALESCE(r.value, ''),
		g.flags, g.violations, g.records, g.requests, g.first_at, g.last_at
		FROM (SELECT a.at / `+fmt.Sprint(dayMillis)+` AS day, a.endpoint, a.workload,
				CASE WHEN a.normalized = 0 THEN a.image ELSE a.normalized END AS img,
				a.target, a.digest, a.action, a.rule, a.flags, a.violations,
				COUNT(*) AS records, COUNT(DISTINCT a.uid) AS requests, MIN(a.at) AS first_at, MAX(a.at) AS last_at
			FROM admissions a WHERE a.at >= ?
			GROUP BY 1, a.endpoint, a.workload, 4, a.target, a.digest, a.action, a.rule, a.flags, a.violations) g
		LEFT JOIN names ep ON ep.id = g.endpoint
		LEFT JOIN workloads w ON w.id = g.workload
		LEFT JOIN namespaces ns ON ns.id = w.namespace
		LEFT JOIN names ok ON ok.id = w.owner_kind
		LEFT JOIN images i ON i.id = g.img
		LEFT JOIN images t ON t.id = g.target
		LEFT JOIN digests d ON d.id = g.digest
		LEFT JOIN names ac ON ac.id = g.action
		LEFT JOIN names r ON r.id = g.rule
		ORDER BY g.day`), sinceMillis(q.Since))
	if err != nil {
		return s.wrap("summarising admission records", err)
	}
	defer rows.Close()
	for rows.Next() {
		var g AdmissionGroup
		var day, flags, first, last int64
		var violations sql.NullString
		if err := rows.Scan(&day, &g.Endpoint, &g.Namespace, &g.Pod, &g.OwnerKind, &g.OwnerName,
			&g.Image, &g.Target, &g.Digest, &g.Action, &g.Rule, &flags, &violations, &g.Records, &g.Requests, &first, &last); err != nil {
			return s.wrap("summarising admission records", err)
		}
		if nsPat != nil && !nsPat.Match(g.Namespace) {
			continue
		}
		if imgPat != nil && !imgPat.Match(g.Image) {
			continue
		}
		g.Day = time.UnixMilli(day * dayMillis).UTC()
		g.DryRun = flags&flagDryRun != 0
		g.Fallback = flags&flagFallback != 0
		g.First, g.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		if violations.Valid {
			if err := json.Unmarshal([]byte(violations.String), &g.Violations); err != nil {
				return s.wrap("summarising admission records", fmt.Errorf("violations of %s: %w", g.Image, err))
			}
		}
		if err := fn(&g); err != nil {
			return err
		}
	}
	return s.wrap("summarising admission records", rows.Err())
}

// CopySummaries implements Summarizer.
func (s *sqlStore) CopySummaries(ctx context.Context, since time.Time, fn func(*CopySummary) error) error {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT COALESCE(src.ref, ''), COALESCE(dst.ref, ''), COALESCE(r.value, ''),
		c.n, c.first_at, c.at, COALESCE(d.digest, ''), c.platforms, c.bytes, c.duration_ms, c.error
		FROM (SELECT source, target, result, at, digest, platforms, bytes, duration_ms, error,
				ROW_NUMBER() OVER (PARTITION BY source, target, result ORDER BY at DESC, id DESC) AS latest,
				COUNT(*) OVER (PARTITION BY source, target, result) AS n,
				MIN(at) OVER (PARTITION BY source, target, result) AS first_at
			FROM copies WHERE at >= ?) c
		LEFT JOIN images src ON src.id = c.source
		LEFT JOIN images dst ON dst.id = c.target
		LEFT JOIN names r ON r.id = c.result
		LEFT JOIN digests d ON d.id = c.digest
		WHERE c.latest = 1
		ORDER BY 1, 2, 3`), sinceMillis(since))
	if err != nil {
		return s.wrap("summarising copy records", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c CopySummary
		var first, last, ms int64
		var platforms string
		l := &c.Latest
		if err := rows.Scan(&c.Source, &c.Target, &c.Result, &c.Count, &first, &last, &l.Digest, &platforms, &l.Bytes, &ms, &l.Error); err != nil {
			return s.wrap("summarising copy records", err)
		}
		c.First, c.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		l.Time, l.Source, l.Target, l.Result = c.Last, c.Source, c.Target, c.Result
		l.Duration = time.Duration(ms) * time.Millisecond
		if platforms != "" {
			l.Platforms = strings.Split(platforms, ",")
		}
		if err := fn(&c); err != nil {
			return err
		}
	}
	return s.wrap("summarising copy records", rows.Err())
}

// LatestScans implements Summarizer. It reads scans and findings in one
// query ordered by scan, so that one scan at a time is held.
func (s *sqlStore) LatestScans(ctx context.Context, fn func(*ScanRecord) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+scanColumns+`,
		COALESCE(v.value, ''), COALESCE(f.package, ''), COALESCE(f.installed, ''), COALESCE(f.fixed, ''),
		COALESCE(sev.value, ''), COALESCE(f.cvss, 0), COALESCE(st.value, ''), f.scan IS NOT NULL
		FROM (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY index_digest, manifest_digest ORDER BY at DESC, id DESC) AS n
			FROM scans) latest WHERE n = 1) l
		JOIN scans s ON s.id = l.id
		LEFT JOIN images i ON i.id = s.image
		LEFT JOIN digests di ON di.id = s.index_digest
		LEFT JOIN digests dm ON dm.id = s.manifest_digest
		LEFT JOIN names sn ON sn.id = s.scanner
		LEFT JOIN names sv ON sv.id = s.scanner_version
		LEFT JOIN findings f ON f.scan = s.id
		LEFT JOIN names v ON v.id = f.vulnerability
		LEFT JOIN names sev ON sev.id = f.severity
		LEFT JOIN names st ON st.id = f.status
		ORDER BY s.id, f.ord`)
	if err != nil {
		return s.wrap("reading the latest scans", err)
	}
	defer rows.Close()
	var cur *ScanRecord
	var curID int64
	for rows.Next() {
		var r ScanRecord
		var id int64
		var f Finding
		var has bool
		if err := scanScan(rows, &id, &r, &f.ID, &f.Package, &f.InstalledVersion, &f.FixedVersion, &f.Severity, &f.CVSS, &f.Status, &has); err != nil {
			return s.wrap("reading the latest scans", err)
		}
		if cur == nil || id != curID {
			if cur != nil {
				if err := fn(cur); err != nil {
					return err
				}
			}
			cur, curID = &r, id
		}
		if has {
			cur.Findings = append(cur.Findings, f)
		}
	}
	if err := rows.Err(); err != nil {
		return s.wrap("reading the latest scans", err)
	}
	if cur != nil {
		return fn(cur)
	}
	return nil
}

// ScanSummaries implements Summarizer.
func (s *sqlStore) ScanSummaries(ctx context.Context, fn func(*ScanRecord) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+scanColumns+scanJoins+` ORDER BY s.at, s.id`)
	if err != nil {
		return s.wrap("reading scan records", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r ScanRecord
		var id int64
		if err := scanScan(rows, &id, &r); err != nil {
			return s.wrap("reading scan records", err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return s.wrap("reading scan records", rows.Err())
}
