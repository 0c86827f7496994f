// Package tagsync keeps mirrored tags up to date with their sources: a
// pass re-resolves each mutable tag that admission swapped within
// mirroring.sync.window and, when upstream has moved, follows it (copies
// the new digest; under mirroring.pinDigest only once the vulnerability
// gate passes it) or, under policy freeze, reports the drift. A pass never
// deletes anything.
package tagsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
)

// Registry is what a pass needs from the registry client
// (*registry.Client is one).
type Registry interface {
	// CopyDigest is the digest a copy of src writes (the source's, or a
	// platform-filtered index's).
	CopyDigest(ctx context.Context, src reference.Reference, opts registry.CopyOptions) (string, error)
	// Exists says whether ref is there, with its digest.
	Exists(ctx context.Context, ref reference.Reference) (registry.Descriptor, bool, error)
	// Copy copies src to dst.
	Copy(ctx context.Context, src, dst reference.Reference, opts registry.CopyOptions) (registry.CopyResult, error)
}

// Ledger is where a pass finds the swapped images (store.Store is one).
type Ledger interface {
	SwappedImages(ctx context.Context, since time.Time) ([]store.SwappedImage, error)
}

// Options configure a pass.
type Options struct {
	// Engine is the configuration in force: mirroring.sync,
	// mirroring.pinDigest, the copy options and the vulnerability policy.
	Engine   *engine.Engine
	Ledger   Ledger
	Registry Registry
	// Scans, when set and security.scanning is enabled, judges each new
	// digest.
	Scans engine.Scans
	// ScanTimeout bounds the wait for a new digest's verdict under
	// mirroring.pinDigest (default security.scanning.timeout).
	ScanTimeout time.Duration
	// DryRun reports what would move and copies nothing.
	DryRun bool
	// OnCopy hears of each copy made, for the ledger; may be nil.
	OnCopy func(src, dst reference.Reference, res registry.CopyResult, err error)
	Logger *slog.Logger
	// Metrics, when set, are updated after the pass.
	Metrics *Metrics
	// Schedule, when set, keeps Loop's interval across replicas, Lease
	// terms and restarts (see Loop); store.Store is one.
	Schedule Schedule
	// ScheduleCheck is how often Loop with a Schedule looks whether a
	// pass is due (DefaultScheduleCheck when 0).
	ScheduleCheck time.Duration
}

// Schedule is where Loop keeps when the next pass is due: a claim that
// lasts one interval (store.Claims).
type Schedule interface {
	Claim(ctx context.Context, kind, key, holder string, ttl time.Duration) (won bool, current string, err error)
	Release(ctx context.Context, kind, key, holder string) error
}

// Outcome is what a pass did with one tag.
type Outcome string

// The outcomes.
const (
	Current   Outcome = "current"    // the mirror has upstream's digest
	Moved     Outcome = "moved"      // the new digest was copied and tagged
	WouldMove Outcome = "would-move" // dry run: it would have been copied
	Drift     Outcome = "drift"      // policy freeze: upstream moved, the mirror stays
	Held      Outcome = "held"       // pinDigest: the new digest is copied but not tagged, the gate did not pass it
	Failed    Outcome = "failed"     // the registries could not be read or written
)

// Tag is the sync of one mirrored tag.
type Tag struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Mirrored is the digest the target's tag had, "" when it had none;
	// Upstream the digest a copy of the source writes now.
	Mirrored string  `json:"mirrored"`
	Upstream string  `json:"upstream"`
	Outcome  Outcome `json:"outcome"`
	// Detail says why a tag is held or failed, and the new digest's
	// vulnerability verdict.
	Detail string `json:"detail,omitempty"`
}

// Pass checks every mirrored mutable tag that admission swapped within
// the window, in the ledger's order (by source). An error is returned only
// when the ledger cannot be read; a tag that fails is reported as Failed
// and the pass goes on.
func Pass(ctx context.Context, o Options) ([]Tag, error) {
	cfg := o.Engine.Config()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	copyOpts, err := registry.MirrorCopyOptions(cfg.Mirroring)
	if err != nil {
		return nil, err
	}
	// Moving a tag is what a sync is for, whatever mirroring.overwrite
	// says for admission's copies.
	copyOpts.Overwrite = true
	swapped, err := o.Ledger.SwappedImages(ctx, time.Now().Add(-cfg.Mirroring.Sync.SyncWindow()))
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	p := &pass{o: o, cfg: cfg, copyOpts: copyOpts, log: log}
	var out []Tag
	seen := map[string]bool{}
	for _, sw := range swapped {
		src, dst, ok := mutableTag(sw)
		if !ok || seen[src.String()+" "+dst.String()] {
			continue
		}
		seen[src.String()+" "+dst.String()] = true
		if ctx.Err() != nil {
			break
		}
		t := p.sync(ctx, src, dst)
		out = append(out, t)
		if t.Outcome == Failed {
			log.Warn("sync of a mirrored tag failed", "source", t.Source, "target", t.Target, "error", t.Detail)
		} else if t.Outcome != Current {
			log.Info("mirrored tag synced", "source", t.Source, "target", t.Target, "outcome", t.Outcome, "from", t.Mirrored, "to", t.Upstream, "detail", t.Detail)
		}
	}
	if o.Metrics != nil && !o.DryRun {
		o.Metrics.observe(out, ctx.Err() == nil)
	}
	return out, ctx.Err()
}

