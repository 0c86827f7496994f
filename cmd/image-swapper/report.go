package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/report"
	"github.com/image-swapper/image-swapper/internal/store"
)

func newReportCommand() *cobra.Command {
	var configPath, since, namespace, format, outPath string
	cmd := &cobra.Command{
		Use:   "report --config FILE [--since 30d] [--namespace GLOB] [-o table|json|csv|html|policyreport] [--output FILE]",
		Short: "Report the cluster's image security posture from the ledger",
		Long: `report reads the ledger the configuration's store section names and
reports, per image, where it ran, whether it is mirrored and scanned, and
its vulnerability verdict under the configuration's security.scanning
policy; per namespace, a summary; a trend by day; and the exceptions
(security.scanning.ignore), with those that expire within 14 days, have
expired, or match nothing.

The ledger is read as a stream and aggregated as it is read: the report
holds one summary per image, namespace and day, never the records.

-o json follows the schema in docs/reports.md; -o csv prints one row per
image and namespace; -o html writes one self-contained page (inline SVG
charts, tables that sort and filter, nothing loaded from the network);
-o policyreport prints one wgpolicyk8s.io/v1alpha2 PolicyReport per
namespace, as YAML. serve --report-listen serves the HTML page live.`,
		Example: `  image-swapper report --config config.yaml
  image-swapper report --config config.yaml --since 7d --namespace 'team-*' -o json | jq '.images[] | select(.scan.status == "fail") | .image'
  image-swapper report --config config.yaml --since 90d -o html --output report.html
  image-swapper report --config config.yaml -o policyreport | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(report.Formats, format) {
				return trouble(fmt.Errorf("-o %q: want one of %s", format, strings.Join(report.Formats, ", ")))
			}
			if configPath == "" {
				return trouble(fmt.Errorf("--config is required: the file whose store section names the ledger"))
			}
			window, err := parseSince(since)
			if err != nil {
				return trouble(err)
			}
			if namespace != "" {
				if _, err := glob.Compile(namespace); err != nil {
					return trouble(fmt.Errorf("--namespace: %w", err))
				}
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return trouble(err)
			}
			if os.Getenv("GOGC") == "" {
				// The report's aggregates are built once and then only
				// read: collecting at half the default's growth keeps the
				// peak memory a quarter lower (docs/performance.md) for no
				// measurable time.
				debug.SetGCPercent(reportGCPercent)
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Store)
			if err != nil {
				return trouble(err)
			}
			defer st.Close()
			now := time.Now()
			opts := report.Options{Namespace: namespace, Scanning: cfg.Security.Scanning, Now: now}
			if window > 0 {
				opts.Since = now.Add(-window)
			}
			r, err := report.Build(ctx, st, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", configPath, err)
			}
			return writeReport(cmd.OutOrStdout(), outPath, r, format)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "configuration file (its store section names the ledger)")
	cmd.Flags().StringVar(&since, "since", "", "only admissions newer than this (30d, 12h, 90m); default all")
	cmd.Flags().StringVar(&namespace, "namespace", "", "only namespaces matching this wildcard")
	cmd.Flags().StringVarP(&format, "format", "o", "table", "output format: "+strings.Join(report.Formats, ", "))
	cmd.Flags().StringVar(&outPath, "output", "", "write the report to this file instead of standard output")
	return cmd
}

// reportGCPercent is the report command's GOGC, unless GOGC is set.
const reportGCPercent = 50

// parseSince reads a --since window: what the configuration's windows
// take (30d, 36h, 1d12h: config.ParseRetention), or a fractional number of
// days (1.5d). "" is no window.
func parseSince(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := config.ParseRetention(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		// NaN and infinities fail the bounds.
		if n, ferr := strconv.ParseFloat(days, 64); ferr == nil && n > 0 && n <= maxSinceDays {
			d, err = time.Duration(n*float64(24*time.Hour)), nil
		}
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--since %q: want a positive duration such as 30d, 1.5d, 12h or 1d12h", s)
	}
	return d, nil
}

// maxSinceDays bounds a --since in days, as config.ParseRetention does.
const maxSinceDays = 100_000

// writeReport writes to path, replacing it only once the report is
// whole, or to stdout when path is "". A path that is not a regular file
// (/dev/null, a FIFO, /dev/stdout) is written to, not replaced.
func writeReport(stdout io.Writer, path string, r *report.Report, format string) error {
	if path == "" {
		return report.Write(stdout, r, format)
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return trouble(fmt.Errorf("--output: %w", err))
		}
		if err := report.Write(f, r, format); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".report-*")
	if err != nil {
		return trouble(fmt.Errorf("--output: %w", err))
	}
	defer os.Remove(f.Name())
	if err := report.Write(f, r, format); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
