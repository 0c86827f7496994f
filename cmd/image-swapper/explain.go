package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/policyapi"
	"github.com/image-swapper/image-swapper/internal/rules"
)

func newExplainCommand() *cobra.Command {
	var (
		flags        engineFlags
		scanFlags    scanGateFlags
		policies     policyFlags
		output       string
		kind, name   string
		objectLabels []string
	)
	cmd := &cobra.Command{
		Use:   "explain --config FILE [--namespace N] IMAGE...",
		Short: "Say what happens to each image, and why",
		Long: `explain prints, for each image, its normalised form, the action (swap, keep
or deny), the final reference and the rule that decided, with the reasons.
With -o json it prints one JSON object per image and line, with the keys
image, normalized, action, target, rule and reasons.

With --policy FILE (offline) or --cluster-policies (from the Kubernetes
API), the ClusterImagePolicies and the ImagePolicies of --namespace are
merged with the configuration as the webhook merges them, and each image
also gets the policy object that decided (key policy in JSON); see
docs/policies.md.`,
		Example: `  image-swapper explain --config examples/config.yaml nginx quay.io/prometheus/prometheus:v3.1.0
  image-swapper explain --config examples/config.yaml -n payments --namespace-label team=payments -o json nginx
  image-swapper explain --config examples/config.yaml -n payments --policy examples/policies.yaml busybox`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, images []string) error {
			if output != "text" && output != "json" {
				return trouble(fmt.Errorf("--output %q: want text or json", output))
			}
			e, nsLabels, err := flags.load()
			if err != nil {
				return err
			}
			merged, err := policies.namespace(cmd.Context(), e, flags.namespace, cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if merged != nil {
				e = merged.Engine
			}
			objLabels, err := parseLabels("--label", objectLabels)
			if err != nil {
				return err
			}
			ctx := rules.Context{
				Namespace:       flags.namespace,
				NamespaceLabels: nsLabels,
				// As at admission: the object is the Pod, the workload
				// what --kind and --name say owns it.
				Object:   rules.Object{Kind: "Pod", Labels: objLabels},
				Workload: rules.Workload{Kind: kind, Name: name},
			}
			if kind == "Pod" {
				ctx.Object.Name = name
			}
			gate, err := openScanGate(cmd.Context(), e, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer gate.close()
			decisions := make([]engine.Decision, len(images))
			scanCtx, cancel := context.WithTimeout(cmd.Context(), scanFlags.timeout)
			defer cancel()
			var wg sync.WaitGroup
			for i, image := range images {
				s := engine.Subject{Image: image, Context: ctx}
				decisions[i] = e.Decide(s)
				wg.Go(func() { e.Scan(scanCtx, &decisions[i], s, gate.scans()) })
			}
			wg.Wait()
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			for _, d := range decisions {
				if output == "json" {
					var err error
					if merged != nil {
						err = enc.Encode(policyDecision{Decision: d, Policy: decidedBy(d)})
					} else {
						err = enc.Encode(d)
					}
					if err != nil {
						return err
					}
					continue
				}
				printDecision(out, d)
				if merged != nil {
					printPolicy(out, d, merged)
				}
			}
			return nil
		},
	}
	flags.register(cmd)
	scanFlags.register(cmd)
	policies.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&kind, "kind", "Pod", "kind of the workload holding the image (workload.kind in conditions; Pod for a bare Pod)")
	cmd.Flags().StringVar(&name, "name", "", "name of the workload holding the image (workload.name in conditions)")
	cmd.Flags().StringArrayVarP(&objectLabels, "label", "l", nil, "label KEY=VALUE of the Pod, for object selectors and the opt-out label (repeatable)")
	return cmd
}

func printDecision(w io.Writer, d engine.Decision) {
	fmt.Fprintf(w, "%s\n", d.Image)
	fmt.Fprintf(w, "  normalized: %s\n", orNone(d.Normalized))
	fmt.Fprintf(w, "  action:     %s\n", d.Action)
	fmt.Fprintf(w, "  target:     %s\n", orNone(d.Target))
	fmt.Fprintf(w, "  rule:       %s\n", orNone(d.Rule))
	fmt.Fprintf(w, "  reasons:\n")
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "    - %s\n", r)
	}
}

// policyDecision is a decision with the policy object that decided, for
// explain -o json.
type policyDecision struct {
	engine.Decision
	Policy string `json:"policy"`
}

// printPolicy says which policy object decided d, and what the
// namespace's ImagePolicies changed of how it was decided.
func printPolicy(w io.Writer, d engine.Decision, n *policyapi.Namespace) {
	fmt.Fprintf(w, "  policy:     %s\n", decidedBy(d))
	if n.ModeFrom != "" {
		fmt.Fprintf(w, "  mode:       at least %s in namespace %s (%s)\n", n.Mode, n.Name, n.ModeFrom)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
