package mirror

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// ObserveRateLimit takes a registry's report about its rate limit; pass it
// to registry.WithRateLimitHook. When a source registry says no requests
// remain (Docker Hub's RateLimit-Remaining: 0), new copies from it wait
// instead of being refused one by one: for Window/Limit, which is how often
// a request becomes available again on average in a rolling window (216s
// for Docker Hub's anonymous 100 per 6h), or for MaxBackoff when the
// registry did not say. It is cheap and safe for concurrent use.
func (s *Service) ObserveRateLimit(rl registry.RateLimit) {
	if rl.Remaining != 0 {
		return
	}
	d := s.opts.MaxBackoff
	if rl.Window > 0 && rl.Limit > 0 {
		d = rl.Window / time.Duration(rl.Limit)
	}
	s.gates.close(rl.Registry, d)
}

// gateKey names a host the same way whether it comes from a reference or
// from a request URL: lower case, and Docker Hub's API hosts as docker.io.
func gateKey(host string) string {
	host = strings.ToLower(host)
	switch host {
	case "index.docker.io", "registry-1.docker.io":
		return reference.DefaultRegistry
	}
	return host
}

// maxRetryAfter caps how long one rate-limit answer may stop copies from a
// host, so that a bogus Retry-After cannot stop mirroring for the life of
// the process; a host still limiting after that answers 429 again.
const maxRetryAfter = time.Hour

// hostGates delays new copies from source registry hosts that answered
// with a rate limit, so the whole queue for that host waits once instead of
// every copy hammering it. Times are real time, as the waits are timers.
type hostGates struct {
	log *slog.Logger

	mu    sync.Mutex
	until map[string]time.Time // host → no new copy before this time
}

// close stops new copies from host for d. It logs when the host was not
// already limited, so one rate-limit episode is logged once however many
// copies run into it.
func (g *hostGates) close(host string, d time.Duration) {
	host = gateKey(host)
	d = min(max(d, 0), maxRetryAfter)
	now := time.Now()
	until := now.Add(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	cur, limited := g.until[host]
	limited = limited && cur.After(now)
	if limited && !until.After(cur) {
		return
	}
	g.until[host] = until
	if !limited {
		g.log.Warn("source registry is rate limiting; delaying copies from it",
			"host", host, "retry_after", d, "until", until)
	}
}

// wait returns how long copies from host must still wait, or 0.
func (g *hostGates) wait(host string) time.Duration {
	host = gateKey(host)
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.until[host]
	if !ok {
		return 0
	}
	d := time.Until(until)
	if d <= 0 {
		delete(g.until, host)
		return 0
	}
	return d
}