// mutableTag is the source tag and the target tag of a swap, or false when
// the source names a digest (nothing can move).
func mutableTag(sw store.SwappedImage) (src, dst reference.Reference, ok bool) {
	src, err := reference.Parse(sw.Source)
	if err != nil || src.Digest != "" || src.Tag == "" {
		return src, dst, false
	}
	if dst, err = reference.Parse(sw.Target); err != nil {
		return src, dst, false
	}
	// Under pinDigest the target names the digest Pods got; the tag is
	// what moves.
	dst.Digest = ""
	if dst.Tag == "" {
		dst.Tag = src.Tag
	}
	return src, dst, true
}

type pass struct {
	o        Options
	cfg      *config.Config
	copyOpts registry.CopyOptions
	log      *slog.Logger
}

func (p *pass) sync(ctx context.Context, src, dst reference.Reference) Tag {
	t := Tag{Source: src.String(), Target: dst.String()}
	fail := func(err error) Tag {
		t.Outcome, t.Detail = Failed, err.Error()
		return t
	}
	upstream, err := p.o.Registry.CopyDigest(ctx, src, p.copyOpts)
	if err != nil {
		return fail(err)
	}
	t.Upstream = upstream
	cur, ok, err := p.o.Registry.Exists(ctx, dst)
	if err != nil {
		return fail(err)
	}
	if ok {
		t.Mirrored = cur.Digest
	}
	switch {
	case t.Mirrored == upstream:
		t.Outcome = Current
		return t
	case p.cfg.Mirroring.Sync.SyncPolicyOrDefault() == config.SyncFreeze:
		t.Outcome = Drift
		return t
	case p.o.DryRun:
		t.Outcome = WouldMove
		return t
	}

	pinned := src
	pinned.Digest = upstream
	if p.copyOpts.Platforms != nil {
		// A filtered copy's digest is the new index's, not the source's.
		pinned.Digest = ""
	}
	if p.cfg.Mirroring.PinDigest && p.o.Engine.ScansEnabled() && p.o.Scans != nil {
		// Pods get the new digest only once it passes: copy it untagged,
		// judge it, and only then move the tag.
		untagged := dst
		untagged.Tag, untagged.Digest = "", upstream
		if err := p.copy(ctx, pinned, untagged); err != nil {
			return fail(err)
		}
		v := p.judge(ctx, untagged)
		t.Detail = verdictDetail(v)
		if v.Result != scan.ResultPass {
			t.Outcome = Held
			return t
		}
	}
	if err := p.copy(ctx, pinned, dst); err != nil {
		return fail(err)
	}
	t.Outcome = Moved
	if t.Detail == "" && p.o.Engine.ScansEnabled() && p.o.Scans != nil {
		// Queue the new digest's scan now, so that admission finds its
		// verdict; what it says is logged with the tag.
		moved := dst
		moved.Digest = upstream
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		t.Detail = verdictDetail(p.judge(ctx, moved))
		cancel()
	}
	return t
}

func (p *pass) copy(ctx context.Context, src, dst reference.Reference) error {
	res, err := p.o.Registry.Copy(ctx, src, dst, p.copyOpts)
	if p.o.OnCopy != nil {
		p.o.OnCopy(src, dst, res, err)
	}
	return err
}

