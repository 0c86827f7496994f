package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/manifest"
)

func newRewriteCommand() *cobra.Command {
	var (
		flags   engineFlags
		file    string
		verbose bool
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

Exit status: 0 written, 1 an image is denied, 2 bad flags, config or input.`,
		Example: `  image-swapper rewrite --config examples/config.yaml -f examples/manifests.yaml
  helm template my-release ./chart | image-swapper rewrite --config config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := flags.engine()
			if err != nil {
				return err
			}
			nsLabels, err := flags.labels()
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
			_, err = cmd.OutOrStdout().Write(res.Output)
			return err
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVarP(&file, "filename", "f", "-", `manifest file to read, or "-" for stdin`)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every decision and audit verdict on stderr")
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
