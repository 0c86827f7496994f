// Package vulngate is the scanning side of the vulnerability gate: it
// resolves an image to the platform manifests it is scanned by, knows
// their findings (in memory, else from the record store), and scans those
// it does not know in a background queue, one scan per manifest digest.
// Verdicts are not made here: the engine judges the findings with the
// policy of the configuration in force (scan.Policy), so an expired
// exception or a changed threshold applies without a rescan.
package vulngate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
)

// Registry is what the gate needs from the registry client
// (*registry.Client is one).
type Registry interface {
	// ResolveWithKeychain returns a tag's current descriptor (one HEAD).
	ResolveWithKeychain(ctx context.Context, ref reference.Reference, kc authn.Keychain) (registry.Descriptor, error)
	// PlatformManifests lists the manifests of ref to scan.
	PlatformManifests(ctx context.Context, ref reference.Reference, platforms []registry.Platform, kc authn.Keychain) (registry.Descriptor, []registry.PlatformManifest, error)
	// PullCredentials are the credentials to hand the scanner.
	PullCredentials(ctx context.Context, ref reference.Reference, kc authn.Keychain) (*authn.AuthConfig, error)
}

// ScanRecorder receives each finished scan for the ledger; store.Writer
// is one. It must not block.
type ScanRecorder interface {
	RecordScan(store.ScanRecord)
}

// Options configure a Gate.
type Options struct {
	// Scanning is security.scanning at start; Reload replaces it.
	Scanning config.Scanning
	// Registry resolves tags and reads indexes.
	Registry Registry
	// Store, when set, holds the findings of earlier scans, so that a
	// restart does not rescan what is known.
	Store store.Store
	// Ledger, when set, records every finished scan.
	Ledger ScanRecorder
	// Scan runs one scan; nil runs the configured scanner command
	// (scan.Runner) with the credentials Registry gives.
	Scan scan.ScanFunc
	// TagTTL is how long a tag's digest is believed (DefaultTagTTL when
	// 0).
	TagTTL time.Duration
	// Retries is how often a failed scan is retried (scan.QueueOptions:
	// 0 for the default, -1 for none).
	Retries int
	// Logger receives scan failures; Registerer the metrics (nil: none).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Claims, with Store and Ledger, shares scans with the other
	// replicas of the store: a manifest is scanned by one replica at a
	// time, and the others use its scan once it is in the store (see
	// claimedScan). Nil scans without asking anyone, as one replica does.
	Claims *claim.Claimer
}

// Bounds of the in-memory caches: past them the oldest half is dropped
// (the store still has the findings).
const (
	maxKnown = 8192
	maxTags  = 8192
)

// DefaultTagTTL is how long a tag's resolved digest is believed, as the
// mirror's presence cache believes a present image: a moved tag is seen
// this late. For another TTL after that, the old digest still answers
// while one background request resolves the tag again, so that admissions
// do not all wait on the registry when an entry expires.
const DefaultTagTTL = 30 * time.Second

// refreshTimeout bounds a background tag refresh.
const refreshTimeout = 10 * time.Second

// failureBackoff is how long a failed scan is reported as failed before
// an admission queues the digest again, so a broken scanner is not run
// once per admission.
const failureBackoff = 30 * time.Second

// Gate scans images and remembers their findings. It is safe for
// concurrent use.
type Gate struct {
	reg     Registry
	st      store.Store
	ledger  ScanRecorder
	log     *slog.Logger
	metrics *metrics
	queue   *scan.Queue
	runner  atomic.Pointer[scan.Runner]
	current atomic.Pointer[settings]
	// concurrency is the number of scan workers, fixed at start.
	concurrency int
	tagTTL      time.Duration

	mu       sync.Mutex
	known    map[string]*known    // by manifest digest
	tags     map[string]tagEntry  // by reference as written
	indexes  map[string]indexInfo // by resolved digest
	failures map[string]failure   // by manifest digest
	jobs     map[string]jobInfo   // queued scans, by manifest digest
}

// settings are the reloadable parts of security.scanning.
type settings struct {
	platforms   []registry.Platform
	rescanAfter time.Duration
}

type known struct {
	findings []scan.Finding
	platform string
	at       time.Time
}

