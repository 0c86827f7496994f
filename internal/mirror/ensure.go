package mirror

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// copyKey identifies a copy. Two requests share a copy only when both the
// source and the target are the same: target names are derived from source
// names without collisions, so one target has one source in practice, and
// keying on both keeps a caller from being handed another source's digest.
type copyKey struct {
	src, dst reference.Reference
}

// copyCall is one copy shared by every caller that asked for it while it ran.
type copyCall struct {
	key  copyKey
	done chan struct{} // closed when res and err are final
	res  Result
	err  error
	// waiters counts Ensure calls that joined; guarded by Service.mu.
	waiters int
	// pulls are the source credentials to try, in turn, while the source
	// refuses them: the first caller's (nil for none), then those of
	// callers that joined with their own, up to maxPulls; guarded by
	// Service.mu.
	pulls []authn.Keychain
}

// maxPulls bounds the credentials one copy tries: a burst of Pods with
// wrong imagePullSecrets costs at most this many refusals per copy.
const maxPulls = 4

// RequestOption adjusts one Ensure or Enqueue call.
type RequestOption func(*request)

type request struct {
	pull authn.Keychain
}

// WithPullKeychain pulls the source with k (a Pod's imagePullSecrets)
// where the config has no credentials for the source's registry; see
// registry.CopyOptions.PullKeychain.
//
// Copies are shared by source and target, not by credentials: a copy
// pulls with the credentials of the caller that started it. When the
// source refuses them (401 or 403), the copy is tried again with the
// credentials of callers that joined it meanwhile, so that a Pod with the
// right imagePullSecrets is not failed by another Pod's wrong ones. A
// failed copy is not remembered, so the next call starts afresh with its
// own credentials.
func WithPullKeychain(k authn.Keychain) RequestOption {
	return func(r *request) { r.pull = k }
}

func newRequest(opts []RequestOption) request {
	var r request
	for _, o := range opts {
		o(&r)
	}
	return r
}

// Ensure makes dst hold src and returns the digest dst then holds.
//
// Concurrent calls for the same src and dst share one copy, which runs on
// one of the bounded worker slots and is retried with backoff on errors that
// registry.Retryable accepts (never on others).
//
// When ctx ends first, Ensure returns an error wrapping ctx.Err() at once,
// but the copy is not cancelled: it runs to its end in the background, for
// the other callers and so that the next admission finds the image mirrored
// (that is what swap: wait needs). Only Close cancels copies.
//
// A copy from src to dst that succeeded within PositiveTTL is not repeated:
// Ensure answers from the existence cache without a request.
//
// WithPullKeychain gives the source credentials of this call; see it for
// how shared copies use them.
func (s *Service) Ensure(ctx context.Context, src, dst reference.Reference, opts ...RequestOption) (Result, error) {
	if res, ok := s.copiedRecently(src, dst); ok {
		return res, nil
	}
	c, err := s.start(src, dst, true, newRequest(opts))
	if err != nil {
		return Result{}, err
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("waiting for the copy of %s to %s, which goes on in the background: %w", src, dst, ctx.Err())
	}
}

// Enqueue starts copying src to dst in the background and returns at once.
// It shares the copy with Ensure and Enqueue calls for the same src and dst,
// and does nothing after Close or when the copy succeeded within PositiveTTL.
func (s *Service) Enqueue(src, dst reference.Reference, opts ...RequestOption) {
	if _, ok := s.copiedRecently(src, dst); ok {
		return
	}
	if _, err := s.start(src, dst, false, newRequest(opts)); err != nil {
		s.log.Debug("not queueing copy", "src", src.String(), "dst", dst.String(), "error", err)
	}
}

// copiedRecently answers Ensure from the cache when it knows that dst holds
// src: dst was copied from src, or both name the same digest.
func (s *Service) copiedRecently(src, dst reference.Reference) (Result, bool) {
	e, ok := s.cache.lookup(dst)
	if !ok || !e.found {
		return Result{}, false
	}
	if e.source == src || (dst.Digest != "" && dst.Digest == src.Digest) {
		return Result{Digest: e.digest}, true
	}
	return Result{}, false
}

// start returns the running copy of src to dst, starting one with r's
// credentials if none runs, or adding them to the running one's.
func (s *Service) start(src, dst reference.Reference, wait bool, r request) (*copyCall, error) {
	key := copyKey{src: src, dst: dst}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("copying %s to %s: %w", src, dst, ErrClosed)
	}
	c := s.inflight[key]
	switch {
	case c == nil:
		c = &copyCall{key: key, done: make(chan struct{}), pulls: []authn.Keychain{r.pull}}
		s.inflight[key] = c
		s.wg.Add(1)
		go s.run(c)
	case r.pull != nil && len(c.pulls) < maxPulls:
		c.pulls = append(c.pulls, r.pull)
	}
	if wait {
		c.waiters++
	}
	return c, nil
}

