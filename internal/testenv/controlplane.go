package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// ControlPlane is a kube-apiserver and etcd started by envtest from
// KUBEBUILDER_ASSETS.
type ControlPlane struct {
	// Env adds users (Env.AddUser) and stops the control plane.
	Env    *envtest.Environment
	config *rest.Config
	out    *Buffer // kube-apiserver's output
}

// KubeAssets returns KUBEBUILDER_ASSETS. When it is unset the test is
// skipped, or fails in CI; when it lacks kube-apiserver or etcd the test
// fails.
func KubeAssets(t testing.TB) string {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	Require(t, assets != "", "KUBEBUILDER_ASSETS is not set: run `eval \"$(bash .ci/tools.sh kube)\"` to build kube-apiserver, link etcd and export it")
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS=%s has no %s (`eval \"$(bash .ci/tools.sh kube)\"` puts both there): %v", assets, bin, err)
		}
	}
	return assets
}

// StartControlPlane starts a control plane of the test's own from assets
// (what KubeAssets returned) and stops it when the test ends, showing
// kube-apiserver's output if the test failed.
func StartControlPlane(t testing.TB, assets string) *ControlPlane {
	t.Helper()
	cp, err := startControlPlane(assets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver said:\n%s", cp.out.Tail())
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	return cp
}

// shared is the control plane of SharedControlPlane.
var shared struct {
	once  sync.Once
	plane *ControlPlane
	err   error
}

// SharedControlPlane starts a control plane from KubeAssets on first use
// and returns it to every test of the process, which should each work in
// namespaces and with users of their own. Main stops it.
func SharedControlPlane(t testing.TB) *ControlPlane {
	t.Helper()
	assets := KubeAssets(t)
	shared.once.Do(func() { shared.plane, shared.err = startControlPlane(assets) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.plane
}

func startControlPlane(assets string) (*ControlPlane, error) {
	// envtest logs through controller-runtime's logger, which complains
	// with a stack trace when nothing was set.
	ctrllog.SetLogger(logr.Discard())
	cp := &ControlPlane{out: &Buffer{}}
	cp.Env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		// Never a cluster from the environment: tests create and label
		// namespaces, including kube-system.
		UseExistingCluster:       ptr.To(false),
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	api := cp.Env.ControlPlane.GetAPIServer()
	api.Out, api.Err = cp.out, cp.out
	// Without it the API server tries to publish a 127.0.0.1 endpoint for
	// the kubernetes Service, which it rejects, every few seconds.
	api.Configure().Set("endpoint-reconciler-type", "none")
	cfg, err := cp.Env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w\nkube-apiserver said:\n%s", assets, err, cp.out.Tail())
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	cp.config = cfg
	return cp, nil
}

// Config returns a copy of the administrator's client configuration,
// which the caller may change.
func (cp *ControlPlane) Config() *rest.Config { return rest.CopyConfig(cp.config) }

// Stop stops kube-apiserver and etcd.
func (cp *ControlPlane) Stop() error { return cp.Env.Stop() }