type tagEntry struct {
	digest     string
	expires    time.Time
	refreshing bool
}

type indexInfo struct {
	manifests []registry.PlatformManifest
}

type failure struct {
	err   error
	until time.Time
}

// jobInfo is what a queued scan's result is recorded with.
type jobInfo struct {
	image       string // as judged, with its resolved digest
	indexDigest string
	platform    string
	pull        authn.Keychain
	// storedAt is set when another replica made the scan: done takes it
	// from the store, and neither counts nor records it again.
	storedAt time.Time
}

// New starts a gate's scan workers (security.scanning.concurrency of
// them); Close stops them.
func New(opts Options) (*Gate, error) {
	if opts.Registry == nil {
		return nil, errors.New("vulngate: a registry is required")
	}
	g := &Gate{
		reg: opts.Registry, st: opts.Store, ledger: opts.Ledger, log: opts.Logger,
		known: map[string]*known{}, tags: map[string]tagEntry{}, indexes: map[string]indexInfo{},
		failures: map[string]failure{}, jobs: map[string]jobInfo{},
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.concurrency = opts.Scanning.ScanConcurrency()
	g.tagTTL = cmp.Or(opts.TagTTL, DefaultTagTTL)
	if err := g.Reload(opts.Scanning); err != nil {
		return nil, err
	}
	scanFn := opts.Scan
	if scanFn == nil {
		scanFn = g.runScanner
	}
	if opts.Claims != nil && g.st != nil {
		scanFn = g.claimedScan(opts.Claims, scanFn)
	}
	g.queue = scan.NewQueue(scanFn, scan.QueueOptions{Concurrency: g.concurrency, Retries: opts.Retries, OnDone: g.done})
	g.metrics = newMetrics(opts.Registerer, g.queue)
	return g, nil
}

// Reload applies a new security.scanning: its command, timeout, platforms
// and rescanAfter apply to the next scan. A changed concurrency is
// refused: the workers are started once.
func (g *Gate) Reload(s config.Scanning) error {
	if n := s.ScanConcurrency(); n != g.concurrency {
		return fmt.Errorf("security.scanning.concurrency changed from %d to %d, but the scanner keeps what it was started with; restart the server (roll it out) to apply it", g.concurrency, n)
	}
	platforms, err := registry.ParsePlatforms("security.scanning.platforms", s.ScanPlatforms())
	if err != nil {
		return err
	}
	if old := g.current.Swap(&settings{platforms: platforms, rescanAfter: s.RescanInterval()}); old != nil && !slices.Equal(old.platforms, platforms) {
		// Which manifests an index is scanned by depends on them.
		g.mu.Lock()
		clear(g.indexes)
		g.mu.Unlock()
	}
	r := scan.NewRunner(s)
	r.Auth = g.credentials
	g.runner.Store(r)
	return nil
}

// Close stops the scans; those running end with an error.
func (g *Gate) Close() { g.queue.Close() }

// Lookup returns what is known of image's scans, by the digest it
// resolves to: each platform's findings, from memory or the store. Scans
// not known are queued, and Lookup waits for them until ctx ends; those
// still running are Pending. A known scan older than rescanAfter is
// queued again in the background and stays in force until the new one
// lands. pull is the workload's pull keychain (nil for none), used to
// read the image and handed to the scanner.
func (g *Gate) Lookup(ctx context.Context, image reference.Reference, pull authn.Keychain) scan.ImageScan {
	out := scan.ImageScan{Ref: image}
	ref, err := g.resolve(ctx, image, pull)
	if err != nil {
		out.Err = err
		return out
	}
	out.Ref = ref
	manifests, err := g.manifests(ctx, ref, pull)
	if err != nil {
		out.Err = err
		return out
	}
	set := g.current.Load()
	var wait []registry.PlatformManifest
	var errs []error
	for _, m := range manifests {
		if k := g.lookupKnown(ctx, m.Digest); k != nil {
			out.Scanned = append(out.Scanned, scan.PlatformScan{Digest: m.Digest, Platform: m.Platform, Findings: k.findings, Time: k.at})
			if time.Since(k.at) > set.rescanAfter && g.recentFailure(m.Digest) == nil {
				_, _ = g.submit(ctx, ref, m, pull, false) // the old verdict stays; a full queue tries next time
			}
			continue
		}
		if err := g.recentFailure(m.Digest); err != nil {
			errs = append(errs, err)
			continue
		}
		k, err := g.submit(ctx, ref, m, pull, true)
		switch {
		case err != nil:
			errs = append(errs, err)
		case k != nil:
			// Its scan finished just now.
			out.Scanned = append(out.Scanned, scan.PlatformScan{Digest: m.Digest, Platform: m.Platform, Findings: k.findings, Time: k.at})
		default:
			wait = append(wait, m)
		}
	}
	for _, m := range wait {
		// One deadline bounds them all, so waiting in turn costs no more
		// than waiting at once.
		res, err := g.queue.Wait(ctx, m.Digest)
		switch {
		case err != nil:
			out.Pending = append(out.Pending, m.Digest)
		case res.Err != nil:
			errs = append(errs, res.Err)
		default:
			out.Scanned = append(out.Scanned, scan.PlatformScan{Digest: m.Digest, Platform: m.Platform, Findings: res.Report.Findings, Time: res.Finished})
		}
	}
	out.Err = errors.Join(errs...)
	return out
}

// resolve gives image its digest: as written, or the tag's, cached for
// the tag TTL (see DefaultTagTTL).
func (g *Gate) resolve(ctx context.Context, image reference.Reference, pull authn.Keychain) (reference.Reference, error) {
	if image.Digest != "" {
		return image, nil
	}
	key := image.String()
	now := time.Now()
	g.mu.Lock()
	e, ok := g.tags[key]
	stale := ok && !now.Before(e.expires)
	usable := ok && now.Before(e.expires.Add(g.tagTTL))
	refresh := stale && usable && !e.refreshing
	if refresh {
		e.refreshing = true
		g.tags[key] = e
	}
	g.mu.Unlock()
	if refresh {
		tag := image // image is given its digest below
		go func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			if _, err := g.resolveTag(rctx, tag, key, pull); err != nil {
				g.log.Warn("resolving a tag again failed; its last digest stays in use for now", "image", key, "error", err)
				g.mu.Lock()
				if cur, ok := g.tags[key]; ok {
					cur.refreshing = false
					g.tags[key] = cur
				}
				g.mu.Unlock()
			}
		}()
	}
	if usable {
		image.Digest = e.digest
		return image, nil
	}
	digest, err := g.resolveTag(ctx, image, key, pull)
	image.Digest = digest
	return image, err
}

