package policyapi

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
)

var (
	propertyImages = []string{
		"nginx", "nginx:debug", "busybox:1.36", "docker.io/library/nginx@sha256:" + strings.Repeat("c", 64),
		"index.docker.io/library/busybox", "docker.io/unknown/x:1", "docker.io/bitnami/redis:7",
		"quay.io/prometheus/prometheus:v3.1.0", "quay.io/other/y:1", "ghcr.io/org/app:1", "ghcr.io/evil/app:1",
		"registry.example.com/docker.io/library/nginx:1.27", "registry.example.com/docker.io/unknown/x:1",
		"localhost:5000/app:dev", "not a reference",
	}
	propertyPatterns = []string{
		"*", "docker.io/*", "docker.io/library/*", "nginx", "busybox", "*:debug", "quay.io/*",
		"ghcr.io/org/*", "registry.example.com/*", "docker.io/unknown/*", "*/x*", "?*", "localhost:5000/*",
		"registry.example.com/docker.io/library/*", "docker.io/bitnami/redis:?",
	}
	propertyConfigs = []string{
		mirrorConfig,
		mirrorConfig + "mode: audit\n",
		mirrorConfig + "mode: warn\nsecurity:\n  scanning: {enabled: true, provider: trivy, failOnCritical: true}\n",
		"policies:\n  denyList: [\"*:debug\"]\n  mode: warn\nrules:\n  - {repository: \"ghcr.io/evil/*\", action: deny, mode: audit}\n" + scanningConfig,
		"sourceRegistries: [docker.io, quay.io]\ntargetRegistry: registry.example.com\nmirroring: {swap: always}\n",
	}
	propertyModes = []config.Mode{"", config.ModeAudit, config.ModeWarn, config.ModeEnforce}
	propertySwaps = []config.SwapPolicy{"", config.SwapExists, config.SwapWait, config.SwapAlways}
)

func pick[T any](r *rand.Rand, from []T, most int) []T {
	n := r.IntN(most + 1)
	out := make([]T, 0, n)
	for range n {
		out = append(out, from[r.IntN(len(from))])
	}
	return out
}

func randomImagePolicy(r *rand.Rand, i int) ImagePolicy {
	spec := ImagePolicySpec{
		AllowList: pick(r, propertyPatterns, 3),
		DenyList:  pick(r, propertyPatterns, 2),
		Mode:      propertyModes[r.IntN(len(propertyModes))],
		Swap:      propertySwaps[r.IntN(len(propertySwaps))],
	}
	if r.IntN(2) == 0 {
		spec.Exceptions = []Exception{{ID: "CVE-2027-0001", Images: pick(r, propertyPatterns, 1), Expires: "2099-01-01", Reason: "accepted"}}
	}
	return local("team-a", fmt.Sprintf("p%d", i), spec)
}

// strictest is the strictest mode among a decision's violations ("" for
// none).
func strictest(d engine.Decision) config.Mode {
	var m config.Mode
	for _, v := range d.Violations {
		if rank(v.Mode) > rank(m) {
			m = v.Mode
		}
	}
	return m
}

// TestNoImagePolicyAllows is the property that ImagePolicies only
// tighten: for random ImagePolicies (exceptions included, where no
// ClusterImagePolicy allows them) over random cluster configurations,
// every image the cluster's policy denies is denied in the namespace too,
// and no verdict becomes milder, in Decide, Gate and the vulnerability
// gate alike.
func TestNoImagePolicyAllows(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 1))
	f := findings{id: "CVE-2027-0001"}
	clusters := make([]*Cluster, len(propertyConfigs))
	for i, y := range propertyConfigs {
		// A ClusterImagePolicy that does not allow namespace exceptions.
		clusters[i] = mergeOrFail(t, baseConfig(t, y), clusterPolicy("base", ClusterImagePolicySpec{Policies: config.Policies{DenyList: []string{"docker.io/bitnami/*"}}}))
	}
	const rounds = 1500
	for round := range rounds {
		c := clusters[r.IntN(len(clusters))]
		policies := make([]ImagePolicy, r.IntN(4))
		for i := range policies {
			policies[i] = randomImagePolicy(r, i)
		}
		n := c.Namespace("team-a", policies, now)
		for name, o := range n.Outcomes {
			if !o.Accepted {
				t.Fatalf("round %d: %s not accepted: %s", round, name, o.Message)
			}
		}
		for _, image := range propertyImages {
			for _, how := range []struct {
				name string
				do   func(e *engine.Engine) engine.Decision
			}{
				{"Decide", func(e *engine.Engine) engine.Decision { return decide(e, "team-a", image) }},
				{"Gate and Scan", func(e *engine.Engine) engine.Decision { return scanDecision(e, "team-a", image, f) }},
			} {
				before, after := how.do(c.Engine()), how.do(n.Engine)
				if before.Denied() && !after.Denied() || rank(strictest(after)) < rank(strictest(before)) {
					t.Fatalf("round %d: %s(%q) with ImagePolicies %+v:\ncluster:   %s %v\nnamespace: %s %v",
						round, how.name, image, specs(policies), before.Action, before.Violations, after.Action, after.Violations)
				}
			}
		}
	}
}

func specs(ps []ImagePolicy) []ImagePolicySpec {
	out := make([]ImagePolicySpec, len(ps))
	for i, p := range ps {
		out[i] = p.Spec
	}
	return out
}
