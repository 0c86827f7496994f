package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
)

// engineFlags are the flags every command that decides on images shares.
type engineFlags struct {
	configPath      string
	namespace       string
	namespaceLabels []string
}

func (f *engineFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (required)")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace to decide for (objects that name their own namespace keep it)")
	cmd.Flags().StringArrayVar(&f.namespaceLabels, "namespace-label", nil, "label KEY=VALUE of the namespace, for namespace selectors (repeatable)")
	_ = cmd.MarkFlagRequired("config")
}

// engine loads the configuration and compiles it.
func (f *engineFlags) engine() (*engine.Engine, error) {
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return nil, trouble(err)
	}
	e, err := engine.New(cfg)
	if err != nil {
		return nil, trouble(fmt.Errorf("%s: %w", f.configPath, err))
	}
	return e, nil
}

// load compiles the configuration and parses the --namespace-label flags.
func (f *engineFlags) load() (*engine.Engine, map[string]string, error) {
	e, err := f.engine()
	if err != nil {
		return nil, nil, err
	}
	nsLabels, err := parseLabels("--namespace-label", f.namespaceLabels)
	if err != nil {
		return nil, nil, err
	}
	return e, nsLabels, nil
}

func parseLabels(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	var errs []error
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("%s %q: want KEY=VALUE", flag, p))
			continue
		}
		out[k] = v
	}
	if len(errs) > 0 {
		return nil, trouble(errors.Join(errs...))
	}
	return out, nil
}
