package selfsigned_test

import (
	"bytes"
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

// The control plane (kube-apiserver and etcd from KUBEBUILDER_ASSETS) is
// shared by the tests of the package: each test works in its own
// namespace with its own webhook configurations and user.
var plane struct {
	once sync.Once
	env  *envtest.Environment
	cfg  *rest.Config
	out  *lockedBuffer
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if plane.env != nil {
		if err := plane.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// controlPlane starts the control plane on first use and returns the
// environment and an admin configuration. Without KUBEBUILDER_ASSETS the
// test is skipped, except in CI (CI=true), where it fails.
func controlPlane(t *testing.T) (*envtest.Environment, *rest.Config) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		const how = "KUBEBUILDER_ASSETS is not set: run `eval \"$(bash .ci/tools.sh kube)\"` to build kube-apiserver, link etcd and export it"
		if os.Getenv("CI") == "true" {
			t.Fatal(how)
		}
		t.Skip(how)
	}
	plane.once.Do(func() { plane.env, plane.cfg, plane.err = startControlPlane(assets) })
	if plane.err != nil {
		t.Fatal(plane.err)
	}
	return plane.env, rest.CopyConfig(plane.cfg)
}

func startControlPlane(assets string) (*envtest.Environment, *rest.Config, error) {
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, nil, fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s (`eval \"$(bash .ci/tools.sh kube)\"` puts both there): %w", assets, bin, err)
		}
	}
	// envtest logs through controller-runtime's logger, which complains
	// with a stack trace when nothing was set.
	ctrllog.SetLogger(logr.Discard())
	plane.out = &lockedBuffer{}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		UseExistingCluster:       ptr.To(false),
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	api := env.ControlPlane.GetAPIServer()
	api.Out, api.Err = plane.out, plane.out
	// Without it the API server tries to publish a 127.0.0.1 endpoint for
	// the kubernetes Service, which it rejects, every few seconds.
	api.Configure().Set("endpoint-reconciler-type", "none")
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w\nkube-apiserver said:\n%s", assets, err, tail(plane.out.String()))
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	return env, cfg, nil
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail shortens a process's output to its end.
func tail(s string) string {
	const keep = 16 << 10
	if len(s) > keep {
		return "...\n" + s[len(s)-keep:]
	}
	return s
}