// run performs one shared copy and publishes its outcome.
func (s *Service) run(c *copyCall) {
	defer s.wg.Done()
	src, dst := c.key.src, c.key.dst
	res, attempts, err := s.copyClaimed(c)
	if err == nil {
		// Cache before leaving inflight, so that a caller arriving in
		// between finds either the call or the cache entry.
		s.cache.storeCopied(dst, src, res.Digest)
		c.res = Result{Digest: res.Digest, Copied: res.Copied, Bytes: res.Bytes}
	}
	c.err = err
	s.mu.Lock()
	delete(s.inflight, c.key)
	waiters := c.waiters
	s.mu.Unlock()
	close(c.done)

	if err != nil {
		s.log.Warn("mirroring image failed", "src", src.String(), "dst", dst.String(),
			"attempts", attempts, "waiters", waiters, "error", err)
	} else {
		s.log.Info("mirrored image", "src", src.String(), "dst", dst.String(), "digest", res.Digest,
			"copied", res.Copied, "bytes", res.Bytes, "duration", res.Duration,
			"attempts", attempts, "waiters", waiters)
	}
	if s.opts.OnCopy != nil {
		s.opts.OnCopy(Event{Source: src, Target: dst, Result: res, Err: err, Attempts: attempts})
	}
}

// copyWithPulls copies with each of c's credentials in turn while the
// source refuses them, and returns the number of attempts made in all.
func (s *Service) copyWithPulls(c *copyCall) (registry.CopyResult, int, error) {
	var total int
	for i := 0; ; i++ {
		s.mu.Lock()
		pull := c.pulls[i]
		s.mu.Unlock()
		res, attempts, err := s.copyWithRetry(c.key.src, c.key.dst, pull)
		total += attempts
		s.mu.Lock()
		more := i+1 < len(c.pulls)
		s.mu.Unlock()
		if err == nil || !more || !registry.Refused(err) || s.ctx.Err() != nil {
			return res, total, err
		}
		s.log.Debug("source refused the credentials; trying another caller's", "src", c.key.src.String(), "dst", c.key.dst.String(), "error", err)
	}
}

// copyWithRetry calls Copy until it succeeds, fails with an error that is
// not retryable, or has been tried MaxAttempts times. It returns the number
// of attempts made.
func (s *Service) copyWithRetry(src, dst reference.Reference, pull authn.Keychain) (registry.CopyResult, int, error) {
	opts := s.opts.Copy
	if pull != nil {
		opts.PullKeychain = pull
	}
	host := src.Registry
	for attempt := 1; ; attempt++ {
		if !s.acquire(host) {
			return registry.CopyResult{}, attempt - 1, fmt.Errorf("copying %s to %s: %w before attempt %d", src, dst, ErrClosed, attempt)
		}
		res, err := s.reg.Copy(s.ctx, src, dst, opts)
		<-s.slots
		switch {
		case err == nil:
			return res, attempt, nil
		case s.ctx.Err() != nil:
			return registry.CopyResult{}, attempt, fmt.Errorf("%w during attempt %d: %w", ErrClosed, attempt, err)
		case !registry.Retryable(err):
			return registry.CopyResult{}, attempt, fmt.Errorf("failed on attempt %d of %d and not retried (the error is not transient): %w", attempt, s.opts.MaxAttempts, err)
		case attempt >= s.opts.MaxAttempts:
			return registry.CopyResult{}, attempt, fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		// A rate limit holds back every copy from the host, not just this
		// one: for as long as the registry asked, or else for this retry's
		// backoff ceiling.
		if d, ok := registry.RetryAfter(err); ok {
			s.gates.close(host, d)
		} else if registry.RateLimited(err) {
			s.gates.close(host, s.backoffCeiling(attempt))
		}
		s.log.Debug("retrying copy", "src", src.String(), "dst", dst.String(), "attempt", attempt, "error", err)
		if !s.sleep(s.backoff(attempt)) {
			return registry.CopyResult{}, attempt, fmt.Errorf("%w while waiting to retry: %w", ErrClosed, err)
		}
	}
}

// acquire waits until host is not rate-limited and a worker slot is free,
// and takes the slot. It returns false when the service was closed.
func (s *Service) acquire(host string) bool {
	for {
		if d := s.gates.wait(host); d > 0 {
			if !s.sleep(d) {
				return false
			}
			continue
		}
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return false
		}
		// The host may have been rate-limited while this copy waited
		// for a slot; give the slot to a copy that can use it.
		if s.gates.wait(host) > 0 {
			<-s.slots
			continue
		}
		return true
	}
}

// backoff returns the wait before the retry that follows the given
// attempt: full jitter, uniformly random up to backoffCeiling, so that
// copies that failed together do not retry together.
func (s *Service) backoff(attempt int) time.Duration {
	return rand.N(s.backoffCeiling(attempt) + 1)
}

// backoffCeiling is min(MaxBackoff, BaseBackoff·2^(attempt-1)).
func (s *Service) backoffCeiling(attempt int) time.Duration {
	ceiling := s.opts.MaxBackoff
	// Compare before shifting so that a large attempt cannot overflow.
	if shift := attempt - 1; shift < 63 && s.opts.BaseBackoff <= ceiling>>shift {
		ceiling = s.opts.BaseBackoff << shift
	}
	return ceiling
}

// sleep waits for d or until Close; it returns false on Close.
func (s *Service) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}
