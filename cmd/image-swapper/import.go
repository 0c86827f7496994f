package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/config/importer"
)

func newImportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Translate another tool's configuration into image-swapper's",
		Long: `import reads the configuration of another image-swapping tool and prints the
equivalent image-swapper configuration on stdout. Every line or option that
does not translate exactly is printed on stderr, with why.`,
	}
	cmd.AddCommand(
		importSubcommand("imageswap MAPS_FILE", "Translate an ImageSwap MAPS file", importer.ImageSwap),
		importSubcommand("k8s-image-swapper CONFIG", "Translate a k8s-image-swapper config file", importer.K8sImageSwapper),
	)
	return cmd
}

type importFunc func([]byte) (*config.Config, []importer.Finding, error)

func importSubcommand(use, short string, translate importFunc) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return trouble(err)
			}
			cfg, findings, err := translate(data)
			if err != nil {
				return trouble(fmt.Errorf("%s: %w", args[0], err))
			}
			out, err := config.Marshal(cfg)
			if err != nil {
				return err
			}
			for _, f := range findings {
				fmt.Fprintln(cmd.ErrOrStderr(), f)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}
