package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

func newScanCommand() *cobra.Command {
	var (
		configPath string
		reportPath string
		output     string
	)
	cmd := &cobra.Command{
		Use:   "scan --config FILE [--report FILE] [-o table|json] IMAGE...",
		Short: "Judge images against the vulnerability gate (security.scanning)",
		Long: `scan runs the configured scanner (security.scanning.command, Trivy or Grype
JSON) on each image by digest and prints the gate's verdict: pass or fail
under failOnCritical, severity, maxCVSS and ignoreUnfixed, after the ignore
entries and VEX documents. An image without a digest is resolved through
the registry (the config's registries section says how to reach it).

With --report, an existing Trivy or Grype JSON report is imported as the
scan of the single IMAGE given; with IMAGE@sha256:... no registry is asked.

Ignore entries restricted to namespaces do not apply here (scan judges no
namespace). Ignore entries that matched no finding are listed on stderr.

Exit status: 0 every image passes, 1 any image fails, 2 bad flags, config
or input, or a scan that could not run (verdict error).`,
		Example: `  image-swapper scan --config config.yaml nginx:1.27
  trivy image --format json -o report.json registry.example.com/app@sha256:...
  image-swapper scan --config config.yaml --report report.json registry.example.com/app@sha256:... -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return trouble(fmt.Errorf("-o %q: want table or json", output))
			}
			if reportPath != "" && len(args) != 1 {
				return trouble(fmt.Errorf("--report is the scan of one image, but %d images were given", len(args)))
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return trouble(err)
			}
			s := cfg.Security.Scanning
			policy, err := scan.NewPolicy(s)
			if err != nil {
				return trouble(fmt.Errorf("%s: %w", configPath, err))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sc := &scanCLI{cfg: cfg, policy: policy, stderr: cmd.ErrOrStderr()}
			ledger, err := openCopyLedger(ctx, cfg, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				return trouble(fmt.Errorf("%s: store: %w", configPath, err))
			}
			if ledger != nil {
				defer ledger.close()
				sc.ledger = ledger.w
			}
			var results []scanOutcome
			if reportPath != "" {
				res, err := sc.imported(ctx, args[0], reportPath)
				if err != nil {
					return trouble(err)
				}
				results = append(results, res)
			} else {
				if s.Provider == "" && len(s.Command) == 0 {
					return trouble(fmt.Errorf("%s: security.scanning.provider is not set, so no scanner command is known; set it, or give --report", configPath))
				}
				results, err = sc.scanned(ctx, args)
				if err != nil {
					return trouble(err)
				}
			}
			return sc.print(cmd.OutOrStdout(), output, results)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "configuration file (required)")
	cmd.Flags().StringVar(&reportPath, "report", "", "import this Trivy or Grype JSON report as the scan of the one IMAGE given")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

type scanCLI struct {
	cfg    *config.Config
	policy *scan.Policy
	stderr io.Writer
	client *registry.Client
	// ledger records the scans, with a store section; nil otherwise.
	ledger vulngate.ScanRecorder
}

// scanOutcome is one image's verdict.
type scanOutcome struct {
	image   string // as given
	ref     reference.Reference
	verdict scan.Verdict
}

// parseImage normalises an argument.
func parseImage(arg string) (reference.Reference, error) {
	ref, err := reference.Parse(arg)
	if err != nil {
		return reference.Reference{}, err
	}
	return ref, nil
}

// resolve gives ref its digest, asking the registry only when it has none.
func (c *scanCLI) resolve(ctx context.Context, ref reference.Reference) (reference.Reference, error) {
	if ref.Digest != "" {
		return ref, nil
	}
	client, err := c.registry()
	if err != nil {
		return ref, err
	}
	d, err := client.Resolve(ctx, ref)
	if err != nil {
		return ref, err
	}
	ref.Digest = d.Digest
	return ref, nil
}

// imported judges an existing report as the scan of image.
func (c *scanCLI) imported(ctx context.Context, image, reportPath string) (scanOutcome, error) {
	ref, err := parseImage(image)
	if err != nil {
		return scanOutcome{}, err
	}
	rep, err := scan.ReadFile(reportPath)
	if err != nil {
		return scanOutcome{}, err
	}
	if ref.Digest == "" {
		resolved, err := c.resolve(ctx, ref)
		switch {
		case err == nil:
			ref = resolved
		case rep.Digest != "":
			fmt.Fprintf(c.stderr, "warning: could not resolve %s (%v); using the digest the report names, %s\n", image, err, rep.Digest)
			ref.Digest = rep.Digest
		default:
			return scanOutcome{}, fmt.Errorf("resolving %s: %w; give the image as IMAGE@sha256:... to import the report without asking the registry", image, err)
		}
	}
	if c.ledger != nil {
		c.ledger.RecordScan(vulngate.Record(ref.String(), ref.Digest, ref.Digest, rep, time.Now()))
	}
	return scanOutcome{image: image, ref: ref, verdict: c.judge(ref, rep)}, nil
}

// scanned runs the scanner on each image, several at once
// (security.scanning.concurrency): each platform of an index that
// security.scanning.platforms names, by its manifest digest, each digest
// once, as admission does. With a store section, each scan is recorded.
func (c *scanCLI) scanned(ctx context.Context, images []string) ([]scanOutcome, error) {
	out := make([]scanOutcome, len(images))
	for i, image := range images {
		ref, err := parseImage(image)
		if err != nil {
			return nil, err
		}
		out[i] = scanOutcome{image: image, ref: ref}
	}
	client, err := c.registry()
	if err != nil {
		return nil, err
	}
	// No store: the scan command always scans afresh; what it finds is
	// recorded through the ledger.
	gate, err := vulngate.New(vulngate.Options{Scanning: c.cfg.Security.Scanning, Registry: client, Ledger: c.ledger, Retries: -1})
	if err != nil {
		return nil, err
	}
	defer gate.Close()
	var wg sync.WaitGroup
	for i := range out {
		if c.policy.Skip(out[i].ref) {
			out[i].verdict = scan.Verdict{Result: scan.ResultPass}
			fmt.Fprintf(c.stderr, "%s: skipped (security.scanning.skipImages)\n", out[i].image)
			continue
		}
		wg.Go(func() {
			found := gate.Lookup(ctx, out[i].ref, nil)
			out[i].ref = found.Ref
			out[i].verdict = c.policy.Judge(found, "", time.Now())
		})
	}
	wg.Wait()
	return out, nil
}

// registry is the registry client, made on first use.
func (c *scanCLI) registry() (*registry.Client, error) {
	if c.client == nil {
		client, err := registry.New(c.cfg)
		if err != nil {
			return nil, err
		}
		c.client = client
	}
	return c.client, nil
}

func (c *scanCLI) judge(ref reference.Reference, rep *scan.Report) scan.Verdict {
	return c.policy.Verdict(rep.Findings, ref, "", time.Now())
}

// The -o json form, a public contract: keys as documented in docs.
type (
	scanJSON struct {
		Image   string            `json:"image"`
		Digest  string            `json:"digest"`
		Verdict scan.Result       `json:"verdict"`
		Counts  scan.Counts       `json:"counts"`
		Failing []scanFailingJSON `json:"failing"`
		Ignored []scanIgnoredJSON `json:"ignored"`
	}
	scanFailingJSON struct {
		ID        string   `json:"id"`
		Severity  string   `json:"severity"`
		CVSS      *float64 `json:"cvss"`
		Package   string   `json:"package"`
		Installed string   `json:"installed"`
		Fixed     string   `json:"fixed"`
		Reason    string   `json:"reason"`
	}
	scanIgnoredJSON struct {
		ID      string  `json:"id"`
		By      string  `json:"by"`
		Expires *string `json:"expires"`
	}
)

func toJSON(o scanOutcome) scanJSON {
	j := scanJSON{Image: o.image, Digest: o.ref.Digest, Verdict: o.verdict.Result, Counts: o.verdict.Counts,
		Failing: []scanFailingJSON{}, Ignored: []scanIgnoredJSON{}}
	for _, f := range o.verdict.Failing {
		fj := scanFailingJSON{ID: f.ID, Severity: f.Severity.String(), Package: f.Package, Installed: f.Installed, Fixed: f.Fixed, Reason: f.Reason}
		if f.HasCVSS {
			fj.CVSS = &f.CVSS
		}
		j.Failing = append(j.Failing, fj)
	}
	for _, ig := range o.verdict.Ignored {
		ij := scanIgnoredJSON{ID: ig.ID, By: ig.By}
		if !ig.Expires.IsZero() {
			// Expires is the instant after the entry's last day.
			d := ig.Expires.Add(-time.Nanosecond).UTC().Format(config.IgnoreDateLayout)
			ij.Expires = &d
		}
		j.Ignored = append(j.Ignored, ij)
	}
	return j
}

// print writes the verdicts and the unused ignore entries, and returns
// the exit status: 1 when any image fails, 2 when any scan errored.
func (c *scanCLI) print(w io.Writer, format string, results []scanOutcome) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		for _, r := range results {
			if err := enc.Encode(toJSON(r)); err != nil {
				return err
			}
		}
	} else {
		printScanTable(w, results)
	}
	verdicts := make([]scan.Verdict, len(results))
	var failed, errored []string
	for i, r := range results {
		verdicts[i] = r.verdict
		switch r.verdict.Result {
		case scan.ResultFail:
			failed = append(failed, fmt.Sprintf("%s (%d failing)", r.image, len(r.verdict.Failing)))
		case scan.ResultError:
			errored = append(errored, fmt.Sprintf("%s: %v", r.image, r.verdict.Err))
		}
	}
	for _, name := range c.policy.Unused(verdicts...) {
		fmt.Fprintf(c.stderr, "ignore entry %s matched no finding\n", name)
	}
	switch {
	case len(failed) > 0:
		msg := "vulnerability gate failed: " + strings.Join(failed, ", ")
		if len(errored) > 0 {
			msg += "; and could not scan: " + strings.Join(errored, "; ")
		}
		return &exitError{code: exitDenied, err: errors.New(msg)}
	case len(errored) > 0:
		return trouble(errors.New("could not scan: " + strings.Join(errored, "; ")))
	}
	return nil
}

func printScanTable(w io.Writer, results []scanOutcome) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tVERDICT\tCRITICAL\tHIGH\tMEDIUM\tLOW\tUNKNOWN")
	for _, r := range results {
		c := r.verdict.Counts
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", r.image, short(r.ref.Digest), r.verdict.Result, c.Critical, c.High, c.Medium, c.Low, c.Unknown)
	}
	tw.Flush()
	for _, r := range results {
		for _, f := range r.verdict.Failing {
			cvss := "-"
			if f.HasCVSS {
				cvss = fmt.Sprintf("%g", f.CVSS)
			}
			fixed := f.Fixed
			if fixed == "" {
				fixed = "no fix"
			}
			fmt.Fprintf(w, "%s: %s %s CVSS %s in %s %s (%s): %s\n", r.image, f.ID, f.Severity, cvss, f.Package, f.Installed, fixed, f.Reason)
		}
		for _, ig := range r.verdict.Ignored {
			fmt.Fprintf(w, "%s: %s in %s ignored by %s\n", r.image, ig.ID, ig.Package, ig.By)
		}
	}
}
