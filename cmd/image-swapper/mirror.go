package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/manifest"
	"github.com/image-swapper/image-swapper/internal/mirror"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
)

func newMirrorCommand() *cobra.Command {
	var (
		flags         engineFlags
		listFile      string
		manifestsFile string
		dryRun        bool
	)
	cmd := &cobra.Command{
		Use:   "mirror --config FILE [IMAGE...] [-f images.txt] [--from-manifests FILE|-]",
		Short: "Pre-warm the mirror: copy every image that some namespace could swap",
		Long: `mirror copies each image the engine would swap into its target, in process:
a multi-arch index is copied whole, so the target digest equals the source
digest (checked after every copy); an image already present costs one HEAD
request; blobs the target has are not sent again. Images come from the
arguments, from a file of one image per line (-f, "#" starts a comment) and
from the images of a manifest stream (--from-manifests).

Without --namespace and --namespace-label, mirror pre-warms for the whole
cluster: it copies each image that some namespace could swap. Namespace
selectors, object selectors and CEL conditions (of mirroring and of rules)
are taken as met by some namespace rather than judged against an empty one;
an image that only a deny rule or the deny list would touch is not copied.
With --namespace or --namespace-label it decides for that namespace, as
rewrite and explain do.

On a terminal each image gets a progress bar; otherwise a line is printed as
each image finishes. A summary table ends the run. Registry endpoints and
credentials come from the config's registries section.

Exit status: 0 all copied or present, 1 any copy failed, 2 bad flags, config
or input.`,
		Example: `  image-swapper mirror --config config.yaml nginx:1.27 quay.io/prometheus/prometheus:v3.1.0
  helm template ./chart | image-swapper mirror --config config.yaml --from-manifests -
  image-swapper mirror --config config.yaml -f images.txt --dry-run`,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, nsLabels, err := flags.load()
			if err != nil {
				return err
			}
			jobs, skipped, err := collectCopyJobs(cmd.InOrStdin(), e, flags.namespace, nsLabels, args, listFile, manifestsFile)
			if err != nil {
				return trouble(err)
			}
			// The progress view and the mirror's log both write to stderr.
			out, errOut := cmd.OutOrStdout(), &lockedWriter{w: cmd.ErrOrStderr()}
			for _, s := range skipped {
				fmt.Fprintf(errOut, "skipped %s\n", s)
			}
			if len(jobs) == 0 {
				return trouble(errors.New("no image to mirror: give images as arguments, with -f or with --from-manifests"))
			}
			if dryRun {
				for _, j := range jobs {
					fmt.Fprintf(out, "would copy %s -> %s\n", j.source, j.target)
				}
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
			ledger, err := openCopyLedger(ctx, e.Config(), logger)
			if err != nil {
				return trouble(fmt.Errorf("%s: %w", flags.configPath, err))
			}
			// Deferred first so that it runs last, after m.Close has
			// reported every copy.
			defer ledger.close()
			m, err := newMirroring(e.Config(), logger, ledger.onCopy())
			if err != nil {
				return trouble(fmt.Errorf("%s: %w", flags.configPath, err))
			}
			defer m.Close()
			results := runCopies(ctx, m, jobs, newProgressView(errOut, isTerminal(cmd.ErrOrStderr())))
			printSummary(out, results)
			if failed := failures(results); len(failed) > 0 {
				var b strings.Builder
				fmt.Fprintf(&b, "%d of %d image(s) failed:", len(failed), len(results))
				for _, r := range failed {
					fmt.Fprintf(&b, "\n  %s: %v", r.source, r.err)
				}
				return &exitError{code: exitDenied, err: errors.New(b.String())}
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVarP(&listFile, "filename", "f", "", `file with one image per line, or "-" for stdin`)
	cmd.Flags().StringVar(&manifestsFile, "from-manifests", "", `mirror the images of this manifest stream, or "-" for stdin`)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be copied, copy nothing")
	return cmd
}

// copyJob is one source to copy to one target.
type copyJob struct {
	source, target reference.Reference
}

// collectCopyJobs gathers the images to mirror, decides on each, and
// returns the swaps (deduplicated by target) and what is skipped, with why.
func collectCopyJobs(stdin io.Reader, e *engine.Engine, namespace string, nsLabels map[string]string, args []string, listFile, manifestsFile string) ([]copyJob, []string, error) {
	if listFile == "-" && manifestsFile == "-" {
		return nil, nil, errors.New(`-f and --from-manifests cannot both read stdin ("-")`)
	}
	var decisions []engine.Decision
	images := slices.Clone(args)
	if listFile != "" {
		data, err := readInput(stdin, listFile)
		if err != nil {
			return nil, nil, err
		}
		images = append(images, imageList(data)...)
	}
	// Without a namespace, mirror pre-warms for all of them: it copies what
	// some namespace could swap (engine.Prewarm), rather than judging
	// namespace selectors against a namespace that does not exist.
	prewarm := namespace == "" && len(nsLabels) == 0
	decide := func(img string) []engine.Decision {
		s := engine.Subject{Image: img, Context: rules.Context{Namespace: namespace, NamespaceLabels: nsLabels, Object: rules.Object{Kind: "Pod"}}}
		if prewarm {
			return e.Prewarm(s)
		}
		return []engine.Decision{e.Decide(s)}
	}
	for _, img := range images {
		decisions = append(decisions, decide(img)...)
	}
	if manifestsFile != "" {
		data, err := readInput(stdin, manifestsFile)
		if err != nil {
			return nil, nil, err
		}
		rw, err := manifest.NewRewriter(e, manifest.Options{Namespace: namespace, NamespaceLabels: nsLabels})
		if err != nil {
			return nil, nil, err
		}
		res, err := rw.Rewrite(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", inputName(manifestsFile), err)
		}
		for _, f := range res.Findings {
			if prewarm {
				// The manifests name the images; which namespaces they
				// will run in, and those namespaces' labels, are unknown.
				decisions = append(decisions, decide(f.Decision.Image)...)
				continue
			}
			decisions = append(decisions, f.Decision)
		}
	}
	var jobs []copyJob
	var skipped []string
	seen := map[string]bool{}
	for _, d := range decisions {
		switch {
		case d.Action == config.ActionDeny:
			skipped = append(skipped, fmt.Sprintf("%s: denied: %s", d.Image, strings.Join(d.Denials(), "; ")))
			continue
		case d.Action != config.ActionSwap:
			skipped = append(skipped, fmt.Sprintf("%s: not swapped: %s", d.Image, d.LastReason()))
			continue
		case seen[d.Target]:
			continue
		}
		seen[d.Target] = true
		src, dst, err := d.References()
		if err != nil {
			return nil, nil, err
		}
		jobs = append(jobs, copyJob{source: src, target: dst})
	}
	return jobs, skipped, nil
}

// imageList reads one image per line; blank lines and "#" comments are
// skipped.
func imageList(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// copyOutcome is how one copy ended.
type copyOutcome struct {
	copyJob
	result   mirror.Result
	err      error
	duration time.Duration
}

func (o copyOutcome) status() string {
	switch {
	case o.err != nil:
		return "failed"
	case o.result.Copied:
		return "copied"
	}
	return "present"
}

// runCopies copies every job through the mirror service, which bounds how
// many run at once and retries transient failures.
func runCopies(ctx context.Context, m *mirroring, jobs []copyJob, view progressView) []copyOutcome {
	out := make([]copyOutcome, len(jobs))
	var wg sync.WaitGroup
	view.start(jobs)
	for i, j := range jobs {
		m.progress.Store(j.target.String(), view.updater(i))
		wg.Go(func() {
			begin := time.Now()
			res, err := m.service.Ensure(ctx, j.source, j.target)
			out[i] = copyOutcome{copyJob: j, result: res, err: err, duration: time.Since(begin)}
			view.finish(i, out[i])
		})
	}
	wg.Wait()
	view.stop()
	return out
}

func failures(results []copyOutcome) []copyOutcome {
	var out []copyOutcome
	for _, r := range results {
		if r.err != nil {
			out = append(out, r)
		}
	}
	return out
}

func printSummary(w io.Writer, results []copyOutcome) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTARGET\tRESULT\tBYTES\tTIME")
	var copied, present, failed int
	var bytes int64
	var total time.Duration
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.source, r.target, r.status(), humanBytes(r.result.Bytes), r.duration.Round(time.Millisecond))
		switch r.status() {
		case "copied":
			copied++
		case "present":
			present++
		default:
			failed++
		}
		bytes += r.result.Bytes
		total = max(total, r.duration)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d copied, %d already present, %d failed, %s sent, %s\n", copied, present, failed, humanBytes(bytes), total.Round(time.Millisecond))
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// isTerminal reports whether w is a terminal, for progress bars.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
