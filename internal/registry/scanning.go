package registry

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// PlatformManifest is one platform's image manifest.
type PlatformManifest struct {
	// Digest is the manifest's digest.
	Digest string
	// Platform is "os/architecture[/variant]", or "" for an image that is
	// not in an index and does not say.
	Platform string
}

// PullCredentials returns the credentials this Client pulls ref with (the
// config's, the target provider's, or those of kc, a workload's pull
// keychain, which may be nil), for a program that pulls it itself: a
// scanner. It returns nil for anonymous access.
func (c *Client) PullCredentials(ctx context.Context, ref reference.Reference, kc authn.Keychain) (*authn.AuthConfig, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return nil, err
	}
	ctx = withPullKeychain(ctx, kc)
	perCopy, _, err := c.copyAuth(ctx, repo)
	if err != nil {
		return nil, err
	}
	auth, _, err := c.authenticator(ctx, repo, pull, perCopy)
	if err != nil {
		return nil, err
	}
	if auth == nil || auth == authn.Anonymous {
		return nil, nil
	}
	ac, err := authn.Authorization(ctx, auth)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", ref.Registry, err)
	}
	return ac, nil
}

// PlatformManifests reads ref's manifest (by digest when ref has one) and
// returns its descriptor and the image manifests to scan: for an index,
// its entries whose platform is one of platforms (buildx attestations are
// not images); for an image manifest, itself. An index with none of the
// platforms is an error that names those it has. kc is the workload's pull
// keychain, or nil.
func (c *Client) PlatformManifests(ctx context.Context, ref reference.Reference, platforms []Platform, kc authn.Keychain) (Descriptor, []PlatformManifest, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return Descriptor{}, nil, err
	}
	ctx = withPullKeychain(ctx, kc)
	rt, source, err := c.transport(ctx, repo, pull)
	if err != nil {
		return Descriptor{}, nil, fmt.Errorf("reading %s: %w", ref, cleanError(err, hint(canonicalHost(ref.Registry), pull, source)))
	}
	desc, err := remote.Get(target(repo, ref), remoteOptions(ctx, rt)...)
	if err != nil {
		return Descriptor{}, nil, fmt.Errorf("reading %s: %w", ref, cleanError(err, hint(canonicalHost(ref.Registry), pull, source)))
	}
	d := Descriptor{Digest: desc.Digest.String(), MediaType: string(desc.MediaType), Size: desc.Size}
	if ref.Digest != "" && ref.Digest != d.Digest {
		return Descriptor{}, nil, fmt.Errorf("registry answered %s for %s: %w", d.Digest, ref, ErrDigestMismatch)
	}
	if !desc.MediaType.IsIndex() {
		var p string
		if desc.Platform != nil {
			p = platformString(desc.Platform)
		}
		return d, []PlatformManifest{{Digest: d.Digest, Platform: p}}, nil
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return Descriptor{}, nil, fmt.Errorf("reading %s: parsing its index: %w", ref, err)
	}
	ms, err := indexPlatforms(im, platforms)
	if err != nil {
		return Descriptor{}, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return d, ms, nil
}

// indexPlatforms picks the image entries of an index whose platform is
// one of platforms, each digest once.
func indexPlatforms(im *v1.IndexManifest, platforms []Platform) ([]PlatformManifest, error) {
	var out []PlatformManifest
	var available []string
	seen := map[string]bool{}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Annotations[annotationReferenceType] != "" || m.MediaType.IsIndex() {
			continue
		}
		available = append(available, platformString(m.Platform))
		for _, p := range platforms {
			if p.matches(m.Platform) && !seen[m.Digest.String()] {
				seen[m.Digest.String()] = true
				out = append(out, PlatformManifest{Digest: m.Digest.String(), Platform: platformString(m.Platform)})
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, noPlatformError(platforms, available)
	}
	return out, nil
}

// ResolveWithKeychain is Resolve, reading ref with kc (a workload's pull
// keychain, or nil) where the config has no credentials for it.
func (c *Client) ResolveWithKeychain(ctx context.Context, ref reference.Reference, kc authn.Keychain) (Descriptor, error) {
	return c.Resolve(withPullKeychain(ctx, kc), ref)
}
