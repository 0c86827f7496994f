package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/mirror"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/store"
)

// copyLedger records a command's copies (and, for serve, its admissions)
// in the store the configuration names.
type copyLedger struct {
	st        store.Store
	w         *store.Writer
	platforms []string
	log       *slog.Logger
}

// openCopyLedger opens the ledger of a CLI command, or returns nil without
// a store section: CLI commands record only when the config has one.
func openCopyLedger(ctx context.Context, cfg *config.Config, log *slog.Logger) (*copyLedger, error) {
	if cfg.Store == nil {
		return nil, nil
	}
	return openLedger(ctx, cfg, log, store.WriterOptions{Logger: log})
}

// openLedger opens the store the configuration names (SQLite at its
// default path without a store section) and its batch writer.
func openLedger(ctx context.Context, cfg *config.Config, log *slog.Logger, opts store.WriterOptions) (*copyLedger, error) {
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("opening the ledger: %w", err)
	}
	return &copyLedger{st: st, w: store.NewWriter(st, opts), platforms: cfg.Mirroring.Platforms, log: log}, nil
}

// onCopy is the mirror service's OnCopy hook; nil without a ledger.
func (l *copyLedger) onCopy() func(mirror.Event) {
	if l == nil {
		return nil
	}
	return func(ev mirror.Event) { l.recordCopy(ev.Source, ev.Target, ev.Result, ev.Err) }
}

// recordCopy records one finished copy: copied, present (nothing to
// write) or failed.
func (l *copyLedger) recordCopy(src, dst reference.Reference, res registry.CopyResult, err error) {
	r := store.CopyRecord{Time: time.Now(), Source: src.String(), Target: dst.String(), Platforms: l.platforms,
		Digest: res.Digest, Bytes: res.Bytes, Duration: res.Duration}
	switch {
	case err != nil:
		r.Result, r.Error = "failed", err.Error()
	case res.Copied:
		r.Result = "copied"
	default:
		r.Result = "present"
	}
	l.w.RecordCopy(r)
}

// close writes what is queued (for at most 10s) and closes the store.
func (l *copyLedger) close() {
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.w.Close(ctx); err != nil {
		l.log.Error("ledger records lost at shutdown: the store did not take them within 10s", "error", err)
	}
	if err := l.st.Close(); err != nil {
		l.log.Warn("closing the ledger", "error", err)
	}
}
