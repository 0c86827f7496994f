package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// manifestTypes are the manifest media types we accept, as
// go-containerregistry's remote package does.
var manifestTypes = strings.Join([]string{
	string(types.OCIImageIndex),
	string(types.OCIManifestSchema1),
	string(types.DockerManifestList),
	string(types.DockerManifestSchema2),
	string(types.DockerManifestSchema1Signed),
	string(types.DockerManifestSchema1),
}, ",")

// maxManifestSize bounds a manifest read by the GET fallback of HEAD.
const maxManifestSize = 4 << 20

// Exists reports whether ref's manifest is in its registry, with one HEAD
// request (after the first call for a repository, which also pings the
// registry and fetches a token). It looks the manifest up by digest when
// ref has one, else by tag. A missing manifest or repository is
// (Descriptor{}, false, nil).
func (c *Client) Exists(ctx context.Context, ref reference.Reference) (Descriptor, bool, error) {
	d, err := c.head(ctx, ref, pull)
	if errors.Is(err, ErrNotFound) {
		return Descriptor{}, false, nil
	}
	if err != nil {
		return Descriptor{}, false, fmt.Errorf("checking %s: %w", ref, err)
	}
	return d, true, nil
}

// Resolve returns the descriptor of ref's manifest (a tag's current
// digest), with one HEAD request. A missing manifest is an error that
// matches ErrNotFound.
func (c *Client) Resolve(ctx context.Context, ref reference.Reference) (Descriptor, error) {
	d, err := c.head(ctx, ref, pull)
	if err != nil {
		return Descriptor{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	return d, nil
}

// head sends a manifest HEAD for ref with the transport for access a.
func (c *Client) head(ctx context.Context, ref reference.Reference, a access) (Descriptor, error) {
	repo, err := c.repository(ref)
	if err != nil {
		return Descriptor{}, err
	}
	rt, source, err := c.transport(ctx, repo, a)
	if err != nil {
		return Descriptor{}, cleanError(err, hint(canonicalHost(ref.Registry), a, source))
	}
	d, err := headManifest(ctx, rt, target(repo, ref))
	return d, cleanError(err, hint(canonicalHost(ref.Registry), a, source))
}

// manifestURL is where the registry serves ref's manifest.
func manifestURL(ref name.Reference) string {
	u := url.URL{
		Scheme: ref.Context().Scheme(),
		Host:   ref.Context().RegistryStr(),
		Path:   "/v2/" + ref.Context().RepositoryStr() + "/manifests/" + ref.Identifier(),
	}
	return u.String()
}

// headManifest asks for ref's descriptor. A registry that does not send
// Docker-Content-Digest on HEAD is asked again with GET, and the digest
// computed from the body.
func headManifest(ctx context.Context, rt http.RoundTripper, ref name.Reference) (Descriptor, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, manifestURL(ref), nil)
	if err != nil {
		return Descriptor{}, err
	}
	req.Header.Set("Accept", manifestTypes)
	client := &http.Client{Transport: rt}
	resp, err := client.Do(req)
	if err != nil {
		return Descriptor{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return Descriptor{}, &StatusError{StatusCode: http.StatusNotFound, Message: "manifest unknown"}
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return Descriptor{}, err
	}
	d := Descriptor{
		Digest:    resp.Header.Get("Docker-Content-Digest"),
		MediaType: resp.Header.Get("Content-Type"),
		Size:      resp.ContentLength,
	}
	if d.Digest == "" || d.Size < 0 {
		if d, err = getManifestDescriptor(ctx, client, ref); err != nil {
			return Descriptor{}, err
		}
	}
	if dg, ok := ref.(name.Digest); ok && dg.DigestStr() != d.Digest {
		return Descriptor{}, fmt.Errorf("registry answered %s for %s: %w", d.Digest, dg.DigestStr(), ErrDigestMismatch)
	}
	return d, nil
}

// getManifestDescriptor reads the manifest and digests it.
func getManifestDescriptor(ctx context.Context, client *http.Client, ref name.Reference) (Descriptor, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, manifestURL(ref), nil)
	if err != nil {
		return Descriptor{}, err
	}
	req.Header.Set("Accept", manifestTypes)
	resp, err := client.Do(req)
	if err != nil {
		return Descriptor{}, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return Descriptor{}, err
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return Descriptor{}, err
	}
	if n > maxManifestSize {
		return Descriptor{}, fmt.Errorf("manifest is larger than %d bytes", maxManifestSize)
	}
	return Descriptor{
		Digest:    "sha256:" + hex.EncodeToString(h.Sum(nil)),
		MediaType: resp.Header.Get("Content-Type"),
		Size:      n,
	}, nil
}
