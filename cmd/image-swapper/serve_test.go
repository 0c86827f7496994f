package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// writeServingPair writes a serving certificate for 127.0.0.1 and its key.
func writeServingPair(t *testing.T, dir string) (certFile, keyFile string) {
	certFile, keyFile, _ = testenv.WriteServingCert(t, dir)
	return certFile, keyFile
}

// TestServeRefusesToStart checks that serve exits 2, before listening,
// with a message naming what is wrong.
func TestServeRefusesToStart(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	dir := t.TempDir()
	// KUBECONFIG replaces ~/.kube/config, so this machine's own does not count.
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-kubeconfig"))
	cert, key := writeServingPair(t, dir)
	badConfig := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("targetRegistry: registry.example.com\nmirroring:\n  swapp: wait\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tls := []string{"--tls-cert", cert, "--tls-key", key}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"the config flag is required", []string{"serve"}, `required flag(s) "config" not set`},
		{"the certificate flags are required", []string{"serve", "--config", exampleConfig}, "--tls-cert and --tls-key are required"},
		{"a missing certificate file is named", []string{"serve", "--config", exampleConfig, "--tls-cert", filepath.Join(dir, "none.crt"), "--tls-key", key}, "none.crt"},
		{"an unknown log format is refused", append([]string{"serve", "--config", exampleConfig, "--log-format", "xml"}, tls...), `--log-format "xml": want json or text`},
		{"an unknown log level is refused", append([]string{"serve", "--config", exampleConfig, "--log-level", "loud"}, tls...), `--log-level "loud"`},
		{"a zero admission budget is refused", append([]string{"serve", "--config", exampleConfig, "--admission-budget", "0s"}, tls...), "--admission-budget 0s"},
		{"outside a cluster the API needs a kubeconfig", append([]string{"serve", "--config", exampleConfig}, tls...), "no Kubernetes API configuration found; tried --kubeconfig (not given), KUBECONFIG="},
		{"an invalid configuration names the key", append([]string{"serve", "--config", badConfig, "--no-kube-api"}, tls...), `mirroring.swapp: unknown key (did you mean "swap"?)`},
		{"an invalid listen address is named", append([]string{"serve", "--config", exampleConfig, "--no-kube-api", "--listen", "256.0.0.1:1"}, tls...), "--listen 256.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, "", c.args...)
			if code != exitTrouble {
				t.Errorf("exit %d, want %d", code, exitTrouble)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr does not say %q:\n%s", c.want, errOut)
			}
		})
	}
}
