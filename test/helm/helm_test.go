// Package helm_test runs image-swapper as a post-renderer of real Helm
// binaries: Helm 3 with the binary as --post-renderer, Helm 4 through the
// plugin in deploy/helm-plugin, installed into an isolated Helm home.
//
// The Helm binaries come from the environment (IMAGE_SWAPPER_HELM3,
// IMAGE_SWAPPER_HELM4; `eval "$(.ci/tools.sh helm)"` builds and sets them).
// Without them the tests skip, except in CI (CI=true), where a missing Helm
// is a failure: a post-renderer that no real Helm has run is untested.
package helm_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/expected-helm*.yaml from helm's output")

const (
	chartDir   = "testdata/chart"
	configFile = "testdata/config.yaml"
	pluginDir  = "../../deploy/helm-plugin"
	pluginName = "image-swapper"

	// denyMessage is the message of config.yaml's deny rule.
	denyMessage = "images from docker.io/unknown are not vetted"
)

// wantImages are the images of the chart's regular manifests after the swap:
// Docker Hub and Quay images in the mirror, tag@digest kept whole, and the
// ghcr.io image, which no rule covers, as it was. Sorted.
var wantImages = []string{
	"CronJob demo-cleanup containers[cleanup]: registry.example.com/docker.io/library/alpine:3.20@sha256:0a4eaa0eecf5f8c050e5bba433f58c052be7587ee8af3e8b3910ef9ab5fbe9f5",
	"CronJob demo-cleanup containers[report]: ghcr.io/example/report:2.1.0",
	"Deployment demo-web containers[exporter]: registry.example.com/quay.io/prometheus/node-exporter:v1.8.2",
	"Deployment demo-web containers[web]: registry.example.com/docker.io/library/nginx:1.27.3",
	"Deployment demo-web initContainers[wait]: registry.example.com/docker.io/library/busybox:1.36",
}

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// renderer is one way of making Helm post-render with image-swapper.
type renderer struct {
	name    string
	helmEnv string // the variable naming the Helm binary
	golden  string
	// hookImage is the image of the chart's pre-install hook: Helm 3 never
	// shows hooks to a post-renderer, Helm 4 does.
	hookImage string
	// setup returns the environment and the `helm template` flags that
	// select image-swapper as the post-renderer.
	setup func(t *testing.T, h helm, swapper, config string) (env, flags []string)
}

var renderers = []renderer{
	{
		name:      "helm 3 runs the image-swapper binary as the post-renderer",
		helmEnv:   "IMAGE_SWAPPER_HELM3",
		golden:    "testdata/expected-helm3.yaml",
		hookImage: "Job demo-migrate containers[migrate]: docker.io/library/postgres:16",
		setup: func(t *testing.T, h helm, swapper, config string) ([]string, []string) {
			return nil, []string{
				"--post-renderer", swapper,
				"--post-renderer-args", "rewrite",
				"--post-renderer-args", "--config",
				"--post-renderer-args", config,
			}
		},
	},
	{
		name:      "helm 4 runs the plugin with the config in IMAGE_SWAPPER_CONFIG and image-swapper on PATH",
		helmEnv:   "IMAGE_SWAPPER_HELM4",
		golden:    "testdata/expected-helm4.yaml",
		hookImage: "Job demo-migrate containers[migrate]: registry.example.com/docker.io/library/postgres:16",
		setup: func(t *testing.T, h helm, swapper, config string) ([]string, []string) {
			h.installPlugin(t)
			env := []string{
				"PATH=" + filepath.Dir(swapper) + string(os.PathListSeparator) + os.Getenv("PATH"),
				"IMAGE_SWAPPER_CONFIG=" + config,
			}
			return env, []string{"--post-renderer", pluginName}
		},
	},
	{
		name:      "helm 4 runs the plugin with the config in --post-renderer-args and image-swapper in IMAGE_SWAPPER_BIN",
		helmEnv:   "IMAGE_SWAPPER_HELM4",
		golden:    "testdata/expected-helm4.yaml",
		hookImage: "Job demo-migrate containers[migrate]: registry.example.com/docker.io/library/postgres:16",
		setup: func(t *testing.T, h helm, swapper, config string) ([]string, []string) {
			h.installPlugin(t)
			return []string{"IMAGE_SWAPPER_BIN=" + swapper}, []string{
				"--post-renderer", pluginName,
				"--post-renderer-args", "--config",
				"--post-renderer-args", config,
			}
		},
	},
}

