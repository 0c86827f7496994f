package selfsigned_test

import (
	"os"
	"testing"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// The tests of the package share one control plane (kube-apiserver and
// etcd from KUBEBUILDER_ASSETS, testenv.SharedControlPlane): each test
// works in its own namespace with its own webhook configurations and user.
// Without KUBEBUILDER_ASSETS they skip, except in CI (CI=true), where they
// fail.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
