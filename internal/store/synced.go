package store

import (
	"context"
	"time"
)

// SwappedImage is an image that admission swapped, and the target it
// swapped it to, as the ledger recorded them.
type SwappedImage struct {
	// Source is the image in its normalised form.
	Source string
	// Target is the swap target (with the mirrored digest under
	// mirroring.pinDigest).
	Target string
	// Last is the newest admission that swapped it.
	Last time.Time
}

// SwappedImages lists the distinct images admission swapped at or after
// since, with their targets: what the sync loop keeps fresh. Dry runs are
// left out: nothing was swapped.
func (s *sqlStore) SwappedImages(ctx context.Context, since time.Time) ([]SwappedImage, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT n.ref, t.ref, MAX(a.at)
		FROM admissions a
		JOIN names ac ON ac.id = a.action
		JOIN images n ON n.id = a.normalized
		JOIN images t ON t.id = a.target
		WHERE a.at >= ? AND ac.value = 'swap' AND (a.flags & 1) = 0
		GROUP BY n.ref, t.ref
		ORDER BY n.ref, t.ref`), sinceMillis(since))
	if err != nil {
		return nil, s.wrap("reading swapped images", err)
	}
	defer rows.Close()
	var out []SwappedImage
	for rows.Next() {
		var r SwappedImage
		var last int64
		if err := rows.Scan(&r.Source, &r.Target, &last); err != nil {
			return nil, s.wrap("reading swapped images", err)
		}
		r.Last = time.UnixMilli(last).UTC()
		out = append(out, r)
	}
	return out, s.wrap("reading swapped images", rows.Err())
}
