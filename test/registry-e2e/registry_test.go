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
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

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
	cmd := exec.Command(testenv.ImageSwapper(t), args...)
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
