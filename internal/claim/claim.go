// Package claim does a unit of work once across replicas: before a copy or
// a scan, a replica claims it in the record store it shares with the
// others; the replica that wins does the work, renewing its claim while it
// works; the others wait for it to finish, and take the work over when its
// claim lapses because its holder died.
//
// It knows the store only through the Store interface (store.Store is
// one), so that the packages that share work need not import the store.
package claim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Store keeps claims; see store.Claims, which documents the semantics.
type Store interface {
	Claim(ctx context.Context, kind, key, holder string, ttl time.Duration) (won bool, current string, err error)
	Renew(ctx context.Context, kind, key, holder string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, kind, key, holder string) error
}

// Results of Do, as counted by image_swapper_claims_total{kind,result}.
const (
	// Won: the claim was free; this replica did the work.
	Won = "won"
	// Lost: another replica held the claim; this one waited for it.
	Lost = "lost"
	// TakenOver: after losing, this replica won the claim without having
	// seen the work done (Work.Done): its holder failed, or died and its
	// claim expired. This replica did the work itself.
	TakenOver = "taken_over"
	// Unavailable: the store could not be asked; the work ran unclaimed.
	Unavailable = "unavailable"
)

// Defaults for the zero values of Options.
const (
	DefaultTTL  = 30 * time.Second
	DefaultPoll = time.Second
)

// releaseTimeout bounds giving a claim back after the work's context
// ended (the service is closing): the others should not wait out the TTL.
const releaseTimeout = 5 * time.Second

// Options configure a Claimer. Zero values take the defaults.
type Options struct {
	// Holder names this replica in the claims it holds (DefaultHolder
	// when empty). Every replica must have its own.
	Holder string
	// TTL is how long a claim lasts unless renewed; it is renewed every
	// TTL/3 while the work runs, so a holder that dies is taken over
	// within TTL.
	TTL time.Duration
	// Poll is how often a replica waiting for another's work looks again.
	Poll time.Duration
	// Logger receives store failures (discarded when nil).
	Logger *slog.Logger
	// Registerer receives image_swapper_claims_total (nil: none).
	Registerer prometheus.Registerer
}

// Claimer does work once across the replicas that share its Store. It is
// safe for concurrent use; one Claimer serves every kind of work of a
// process.
type Claimer struct {
	st     Store
	holder string
	ttl    time.Duration
	poll   time.Duration
	log    *slog.Logger
	counts *prometheus.CounterVec
}