// judge is the gate's verdict on image, waiting for its scan up to the
// scan timeout.
func (p *pass) judge(ctx context.Context, image reference.Reference) scan.Verdict {
	timeout := p.o.ScanTimeout
	if timeout <= 0 {
		timeout = p.cfg.Security.Scanning.ScanTimeout()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s := engine.Subject{Image: image.String()}
	d := p.o.Engine.Gate(s)
	p.o.Engine.Scan(ctx, &d, s, p.o.Scans)
	if d.Scan == nil {
		// Skipped (skipImages): the gate does not judge it.
		return scan.Verdict{Result: scan.ResultPass}
	}
	return d.Scan.Verdict
}

func verdictDetail(v scan.Verdict) string {
	switch v.Result {
	case scan.ResultPass:
		return "vulnerability scan passed"
	case scan.ResultFail:
		return v.Message("the new digest", 3)
	case scan.ResultError:
		return fmt.Sprintf("vulnerability scan failed: %v", v.Err)
	}
	return "vulnerability scan not finished"
}

// Metrics are the sync loop's.
type Metrics struct {
	drifted  prometheus.Gauge
	moved    prometheus.Counter
	failures prometheus.Counter
	last     prometheus.Gauge
}

// NewMetrics registers the sync metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		drifted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "image_swapper_sync_drifted_tags",
			Help: "Mirrored tags whose upstream moved and that the last sync pass did not move (policy freeze, or held by the vulnerability gate under pinDigest).",
		}),
		moved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_sync_moved_tags_total",
			Help: "Mirrored tags the sync loop moved to their upstream's new digest.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_sync_failures_total",
			Help: "Mirrored tags a sync pass could not check or copy.",
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "image_swapper_sync_last_success_timestamp_seconds",
			Help: "When the last sync pass that checked every tag ended, as a Unix time.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.drifted, m.moved, m.failures, m.last)
	}
	return m
}

func (m *Metrics) observe(tags []Tag, complete bool) {
	drifted, failed := 0, 0
	for _, t := range tags {
		switch t.Outcome {
		case Drift, Held:
			drifted++
		case Moved:
			m.moved.Inc()
		case Failed:
			failed++
		}
	}
	m.drifted.Set(float64(drifted))
	m.failures.Add(float64(failed))
	if complete && failed == 0 {
		m.last.SetToCurrentTime()
	}
}

// Loop runs a pass every mirroring.sync.interval of the configuration
// options returns, until ctx ends: options is called before each pass, so
// that a reloaded configuration applies to the next one.
//
// Without a Schedule, Loop waits one interval before its first pass. With
// one, the interval holds whoever runs the loop: a pass is due when the
// schedule's claim, taken for one interval by the last pass, has lapsed;
// Loop looks every minute (at most). So a Lease that moves at every
// rollout neither restarts the wait (which could put the sync off for as
// long as rollouts come more often than the interval) nor adds passes.
func Loop(ctx context.Context, options func() Options) {
	for {
		o := options()
		interval := o.Engine.Config().Mirroring.Sync.SyncInterval()
		wait := interval
		if o.Schedule != nil {
			wait = min(interval, cmp.Or(o.ScheduleCheck, DefaultScheduleCheck))
			scheduledPass(ctx, o, interval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if o.Schedule == nil {
			// The configuration as it is now, not as it was an interval ago.
			_ = runPass(ctx, options())
		}
	}
}

// DefaultScheduleCheck is how often Loop with a Schedule looks whether a
// pass is due.
const DefaultScheduleCheck = time.Minute

// The schedule's claim.
const (
	scheduleKind = "schedule"
	scheduleKey  = "mirroring.sync"
)

// scheduledPass runs a pass when the schedule's claim has lapsed, and
// leaves the claim held for interval. Each attempt claims under a holder
// of its own, so that a claim this process took is not renewed by asking
// again. A pass cut short by ctx (the Lease lost, serve stopping) gives
// the claim back, so that the next holder of the Lease runs it at once.
func scheduledPass(ctx context.Context, o Options, interval time.Duration) {
	holder := fmt.Sprintf("%s-%d", scheduleHolder, time.Now().UnixNano())
	won, _, err := o.Schedule.Claim(ctx, scheduleKind, scheduleKey, holder, interval)
	if err != nil {
		if ctx.Err() == nil && o.Logger != nil {
			o.Logger.Warn("sync: could not read when the next pass is due; trying again in a minute", "error", err)
		}
		return
	}
	if !won {
		return
	}
	if err := runPass(ctx, o); err != nil && ctx.Err() != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = o.Schedule.Release(rctx, scheduleKind, scheduleKey, holder)
	}
}

// scheduleHolder names this process in the schedule's claims.
var scheduleHolder = func() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "image-swapper"
	}
	return host
}()

// runPass runs a pass and logs its failure.
func runPass(ctx context.Context, o Options) error {
	_, err := Pass(ctx, o)
	if err != nil && !errors.Is(err, context.Canceled) && o.Logger != nil {
		o.Logger.Warn("sync pass failed", "error", err)
	}
	return err
}
