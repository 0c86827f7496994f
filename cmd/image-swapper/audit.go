package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/store"
)

func newAuditCommand() *cobra.Command {
	var (
		configPath, namespace, image, output string
		since                                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "audit --config FILE [--since 1h] [--namespace GLOB] [--image GLOB] [-o table|json]",
		Short: "List the admission decisions the ledger recorded, newest first",
		Long: `audit reads the ledger the configuration's store section names (SQLite
under $XDG_STATE_HOME/image-swapper by default) and lists its admission
records, newest first. With -o json it prints one JSON object per record, then
one {"gap": ...} object per run of records that were lost because the
writer's queue overflowed.`,
		Example: `  image-swapper audit --config config.yaml --since 24h --namespace 'team-*' --image 'docker.io/**'
  image-swapper audit --config config.yaml -o json | jq -r 'select(.action == "deny") | .image'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return trouble(fmt.Errorf("-o %q: want table or json", output))
			}
			if configPath == "" {
				return trouble(fmt.Errorf("--config is required: the file whose store section names the ledger"))
			}
			for flag, pat := range map[string]string{"--namespace": namespace, "--image": image} {
				if pat != "" {
					if _, err := glob.Compile(pat); err != nil {
						return trouble(fmt.Errorf("%s: %w", flag, err))
					}
				}
			}
			if since < 0 {
				return trouble(fmt.Errorf("--since %s: want a positive duration such as 1h", since))
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return trouble(err)
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Store)
			if err != nil {
				return trouble(err)
			}
			defer st.Close()
			q := store.Query{Namespace: namespace, Image: image}
			if since > 0 {
				q.Since = time.Now().Add(-since)
			}
			recs, err := st.Admissions(ctx, q)
			if err != nil {
				return err
			}
			gaps, err := st.Gaps(ctx, q.Since)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeAuditJSON(cmd.OutOrStdout(), recs, gaps)
			}
			return writeAuditTable(cmd.OutOrStdout(), recs, gaps)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "configuration file (its store section names the ledger)")
	cmd.Flags().DurationVar(&since, "since", 0, "only records newer than this (1h, 30m); default all")
	cmd.Flags().StringVar(&namespace, "namespace", "", "only namespaces matching this wildcard")
	cmd.Flags().StringVar(&image, "image", "", "only images (as written or normalised) matching this wildcard")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// auditRecord is the -o json form of an admission record: a public
// contract, so keys are only ever added.
type auditRecord struct {
	Time          time.Time         `json:"time"`
	UID           string            `json:"uid"`
	Operation     string            `json:"operation"`
	Endpoint      string            `json:"endpoint"`
	Namespace     string            `json:"namespace"`
	Pod           string            `json:"pod"`
	Owner         string            `json:"owner"`
	Container     string            `json:"container"`
	Image         string            `json:"image"`
	Normalized    string            `json:"normalized"`
	Action        string            `json:"action"`
	Target        string            `json:"target"`
	Digest        string            `json:"digest"`
	Rule          string            `json:"rule"`
	Violations    []store.Violation `json:"violations"`
	DryRun        bool              `json:"dryRun"`
	ContainerKind string            `json:"containerKind,omitempty"`
	User          string            `json:"user,omitempty"`
	Fallback      bool              `json:"fallback,omitempty"`
}

type auditGap struct {
	Gap struct {
		Count int64     `json:"count"`
		From  time.Time `json:"from"`
		To    time.Time `json:"to"`
	} `json:"gap"`
}

func owner(r *store.AdmissionRecord) string {
	if r.OwnerKind == "" && r.OwnerName == "" {
		return ""
	}
	return r.OwnerKind + "/" + r.OwnerName
}

func writeAuditJSON(w io.Writer, recs []store.AdmissionRecord, gaps []store.Gap) error {
	enc := json.NewEncoder(w)
	for i := range recs {
		r := &recs[i]
		v := r.Violations
		if v == nil {
			v = []store.Violation{}
		}
		if err := enc.Encode(auditRecord{
			Time: r.Time, UID: r.UID, Operation: r.Operation, Endpoint: r.Endpoint, Namespace: r.Namespace,
			Pod: r.Pod, Owner: owner(r), Container: r.Container, Image: r.Image, Normalized: r.Normalized,
			Action: r.Action, Target: r.Target, Digest: r.Digest, Rule: r.Rule, Violations: v, DryRun: r.DryRun,
			ContainerKind: r.ContainerKind, User: r.User, Fallback: r.Fallback,
		}); err != nil {
			return err
		}
	}
	for _, g := range gaps {
		var out auditGap
		out.Gap.Count, out.Gap.From, out.Gap.To = g.Count, g.From, g.To
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return nil
}

func writeAuditTable(w io.Writer, recs []store.AdmissionRecord, gaps []store.Gap) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tNAMESPACE\tPOD\tCONTAINER\tIMAGE\tACTION\tTARGET\tRULE")
	for i := range recs {
		r := &recs[i]
		action := r.Action
		if r.DryRun {
			action += " (dry run)"
		}
		if len(r.Violations) > 0 {
			var rules []string
			for _, v := range r.Violations {
				rules = append(rules, v.Rule+"/"+v.Mode)
			}
			action += " [" + strings.Join(rules, ", ") + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format(time.RFC3339), r.Namespace, r.Pod, r.Container, r.Image, action, r.Target, r.Rule)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range gaps {
		fmt.Fprintf(w, "GAP: %d records lost between %s and %s (the ledger queue was full)\n", g.Count, g.From.Format(time.RFC3339), g.To.Format(time.RFC3339))
	}
	return nil
}