func TestPostRenderer(t *testing.T) {
	config := absPath(t, configFile)
	for _, r := range renderers {
		t.Run(r.name, func(t *testing.T) {
			h := newHelm(t, r.helmEnv)
			env, flags := r.setup(t, h, testenv.ImageSwapper(t), config)

			t.Run("images are swapped and nothing else changes", func(t *testing.T) {
				stdout, stderr, err := h.run(t, env, templateArgs(flags)...)
				if err != nil {
					t.Fatalf("helm template: %v\nstderr:\n%s", err, stderr)
				}
				want := append(slices.Clone(wantImages), r.hookImage)
				slices.Sort(want)
				if got := renderedImages(t, stdout); !slices.Equal(got, want) {
					t.Errorf("rendered images:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
				compareGolden(t, r.golden, stdout)
			})

			t.Run("a denied image fails the render with the rule's message", func(t *testing.T) {
				args := append(templateArgs(flags), "--set", "image.repository=unknown/tool")
				stdout, stderr, err := h.run(t, env, args...)
				if err == nil {
					t.Fatalf("helm template succeeded with a denied image; stdout:\n%s", stdout)
				}
				if stdout != "" {
					t.Errorf("helm wrote manifests although an image is denied:\n%s", stdout)
				}
				for _, want := range []string{denyMessage, `"unknown/tool:1.27.3"`} {
					if !strings.Contains(stderr, want) {
						t.Errorf("helm's stderr does not contain %q:\n%s", want, stderr)
					}
				}
			})
		})
	}
}

// TestHelm4Plugin checks the plugin itself: that Helm 4 installs and lists
// it as a post-renderer, and that a missing configuration or binary is
// reported to the person running helm. None of it needs image-swapper.
func TestHelm4Plugin(t *testing.T) {
	h := newHelm(t, "IMAGE_SWAPPER_HELM4")
	h.installPlugin(t)

	t.Run("helm plugin list shows a postrenderer/v1 plugin", func(t *testing.T) {
		stdout, stderr, err := h.run(t, nil, "plugin", "list")
		if err != nil {
			t.Fatalf("helm plugin list: %v\nstderr:\n%s", err, stderr)
		}
		var row []string
		for line := range strings.Lines(stdout) {
			if f := strings.Fields(line); len(f) > 0 && f[0] == pluginName {
				row = f
			}
		}
		if len(row) < 3 || row[1] != "0.1.0" || row[2] != "postrenderer/v1" {
			t.Errorf("helm plugin list: want a row %q 0.1.0 postrenderer/v1, got:\n%s", pluginName, stdout)
		}
	})

	emptyDir := t.TempDir() // a PATH on which no image-swapper is found
	tests := []struct {
		name       string
		env        []string
		flags      []string
		wantStderr string
	}{
		{
			"without a config the plugin says how to give one",
			[]string{"PATH=" + emptyDir},
			nil,
			"no configuration: set IMAGE_SWAPPER_CONFIG=FILE or pass --post-renderer-args --config --post-renderer-args FILE",
		},
		{
			"without an image-swapper binary the plugin says where it looked",
			[]string{"PATH=" + emptyDir},
			[]string{"--post-renderer-args", "--config=" + absPath(t, configFile)},
			"image-swapper not found: put it on PATH, in " + h.pluginPath() + "/bin, or set IMAGE_SWAPPER_BIN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := append([]string{"--post-renderer", pluginName}, tt.flags...)
			stdout, stderr, err := h.run(t, tt.env, templateArgs(flags)...)
			if err == nil {
				t.Fatalf("helm template succeeded; stdout:\n%s", stdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("helm's stderr does not contain %q:\n%s", tt.wantStderr, stderr)
			}
		})
	}
}

// templateArgs renders the test chart as release "demo" with the given
// post-renderer flags.
func templateArgs(flags []string) []string {
	return append([]string{"template", "demo", chartDir}, flags...)
}

// helm is one Helm binary with a Helm home of its own, so that neither the
// user's repositories and plugins nor another test's leak in.
type helm struct {
	bin  string
	home string
}

// newHelm returns the Helm named by the environment variable env, or skips
// the test when it is unset outside CI.
func newHelm(t *testing.T, env string) helm {
	t.Helper()
	bin := os.Getenv(env)
	testenv.Require(t, bin != "", "%s is not set; eval \"$(.ci/tools.sh helm)\" builds Helm and sets it", env)
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatalf("%s=%q: %v", env, bin, err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s=%q: want an executable Helm binary", env, bin)
	}
	return helm{bin: bin, home: t.TempDir()}
}

// env is the process environment without any Helm or image-swapper
// settings, plus the isolated Helm home and extra (later entries win).
func (h helm) env(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "HELM_") || strings.HasPrefix(k, "IMAGE_SWAPPER_") || k == "KUBECONFIG" {
			continue
		}
		env = append(env, kv)
	}
	data := filepath.Join(h.home, "data")
	env = append(env,
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_DATA_HOME="+data,
		// Helm 4.3.1 installs a plugin from a directory into
		// $HELM_DATA_HOME/plugins whatever HELM_PLUGINS says, and loads
		// plugins from HELM_PLUGINS: the two must agree.
		"HELM_PLUGINS="+filepath.Join(data, "plugins"),
		// helm template needs no cluster; make sure it finds none.
		"KUBECONFIG="+filepath.Join(h.home, "no-kubeconfig"),
	)
	return append(env, extra...)
}

