// Package mirror copies images into the target registry, at admission time
// and in the background. It deduplicates concurrent requests for the same
// image (N admissions of one image make one copy), bounds how many copies run
// at once, retries transient failures with exponential backoff and full
// jitter, slows down for a source registry that rate-limits, and caches
// whether target images exist so that an admission rarely waits for a
// registry round trip.
package mirror

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// Registry is what the service needs from a registry client;
// *registry.Client satisfies it. The service classifies its errors with
// registry.Retryable, registry.RetryAfter and registry.RateLimited, and
// expects them to name the references involved.
type Registry interface {
	// Exists looks the reference up with one HEAD request.
	Exists(ctx context.Context, ref reference.Reference) (registry.Descriptor, bool, error)
	// Copy makes dst hold src, keeping the digest, and returns without
	// copying when dst already has it.
	Copy(ctx context.Context, src, dst reference.Reference, opts registry.CopyOptions) (registry.CopyResult, error)
}

// Defaults for the zero values of Options.
const (
	DefaultWorkers = 4
	// DefaultPositiveTTL is short: until it passes, an image deleted from
	// the target is still swapped to, and its Pods fail to pull.
	DefaultPositiveTTL = 30 * time.Second
	DefaultNegativeTTL = 10 * time.Second
	DefaultMaxAttempts = 5
	DefaultBaseBackoff = 200 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
)

// Options configure a Service. Zero values take the defaults above.
// (config.Config.PresenceTTLs gives the TTLs of mirroring.presenceCache,
// where 0s means off: pass a negative TTL for it.)
type Options struct {
	// Workers bounds how many copies run at once. Copies waiting for a
	// slot, a backoff or a rate-limited host hold no slot.
	Workers int
	// PositiveTTL is how long "the target has it" is believed;
	// NegativeTTL how long "the target lacks it" is. A negative TTL turns
	// that side of the cache off: every lookup asks the registry.
	PositiveTTL, NegativeTTL time.Duration
	// MaxAttempts is how many times one copy is tried, the first included.
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the exponential backoff between
	// attempts: attempt n waits a uniformly random time in
	// [0, min(MaxBackoff, BaseBackoff·2^(n-1))] ("full jitter").
	BaseBackoff, MaxBackoff time.Duration
	// Copy is passed to every Registry.Copy.
	Copy registry.CopyOptions
	// Now is the clock of the existence cache (time.Now when nil). Backoff
	// and rate-limit waits use real time, as timers do.
	Now func() time.Time
	// Logger receives copy outcomes and rate-limit notices (discarded when nil).
	Logger *slog.Logger
	// OnCopy, when set, is called once per finished copy (success or final
	// failure), from the copy's goroutine, after its waiters were released.
	OnCopy func(Event)
	// Claims, when set, shares copies with the other replicas of the
	// claims' store: a target is copied by one replica at a time, the
	// others waiting for its copy to land (see claim.Claimer.Do). Nil
	// copies without asking anyone, as one replica does.
	Claims *claim.Claimer
}

// Event describes one finished copy, for metrics and the ledger.
type Event struct {
	Source, Target reference.Reference
	// Result is the zero value when Err is set.
	Result registry.CopyResult
	Err    error
	// Attempts is how many times Copy was called (0 when the service was
	// closed before the first attempt).
	Attempts int
}

// Result says what Ensure found or did.
type Result struct {
	// Digest of the target manifest: what a pinned reference should name.
	Digest string
	// Copied is false when the target already had the image.
	Copied bool
	// Bytes is how many blob bytes were uploaded.
	Bytes int64
}

// ErrClosed is returned by Ensure after Close, and by copies that Close
// interrupted.
var ErrClosed = errors.New("mirror service is closed")

// Service copies images into the target registry. Its methods are safe for
// concurrent use. Close it to stop its copies.
type Service struct {
	reg  Registry
	opts Options
	log  *slog.Logger

	// ctx is the context of every copy; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts copy goroutines.
	wg sync.WaitGroup
	// slots holds one token per running copy; its capacity is Workers.
	slots chan struct{}

	mu       sync.Mutex
	closed   bool
	inflight map[copyKey]*copyCall

	cache existenceCache
	gates hostGates
}

// New returns a Service that copies with reg. Close it when done.
func New(reg Registry, opts Options) *Service {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.PositiveTTL == 0 {
		opts.PositiveTTL = DefaultPositiveTTL
	}
	if opts.NegativeTTL == 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = DefaultBaseBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.BaseBackoff {
		opts.MaxBackoff = opts.BaseBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		reg:      reg,
		opts:     opts,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		slots:    make(chan struct{}, opts.Workers),
		inflight: make(map[copyKey]*copyCall),
		cache: existenceCache{
			now:         opts.Now,
			positiveTTL: opts.PositiveTTL,
			negativeTTL: opts.NegativeTTL,
			entries:     make(map[reference.Reference]cacheEntry),
			sweepAt:     minSweep,
		},
		gates: hostGates{log: log, until: make(map[string]time.Time)},
	}
}

// Close stops the service: new Ensure calls fail with ErrClosed, running
// copies are cancelled through their context, and Close returns once every
// copy goroutine has ended. It is safe to call more than once.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}
