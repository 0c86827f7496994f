package mirror

import (
	"context"
	"sync"
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// Present reports whether the target registry holds dst and, if so, the
// digest it holds (what pinDigest should name). It answers from the
// existence cache when it can, and otherwise with one HEAD request whose
// answer is cached: found for PositiveTTL, not found for NegativeTTL.
// Errors are not cached.
func (s *Service) Present(ctx context.Context, dst reference.Reference) (digest string, ok bool, err error) {
	if e, hit := s.cache.lookup(dst); hit {
		return e.digest, e.found, nil
	}
	since := s.cache.generation()
	desc, found, err := s.reg.Exists(ctx, dst)
	if err != nil {
		return "", false, err // the registry's error names dst
	}
	if !found {
		desc.Digest = ""
	}
	s.cache.storeLooked(dst, desc.Digest, found, since)
	return desc.Digest, found, nil
}

// minSweep is the cache size below which expired entries are not swept.
const minSweep = 1024

// existenceCache remembers whether target references exist.
type existenceCache struct {
	now                      func() time.Time
	positiveTTL, negativeTTL time.Duration

	mu      sync.RWMutex
	entries map[reference.Reference]cacheEntry
	// gen increases with every store; an entry records the gen it was
	// stored at, so that a slow HEAD cannot overwrite newer knowledge.
	gen uint64
	// sweepAt is the size at which the next store drops expired entries.
	sweepAt int
}

type cacheEntry struct {
	digest  string
	found   bool
	expires time.Time
	gen     uint64
	// source is the reference dst was copied from by this service, or the
	// zero Reference when the entry comes from a HEAD.
	source reference.Reference
}

// lookup returns the unexpired entry for ref.
func (c *existenceCache) lookup(ref reference.Reference) (cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[ref]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return cacheEntry{}, false
	}
	return e, true
}

// generation returns the current store generation.
func (c *existenceCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// storeCopied records that dst now holds digest, copied from src.
func (c *existenceCache) storeCopied(dst, src reference.Reference, digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(dst, cacheEntry{digest: digest, found: true, source: src, expires: c.now().Add(c.positiveTTL)})
}

// storeLooked records the answer of a HEAD that started at generation
// since, unless something newer was stored for ref meanwhile (a copy that
// finished while the HEAD was on its way must not be forgotten).
func (c *existenceCache) storeLooked(ref reference.Reference, digest string, found bool, since uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.entries[ref]
	if had && old.gen > since {
		return
	}
	e := cacheEntry{digest: digest, found: found}
	if found {
		e.expires = c.now().Add(c.positiveTTL)
		if had && old.found && old.digest == digest {
			// Still what this service copied: keep knowing its source.
			e.source = old.source
		}
	} else {
		e.expires = c.now().Add(c.negativeTTL)
	}
	c.put(ref, e)
}

// put stores e under ref and, when the map has grown, drops expired
// entries so that it stays proportional to the images in use. Callers hold mu.
func (c *existenceCache) put(ref reference.Reference, e cacheEntry) {
	c.gen++
	e.gen = c.gen
	c.entries[ref] = e
	if len(c.entries) < c.sweepAt {
		return
	}
	now := c.now()
	for k, v := range c.entries {
		if !now.Before(v.expires) {
			delete(c.entries, k)
		}
	}
	c.sweepAt = max(minSweep, 2*len(c.entries))
}
