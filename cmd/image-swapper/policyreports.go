package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/report"
	"github.com/image-swapper/image-swapper/internal/store"
)

// policyReportFlags are serve's flags for keeping PolicyReports current.
type policyReportFlags struct {
	enabled  bool
	interval time.Duration
	since    string
	lease    string
	// applied, when set, hears of each pass of this replica (tests).
	applied func(report.Applied, error)
}

func (f *policyReportFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.enabled, "policy-reports", false, "keep one wgpolicyk8s.io/v1alpha2 PolicyReport per namespace current in the cluster, "+
		"from the ledger, on the replica that holds the leader Lease (--leader-lease in --namespace)")
	fl.DurationVar(&f.interval, "policy-reports-interval", 5*time.Minute, "with --policy-reports: how often the reports are rebuilt")
	fl.StringVar(&f.since, "policy-reports-since", "30d", "with --policy-reports: the admissions window the reports cover (30d, 12h; \"\" for the whole ledger)")
	fl.StringVar(&f.lease, "leader-lease", "image-swapper-leader", "the coordination.k8s.io Lease in --namespace whose holder runs the background loops (the sync of mirrored tags, rescans, --policy-reports, the rotation of --self-signed)")
}

// loop is the PolicyReport loop when --policy-reports is set, for the
// background runner (background.go), and nil otherwise.
func (f *policyReportFlags) loop(kube kubeAccess, namespace string, current func() *config.Config, st store.Store, log *slog.Logger) (func(context.Context), error) {
	if !f.enabled {
		return nil, nil
	}
	if namespace == "" {
		return nil, errors.New("--policy-reports needs --namespace (default $POD_NAMESPACE): the leader Lease is kept there")
	}
	window, err := parseSince(f.since)
	if err != nil {
		return nil, fmt.Errorf("--policy-reports-since: %w", err)
	}
	if f.interval <= 0 {
		return nil, fmt.Errorf("--policy-reports-interval %s: want a positive duration", f.interval)
	}
	dyn, _, err := kube.dynamicClient()
	if err != nil {
		return nil, fmt.Errorf("--policy-reports: %w", err)
	}
	loop := &policyReportLoop{dyn: dyn, st: st, config: current, window: window,
		interval: f.interval, log: log, applied: f.applied}
	return loop.run, nil
}

// leaderIdentity names this replica in the Lease: the Pod's name (the
// host name in a Pod), made unique so that a restarted Pod of the same
// name is another holder.
func leaderIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "image-swapper"
	}
	return host + "_" + rand.String(6)
}

// policyReportLoop rebuilds the reports every interval while it leads.
type policyReportLoop struct {
	dyn dynamic.Interface
	st  store.Store
	// config is the configuration in force (serve's).
	config   func() *config.Config
	window   time.Duration
	interval time.Duration
	log      *slog.Logger
	// applied, when set, hears of each pass (tests).
	applied func(report.Applied, error)
}

// run is the leader's work: one pass at once, then one per interval,
// until ctx (the term) ends.
func (l *policyReportLoop) run(ctx context.Context) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		done, err := l.pass(ctx)
		if l.applied != nil {
			l.applied(done, err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			l.log.Error("PolicyReports not updated", "error", err)
		case err == nil:
			l.log.Info("PolicyReports updated", "created", done.Created, "updated", done.Updated, "unchanged", done.Unchanged, "deleted", done.Deleted)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// policyReportPassTimeout bounds one pass: the ledger's reading and the
// API requests.
const policyReportPassTimeout = 2 * time.Minute

func (l *policyReportLoop) pass(ctx context.Context) (report.Applied, error) {
	ctx, cancel := context.WithTimeout(ctx, policyReportPassTimeout)
	defer cancel()
	cfg := l.config()
	now := time.Now()
	opts := report.Options{Scanning: cfg.Security.Scanning, Now: now}
	if l.window > 0 {
		opts.Since = now.Add(-l.window)
	}
	r, err := report.Build(ctx, l.st, opts)
	if err != nil {
		return report.Applied{}, err
	}
	reports, err := report.PolicyReports(r, report.MaxPolicyReportBytes)
	if err != nil {
		return report.Applied{}, err
	}
	return report.ApplyPolicyReports(ctx, l.dyn, reports, "image-swapper")
}
