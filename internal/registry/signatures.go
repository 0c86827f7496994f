package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// cosignSuffixes are the tags cosign attaches to sha256-<hex>: signatures,
// attestations and SBOMs.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// signaturesOfExisting copies the signatures of an image the target
// already has; subjects is nil unless a platform filter computed them.
func (cp *copier) signaturesOfExisting(ctx context.Context, dstRef name.Reference, digest string, subjects []string) error {
	if subjects == nil {
		// The target has exactly the source's manifest: list the children
		// there, which costs the source nothing.
		desc, err := remote.Get(cp.dstRepo.Digest(digest), remoteOptions(ctx, cp.dstRT)...)
		if err != nil {
			return fmt.Errorf("reading %s: %w", dstRef, cleanError(err, cp.dstHint()))
		}
		subjects = subjectsOf(desc)
	}
	if err := cp.signatures(ctx, subjects); err != nil {
		return fmt.Errorf("the image was there, but its signatures could not be copied: %w", err)
	}
	return nil
}

// signatures copies the cosign tags and OCI referrers of each subject
// digest that the source has. Neither existing is not an error.
func (cp *copier) signatures(ctx context.Context, subjects []string) error {
	if _, err := cp.sourceTransport(ctx); err != nil {
		return err
	}
	for _, s := range subjects {
		if err := cp.cosignTags(ctx, s); err != nil {
			return err
		}
		if err := cp.referrers(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// cosignTags copies sha256-<hex>.sig/.att/.sbom when the source has them.
// Those tags belong to the digest they name, and cosign rewrites them as
// signatures are added, so the source's version replaces the target's.
func (cp *copier) cosignTags(ctx context.Context, subject string) error {
	base := strings.Replace(subject, ":", "-", 1)
	for _, suffix := range cosignSuffixes {
		tag := base + suffix
		have, err := headManifest(ctx, cp.srcRT, cp.srcRepo.Tag(tag))
		if errors.Is(cleanError(err, nil), ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking %s:%s: %w", cp.src.Name(), tag, cleanError(err, cp.srcHint()))
		}
		cur, err := headManifest(ctx, cp.dstRT, cp.dstRepo.Tag(tag))
		if err == nil && cur.Digest == have.Digest {
			continue
		}
		if err != nil && !errors.Is(cleanError(err, nil), ErrNotFound) {
			return fmt.Errorf("checking %s:%s: %w", cp.dst.Name(), tag, cleanError(err, cp.dstHint()))
		}
		desc, err := cp.get(ctx, cp.srcRepo.Digest(have.Digest))
		if err != nil {
			return fmt.Errorf("reading %s:%s: %w", cp.src.Name(), tag, err)
		}
		if err := cp.push(ctx, cp.dstRepo.Tag(tag), desc); err != nil {
			return fmt.Errorf("writing %s:%s: %w", cp.dst.Name(), tag, err)
		}
	}
	return nil
}

// referrers copies the OCI referrers of subject. go-containerregistry asks
// the referrers API and, where a registry answers 404 or 400, reads the
// sha256-<hex> fallback tag; with neither there is nothing to copy. Writing
// a manifest with a subject to a registry without the API updates the
// target's fallback tag.
func (cp *copier) referrers(ctx context.Context, subject string) error {
	idx, err := remote.Referrers(cp.srcRepo.Digest(subject), remoteOptions(ctx, cp.srcRT)...)
	if err != nil {
		return fmt.Errorf("listing referrers of %s@%s: %w", cp.src.Name(), subject, cleanError(err, cp.srcHint()))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("listing referrers of %s@%s: %w", cp.src.Name(), subject, err)
	}
	for _, m := range im.Manifests {
		desc, err := cp.get(ctx, cp.srcRepo.Digest(m.Digest.String()))
		if err != nil {
			return fmt.Errorf("reading referrer %s@%s: %w", cp.src.Name(), m.Digest, err)
		}
		// By digest, the push first checks whether the target has it.
		if err := cp.push(ctx, cp.dstRepo.Digest(m.Digest.String()), desc); err != nil {
			return fmt.Errorf("writing referrer %s@%s: %w", cp.dst.Name(), m.Digest, err)
		}
	}
	return nil
}
