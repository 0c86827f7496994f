package mirror

import (
	"log/slog"
	"sync"
	"time"
)

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
			"host", host, "retryAfter", d, "until", until)
	}
}

// wait returns how long copies from host must still wait, or 0.
func (g *hostGates) wait(host string) time.Duration {
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
