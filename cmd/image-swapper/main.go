// Command image-swapper keeps a Kubernetes cluster's images in registries
// its owners control: it swaps image references to their mirror, in
// manifests (rewrite, a Helm post-renderer) and at admission.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit codes. 1 means the tool did its job and the answer is "no" (an image
// is denied); 2 means it could not do its job (bad flags, config or input).
const (
	exitDenied  = 1
	exitTrouble = 2
)

// trouble marks err as a usage, config or input problem.
func trouble(err error) error { return &exitError{code: exitTrouble, err: err} }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "image-swapper",
		Short: "Keep a cluster's container images in registries you control",
		Long: `image-swapper rewrites container image references to their mirrored
location, copies images into the mirror, and gates them with allow and deny
lists. The same engine runs as an admission webhook and over manifests, so a
decision made in CI and one made at admission are the same decision.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRewriteCommand(),
		newExplainCommand(),
		newMirrorCommand(),
		newScanCommand(),
		newAuditCommand(),
		newReportCommand(),
		newSyncCommand(),
		newImportCommand(),
		newVersionCommand(),
		newServeCommand(),
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return trouble(err) })
	return root
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "image-swapper:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitTrouble
}