// pluginPath is where `helm plugin install` puts deploy/helm-plugin.
func (h helm) pluginPath() string {
	return filepath.Join(h.home, "data", "plugins", filepath.Base(pluginDir))
}

// installPlugin installs deploy/helm-plugin into h's Helm home.
func (h helm) installPlugin(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(h.pluginPath()); err == nil {
		return
	}
	stdout, stderr, err := h.run(t, nil, "plugin", "install", absPath(t, pluginDir))
	if err != nil {
		t.Fatalf("helm plugin install %s: %v\nstdout:\n%s\nstderr:\n%s", pluginDir, err, stdout, stderr)
	}
}

// run runs helm with args in the test's package directory.
func (h helm) run(t *testing.T, extraEnv []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env(extraEnv)
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running %s %s: %v", h.bin, strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), err
}

func absPath(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("absolute path of %s: %v", path, err)
	}
	return abs
}

// renderedImages lists the container images in a manifest stream as
// "Kind name field[container]: image", sorted.
func renderedImages(t *testing.T, stream string) []string {
	t.Helper()
	var images []string
	dec := yaml.NewDecoder(strings.NewReader(stream))
	for i := 0; ; i++ {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm's output, document %d: %v\n%s", i, err, stream)
		}
		if obj == nil {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		prefix := fmt.Sprintf("%v %v", obj["kind"], meta["name"])
		collectImages(obj, prefix, &images)
	}
	slices.Sort(images)
	return images
}

// collectImages appends the images of every container list under node.
func collectImages(node any, prefix string, images *[]string) {
	switch n := node.(type) {
	case map[string]any:
		for key, v := range n {
			if list, ok := v.([]any); ok && (key == "containers" || key == "initContainers" || key == "ephemeralContainers") {
				for _, c := range list {
					if c, ok := c.(map[string]any); ok {
						*images = append(*images, fmt.Sprintf("%s %s[%v]: %v", prefix, key, c["name"], c["image"]))
					}
				}
				continue
			}
			collectImages(v, prefix, images)
		}
	case []any:
		for _, v := range n {
			collectImages(v, prefix, images)
		}
	}
}

// compareGolden compares helm's output with a golden file byte for byte;
// with -update it rewrites the file instead.
func compareGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatalf("updating %s: %v", golden, err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading %s: %v", golden, err)
	}
	if got != string(want) {
		t.Errorf("helm's output differs from %s (run with -update to accept it):\n%s", golden, lineDiff(string(want), got))
	}
}

// lineDiff shows the lines where want and got first differ, with a little
// context: enough to see what changed without a diff library.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	for j := max(0, i-2); j < min(i+3, max(len(w), len(g))); j++ {
		wl, gl := lineAt(w, j), lineAt(g, j)
		if wl == gl {
			fmt.Fprintf(&b, "  %4d   %s\n", j+1, wl)
			continue
		}
		fmt.Fprintf(&b, "  %4d - %s\n  %4d + %s\n", j+1, wl, j+1, gl)
	}
	return b.String()
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<end of file>"
}
