package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// Copy copies the image src names to dst, all of it: an index with every
// child manifest and blob, then the index itself with its exact bytes, so
// that the target digest is the source digest. Afterwards it reads the
// target back and fails with ErrDigestMismatch unless it has that digest.
//
// When dst already has the image, Copy returns Copied: false after one
// manifest HEAD at the target (plus one HEAD at the source when src names
// no digest). When dst's tag points to another digest, Copy fails with
// ErrTagExists unless opts.Overwrite. Blobs the target has are not sent
// again; blobs from another repository of the same registry are mounted;
// the rest stream from source to target without being held in memory.
//
// With opts.Platforms, an index is copied with only those platforms (and
// the buildx attestations of the kept images): a new index, whose digest
// CopyResult reports. A single-platform image is copied as is. dst must
// then not name a digest.
//
// With opts.CopySignatures, cosign tags (sha256-<hex>.sig, .att, .sbom) and
// OCI referrers of every manifest written with its source digest are
// copied too, also when the image was already there, so that signatures
// added later arrive. When only that part fails, the image has been copied
// and verified: the CopyResult describes it and the error says so.
//
// The source is pulled with the config's credentials for its host, else
// opts.PullKeychain (a Pod's imagePullSecrets), else the Client's
// WithPullKeychain, else anonymously; the Client's cached transports are
// shared, those made with opts.PullKeychain only between copies that
// resolve to the same credentials.
//
// Errors name src and dst, the step that failed and, for refusals, the
// config key to check; they never contain credentials.
func (c *Client) Copy(ctx context.Context, src, dst reference.Reference, opts CopyOptions) (CopyResult, error) {
	start := time.Now()
	stats := &copyStats{}
	cp := &copier{c: c, src: src, dst: dst, opts: opts}
	res, err := cp.run(withPullKeychain(withStats(ctx, stats), opts.PullKeychain))
	res.Bytes = stats.uploaded.Load()
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return res, nil
}

// copier holds one copy's state.
type copier struct {
	c        *Client
	src, dst reference.Reference
	opts     CopyOptions

	srcRepo, dstRepo     name.Repository
	srcRT, dstRT         http.RoundTripper
	srcSource, dstSource string
}

func (cp *copier) run(ctx context.Context) (CopyResult, error) {
	var err error
	if cp.dst.Tag == "" && cp.dst.Digest == "" {
		return CopyResult{}, errors.New("the target names neither a tag nor a digest")
	}
	if cp.srcRepo, err = cp.c.repository(cp.src); err != nil {
		return CopyResult{}, err
	}
	if cp.dstRepo, err = cp.c.repository(cp.dst); err != nil {
		return CopyResult{}, err
	}

	// What the target should end up with.
	want, manifest, subjects, err := cp.wanted(ctx)
	if err != nil {
		return CopyResult{}, err
	}
	if cp.dst.Digest != "" && cp.dst.Digest != want {
		return CopyResult{}, fmt.Errorf("the target names digest %s, but the copy would write %s", cp.dst.Digest, want)
	}
	res := CopyResult{Digest: want}

	// Is it there already?
	dstRef := name.Reference(cp.dstRepo.Tag(cp.dst.Tag))
	if cp.dst.Tag == "" {
		dstRef = cp.dstRepo.Digest(want)
	}
	if cp.dstRT, cp.dstSource, err = cp.c.transport(ctx, cp.dstRepo, push, cp.srcRepo); err != nil {
		return res, fmt.Errorf("checking target: %w", cleanError(err, cp.dstHint()))
	}
	cur, err := headManifest(ctx, cp.dstRT, dstRef)
	switch {
	case errors.Is(cleanError(err, nil), ErrNotFound):
	case err != nil:
		return res, fmt.Errorf("checking target: %w", cleanError(err, cp.dstHint()))
	case cur.Digest == want:
		if cp.opts.CopySignatures {
			return res, cp.signaturesOfExisting(ctx, dstRef, want, subjects)
		}
		return res, nil
	case !cp.opts.Overwrite:
		return res, fmt.Errorf("%s points to %s: %w", cp.dst.Name()+":"+cp.dst.Tag, cur.Digest, ErrTagExists)
	}

	if manifest == nil {
		desc, err := cp.get(ctx, cp.srcRepo.Digest(want))
		if err != nil {
			return res, fmt.Errorf("pulling manifest: %w", err)
		}
		manifest, subjects = desc, subjectsOf(desc)
	}
	if err := cp.c.ensureRepository(ctx, cp.dst); err != nil {
		return res, fmt.Errorf("creating repository %s: %w", cp.dst.Name(), err)
	}
	if err := cp.push(ctx, dstRef, manifest); err != nil {
		return res, fmt.Errorf("pushing: %w", err)
	}
	got, err := headManifest(ctx, cp.dstRT, dstRef)
	if err != nil {
		return res, fmt.Errorf("verifying target: %w", cleanError(err, cp.dstHint()))
	}
	if got.Digest != want {
		return res, fmt.Errorf("the target has %s, the source %s: %w", got.Digest, want, ErrDigestMismatch)
	}
	res.Copied = true
	if cp.opts.CopySignatures {
		if err := cp.signatures(ctx, subjects); err != nil {
			return res, fmt.Errorf("the image was copied, but its signatures were not: %w", err)
		}
	}
	return res, nil
}

