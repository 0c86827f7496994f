package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/manifest"
)

func newRewriteCommand() *cobra.Command {
	var (
		flags     engineFlags
		scanFlags scanGateFlags
		reg       registryFlags
		file      string
		verbose   bool
	)
	cmd := &cobra.Command{
		Use:   "rewrite --config FILE [-f FILE|-]",
		Short: "Swap the images in a stream of Kubernetes manifests",
		Long: `rewrite reads a YAML stream of Kubernetes manifests, swaps every image the
configuration says to swap, and writes the stream back. Documents without a
change come out byte for byte; changed documents differ only in the image
values. If any image is denied (in enforce mode) nothing is written to
stdout, each denial is printed on stderr with its document, container, image
and rule, and the exit status is 1. Warnings (warn mode) go to stderr.

It reads stdin when -f is absent or "-", so it works as a Helm 3
post-renderer; deploy/helm-plugin is the Helm 4 plugin.

With registry flags it also makes sure the result can run: --copy mirrors
what it swaps, --check fails when an image (swapped or kept) does not exist,
--pin-digest writes target@sha256:... of what is in the mirror, and
--write-mappings records original -> target@digest in a JSON file that a
later --mappings run reuses, reporting upstream tags that moved. A failure
there writes nothing and exits 1.

Exit status: 0 written, 1 an image is denied, 2 bad flags, config or input.`,
		Example: `  image-swapper rewrite --config examples/config.yaml -f examples/manifests.yaml
  helm template my-release ./chart | image-swapper rewrite --config config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, nsLabels, err := flags.load()
			if err != nil {
				return err
			}
			in, err := readInput(cmd.InOrStdin(), file)
			if err != nil {
				return trouble(err)
			}
			rw, err := manifest.NewRewriter(e, manifest.Options{
				Namespace:       flags.namespace,
				NamespaceLabels: nsLabels,
			})
			if err != nil {
				return trouble(fmt.Errorf("%s: %w", flags.configPath, err))
			}
			res, err := rw.Rewrite(in)
			if err != nil {
				return trouble(fmt.Errorf("%s: %w", inputName(file), err))
			}
			gate, err := openScanGate(cmd.Context(), e, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer gate.close()
			scanCtx, cancel := context.WithTimeout(cmd.Context(), scanFlags.timeout)
			rw.Scan(scanCtx, &res, gate.scans())
			cancel()
			stderr := cmd.ErrOrStderr()
			for _, f := range res.Findings {
				if f.Decision.Denied() {
					continue
				}
				for _, v := range f.Decision.Violations {
					if v.Mode == config.ModeWarn || verbose {
						fmt.Fprintf(stderr, "%s: %s: %s\n", v.Mode, f.Where(), v.Message)
					}
				}
				if verbose {
					fmt.Fprintf(stderr, "%s: %s\n", f.Where(), f.Decision.Summary())
				}
			}
			if denied := res.Denied(); len(denied) > 0 {
				var b strings.Builder
				fmt.Fprintf(&b, "%d image(s) denied, nothing written:", len(denied))
				for _, f := range denied {
					fmt.Fprintf(&b, "\n  %s: %s", f.Where(), strings.Join(f.Decision.Denials(), "; "))
				}
				return &exitError{code: exitDenied, err: fmt.Errorf("%s", b.String())}
			}
			if reg.needed() {
				if res, err = applyRegistries(cmd, e, res, in, reg, manifest.Options{Namespace: flags.namespace, NamespaceLabels: nsLabels}); err != nil {
					return err
				}
			}
			_, err = cmd.OutOrStdout().Write(res.Output)
			return err
		},
	}
	flags.register(cmd)
	scanFlags.register(cmd)
	cmd.Flags().StringVarP(&file, "filename", "f", "-", `manifest file to read, or "-" for stdin`)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every decision and audit verdict on stderr")
	cmd.Flags().BoolVar(&reg.copy, "copy", false, "copy every swapped image into the target registry before writing")
	cmd.Flags().BoolVar(&reg.pinDigest, "pin-digest", false, "write swapped images as target@sha256:... of the mirrored image")
	cmd.Flags().BoolVar(&reg.check, "check", false, "fail when an image of the result does not exist")
	cmd.Flags().StringVar(&reg.writeMappings, "write-mappings", "", "write the original -> target@digest mappings to this JSON file")
	cmd.Flags().StringVar(&reg.mappings, "mappings", "", "use the mappings of this JSON file (from --write-mappings) for the images it lists")
	return cmd
}

func readInput(stdin io.Reader, file string) ([]byte, error) {
	if file == "-" || file == "" {
		var b bytes.Buffer
		if _, err := b.ReadFrom(stdin); err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b.Bytes(), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return data, nil
}

func inputName(file string) string {
	if file == "-" || file == "" {
		return "stdin"
	}
	return file
}

// applyRegistries runs the registry pass of rewrite and, when targets
// change (pinned digests, mappings), rewrites again with them.
func applyRegistries(cmd *cobra.Command, e *engine.Engine, res manifest.Result, in []byte, reg registryFlags, opts manifest.Options) (manifest.Result, error) {
	var prior *manifest.Lock
	if reg.mappings != "" {
		var err error
		if prior, err = manifest.ReadLock(reg.mappings); err != nil {
			return res, trouble(err)
		}
	}
	m, err := newMirroring(e.Config(), slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	if err != nil {
		return res, trouble(err)
	}
	defer m.Close()
	out, err := resolveRegistries(cmd.Context(), m, res, reg, prior)
	if err != nil {
		return res, trouble(err)
	}
	for _, w := range out.warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	if len(out.problems) > 0 {
		return res, &exitError{code: exitDenied, err: fmt.Errorf("%d image(s) failed, nothing written:\n  %s", len(out.problems), strings.Join(out.problems, "\n  "))}
	}
	if len(out.retarget) > 0 {
		opts.Retarget = out.retarget
		rw, err := manifest.NewRewriter(e, opts)
		if err != nil {
			return res, trouble(err)
		}
		if res, err = rw.Rewrite(in); err != nil {
			return res, trouble(err)
		}
	}
	if reg.writeMappings != "" {
		if err := out.lock.Write(reg.writeMappings); err != nil {
			return res, trouble(fmt.Errorf("writing mappings: %w", err))
		}
	}
	return res, nil
}