// New returns a Claimer over st.
func New(st Store, opts Options) *Claimer {
	c := &Claimer{st: st, holder: opts.Holder, ttl: opts.TTL, poll: opts.Poll, log: opts.Logger}
	if c.holder == "" {
		c.holder = DefaultHolder()
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	if c.poll <= 0 {
		c.poll = DefaultPoll
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.counts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "image_swapper_claims_total",
		Help: "Claims on work shared by replicas (copies, scans), by kind and result: won, lost (waited for another replica), taken_over (after losing, did the work when the holder let it go undone), unavailable (the store failed; the work ran unclaimed).",
	}, []string{"kind", "result"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(c.counts); err != nil {
			c.log.Warn("claim metrics not registered", "error", err)
		}
	}
	return c
}

// Holder is the name this Claimer holds claims under.
func (c *Claimer) Holder() string { return c.holder }

// DefaultHolder is the host name (a Pod's name) with a random suffix, so
// that a restarted process does not mistake its predecessor's claims for
// its own.
func DefaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "image-swapper"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// Work is a unit of work for Do.
type Work struct {
	// Kind and Key name the work across replicas: "copy" and the target
	// reference, "scan" and the manifest digest.
	Kind, Key string
	// Run does the work while this replica holds the claim, which is
	// renewed meanwhile. Its context is Do's.
	Run func(ctx context.Context) error
	// Done, when set, reports whether the work has been done (by the
	// replica holding the claim); a replica that lost the claim asks it
	// every Poll, before it claims again and once more when it wins the
	// claim back, and stops waiting when it says so. Without it, the
	// waiting replica runs the work when the claim is released, which
	// must then find the work done and be cheap.
	Done func(ctx context.Context) bool
	// Linger keeps the claim for this long after Run succeeds, instead
	// of releasing it at once: for work whose result reaches the others
	// late (a record the ledger writes in the background), so that a
	// waiting replica sees the result before it could take the work over.
	Linger time.Duration
}

// Do runs w.Run once across the replicas sharing the store: here, when
// this replica wins the claim; otherwise it waits, until w.Done says the
// holder finished (ran is false), or until the claim is released or
// expires and this replica wins it and runs the work itself (a takeover).
// The wait ends with ctx. When the store cannot be asked, the work runs
// unclaimed: duplicate work rather than none.
func (c *Claimer) Do(ctx context.Context, w Work) (ran bool, err error) {
	lost := false
	for {
		won, holder, err := c.st.Claim(ctx, w.Kind, w.Key, c.holder, c.ttl)
		if err != nil {
			if ctx.Err() != nil {
				return false, fmt.Errorf("claiming %s %s: %w", w.Kind, w.Key, ctx.Err())
			}
			c.count(w.Kind, Unavailable)
			c.log.Warn("claiming work failed; doing it unclaimed (another replica may do it too)", "kind", w.Kind, "key", w.Key, "error", err)
			return true, w.Run(ctx)
		}
		switch {
		case won && !lost:
			c.count(w.Kind, Won)
			return true, c.run(ctx, w)
		case won:
			// The holder let the claim go: finished (and released it
			// between two looks), failed, or died.
			if c.done(ctx, w) {
				c.release(ctx, w)
				return false, nil
			}
			c.count(w.Kind, TakenOver)
			c.log.Info("took over work another replica left undone", "kind", w.Kind, "key", w.Key)
			return true, c.run(ctx, w)
		case !lost:
			lost = true
			c.count(w.Kind, Lost)
			c.log.Debug("another replica is doing this work; waiting for it", "kind", w.Kind, "key", w.Key, "holder", holder)
			if c.done(ctx, w) {
				return false, nil
			}
		}
		t := time.NewTimer(c.poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("waiting for another replica's %s of %s: %w", w.Kind, w.Key, ctx.Err())
		}
		if c.done(ctx, w) {
			return false, nil
		}
	}
}

func (c *Claimer) done(ctx context.Context, w Work) bool { return w.Done != nil && w.Done(ctx) }

// run runs w while renewing its claim, then releases the claim (or, after
// success, keeps it for w.Linger).
func (c *Claimer) run(ctx context.Context, w Work) error {
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.renew(ctx, w, stop)
	}()
	err := w.Run(ctx)
	close(stop)
	<-renewed
	// The claim is given back even when ctx ended, so the others need not
	// wait out its TTL.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err == nil && w.Linger > 0 {
		_, rerr := c.st.Renew(rctx, w.Kind, w.Key, c.holder, w.Linger)
		if rerr != nil {
			c.log.Warn("extending the claim of finished work failed; it lapses by itself", "kind", w.Kind, "key", w.Key, "error", rerr)
		}
		return nil
	}
	c.release(rctx, w)
	return err
}

// release gives w's claim back.
func (c *Claimer) release(ctx context.Context, w Work) {
	if err := c.st.Release(ctx, w.Kind, w.Key, c.holder); err != nil {
		c.log.Warn("releasing a claim failed; it lapses by itself", "kind", w.Kind, "key", w.Key, "error", err)
	}
}

// renew renews w's claim every TTL/3 until stop is closed.
func (c *Claimer) renew(ctx context.Context, w Work, stop <-chan struct{}) {
	t := time.NewTicker(c.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := c.st.Renew(ctx, w.Kind, w.Key, c.holder, c.ttl)
		switch {
		case err != nil:
			c.log.Warn("renewing a claim failed; trying again", "kind", w.Kind, "key", w.Key, "error", err)
		case !ok:
			// Renewed too late: another replica may be doing the work
			// too. Finishing it costs less than abandoning it.
			c.log.Warn("lost a claim while working: its renewal came after it expired", "kind", w.Kind, "key", w.Key)
		}
	}
}

func (c *Claimer) count(kind, result string) { c.counts.WithLabelValues(kind, result).Inc() }
