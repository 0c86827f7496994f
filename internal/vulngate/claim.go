package vulngate

import (
	"context"
	"errors"
	"time"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
)

// ClaimKind is the kind of the claims scans take (claim.Work.Kind); the
// key is the manifest digest.
const ClaimKind = "scan"

// scanLinger is how long a replica keeps the claim of a scan it finished:
// its ledger writes the scan in the background, and the replicas waiting
// for it must find it in the store before they could take the scan over.
const scanLinger = 15 * time.Second

// claimedScan wraps scanFn so that replicas sharing the store scan a
// manifest once. A scan the store already holds, younger than rescanAfter
// (another replica's), is used as it is. Otherwise the replica claims the
// scan: the winner scans; a loser waits for the winner's scan to reach the
// store and uses it, and scans itself only when the claim lapses first
// (the winner failed or died).
func (g *Gate) claimedScan(c *claim.Claimer, scanFn scan.ScanFunc) scan.ScanFunc {
	return func(ctx context.Context, ref reference.Reference) (*scan.Report, error) {
		digest := ref.Digest
		var stored *store.ScanRecord
		fresh := func(ctx context.Context) bool {
			rec, err := g.st.LatestScan(ctx, digest)
			if err != nil {
				if !errors.Is(err, store.ErrNotFound) {
					g.log.Warn("reading a stored scan failed", "digest", digest, "error", err)
				}
				return false
			}
			if time.Since(rec.Time) >= g.current.Load().rescanAfter {
				return false
			}
			stored = rec
			return true
		}
		if fresh(ctx) {
			return g.storedReport(digest, stored), nil
		}
		var rep *scan.Report
		ran, err := c.Do(ctx, claim.Work{
			Kind: ClaimKind, Key: digest, Done: fresh, Linger: scanLinger,
			Run: func(ctx context.Context) error {
				var err error
				rep, err = scanFn(ctx, ref)
				return err
			},
		})
		if ran || err != nil {
			return rep, err
		}
		return g.storedReport(digest, stored), nil
	}
}

// storedReport is the report of another replica's stored scan; the job is
// marked so that done does not record it again.
func (g *Gate) storedReport(digest string, rec *store.ScanRecord) *scan.Report {
	g.mu.Lock()
	if job, ok := g.jobs[digest]; ok {
		job.storedAt = rec.Time
		g.jobs[digest] = job
	}
	g.mu.Unlock()
	return &scan.Report{Format: rec.Scanner, ScannerVersion: rec.ScannerVersion, Digest: digest, DBTime: rec.DBTime,
		Findings: storedFindings(rec), Raw: rec.Report}
}
