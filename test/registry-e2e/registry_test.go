// Package registrye2e_test runs the image-swapper binary against real,
// out-of-process registries: Debian's docker-registry (Distribution 2.8.2),
// one process per registry, each with its own storage directory and port on
// 127.0.0.1. The in-process registries of internal/registrytest are the
// go-containerregistry implementation; these are the one most people run.
//
// Without /usr/bin/docker-registry the tests skip, except in CI (CI=true),
// where a missing registry is a failure: `.ci/tools.sh apt docker-registry`
// installs it.
package registrye2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// registryBinary is where Debian's docker-registry package installs it.
const registryBinary = "/usr/bin/docker-registry"

// buildDir holds the image-swapper binary built for this test run.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "image-swapper-registry-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a build directory:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireRegistryBinary skips the test when docker-registry is missing,
// unless this is CI, where it must be there.
func requireRegistryBinary(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(registryBinary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: CI must run these tests against a real registry (`.ci/tools.sh apt docker-registry` installs it): %v", registryBinary, err)
		}
		t.Skipf("%s is missing; `apt-get install docker-registry` (or `.ci/tools.sh apt docker-registry`) installs it", registryBinary)
	}
}

// registryProcess is one running docker-registry.
type registryProcess struct {
	// Host is "127.0.0.1:port", as image references name it.
	Host string
	out  *lockedBuffer // its stdout and stderr, for failure messages
}

// registryOptions configure a docker-registry.
type registryOptions struct {
	// htpasswd is the path of a bcrypt htpasswd file; empty means no auth.
	htpasswd string
}

// startRegistry starts a docker-registry on a free 127.0.0.1 port with
// storage in a temporary directory, waits until /v2/ answers, and stops it
// when the test ends.
func startRegistry(t *testing.T, opts registryOptions) *registryProcess {
	t.Helper()
	requireRegistryBinary(t)
	// The port is free when chosen but could be taken before the registry
	// binds it; a registry that exits at once is started again elsewhere.
	const attempts = 3
	var lastErr error
	for range attempts {
		r, err := tryStartRegistry(t, opts)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("starting %s (%d attempts): %v", registryBinary, attempts, lastErr)
	return nil
}

func tryStartRegistry(t *testing.T, opts registryOptions) (*registryProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	host := fmt.Sprintf("127.0.0.1:%d", port)
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  # A fixed secret stops the warning about a generated one.
  secret: image-swapper-e2e
`, filepath.Join(dir, "storage"), host)
	if opts.htpasswd != "" {
		config += fmt.Sprintf(`auth:
  htpasswd:
    realm: image-swapper-e2e
    path: %s
`, opts.htpasswd)
	}
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}

	out := &lockedBuffer{}
	cmd := exec.Command(registryBinary, "serve", configPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s serve %s: %w", registryBinary, configPath, err)
	}
	exited := make(chan struct{})
	go func() {
		// The exit status of a registry that was told to stop says nothing.
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		// Errors here mean that it has exited already.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	r := &registryProcess{Host: host, out: out}
	if err := waitReady(host, exited); err != nil {
		stop()
		return nil, fmt.Errorf("docker-registry on %s: %w\nits output:\n%s", host, err, out.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("docker-registry on %s said:\n%s", host, out.String())
		}
	})
	return r, nil
}

// waitReady polls /v2/ until the registry answers (200, or 401 with auth)
// or exits. The bound is generous: a shared CI machine can be slow to start
// a process, and a registry that never answers fails the test anyway.
func waitReady(host string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	const polls, every = 300, 100 * time.Millisecond
	var last error
	for range polls {
		select {
		case <-exited:
			return errors.New("exited before it answered /v2/")
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		time.Sleep(every)
	}
	return fmt.Errorf("no answer on /v2/ after %d polls: %v", polls, last)
}

// freePort returns a TCP port that is free on 127.0.0.1 right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeHtpasswd writes a bcrypt htpasswd file (the only kind Distribution
// reads) with one user and returns its path.
func writeHtpasswd(t *testing.T, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingProxy is a reverse proxy in front of a registry that records
// every request, so that a test can say exactly what a run sent. It keeps
// the Host header, so the registry's upload locations name the proxy.
type countingProxy struct {
	// Host is "127.0.0.1:port" of the proxy.
	Host string

	mu   sync.Mutex
	reqs []string // "HEAD /v2/src/app/manifests/1.0"
}

// newCountingProxy starts a proxy to backend and stops it when the test
// ends.
func newCountingProxy(t *testing.T, backend *registryProcess) *countingProxy {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend.Host})
	p := &countingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Method+" "+r.URL.Path)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// requests returns the requests recorded since the last reset.
func (p *countingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reqs...)
}

// reset forgets the requests recorded so far.
func (p *countingProxy) reset() {
	p.mu.Lock()
	p.reqs = nil
	p.mu.Unlock()
}

// lockedBuffer is a bytes.Buffer safe for a process's two output streams
// and a reader.
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

var swapper struct {
	once sync.Once
	path string
	err  error
}

// imageSwapper builds ./cmd/image-swapper once per test run and returns the
// binary's path.
func imageSwapper(t *testing.T) string {
	t.Helper()
	swapper.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			swapper.err = err
			return
		}
		bin := filepath.Join(buildDir, "image-swapper")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/image-swapper")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			swapper.err = fmt.Errorf("go build ./cmd/image-swapper in %s: %v\n%s", root, err, out)
			return
		}
		swapper.path = bin
	})
	if swapper.err != nil {
		t.Fatal(swapper.err)
	}
	return swapper.path
}

// moduleRoot is the directory of the go.mod this package belongs to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: %q is not a module's go.mod", gomod)
	}
	return filepath.Dir(gomod), nil
}

// run is one finished image-swapper run.
type run struct {
	stdout, stderr string
	code           int
}

// runSwapper runs image-swapper with args, stdin and extra environment
// variables. The environment holds no Docker config and no image-swapper
// settings of the caller, so only what the test gives counts.
func runSwapper(t *testing.T, stdin string, env []string, args ...string) run {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(imageSwapper(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "IMAGE_SWAPPER_") || strings.HasPrefix(k, "DOCKER_") || strings.HasPrefix(k, "E2E_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running image-swapper %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// String shows a run for failure messages.
func (r run) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}