// resolveTag asks the registry for the tag's digest and caches it.
func (g *Gate) resolveTag(ctx context.Context, image reference.Reference, key string, pull authn.Keychain) (string, error) {
	d, err := g.reg.ResolveWithKeychain(ctx, image, pull)
	if err != nil {
		return "", err
	}
	g.mu.Lock()
	if len(g.tags) >= maxTags {
		clear(g.tags)
	}
	g.tags[key] = tagEntry{digest: d.Digest, expires: time.Now().Add(g.tagTTL)}
	g.mu.Unlock()
	return d.Digest, nil
}

// manifests are the platform manifests ref (with a digest) is scanned by;
// a digest's are read from the registry once.
func (g *Gate) manifests(ctx context.Context, ref reference.Reference, pull authn.Keychain) ([]registry.PlatformManifest, error) {
	g.mu.Lock()
	info, ok := g.indexes[ref.Digest]
	g.mu.Unlock()
	if ok {
		return info.manifests, nil
	}
	_, ms, err := g.reg.PlatformManifests(ctx, ref, g.current.Load().platforms, pull)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if len(g.indexes) >= maxKnown {
		clear(g.indexes)
	}
	g.indexes[ref.Digest] = indexInfo{manifests: ms}
	g.mu.Unlock()
	return ms, nil
}

// lookupKnown returns the findings of the newest scan of a manifest, from
// memory, else from the store; nil when none is known.
func (g *Gate) lookupKnown(ctx context.Context, digest string) *known {
	g.mu.Lock()
	k := g.known[digest]
	g.mu.Unlock()
	if k != nil || g.st == nil {
		return k
	}
	rec, err := g.st.LatestScan(ctx, digest)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			g.log.Warn("reading a stored scan failed; scanning again", "digest", digest, "error", err)
		}
		return nil
	}
	k = &known{findings: storedFindings(rec), at: rec.Time}
	g.remember(digest, k)
	return k
}