// wanted is what the target should end up with: the digest a copy of
// the source writes (the source's, or with CopyOptions.Platforms that of
// the filtered index), the manifest to push when already read (nil
// otherwise), and the manifests whose signatures apply.
func (cp *copier) wanted(ctx context.Context) (want string, manifest remote.Taggable, subjects []string, err error) {
	if len(cp.opts.Platforms) == 0 {
		want = cp.src.Digest
		if want == "" {
			d, err := cp.c.head(ctx, cp.src, pull)
			if err != nil {
				return "", nil, nil, fmt.Errorf("resolving source: %w", err)
			}
			want = d.Digest
		}
	} else {
		desc, err := cp.get(ctx, target(cp.srcRepo, cp.src))
		if err != nil {
			return "", nil, nil, fmt.Errorf("pulling manifest: %w", err)
		}
		manifest, want, subjects, err = filtered(desc, cp.opts.Platforms)
		if err != nil {
			return "", nil, nil, fmt.Errorf("filtering platforms of %s: %w", cp.src, err)
		}
	}
	return want, manifest, subjects, nil
}

// CopyDigest is the digest a copy of src with opts writes to the target,
// without copying: the source's digest, or with opts.Platforms that of the
// filtered index (what the sync loop compares the mirror with).
func (c *Client) CopyDigest(ctx context.Context, src reference.Reference, opts CopyOptions) (string, error) {
	cp := &copier{c: c, src: src, opts: opts}
	var err error
	if cp.srcRepo, err = c.repository(src); err != nil {
		return "", err
	}
	want, _, _, err := cp.wanted(withPullKeychain(ctx, opts.PullKeychain))
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", src, err)
	}
	return want, nil
}

// filtered builds what a platform-filtered copy writes, its digest, and
// the manifests whose signatures apply to it (the kept children: the new
// index has no signatures).
func filtered(desc *remote.Descriptor, platforms []Platform) (remote.Taggable, string, []string, error) {
	if !desc.MediaType.IsIndex() {
		return desc, desc.Digest.String(), []string{desc.Digest.String()}, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, "", nil, err
	}
	f, err := filterIndex(idx, platforms)
	if err != nil {
		return nil, "", nil, err
	}
	subjects := make([]string, 0, len(f.manifest.Manifests))
	for _, m := range f.manifest.Manifests {
		subjects = append(subjects, m.Digest.String())
	}
	return f, f.digest.String(), subjects, nil
}

// subjectsOf lists a manifest's digest and, for an index, its children's.
func subjectsOf(desc *remote.Descriptor) []string {
	subjects := []string{desc.Digest.String()}
	if !desc.MediaType.IsIndex() {
		return subjects
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return subjects
	}
	for _, m := range im.Manifests {
		subjects = append(subjects, m.Digest.String())
	}
	return subjects
}

// sourceTransport returns the source's transport, creating it on first use.
func (cp *copier) sourceTransport(ctx context.Context) (http.RoundTripper, error) {
	if cp.srcRT != nil {
		return cp.srcRT, nil
	}
	rt, source, err := cp.c.transport(ctx, cp.srcRepo, pull)
	cp.srcSource = source
	if err != nil {
		return nil, cleanError(err, cp.srcHint())
	}
	cp.srcRT = rt
	return rt, nil
}

// get reads a manifest from the source.
func (cp *copier) get(ctx context.Context, ref name.Reference) (*remote.Descriptor, error) {
	rt, err := cp.sourceTransport(ctx)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref, remoteOptions(ctx, rt)...)
	return desc, cleanError(err, cp.srcHint())
}

// push writes t and everything it refers to at ref.
func (cp *copier) push(ctx context.Context, ref name.Reference, t remote.Taggable) error {
	if _, err := cp.sourceTransport(ctx); err != nil {
		return err
	}
	more := []remote.Option{remote.WithJobs(cp.c.jobs)}
	var (
		wg   sync.WaitGroup
		last v1.Update
	)
	if cp.opts.Progress != nil {
		updates := make(chan v1.Update, 16)
		more = append(more, remote.WithProgress(updates))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range updates {
				if u.Error == nil {
					last = u
					cp.opts.Progress(Progress{Done: u.Complete, Total: u.Total})
				}
			}
		}()
	}
	err := remote.Push(ref, t, remoteOptions(ctx, cp.dstRT, more...)...)
	wg.Wait() // remote.Push closes updates before it returns
	if err == nil && cp.opts.Progress != nil && last.Complete != last.Total {
		// go-containerregistry misses reads that end with io.EOF; say
		// that everything was written.
		cp.opts.Progress(Progress{Done: last.Total, Total: last.Total})
	}
	return cp.clean(err)
}

// clean turns a push error into a user's error, with the hint for
// whichever side the failed request went to.
func (cp *copier) clean(err error) error {
	var te *transport.Error
	if errors.As(err, &te) && te.Request != nil {
		if canonicalHost(te.Request.URL.Host) == canonicalHost(cp.src.Registry) && cp.src.Registry != cp.dst.Registry {
			return cleanError(err, cp.srcHint())
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && canonicalHost(u.Host) == canonicalHost(cp.src.Registry) && cp.src.Registry != cp.dst.Registry {
			return cleanError(err, cp.srcHint())
		}
	}
	return cleanError(err, cp.dstHint())
}

func (cp *copier) srcHint() func(int) string {
	return hint(canonicalHost(cp.src.Registry), pull, cp.srcSource)
}

func (cp *copier) dstHint() func(int) string {
	return hint(canonicalHost(cp.dst.Registry), push, cp.dstSource)
}
