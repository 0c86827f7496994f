package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeFlags are the flags of every command that talks to the Kubernetes
// API, spelt as kubectl spells them.
type kubeFlags struct {
	kubeconfig string
	context    string
}

func (k *kubeFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file for the Kubernetes API (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
	fl.StringVar(&k.context, "context", "", "kubeconfig context to use (default: the kubeconfig's current-context)")
}

// access is how these flags find the API in this process.
func (k *kubeFlags) access() kubeAccess {
	return kubeAccess{
		kubeconfig: k.kubeconfig,
		context:    k.context,
		inCluster:  rest.InClusterConfig,
		homeFile:   clientcmd.RecommendedHomeFile,
	}
}

// kubeAccess finds the Kubernetes API the way kubectl and client-go
// programs do (controller-runtime's order), so that users' fingers and
// scripts work unchanged:
//
//  1. --kubeconfig, which must then work: it is never passed over;
//  2. $KUBECONFIG, a list of files merged as client-go merges them (the
//     first file to set a key wins; missing files are ignored);
//  3. the in-cluster service account, when $KUBECONFIG names no usable
//     file and no --context is given;
//  4. ~/.kube/config, unless $KUBECONFIG is set (as for kubectl, the
//     variable replaces the file).
//
// --context picks a kubeconfig context over its current-context.
type kubeAccess struct {
	kubeconfig string
	context    string
	// inCluster is rest.InClusterConfig; tests simulate a cluster.
	inCluster func() (*rest.Config, error)
	// homeFile is ~/.kube/config; tests point it elsewhere (client-go
	// computes it once, from $HOME at start).
	homeFile string
}

// errNoKubeconfig says that kubeconfig files exist in name only: none
// holds a usable configuration, so the next source may be tried (as
// client-go's deferred loading tries in-cluster then).
var errNoKubeconfig = errors.New("missing or empty")

// restConfig returns the API's client configuration and where it came
// from, or an error that names every source tried.
func (a kubeAccess) restConfig() (*rest.Config, string, error) {
	if a.kubeconfig != "" {
		cfg, err := a.fromFiles(&clientcmd.ClientConfigLoadingRules{ExplicitPath: a.kubeconfig})
		if err != nil {
			return nil, "", fmt.Errorf("--kubeconfig %s: %w", a.kubeconfig, err)
		}
		return cfg, "--kubeconfig " + a.kubeconfig, nil
	}
	tried := []string{"--kubeconfig (not given)"}
	env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	if env != "" {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		// A webhook server does not rewrite files in the user's home.
		rules.MigrationRules = nil
		what := "KUBECONFIG=" + env
		cfg, err := a.fromFiles(rules)
		switch {
		case err == nil:
			return cfg, what, nil
		case !errors.Is(err, errNoKubeconfig):
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", what, err))
	} else {
		tried = append(tried, "KUBECONFIG (not set)")
	}
	if a.context == "" {
		cfg, err := a.inCluster()
		if err == nil {
			return cfg, "in-cluster service account", nil
		}
		tried = append(tried, fmt.Sprintf("in-cluster (%v)", err))
	} else {
		tried = append(tried, "in-cluster (passed over: --context names a kubeconfig context)")
	}
	if env == "" {
		cfg, err := a.fromFiles(&clientcmd.ClientConfigLoadingRules{Precedence: []string{a.homeFile}})
		switch {
		case err == nil:
			return cfg, a.homeFile, nil
		case !errors.Is(err, errNoKubeconfig):
			return nil, "", fmt.Errorf("%s: %w", a.homeFile, err)
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", a.homeFile, err))
	} else {
		tried = append(tried, filepath.Join("~", clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)+" (not read: KUBECONFIG is set)")
	}
	return nil, "", fmt.Errorf("no Kubernetes API configuration found; tried %s: give --kubeconfig or set KUBECONFIG, run in a cluster, or give --no-kube-api to run without namespace labels",
		strings.Join(tried, ", "))
}

// fromFiles loads kubeconfig files with rules and applies --context.
func (a kubeAccess) fromFiles(rules *clientcmd.ClientConfigLoadingRules) (*rest.Config, error) {
	raw, err := rules.Load()
	if err != nil {
		return nil, err
	}
	if clientcmdapi.IsConfigEmpty(raw) {
		return nil, errNoKubeconfig
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, a.context, &clientcmd.ConfigOverrides{}, rules)
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) && a.context == "" {
			// Files without a current-context, say: nothing to use.
			return nil, fmt.Errorf("%w: %v", errNoKubeconfig, err)
		}
		if a.context != "" {
			return nil, fmt.Errorf("--context %s: %w", a.context, err)
		}
		return nil, err
	}
	return cfg, nil
}

// client connects to the API found by restConfig.
func (a kubeAccess) client() (kubernetes.Interface, string, error) {
	cfg, from, err := a.restConfig()
	if err != nil {
		return nil, "", err
	}
	cfg.UserAgent = "image-swapper"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", from, err)
	}
	return c, from, nil
}

// dynamicClient connects a dynamic client to the API found by restConfig,
// for the resources without typed clients (policies, PolicyReports).
func (a kubeAccess) dynamicClient() (dynamic.Interface, string, error) {
	cfg, from, err := a.restConfig()
	if err != nil {
		return nil, "", err
	}
	cfg.UserAgent = "image-swapper"
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", from, err)
	}
	return c, from, nil
}
