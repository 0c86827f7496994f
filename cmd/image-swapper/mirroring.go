package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/mirror"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// mirroring is a registry client and the mirror service over it, built
// from one configuration.
type mirroring struct {
	client  *registry.Client
	service *mirror.Service
	// progress holds per-target progress callbacks for the CLI's bars.
	progress sync.Map // target string → func(registry.Progress)
}

// newMirroring wires the registry client and the mirror service. The
// client reports Docker Hub rate-limit headers to the service, which is
// built after it, hence the indirection.
// onCopy, when set, hears of every finished copy (for metrics).
func newMirroring(cfg *config.Config, logger *slog.Logger, onCopy func(mirror.Event), opts ...registry.Option) (*mirroring, error) {
	return newSharedMirroring(cfg, logger, nil, onCopy, opts...)
}

// newSharedMirroring is newMirroring whose copies are shared with the
// other replicas through claims (nil: not shared).
func newSharedMirroring(cfg *config.Config, logger *slog.Logger, claims *claim.Claimer, onCopy func(mirror.Event), opts ...registry.Option) (*mirroring, error) {
	var svc atomic.Pointer[mirror.Service]
	opts = append(opts, registry.WithRateLimitHook(func(rl registry.RateLimit) {
		if s := svc.Load(); s != nil {
			s.ObserveRateLimit(rl)
		}
	}))
	client, err := registry.New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	copyOpts, err := registry.MirrorCopyOptions(cfg.Mirroring)
	if err != nil {
		return nil, err
	}
	m := &mirroring{client: client}
	positive, negative := cfg.PresenceTTLs()
	m.service = mirror.New(progressRegistry{m}, mirror.Options{
		Workers:     cfg.Mirroring.Concurrency,
		PositiveTTL: presenceTTL(positive),
		NegativeTTL: presenceTTL(negative),
		Copy:        copyOpts,
		Logger:      logger,
		OnCopy:      onCopy,
		Claims:      claims,
	})
	svc.Store(m.service)
	return m, nil
}

func (m *mirroring) Close() { m.service.Close() }

// presenceTTL turns a TTL of mirroring.presenceCache, where 0s means no
// caching, into the mirror's, where 0 means the default and a negative
// TTL no caching.
func presenceTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// engineMirror adapts the mirror service to engine.Mirror.
func (m *mirroring) engineMirror() engineMirror { return engineMirror{m.service} }

type engineMirror struct{ *mirror.Service }

// Ensure copies src to dst, pulling with pull, and returns the target
// digest.
func (e engineMirror) Ensure(ctx context.Context, src, dst reference.Reference, pull authn.Keychain) (string, error) {
	r, err := e.Service.Ensure(ctx, src, dst, mirror.WithPullKeychain(pull))
	return r.Digest, err
}

// Enqueue queues the copy of src to dst, pulling with pull.
func (e engineMirror) Enqueue(src, dst reference.Reference, pull authn.Keychain) {
	e.Service.Enqueue(src, dst, mirror.WithPullKeychain(pull))
}

// progressRegistry gives each copy the progress callback registered for
// its target, so the CLI can draw one bar per image.
type progressRegistry struct{ m *mirroring }

func (p progressRegistry) Exists(ctx context.Context, ref reference.Reference) (registry.Descriptor, bool, error) {
	return p.m.client.Exists(ctx, ref)
}

func (p progressRegistry) Copy(ctx context.Context, src, dst reference.Reference, opts registry.CopyOptions) (registry.CopyResult, error) {
	if f, ok := p.m.progress.Load(dst.String()); ok {
		opts.Progress = f.(func(registry.Progress))
	}
	return p.m.client.Copy(ctx, src, dst, opts)
}
