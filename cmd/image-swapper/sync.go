package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/tagsync"
)

func newSyncCommand() *cobra.Command {
	var (
		flags     engineFlags
		scanFlags scanGateFlags
		dryRun    bool
		output    string
	)
	cmd := &cobra.Command{
		Use:   "sync --config FILE [--dry-run] [-o table|json]",
		Short: "Bring mirrored tags up to date with their sources, once",
		Long: `sync runs one pass of the sync loop that serve runs every
mirroring.sync.interval: it reads from the ledger (the store section) each
mutable tag that admission swapped within mirroring.sync.window, resolves it
upstream and in the mirror, and when upstream has moved, follows it
(mirroring.sync.policy: follow, the default: copies the new digest; under
mirroring.pinDigest with the vulnerability gate on, it copies the digest
untagged and moves the tag only once the gate passes it) or reports the
drift (freeze). Nothing is ever deleted.

It prints one line per tag: current, moved, would-move (--dry-run), drift,
held or failed. Exit status: 0 done, 2 bad flags or config, a ledger that
cannot be read, or a tag that failed.`,
		Example: `  image-swapper sync --config config.yaml --dry-run
  image-swapper sync --config config.yaml -o json | jq -r 'select(.outcome == "moved") | .target'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return trouble(fmt.Errorf("-o %q: want table or json", output))
			}
			e, err := flags.engine()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg := e.Config()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			ledger, err := openLedger(ctx, cfg, log, store.WriterOptions{Logger: log})
			if err != nil {
				return trouble(err)
			}
			defer ledger.close()
			client, err := registry.New(cfg)
			if err != nil {
				return trouble(err)
			}
			gate, err := openScanGate(ctx, e, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer gate.close()
			tags, err := tagsync.Pass(ctx, syncOptions(e, ledger, client, gate.scans(), log, dryRun, scanFlags.timeout))
			if err != nil {
				return trouble(err)
			}
			if err := printSync(cmd.OutOrStdout(), output, tags); err != nil {
				return err
			}
			for _, t := range tags {
				if t.Outcome == tagsync.Failed {
					return trouble(fmt.Errorf("sync of %s failed: %s", t.Target, t.Detail))
				}
			}
			return nil
		},
	}
	flags.register(cmd)
	scanFlags.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would move; copy nothing")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// syncOptions are the options of a sync pass for e's configuration, with
// its copies recorded in the ledger.
func syncOptions(e *engine.Engine, ledger *copyLedger, client *registry.Client, scans engine.Scans, log *slog.Logger, dryRun bool, scanTimeout time.Duration) tagsync.Options {
	return tagsync.Options{
		Engine: e, Ledger: ledger.st, Registry: client, Scans: scans, DryRun: dryRun, ScanTimeout: scanTimeout, Logger: log,
		OnCopy: ledger.recordCopy,
	}
}

func printSync(w io.Writer, format string, tags []tagsync.Tag) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, t := range tags {
			if err := enc.Encode(t); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tTARGET\tMIRRORED\tUPSTREAM\tDETAIL")
	for _, t := range tags {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Outcome, t.Target, short(t.Mirrored), short(t.Upstream), t.Detail)
	}
	return tw.Flush()
}

// short is a digest as docker prints image ids: sha256: and 12 hex.
func short(digest string) string {
	if digest == "" {
		return "-"
	}
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

// newSyncLoop is serve's sync loop (background.go): a pass every
// mirroring.sync.interval, kept in the store (tagsync.Loop), with the
// engine in force at each pass (serve's, as reloaded), its copies recorded
// in the ledger.
func newSyncLoop(current func() *engine.Engine, ledger *copyLedger, client *registry.Client, scans engine.Scans, log *slog.Logger, reg prometheus.Registerer) func(context.Context) {
	metrics := tagsync.NewMetrics(reg)
	options := func() tagsync.Options {
		o := syncOptions(current(), ledger, client, scans, log, false, 0)
		o.Metrics = metrics
		// The interval holds across Lease terms, replicas and restarts.
		if ledger != nil && ledger.st != nil {
			o.Schedule = ledger.st
		}
		return o
	}
	return func(ctx context.Context) { tagsync.Loop(ctx, options) }
}
