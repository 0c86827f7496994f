package policyapi

import (
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/engine"
)

// BenchmarkNamespaceMerge is the cost of merging a namespace's
// ImagePolicies, paid once per policy change and namespace.
func BenchmarkNamespaceMerge(b *testing.B) {
	c := mergeOrFail(b, baseConfig(b, mirrorConfig+scanningConfig), clusterPolicy("exceptions", ClusterImagePolicySpec{AllowNamespaceExceptions: true}))
	policies := []ImagePolicy{
		local("team-a", "a", ImagePolicySpec{AllowList: []string{"docker.io/library/*"}, DenyList: []string{"*:debug"}, Mode: "enforce"}),
		local("team-a", "b", ImagePolicySpec{Swap: "wait", Exceptions: []Exception{{ID: "CVE-1", Expires: "2099-01-01", Reason: "r"}}}),
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if n := c.Namespace("team-a", policies, now); !n.Outcomes["a"].Accepted {
			b.Fatal("not accepted")
		}
	}
}

// BenchmarkDecideWithImagePolicy is a decision in a namespace with an
// ImagePolicy, beside one with the cluster's policy alone.
func BenchmarkDecideWithImagePolicy(b *testing.B) {
	c := mergeOrFail(b, baseConfig(b, mirrorConfig))
	n := c.Namespace("team-a", []ImagePolicy{local("team-a", "a", ImagePolicySpec{AllowList: []string{"docker.io/library/*"}, DenyList: []string{"docker.io/library/busybox"}})}, time.Now())
	for name, e := range map[string]*engine.Engine{"cluster": c.Engine(), "namespace": n.Engine} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				decide(e, "team-a", "nginx:1.27")
			}
		})
	}
}
