package engine

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Mirror is what the engine needs from the mirror service to swap only to
// images that are there.
type Mirror interface {
	// Present says whether dst exists in the target, with its digest
	// (cached, or one HEAD).
	Present(ctx context.Context, dst reference.Reference) (digest string, ok bool, err error)
	// Enqueue starts copying src to dst in the background, pulling src
	// with pull where the config has no credentials for it (pull may be
	// nil).
	Enqueue(src, dst reference.Reference, pull authn.Keychain)
	// Ensure copies src to dst unless it is there, waiting until done or
	// until ctx ends, and returns the target digest; pull as for Enqueue.
	Ensure(ctx context.Context, src, dst reference.Reference, pull authn.Keychain) (digest string, err error)
}

// Admit decides like Decide, then applies the swap policy
// (mirroring.swap) to a swap: with exists, the image is swapped only when
// the mirror has it, and its copy is queued otherwise; with wait, the copy
// is awaited within ctx; with always, the image is swapped and the copy
// queued. With pinDigest the target names the mirrored digest. When an
// image is not swapped it is kept, and the allow and deny lists decide on
// the original alone: the fallback never bypasses policy.
func (e *Engine) Admit(ctx context.Context, s Subject, m Mirror) Decision {
	d := e.Decide(s)
	if d.Action != config.ActionSwap || m == nil {
		return d
	}
	src, dst, err := d.References()
	if err != nil {
		return d // Decide swapped it, so both parse; kept for safety.
	}
	digest, ok, err := e.mirrorState(ctx, src, dst, s.PullKeychain, m)
	if !ok {
		why := fmt.Sprintf("not swapped: %s is not in the mirror yet; its copy is queued", d.Target)
		if err != nil {
			// The mirror's error names the target.
			why = fmt.Sprintf("not swapped: the mirror could not be checked: %v", err)
		}
		return e.fallback(s, why)
	}
	if e.cfg.Mirroring.PinDigest && digest != "" {
		dst.Digest = digest
		d.Target = dst.String()
		d.because(fmt.Sprintf("pinned to the mirrored digest %s", digest))
	}
	return d
}

// mirrorState applies the swap policy and reports whether dst may be used.
func (e *Engine) mirrorState(ctx context.Context, src, dst reference.Reference, pull authn.Keychain, m Mirror) (string, bool, error) {
	switch e.cfg.SwapPolicy() {
	case config.SwapAlways:
		m.Enqueue(src, dst, pull)
		if !e.cfg.Mirroring.PinDigest {
			return "", true, nil
		}
		digest, _, _ := m.Present(ctx, dst)
		return digest, true, nil
	case config.SwapWait:
		digest, ok, err := m.Present(ctx, dst)
		if ok || err != nil {
			if err != nil {
				m.Enqueue(src, dst, pull)
			}
			return digest, ok, err
		}
		wctx, cancel := context.WithTimeout(ctx, e.cfg.WaitBudget())
		defer cancel()
		digest, err = m.Ensure(wctx, src, dst, pull)
		return digest, err == nil, err
	default: // exists
		digest, ok, err := m.Present(ctx, dst)
		if !ok {
			m.Enqueue(src, dst, pull)
		}
		return digest, ok, err
	}
}

// fallback keeps the original image and decides again without the swap,
// so that the lists judge what will actually run.
func (e *Engine) fallback(s Subject, why string) Decision {
	d := e.decide(s, false)
	d.Reasons = append(d.Reasons, why)
	d.Fallback = true
	return d
}
