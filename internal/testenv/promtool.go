package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// PromtoolVersion is the version of the github.com/prometheus/prometheus
// module whose promtool `bash .ci/tools.sh promtool` builds and caches
// (v0.316.0 is Prometheus 3.16.0).
const PromtoolVersion = "v0.316.0"

// PromtoolEnv names the variable that holds the path of the promtool
// binary; .ci/run exports it.
const PromtoolEnv = "IMAGE_SWAPPER_PROMTOOL"

// PromtoolBinary returns the promtool binary to run: $IMAGE_SWAPPER_PROMTOOL,
// else the one .ci/tools.sh caches for PromtoolVersion, else promtool on
// PATH. When there is none the test is skipped, or fails in CI; a
// PromtoolEnv naming a missing file fails the test, since someone meant it.
func PromtoolBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(PromtoolEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s=%s: %v", PromtoolEnv, bin, err)
		}
		return bin
	}
	if bin := cachedTool("promtool", PromtoolVersion); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("promtool")
	Require(t, err == nil, "promtool is missing: `export %s=\"$(bash .ci/tools.sh promtool)\"` builds promtool %s and points the tests at it", PromtoolEnv, PromtoolVersion)
	return bin
}

// cachedTool is the binary NAME that .ci/tools.sh caches for VERSION, when
// it is there. The cache root follows tools.sh: IMAGE_SWAPPER_TOOLS_CACHE,
// else $XDG_CACHE_HOME/image-swapper, else ~/.cache/image-swapper.
func cachedTool(name, version string) string {
	root := os.Getenv("IMAGE_SWAPPER_TOOLS_CACHE")
	if root == "" {
		// os.UserCacheDir is $XDG_CACHE_HOME, else ~/.cache, on Linux.
		dir, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		root = filepath.Join(dir, "image-swapper")
	}
	bin := filepath.Join(root, name+"-"+version, name)
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return ""
	}
	return bin
}
