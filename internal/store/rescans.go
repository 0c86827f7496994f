package store

import (
	"context"
	"strings"
	"time"
)

// StaleScans lists the newest scan of each platform manifest when it is
// older than scannedBefore and its image is in use: admitted (its name as
// written, normalised, or the swap target, the reference the Pod runs) at
// or after usedSince, dry runs left out. A scan's image carries the digest
// it resolved to; an admission names a tag, a digest or both, so an image
// is in use when either its whole reference or its reference without the
// digest was admitted. Findings and raw reports are left out. The rescan
// loop renews these, oldest first.
func (s *sqlStore) StaleScans(ctx context.Context, scannedBefore, usedSince time.Time) ([]ScanRecord, error) {
	inUse, err := s.admittedImages(ctx, usedSince)
	if err != nil {
		return nil, err
	}
	if len(inUse) == 0 {
		return nil, nil
	}
	return s.queryScans(ctx, "reading stale scans", `SELECT `+scanColumns+scanJoins+`
		JOIN (SELECT id, ROW_NUMBER() OVER (PARTITION BY index_digest, manifest_digest ORDER BY at DESC, id DESC) AS n
			FROM scans) l ON l.id = s.id
		WHERE l.n = 1 AND s.at < ?
		ORDER BY s.at, s.id`, func(r *ScanRecord) bool {
		name, _, _ := strings.Cut(r.Image, "@")
		return inUse[r.Image] || inUse[name]
	}, scannedBefore.UnixMilli())
}

// admittedImages is the set of images admitted at or after since, by
// their normalised names and swap targets; dry runs are left out.
func (s *sqlStore) admittedImages(ctx context.Context, since time.Time) (map[string]bool, error) {
	// Distinct ids first, names only for them: a join per record costs
	// the database two name lookups per record.
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT n.ref, COALESCE(t.ref, '')
		FROM (SELECT DISTINCT normalized, target FROM admissions WHERE at >= ? AND (flags & 1) = 0) a
		JOIN images n ON n.id = a.normalized
		LEFT JOIN images t ON t.id = a.target`), sinceMillis(since))
	if err != nil {
		return nil, s.wrap("reading admitted images", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name, target string
		if err := rows.Scan(&name, &target); err != nil {
			return nil, s.wrap("reading admitted images", err)
		}
		out[name] = true
		if target != "" {
			out[target] = true
		}
	}
	return out, s.wrap("reading admitted images", rows.Err())
}
