package testenv

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TrivyVersion is the Trivy release the tests run: the one
// `bash .ci/tools.sh trivy` builds and caches.
const TrivyVersion = "v0.74.0"

// TrivyEnv names the variable that holds the path of the trivy binary;
// .ci/run exports it.
const TrivyEnv = "IMAGE_SWAPPER_TRIVY"

// TrivyTokenEnv is the variable Trivy reads its client/server token from
// (the --token flag's environment binding, in client and server alike).
// The token goes there rather than into argv, where every user of the
// machine could read it.
const TrivyTokenEnv = "TRIVY_TOKEN"

// TrivyBinary returns the trivy binary to run: $IMAGE_SWAPPER_TRIVY, else
// the one .ci/tools.sh caches for TrivyVersion, else trivy on PATH. When
// there is none the test is skipped, or fails in CI; a TrivyEnv naming a
// missing file fails the test, since someone meant it.
func TrivyBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(TrivyEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s=%s: %v", TrivyEnv, bin, err)
		}
		return bin
	}
	if bin := cachedTrivy(); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("trivy")
	Require(t, err == nil, "trivy is missing: `export %s=\"$(bash .ci/tools.sh trivy)\"` builds Trivy %s (6-10 minutes) and points the tests at it", TrivyEnv, TrivyVersion)
	return bin
}

// cachedTrivy is the binary .ci/tools.sh builds, when it is there.
func cachedTrivy() string { return cachedTool("trivy", TrivyVersion) }

// trivyQuiet are the flags every Trivy command of the tests has: no
// request to Aqua's update and telemetry endpoint (Trivy sends one unless
// both are given, even offline), and JSON on stdout without progress.
var trivyQuiet = []string{"--skip-version-check", "--disable-telemetry", "--quiet"}

// TrivyCommand is the argv of an offline Trivy scan of a remote image
// (security.scanning.command; the Runner appends image@digest), reading
// the vulnerability database that WriteTrivyDB wrote into cacheDir.
//
// The scan cache lives in memory: Trivy's file cache (cacheDir/fanal)
// is a bbolt file that a process locks exclusively for its whole run, so
// concurrent scans sharing cacheDir would take turns, and one that waits
// more than 5 seconds fails ("cache may be in use by another process").
// The database itself is opened read-only and may be shared.
func TrivyCommand(bin, cacheDir string) []string {
	return append([]string{bin, "image",
		"--cache-dir", cacheDir, "--cache-backend", "memory",
		"--skip-db-update", "--skip-java-db-update", "--offline-scan",
		// The test registries speak plain HTTP on 127.0.0.1.
		"--insecure", "--image-src", "remote",
		"--scanners", "vuln", "--format", "json",
	}, trivyQuiet...)
}

// TrivyClientCommand is the argv of a Trivy scan in client mode against
// the server at url (what StartTrivyServer returns). The client pulls the
// image itself and sends its layers' analysis to the server, which matches
// them against its database. The token is not in argv: give the scanner
// TrivyTokenEnv=token in its environment (Runner.Env, or the environment
// of the process that runs the Runner).
func TrivyClientCommand(bin, url string) []string {
	return append([]string{bin, "image",
		"--server", url,
		// The client caches nothing worth keeping; memory keeps it out of
		// ~/.cache/trivy.
		"--cache-backend", "memory",
		"--insecure", "--image-src", "remote",
		"--scanners", "vuln", "--format", "json",
	}, trivyQuiet...)
}

// StartTrivyServer starts `trivy server` on a free 127.0.0.1 port with the
// database in cacheDir and a random token, waits until /healthz answers,
// and stops it when the test ends. It returns the server's URL and token
// (see TrivyClientCommand).
func StartTrivyServer(t testing.TB, bin, cacheDir string) (url, token string) {
	t.Helper()
	token = RandomSecret(t)
	// As for docker-registry: the port may be taken before trivy binds it.
	const attempts = 3
	var lastErr error
	for range attempts {
		url, err := tryStartTrivyServer(t, bin, cacheDir, token)
		if err == nil {
			return url, token
		}
		lastErr = err
	}
	t.Fatalf("starting trivy server (%d attempts): %v", attempts, lastErr)
	return "", ""
}

func tryStartTrivyServer(t testing.TB, bin, cacheDir, token string) (string, error) {
	addr, err := FreeAddr()
	if err != nil {
		return "", err
	}
	name := "trivy server on " + addr
	proc, err := StartProcessWithEnv(name, bin, []string{TrivyTokenEnv + "=" + token},
		"server", "--listen", addr, "--cache-dir", cacheDir,
		// Blobs the clients send are kept for the test's life only, and
		// cacheDir stays shareable (see TrivyCommand).
		"--cache-backend", "memory",
		"--skip-db-update")
	if err != nil {
		return "", err
	}
	url := "http://" + addr
	if err := waitHealthy(proc, url+"/healthz"); err != nil {
		_ = proc.Stop(10 * time.Second)
		return "", fmt.Errorf("%s: %w\nits output:\n%s", name, err, proc.Logs())
	}
	t.Cleanup(func() {
		// Its exit status on SIGTERM says nothing about the test.
		_ = proc.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("%s said:\n%s", name, proc.Logs())
		}
	})
	return url, nil
}

// waitHealthy polls url until it answers 200 or the process exits. Trivy
// opens its database before it listens, so a server that answers can
// scan.
func waitHealthy(proc *Process, url string) error {
	client := &http.Client{Timeout: time.Second}
	const polls, every = 300, 100 * time.Millisecond
	var last error
	for range polls {
		if !proc.Running() {
			return errors.New("exited before it answered " + url)
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(every)
	}
	return fmt.Errorf("no answer on %s after %d polls: %v", url, polls, last)
}
