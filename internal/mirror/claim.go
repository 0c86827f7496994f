package mirror

import (
	"context"
	"fmt"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// ClaimKind is the kind of the claims copies take (claim.Work.Kind); the
// key is the target reference.
const ClaimKind = "copy"

// copyClaimed is copyWithPulls under the claim of the copy's target, when
// Options.Claims shares copies with other replicas: the replica that wins
// the claim copies; one that loses waits, watching the target with a HEAD
// every poll, until the holder's copy lands (it then copies nothing) or the
// holder lets the claim go, when it copies itself, which costs a HEAD or
// two when the holder had finished.
func (s *Service) copyClaimed(c *copyCall) (registry.CopyResult, int, error) {
	if s.opts.Claims == nil {
		return s.copyWithPulls(c)
	}
	src, dst := c.key.src, c.key.dst
	var (
		res      registry.CopyResult
		attempts int
		landed   string // the digest the holder's copy left at dst
	)
	ran, err := s.opts.Claims.Do(s.ctx, claim.Work{
		Kind: ClaimKind,
		Key:  dst.String(),
		Run: func(context.Context) error {
			var err error
			res, attempts, err = s.copyWithPulls(c)
			return err
		},
		Done: s.landed(dst, &landed),
	})
	switch {
	case ran:
		return res, attempts, err
	case err != nil:
		return registry.CopyResult{}, 0, fmt.Errorf("copying %s to %s: %w: %w", src, dst, ErrClosed, err)
	}
	s.log.Debug("another replica copied the image", "src", src.String(), "dst", dst.String(), "digest", landed)
	return registry.CopyResult{Digest: landed}, 0, nil
}

// landed returns a claim.Work.Done for a copy to dst: true once dst holds
// an image it did not hold when first asked (or, for a target by digest,
// holds it at all). A target tag that already held the holder's digest is
// not seen to change, and the copy is then made again when the claim is
// released: it finds the target done.
func (s *Service) landed(dst reference.Reference, digest *string) func(context.Context) bool {
	first := true
	var before string
	return func(ctx context.Context) bool {
		desc, found, err := s.reg.Exists(ctx, dst)
		if err != nil {
			s.log.Debug("looking for another replica's copy", "dst", dst.String(), "error", err)
			return false
		}
		if first && dst.Digest == "" {
			first = false
			if found {
				before = desc.Digest
			}
			return false
		}
		if !found || desc.Digest == before {
			return false
		}
		*digest = desc.Digest
		return true
	}
}
