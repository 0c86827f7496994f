package vulngate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// Bounds of the time between rescan passes: a scan is renewed at most
// maxRescanEvery after it is due, and a short rescanAfter does not make
// the loop read the store more often than every minRescanEvery.
const (
	maxRescanEvery = time.Hour
	minRescanEvery = time.Minute
)

// rescanPoll is how often a pass looks whether the scan workers have room
// for its next rescan.
const rescanPoll = time.Second

// RescanSettings are what a rescan pass takes from the configuration in
// force.
type RescanSettings struct {
	// Enabled is security.scanning.enabled: no pass runs without it.
	Enabled bool
	// UsedWithin is how recently an image must have been admitted to be
	// rescanned (mirroring.sync.window: what Pods use).
	UsedWithin time.Duration
}

// Rescan renews the scans of the images in use: it queues a scan of each
// platform manifest whose newest scan in the store is older than
// rescanAfter, of images admitted in the last usedWithin (see
// store.StaleScans), oldest first, and returns how many it queued. It
// keeps at most as many scans queued as there are workers, so that the
// scans admission waits for never queue behind a pass; it returns when
// the last is queued (without waiting for it) or ctx ends. The findings
// in force stay until the new ones land, as with a rescan at admission.
func (g *Gate) Rescan(ctx context.Context, usedWithin time.Duration) (int, error) {
	if g.st == nil {
		return 0, errors.New("rescans read the scans to renew from the record store, and there is none")
	}
	now := time.Now()
	stale, err := g.st.StaleScans(ctx, now.Add(-g.current.Load().rescanAfter), now.Add(-usedWithin))
	if err != nil {
		return 0, err
	}
	queued := 0
	for _, rec := range stale {
		ref, err := reference.Parse(rec.Image)
		if err != nil || rec.ManifestDigest == "" {
			g.log.Warn("a stored scan names no image to scan again; skipped", "image", rec.Image, "manifest", rec.ManifestDigest, "error", err)
			continue
		}
		ref.Digest = rec.IndexDigest
		if g.recentFailure(rec.ManifestDigest) != nil {
			continue
		}
		if err := g.roomToScan(ctx); err != nil {
			return queued, err
		}
		// The registries' own credentials: a Pod's pull secrets are
		// known only at its admission.
		if _, err := g.submit(ctx, ref, registry.PlatformManifest{Digest: rec.ManifestDigest}, nil, false); err != nil {
			return queued, fmt.Errorf("queueing the rescan of %s (manifest %s): %w", rec.Image, rec.ManifestDigest, err)
		}
		queued++
		g.metrics.rescans.Inc()
	}
	return queued, nil
}

// roomToScan waits until fewer scans are queued or running than there are
// workers.
func (g *Gate) roomToScan(ctx context.Context) error {
	for g.queue.Depth() >= g.concurrency {
		t := time.NewTimer(rescanPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// RescanLoop runs a Rescan pass at once and then every rescanAfter (but
// at least every hour and at most every minute), with the settings in force at each pass, until ctx
// ends. serve runs it on the holder of the leader Lease.
func (g *Gate) RescanLoop(ctx context.Context, settings func() RescanSettings) {
	for {
		if s := settings(); s.Enabled {
			n, err := g.Rescan(ctx, s.UsedWithin)
			switch {
			case err != nil && ctx.Err() == nil:
				g.log.Warn("a rescan pass stopped early; the next pass goes on", "queued", n, "error", err)
			case err == nil:
				g.metrics.lastRescan.SetToCurrentTime()
				if n > 0 {
					g.log.Info("rescan pass: scans older than rescanAfter of images in use queued", "queued", n)
				}
			}
		}
		t := time.NewTimer(max(min(g.current.Load().rescanAfter, maxRescanEvery), minRescanEvery))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
