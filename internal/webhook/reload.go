package webhook

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
)

// configWatcher holds the engine compiled from the configuration file and
// replaces it when the file's content changes. Kubernetes updates a
// mounted ConfigMap by swapping a symlink, which a content hash sees
// whatever happens to timestamps.
type configWatcher struct {
	path     string
	opts     []engine.Option
	interval time.Duration
	log      *slog.Logger
	metrics  *Metrics
	// bound is the configuration the mirror service was built from, nil
	// without a mirror; a new configuration that differs from it in
	// startOnlyKeys is refused.
	bound *config.Config
	// onReload, when set, is told of a new configuration before it is
	// put in force; an error rejects it (the vulnerability scanner's
	// reload).
	onReload func(*config.Config) error

	current atomic.Pointer[engine.Engine]
	// sum is the hash of the content last read, good or bad; lastErr the
	// last read error. Only Run touches them after construction.
	sum     [sha256.Size]byte
	lastErr string
}

// newConfigWatcher loads the file once; a problem is an error naming the
// file, the line and the key path.
// With a mirror (mirrored), bound is the configuration the mirror was built
// from, or nil for the file's.
func newConfigWatcher(path string, interval time.Duration, log *slog.Logger, metrics *Metrics, mirrored bool, bound *config.Config, opts ...engine.Option) (*configWatcher, error) {
	w := &configWatcher{path: path, opts: opts, interval: interval, log: log, metrics: metrics}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	e, err := w.compile(data)
	if err != nil {
		return nil, err
	}
	if mirrored {
		if bound == nil {
			bound = e.Config()
		}
		w.bound = bound
		if err := w.checkBound(e.Config()); err != nil {
			// The file changed between the two reads at start.
			return nil, err
		}
	}
	w.sum = sha256.Sum256(data)
	w.current.Store(e)
	metrics.configReloadOK.Set(1)
	return w, nil
}

// Engine returns the engine of the last good configuration.
func (w *configWatcher) Engine() *engine.Engine { return w.current.Load() }

func (w *configWatcher) compile(data []byte) (*engine.Engine, error) {
	cfg, err := config.Parse(w.path, data)
	if err != nil {
		return nil, err
	}
	e, err := engine.New(cfg, w.opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", w.path, err)
	}
	return e, nil
}

// Run checks the file every interval until ctx ends.
func (w *configWatcher) Run(ctx context.Context) { every(ctx, w.interval, w.check) }

// every calls check at each interval until ctx ends: how files are watched
// (polling sees ConfigMap and Secret volume updates, which replace a
// symlink, as reliably as inotify would and needs no extra dependency).
func every(ctx context.Context, interval time.Duration, check func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// check reloads the configuration when the file's content changed. A bad
// configuration is reported once per content, and the last good one stays.
func (w *configWatcher) check() {
	data, err := os.ReadFile(w.path)
	if err != nil {
		if msg := err.Error(); msg != w.lastErr {
			w.lastErr = msg
			w.log.Warn("config file cannot be read; keeping the configuration in use", "error", err)
		}
		return
	}
	w.lastErr = ""
	sum := sha256.Sum256(data)
	if sum == w.sum {
		return
	}
	w.sum = sum
	e, err := w.compile(data)
	if err == nil {
		err = w.checkBound(e.Config())
	}
	if err == nil && w.onReload != nil {
		if err = w.onReload(e.Config()); err != nil {
			err = fmt.Errorf("%s: %w", w.path, err)
		}
	}
	if err != nil {
		w.metrics.configReloads.WithLabelValues("failure").Inc()
		w.metrics.configReloadOK.Set(0)
		w.log.Error("new configuration rejected; keeping the last good configuration", "config", w.path, "error", err)
		return
	}
	w.current.Store(e)
	w.metrics.configReloads.WithLabelValues("success").Inc()
	w.metrics.configReloadOK.Set(1)
	w.log.Info("configuration reloaded", "config", w.path, "sha256", fmt.Sprintf("%x", sum[:8]))
}

// checkBound refuses a configuration that changes what the mirror service
// was built from: applying the rest of it would half-apply it (rules
// swapping to a new target while the ECR or Artifact Registry provider
// still creates repositories in the old one, say).
func (w *configWatcher) checkBound(next *config.Config) error {
	if w.bound == nil {
		return nil
	}
	if keys := startOnlyChanges(w.bound, next); len(keys) > 0 {
		return fmt.Errorf("%s: %s changed, but the mirror service keeps what it was started with; restart the server (roll it out) to apply them", w.path, strings.Join(keys, ", "))
	}
	return nil
}

// startOnlyChanges lists the keys, in schema order, whose values differ
// between old and next among those the mirror service reads only when it
// is built: how registries are reached and how copies are made.
// targetRegistry counts only with a targetProvider, the one part of
// registry access bound to the target host; without one, a new target is
// reached like any other host.
func startOnlyChanges(old, next *config.Config) []string {
	var keys []string
	changed := func(key string, differ bool) {
		if differ {
			keys = append(keys, key)
		}
	}
	provider := old.TargetProvider != nil || next.TargetProvider != nil
	changed("targetRegistry", provider && old.TargetRegistry != next.TargetRegistry)
	om, nm := old.Mirroring, next.Mirroring
	changed("mirroring.platforms", !slices.Equal(om.Platforms, nm.Platforms))
	changed("mirroring.copySignatures", om.CopySignatures != nm.CopySignatures)
	changed("mirroring.overwrite", om.Overwrite != nm.Overwrite)
	changed("mirroring.concurrency", concurrency(om) != concurrency(nm))
	op, on := old.PresenceTTLs()
	np, nn := next.PresenceTTLs()
	changed("mirroring.presenceCache", op != np || on != nn)
	changed("registries", (len(old.Registries) > 0 || len(next.Registries) > 0) && !reflect.DeepEqual(old.Registries, next.Registries))
	changed("targetProvider", !reflect.DeepEqual(old.TargetProvider, next.TargetProvider))
	return keys
}

// concurrency is mirroring.concurrency with its default.
func concurrency(m config.Mirroring) int {
	if m.Concurrency == 0 {
		return config.DefaultConcurrency
	}
	return m.Concurrency
}
