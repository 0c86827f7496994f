package webhook

import (
	"context"

	"github.com/image-swapper/image-swapper/internal/engine"
)

// PolicySource merges the cluster's policy objects (ClusterImagePolicies,
// each namespace's ImagePolicies) with the configuration in force;
// policyapi.Watcher is one.
type PolicySource interface {
	// Engine returns the engine that decides in namespace ns: base
	// merged with the policies that apply there.
	Engine(base *engine.Engine, ns string) *engine.Engine
	// HasSynced reports whether the source knows the cluster's policies;
	// the server is not ready before.
	HasSynced() bool
	// Run keeps the source current until ctx ends; base returns the
	// engine of the configuration in force.
	Run(ctx context.Context, base func() *engine.Engine)
}

// engine returns the engine deciding in namespace ns.
func (s *Server) engine(ns string) *engine.Engine {
	e := s.config.Engine()
	if s.opts.Policies == nil {
		return e
	}
	return s.opts.Policies.Engine(e, ns)
}
