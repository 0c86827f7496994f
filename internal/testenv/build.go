package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// built is the image-swapper binary of this test process.
var built struct {
	once sync.Once
	dir  string // the temporary directory Main removes
	path string
	err  error
}

// BuildImageSwapper builds ./cmd/image-swapper of the module the calling
// package belongs to, once per test process, and returns the binary's
// absolute path. Unlike ImageSwapper it needs no *testing.T, so a test can
// build in a goroutine while it starts other things.
func BuildImageSwapper() (string, error) {
	built.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			built.err = err
			return
		}
		dir, err := os.MkdirTemp("", "image-swapper-test-")
		if err != nil {
			built.err = fmt.Errorf("creating a build directory: %w", err)
			return
		}
		built.dir = dir
		bin := filepath.Join(dir, "image-swapper")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/image-swapper")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./cmd/image-swapper in %s: %v\n%s", root, err, out)
			return
		}
		built.path = bin
	})
	return built.path, built.err
}

// ImageSwapper is BuildImageSwapper for a test: it fails t when the build
// fails.
func ImageSwapper(t testing.TB) string {
	t.Helper()
	bin, err := BuildImageSwapper()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// moduleRoot is the directory of the go.mod the calling package (the test's
// working directory) belongs to.
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

// Main runs the tests of m and then removes what outlives a single test:
// the binary BuildImageSwapper built and the control plane
// SharedControlPlane started. A package whose tests use either calls it:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	// Do waits for a build or start still under way (a test that failed
	// early may have left one running in a goroutine) and makes its
	// results visible here.
	built.once.Do(func() {})
	shared.once.Do(func() {})
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if shared.plane != nil {
		if err := shared.plane.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
			code = 1
		}
	}
	return code
}
