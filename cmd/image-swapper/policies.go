package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/policyapi"
)

// newPolicyWatcher watches the ClusterImagePolicies and ImagePolicies of
// the API that access finds (client's); the Lease holder writes their
// status (Watcher.WriteStatuses).
func newPolicyWatcher(access kubeAccess, client kubernetes.Interface, log *slog.Logger) (*policyapi.Watcher, error) {
	dyn, _, err := access.dynamicClient()
	if err != nil {
		return nil, err
	}
	return policyapi.NewWatcher(dyn, client.Discovery(), policyapi.WatcherOptions{Logger: log}), nil
}

// policyFlags say where explain finds the policy objects: manifests
// (--policy, offline) or the cluster (--cluster-policies).
type policyFlags struct {
	files   []string
	cluster bool
	kube    kubeFlags
}

func (p *policyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&p.files, "policy", nil, "YAML or JSON manifests of ClusterImagePolicies and ImagePolicies to merge with the configuration, offline (repeatable; - for stdin)")
	fl.BoolVar(&p.cluster, "cluster-policies", false, "merge the ClusterImagePolicies and the --namespace's ImagePolicies read from the Kubernetes API (found as kubectl finds it)")
	p.kube.register(fl)
}

// timeout bounds reading the policies from the cluster.
const policyReadTimeout = 15 * time.Second

// namespace merges the policy objects, if any were asked for, with e's
// configuration for namespace ns. It returns nil without policy objects.
// Objects that are not accepted are reported on stderr.
func (p *policyFlags) namespace(ctx context.Context, e *engine.Engine, ns string, stdin io.Reader, stderr io.Writer) (*policyapi.Namespace, error) {
	if len(p.files) == 0 && !p.cluster {
		return nil, nil
	}
	if len(p.files) > 0 && p.cluster {
		return nil, trouble(fmt.Errorf("--policy and --cluster-policies: give one or the other"))
	}
	objects, err := p.read(ctx, ns, stdin)
	if err != nil {
		return nil, trouble(err)
	}
	cluster, err := policyapi.MergeCluster(e.Config(), objects.Clusters, e.Options()...)
	if err != nil {
		return nil, trouble(err)
	}
	for _, c := range objects.Clusters {
		if o := cluster.Outcomes[c.Name]; !o.Accepted {
			fmt.Fprintf(stderr, "warning: ClusterImagePolicy/%s is not applied (%s): %s\n", c.Name, o.Reason, o.Message)
		}
	}
	n := cluster.Namespace(ns, objects.In(ns), time.Now())
	for _, l := range objects.In(ns) {
		o := n.Outcomes[l.Name]
		switch {
		case !o.Accepted:
			fmt.Fprintf(stderr, "warning: ImagePolicy/%s/%s is not applied (%s): %s\n", ns, l.Name, o.Reason, o.Message)
		case o.Exceptions && !o.ExceptionsAccepted:
			fmt.Fprintf(stderr, "warning: ImagePolicy/%s/%s: exceptions not applied (%s): %s\n", ns, l.Name, o.ExceptionsReason, o.ExceptionsMessage)
		}
	}
	return n, nil
}

func (p *policyFlags) read(ctx context.Context, ns string, stdin io.Reader) (*policyapi.Objects, error) {
	if p.cluster {
		dyn, from, err := p.kube.access().dynamicClient()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, policyReadTimeout)
		defer cancel()
		objects, err := policyapi.List(ctx, dyn, ns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		return objects, nil
	}
	all := &policyapi.Objects{}
	for _, name := range p.files {
		r := stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return nil, fmt.Errorf("--policy: %w", err)
			}
			defer f.Close()
			r = f
		}
		objects, err := policyapi.ReadManifests(r, name, ns)
		if err != nil {
			return nil, fmt.Errorf("--policy: %w", err)
		}
		all.Clusters = append(all.Clusters, objects.Clusters...)
		all.Namespaced = append(all.Namespaced, objects.Namespaced...)
	}
	return all, nil
}

// decidedBy names what decided d: a policy object, or the configuration
// file.
func decidedBy(d engine.Decision) string {
	if by := policyapi.DecidedBy(d.Rule); by != "" {
		return by
	}
	return "the configuration file"
}
