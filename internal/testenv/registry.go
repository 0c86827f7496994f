package testenv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// RegistryBinary is where Debian's docker-registry package (Distribution
// 2.8) installs it.
const RegistryBinary = "/usr/bin/docker-registry"

// RequireRegistry skips the test when docker-registry is missing, or fails
// it in CI. StartDockerRegistry calls it; a test that starts slower things
// first calls it before them.
func RequireRegistry(t testing.TB) {
	t.Helper()
	_, err := os.Stat(RegistryBinary)
	Require(t, err == nil, "%s is missing (%v); `bash .ci/tools.sh apt docker-registry` installs it", RegistryBinary, err)
}

// RegistryOptions configure a docker-registry.
type RegistryOptions struct {
	// Htpasswd is the path of a bcrypt htpasswd file (the only kind
	// Distribution reads); empty means no authentication.
	Htpasswd string
	// AllowDelete lets clients delete manifests and blobs.
	AllowDelete bool
}

// DockerRegistry is one running docker-registry, out of process.
type DockerRegistry struct {
	// Host is "127.0.0.1:port", as image references name it.
	Host string
	proc *Process
}

// StartDockerRegistry starts a docker-registry with filesystem storage in
// a temporary directory on a free 127.0.0.1 port, waits until /v2/
// answers, and stops it when the test ends (earlier with Stop).
func StartDockerRegistry(t testing.TB, opts RegistryOptions) *DockerRegistry {
	t.Helper()
	RequireRegistry(t)
	// The port is free when chosen but may be taken before the registry
	// binds it; a registry that exits at once is started elsewhere.
	const attempts = 3
	var lastErr error
	for range attempts {
		r, err := tryStartDockerRegistry(t, opts)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("starting %s (%d attempts): %v", RegistryBinary, attempts, lastErr)
	return nil
}

func tryStartDockerRegistry(t testing.TB, opts RegistryOptions) (*DockerRegistry, error) {
	host, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(registryConfig(filepath.Join(dir, "storage"), host, opts)), 0o600); err != nil {
		return nil, err
	}
	proc, err := StartProcess("docker-registry on "+host, RegistryBinary, "serve", configPath)
	if err != nil {
		return nil, err
	}
	r := &DockerRegistry{Host: host, proc: proc}
	if err := r.waitReady(opts.Htpasswd != ""); err != nil {
		_ = r.Stop()
		return nil, fmt.Errorf("docker-registry on %s: %w\nits output:\n%s", host, err, proc.Logs())
	}
	t.Cleanup(func() {
		// A registry's exit status on SIGTERM says nothing about the test.
		_ = r.Stop()
		if t.Failed() {
			t.Logf("docker-registry on %s said:\n%s", host, proc.Logs())
		}
	})
	return r, nil
}

// registryConfig is docker-registry's config.yml.
func registryConfig(storage, host string, opts RegistryOptions) string {
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
`, storage)
	if opts.AllowDelete {
		config += `  delete:
    enabled: true
`
	}
	config += fmt.Sprintf(`http:
  addr: %s
  # A fixed secret stops the warning about a generated one.
  secret: image-swapper-e2e
`, host)
	if opts.Htpasswd != "" {
		config += fmt.Sprintf(`auth:
  htpasswd:
    realm: image-swapper-e2e
    path: %s
`, opts.Htpasswd)
	}
	return config
}

// waitReady polls /v2/ until the registry answers (200, or 401 when it
// asks for credentials) or exits. The bound is generous: a shared CI
// machine can be slow to start a process, and a registry that never
// answers fails the test anyway.
func (r *DockerRegistry) waitReady(auth bool) error {
	client := &http.Client{Timeout: time.Second}
	const polls, every = 300, 100 * time.Millisecond
	var last error
	for range polls {
		if !r.proc.Running() {
			return errors.New("exited before it answered /v2/")
		}
		resp, err := client.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || auth && resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		time.Sleep(every)
	}
	return fmt.Errorf("no answer on /v2/ after %d polls: %v", polls, last)
}

// Stop stops the registry; the test goes on without it.
func (r *DockerRegistry) Stop() error { return r.proc.Stop(10 * time.Second) }