func (g *Gate) remember(digest string, k *known) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur := g.known[digest]; cur != nil && cur.at.After(k.at) {
		return
	}
	if len(g.known) >= maxKnown {
		for d := range g.known {
			// Map order is random: this drops about half, which the store
			// still holds.
			if len(g.known) < maxKnown/2 {
				break
			}
			delete(g.known, d)
		}
	}
	g.known[digest] = k
}

func (g *Gate) recentFailure(digest string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.failures[digest]
	if !ok {
		return nil
	}
	if time.Now().After(f.until) {
		delete(g.failures, digest)
		return nil
	}
	return f.err
}

// submit queues a scan of one platform manifest of ref. With unlessKnown,
// findings (or a recent failure) that landed since the caller looked are
// returned instead, and nothing is queued.
func (g *Gate) submit(ctx context.Context, ref reference.Reference, m registry.PlatformManifest, pull authn.Keychain, unlessKnown bool) (*known, error) {
	// Under g.mu, so that a scan finishing meanwhile is either seen here
	// (done remembers its findings before the queue marks it finished) or
	// still running, and joined by Submit: never run again.
	g.mu.Lock()
	defer g.mu.Unlock()
	if unlessKnown {
		if k := g.known[m.Digest]; k != nil {
			return k, nil
		}
		if f, ok := g.failures[m.Digest]; ok && time.Now().Before(f.until) {
			return nil, f.err
		}
	}
	if _, queued := g.jobs[m.Digest]; !queued {
		g.jobs[m.Digest] = jobInfo{image: ref.String(), indexDigest: ref.Digest, platform: m.Platform, pull: pull}
	}
	target := ref
	target.Tag, target.Digest = "", m.Digest
	err := g.queue.Submit(ctx, target)
	if err != nil {
		delete(g.jobs, m.Digest)
	}
	return nil, err
}

// runScanner is the default scan: the configured command, as reloaded.
func (g *Gate) runScanner(ctx context.Context, ref reference.Reference) (*scan.Report, error) {
	return g.runner.Load().Scan(ctx, ref)
}

// credentials are those the scan's registry is read with, the Pod's pull
// secrets included, handed to the scanner through its environment.
func (g *Gate) credentials(ctx context.Context, ref reference.Reference) (*authn.AuthConfig, error) {
	g.mu.Lock()
	job := g.jobs[ref.Digest]
	g.mu.Unlock()
	return g.reg.PullCredentials(ctx, ref, job.pull)
}

// done is the queue's OnDone: it remembers and records a finished scan
// before any waiter sees it.
func (g *Gate) done(res scan.ScanResult) {
	digest := res.Ref.Digest
	g.mu.Lock()
	job, ok := g.jobs[digest]
	delete(g.jobs, digest)
	g.mu.Unlock()
	if !ok {
		job = jobInfo{image: res.Ref.String(), indexDigest: digest}
	}
	if res.Err == nil && !job.storedAt.IsZero() {
		g.remember(digest, &known{findings: res.Report.Findings, platform: job.platform, at: job.storedAt})
		g.log.Info("vulnerability scan made by another replica", "image", job.image, "manifest", digest, "platform", job.platform,
			"findings", len(res.Report.Findings), "scanned", job.storedAt)
		return
	}
	g.metrics.finished(res)
	if res.Err != nil {
		g.log.Warn("vulnerability scan failed; admission treats the image as pending", "image", job.image, "manifest", digest, "attempts", res.Attempts, "error", res.Err)
		g.mu.Lock()
		g.failures[digest] = failure{err: res.Err, until: time.Now().Add(failureBackoff)}
		g.mu.Unlock()
		return
	}
	g.remember(digest, &known{findings: res.Report.Findings, platform: job.platform, at: res.Finished})
	if g.ledger != nil {
		g.ledger.RecordScan(Record(job.image, job.indexDigest, digest, res.Report, res.Finished))
	}
	g.log.Info("vulnerability scan finished", "image", job.image, "manifest", digest, "platform", job.platform,
		"findings", len(res.Report.Findings), "duration", res.Finished.Sub(res.Started).Round(time.Millisecond))
}
