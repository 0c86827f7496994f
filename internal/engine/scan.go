package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/scan"
)

// The violation rules of the vulnerability gate.
const (
	// RuleScanning is a failing verdict.
	RuleScanning = "security.scanning"
	// RuleScanPending is an image without a verdict yet (its scan is
	// queued or running, or failed), under pending: deny or warn.
	RuleScanPending = "security.scanning.pending"
)

// worstShown is how many failing findings a denial names.
const worstShown = 3

// Scans is what the engine needs from the vulnerability scanner
// (vulngate.Gate is one): what is known of an image's scans, by the
// digest it resolves to, queueing those missing and waiting for them
// until ctx ends.
type Scans interface {
	Lookup(ctx context.Context, image reference.Reference, pull authn.Keychain) scan.ImageScan
}

// ScanVerdict is the vulnerability gate's verdict on a decision's image.
type ScanVerdict struct {
	// Image is the image judged, with the digest it resolved to when
	// known.
	Image  string      `json:"image"`
	Result scan.Result `json:"result"`
	Counts scan.Counts `json:"counts"`
	// Failing names the failing findings' ids, worst first.
	Failing []string `json:"failing,omitempty"`
	// Verdict is the whole verdict, for callers that print more.
	Verdict scan.Verdict `json:"-"`
}

// ScansEnabled reports whether security.scanning is on, so that callers
// know to call Scan.
func (e *Engine) ScansEnabled() bool { return e.vulns != nil }

// Scan applies security.scanning to s.Image, the image as it will run
// (for a dry run, as written: the mirror's copy has the same digest), and
// adds its verdict to d. A failing image is a violation in the
// configuration's mode. An image without a verdict yet (pending, or a
// failed scan) is what security.scanning.pending says: deny is a
// violation in that mode ("being scanned; retry"), warn at most a
// warning, allow nothing. Images that are denied already, in an excluded
// namespace or in skipImages are not judged. The findings come from g;
// the policy is this engine's, so a reload's thresholds and an expired
// exception apply at once.
func (e *Engine) Scan(ctx context.Context, d *Decision, s Subject, g Scans) {
	if e.vulns == nil || g == nil || d.Denied() {
		return
	}
	if _, excluded := e.excluded(s.Namespace); excluded {
		return
	}
	ref, err := reference.Parse(s.Image)
	if err != nil {
		return // decide has made it a violation
	}
	if e.vulns.Skip(ref) {
		d.because(fmt.Sprintf("not scanned: %s matches security.scanning.skipImages", ref))
		return
	}
	found := g.Lookup(ctx, ref, s.PullKeychain)
	v := e.vulns.Judge(found, s.Namespace, time.Now())
	sv := &ScanVerdict{Image: found.Ref.String(), Result: v.Result, Counts: v.Counts, Verdict: v}
	for _, f := range v.Failing {
		sv.Failing = append(sv.Failing, f.ID)
	}
	d.Scan = sv
	switch v.Result {
	case scan.ResultPass:
		d.because(fmt.Sprintf("vulnerability scan of %s passed (%s; %d ignored)", sv.Image, countsText(v.Counts), len(v.Ignored)))
	case scan.ResultFail:
		d.violate(RuleScanning, v.Message(s.Image, worstShown), e.cfg.EffectiveMode())
	default:
		why := fmt.Sprintf("no vulnerability verdict on %s yet: its scan is queued or running", sv.Image)
		if v.Err != nil {
			why = fmt.Sprintf("no vulnerability verdict on %s: %v", sv.Image, v.Err)
		}
		d.because(why)
		switch e.cfg.Security.Scanning.PendingPolicy() {
		case config.PendingAllow:
			d.because("admitted while pending (security.scanning.pending: allow)")
		case config.PendingWarn:
			d.violate(RuleScanPending, v.Message(s.Image, worstShown), milder(config.ModeWarn, e.cfg.EffectiveMode()))
		default:
			d.violate(RuleScanPending, v.Message(s.Image, worstShown), e.cfg.EffectiveMode())
		}
	}
}

// milder is the milder of two modes: audit < warn < enforce.
func milder(a, b config.Mode) config.Mode {
	rank := map[config.Mode]int{config.ModeAudit: 0, config.ModeWarn: 1, config.ModeEnforce: 2}
	if rank[a] <= rank[b] {
		return a
	}
	return b
}

func countsText(c scan.Counts) string {
	return fmt.Sprintf("%d critical, %d high, %d medium, %d low, %d unknown", c.Critical, c.High, c.Medium, c.Low, c.Unknown)
}
