// Package e2e_test proves the admission webhook against the real thing: a
// kube-apiserver and etcd (started by envtest from KUBEBUILDER_ASSETS), two
// Debian docker-registry processes as source and target, and
// `image-swapper serve` as a separate process that the API server calls
// through Mutating- and ValidatingWebhookConfigurations. Every assertion
// reads what the API server answered or stored.
//
// There is no kubelet: Pods are stored, not run, which is all admission
// needs.
//
// Requirements: KUBEBUILDER_ASSETS naming a directory with kube-apiserver
// and etcd (`eval "$(bash .ci/tools.sh kube)"` builds and exports it) and
// /usr/bin/docker-registry (`bash .ci/tools.sh apt docker-registry`).
// Without them the tests skip, except under CI=true, where they fail.
package e2e_test

import (
	"os"
	"testing"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestAdmission runs every scenario against one control plane and one pair
// of registries. The main server (swap: exists, swapping in namespaces
// labelled e2e.image-swapper.io/mirror=true) serves the scenarios that
// share its configuration; scenarios that need another configuration or
// break something (the target registry, the certificate) start their own
// image-swapper process with its own webhook configurations. Each server's
// webhooks select only namespaces labelled with its id, so scenarios never
// see each other's Pods.
func TestAdmission(t *testing.T) {
	s := newSuite(t)
	// kube-system and the server's namespace carry every label that would
	// select them, so that only the exclusions can keep them out. They are
	// labelled before the main server starts, so that its namespace cache
	// starts with the labels.
	for _, ns := range []string{"kube-system", serverNamespace} {
		s.namespace(t, ns, map[string]string{serverLabel: "main", mirrorLabel: "true"})
	}
	main := s.startSwapper(t, swapperOptions{id: "main", config: s.config(s.dst.Host, `
  swap: exists
  namespaceSelector:
    matchLabels:
      `+mirrorLabel+`: "true"`, "")})

	t.Run("scoping", func(t *testing.T) { s.testScoping(t, main) })
	t.Run("exists", func(t *testing.T) { s.testExists(t, main) })
	t.Run("ledger", func(t *testing.T) { s.testLedger(t, main) })
	t.Run("leader lease", s.testLease)
	t.Run("reinvocation and update", func(t *testing.T) { s.testReinvocationAndUpdate(t, main) })
	t.Run("dry run", func(t *testing.T) { s.testDryRun(t, main) })
	t.Run("wait", s.testWait)
	t.Run("pull secrets", s.testPullSecrets)
	t.Run("fallback", s.testFallback)
	t.Run("gate", s.testGate)
	t.Run("vulnerability gate", s.testVulnerabilityGate)
	t.Run("certificate rotation", s.testCertRotation)
	t.Run("image policies", s.testImagePolicies)
	t.Run("events", s.testEvents)
}
