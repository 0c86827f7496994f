package webhook

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
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

	current atomic.Pointer[engine.Engine]
	// sum is the hash of the content last read, good or bad; lastErr the
	// last read error. Only Run touches them after construction.
	sum     [sha256.Size]byte
	lastErr string
}

// newConfigWatcher loads the file once; a problem is an error naming the
// file, the line and the key path.
func newConfigWatcher(path string, interval time.Duration, log *slog.Logger, metrics *Metrics, opts ...engine.Option) (*configWatcher, error) {
	w := &configWatcher{path: path, opts: opts, interval: interval, log: log, metrics: metrics}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	e, err := w.compile(data)
	if err != nil {
		return nil, err
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
