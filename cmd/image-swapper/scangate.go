package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

// scanGateFlags are the flags of the commands that apply the
// vulnerability gate as admission does (rewrite, explain).
type scanGateFlags struct {
	timeout time.Duration
}

func (f *scanGateFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.timeout, "scan-timeout", 5*time.Minute, "with security.scanning enabled, how long to wait for the scans of images without a verdict; then security.scanning.pending decides")
}

// scanGate is the vulnerability scanner of a CLI command, as serve runs
// it: with a store section, verdicts the store knows are reused and new
// scans recorded.
type scanGate struct {
	gate   *vulngate.Gate
	ledger *copyLedger
}

// openScanGate returns the scanner for e's configuration, or nil when
// security.scanning is not enabled.
func openScanGate(ctx context.Context, e *engine.Engine, stderr io.Writer) (*scanGate, error) {
	if !e.ScansEnabled() {
		return nil, nil
	}
	cfg := e.Config()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := registry.New(cfg)
	if err != nil {
		return nil, trouble(err)
	}
	ledger, err := openCopyLedger(ctx, cfg, log)
	if err != nil {
		return nil, trouble(fmt.Errorf("store: %w", err))
	}
	opts := vulngate.Options{Scanning: cfg.Security.Scanning, Registry: client, Logger: log}
	if ledger != nil {
		opts.Store, opts.Ledger = ledger.st, ledger.w
	}
	g, err := vulngate.New(opts)
	if err != nil {
		ledger.close()
		return nil, trouble(err)
	}
	return &scanGate{gate: g, ledger: ledger}, nil
}

// scans is the engine's view of the scanner; nil without one.
func (s *scanGate) scans() engine.Scans {
	if s == nil {
		return nil
	}
	return s.gate
}

// close stops the scans and flushes what they recorded.
func (s *scanGate) close() {
	if s == nil {
		return
	}
	s.gate.Close()
	s.ledger.close()
}
