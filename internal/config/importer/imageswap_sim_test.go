package importer

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// simResult is what ImageSwap does with one image.
type simResult struct {
	image   string // the new image ("" is a valid outcome: an empty [EXACT] target)
	line    int    // the MAPS line that decided, 0 when none did
	crashed bool   // swap_image raised KeyError
}

// simulateImageSwap is a line-by-line Go port of swap_image in MAPS mode
// (imageswap.py@b596f22 L265-386), over the dicts parseMaps builds. It is
// the reference the translation is compared with.
func simulateImageSwap(f *mapsFile, image string) simResult {
	first, rest, hasSlash := strings.Cut(image, "/")
	registry, noRegistry := "docker.io", true
	if strings.Contains(first, ".") && hasSlash && rest != "" {
		registry, noRegistry = first, false
	}
	key := registry

	if e, ok := f.exact.get(image); ok {
		return simResult{image: e.val, line: e.line}
	}
	for _, e := range f.replace.entries() {
		if regexp.MustCompile(fnmatchRegexp(e.key)).MatchString(image) {
			base := image[strings.LastIndexByte(image, '/')+1:]
			switch {
			case e.val == "":
				return simResult{image: base, line: e.line}
			case strings.HasSuffix(e.val, "/"):
				return simResult{image: e.val + base, line: e.line}
			}
			return simResult{image: e.val + "/" + base, line: e.line}
		}
	}

	noport, _, _ := strings.Cut(registry, ":")
	_, regIn := f.maps.get(registry)
	if _, noportIn := f.maps.get(noport); !regIn && noportIn {
		key = noport
	}
	if _, ok := f.maps.get(mapsDefaultKey); !ok {
		return simResult{image: image}
	}
	var wild []string
	if e, ok := f.maps.get(mapsNoswapKey); ok && e.val != "" {
		wild = strings.Split(e.val, ",")
	}
	_, keyIn := f.maps.get(key)
	libEntry, libIn := f.maps.get(key + "/library")
	if keyIn || libIn {
		if !hasSlash && libIn {
			key += "/library"
		}
		e, ok := f.maps.get(key)
		if !ok {
			return simResult{image: image, line: libEntry.line, crashed: true}
		}
		switch {
		case e.val == "":
			return simResult{image: image, line: e.line}
		case strings.HasSuffix(e.val, "-"):
			stripped := regexp.MustCompile(`:.*/`).ReplaceAllLiteralString(image, "/")
			if noRegistry {
				return simResult{image: e.val + noport + "/" + stripped, line: e.line}
			}
			return simResult{image: e.val + stripped, line: e.line}
		case strings.Contains(image, key):
			return simResult{image: regexp.MustCompile(key).ReplaceAllLiteralString(image, e.val), line: e.line}
		}
		return simResult{image: e.val + "/" + image, line: e.line}
	}
	if e, ok := f.maps.get(mapsNoswapKey); ok {
		for _, w := range wild {
			if strings.Contains(image, w) {
				return simResult{image: image, line: e.line}
			}
		}
	}
	def, _ := f.maps.get(mapsDefaultKey)
	switch {
	case def.val == "":
		return simResult{image: image, line: def.line}
	case strings.HasSuffix(def.val, "-"):
		return simResult{image: def.val + noport + "/" + image, line: def.line}
	case strings.Contains(image, key):
		return simResult{image: regexp.MustCompile(registry).ReplaceAllLiteralString(image, def.val), line: def.line}
	}
	return simResult{image: def.val + "/" + image, line: def.line}
}

// ImageSwap's own unit tests (app/imageswap/test/*.py at v1.5.3), which the
// simulator must pass before it can judge the translation.
func TestSimulatorPassesImageSwapsOwnTests(t *testing.T) {
	tests := []struct{ file, image, want string }{
		// test_image_map_configs.py
		{"map-file-no-default", "default.io/paulbower/hello-kubernetes:1.5", "default.io/paulbower/hello-kubernetes:1.5"},
		{"map-file", "default.io/paulbower/hello-kubernetes:1.5", "default.example.com/paulbower/hello-kubernetes:1.5"},
		{"map-file-empty-default", "john.io/paulbower/hello-kubernetes:1.5", "john.io/paulbower/hello-kubernetes:1.5"},
		{"map-file", "docker.io/tmobile/magtape:latest", "my.example.com/mirror-docker.io/tmobile/magtape:latest"},
		{"map-file", "gitlab.com/tmobile/pie/proxyman:latest", "registry.example.com/gitlab/tmobile/pie/proxyman:latest"},
		{"map-file", "cool.io:443/istio/istiod:latest", "cool.io:443/istio/istiod:latest"},
		{"map-file", "registry.external.twr.io:443/istio/istiod:latest", "registry.external.twr.io:443/istio/istiod:latest"},
		{"map-file", "registry.internal.twr.io:443/istio/istiod:latest", "registry.example.com:443/istio/istiod:latest"},
		{"map-file", "walrus.io/test/test:latest", "walrus.io/test/test:latest"},
		{"map-file-library-image", "nginx:latest", "harbor.example.com/library/nginx:latest"},
		// test_image_patterns.py
		{"map-file", "alpine", "my.example.com/mirror-docker.io/alpine"},
		{"map-file", "nginx:latest", "my.example.com/mirror-docker.io/nginx:latest"},
		{"map-file", "ubuntu/ubuntu", "my.example.com/mirror-docker.io/ubuntu/ubuntu"},
		{"map-file", "ubuntu/ubuntu:latest", "my.example.com/mirror-docker.io/ubuntu/ubuntu:latest"},
		{"map-file", "quay.io/solo/gloo", "quay.example3.com/solo/gloo"},
		{"map-file", "quay.io/solo/gloo:v1.0", "quay.example3.com/solo/gloo:v1.0"},
		{"map-file", "gcr.io:443/istio/istiod:latest", "default.example.com/istio/istiod:latest"},
		{"map-file", "some/random/test/without/registry-or-tag", "my.example.com/mirror-docker.io/some/random/test/without/registry-or-tag"},
		{"map-file", "myregistry.com/some/random/test/with/registry:latest", "default.example.com/some/random/test/with/registry:latest"},
		{"map-file", "harbor.geo.k8s.twr.io/stuff/magtape:latest", "harbor.geo.k8s.twr.io/stuff/magtape:latest"},
		{"map-file", "kindest/node@sha256:15d3b5c4f521a84896ed1ead1b14e4774d02202d5c65ab68f30eeaf310a3b1a7", "my.example.com/mirror-docker.io/kindest/node@sha256:15d3b5c4f521a84896ed1ead1b14e4774d02202d5c65ab68f30eeaf310a3b1a7"},
		{"map-file", "rabbitmq:3.8.18-management", "my.example.com/mirror-docker.io/rabbitmq:3.8.18-management"},
		// test_exact_mapping.py
		{"map-file-exact", "hello-world", "myownrepo.example.com/base/public-image-cache:hello-world"},
		{"map-file-exact", "ubutun:18.04", "myownrepo.example.com/base/public-image-cache:ubuntu_18.04"},
		{"map-file-exact", "mysql/mysql-server", "myownrepo.example.com/base/public-image-cache:mysql_mysql-server"},
		{"map-file-exact", "mysql/mysql-server:5.6", "myownrepo.example.com/base/public-image-cache:mysql_mysql-server_5.6"},
		{"map-file-exact", "nvcr.io/nvidia:k8s-device-plugin_v0.9.0", "myownrepo.example.com/base/private-image-cache:nvcr.io_nvidia_k8s-device-plugin_v0.9.0"},
		// test_replace_mapping.py (its last case, "auto", contradicts the
		// code it tests and is left out)
		{"map-file-replace", "any-image", "default.example.com/any-image"},
		{"map-file-replace", "nvcr.io/any-image", "harbor.example.com/any-image"},
		{"map-file-replace", "redis", "myownrepo.example.com/base/public-image-cache:redis"},
		{"map-file-replace", "hello-world", "myownrepo.example.com/base/public-image-cache/hello-world"},
		{"map-file-replace", "ubutun:18.04", "myownrepo.example.com/base/ubutun:18.04"},
		{"map-file-replace", "mysql/mysql-server:5.6", "myownrepo.example.com/base/public-image-cache/mysql-server:5.6"},
		{"map-file-replace", "nvcr.io/nvidia:k8s-device-plugin_v0.9.0", "myownrepo.example.com/base/nvidia:k8s-device-plugin_v0.9.0"},
		{"map-file-replace", "hello:v1.1", "myownrepo.example.com/base/public-image-cache/hello:v1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.image, func(t *testing.T) {
			f := readMapsFile(t, tt.file)
			if got := simulateImageSwap(f, tt.image); got.image != tt.want {
				t.Errorf("ImageSwap(%s) = %q, want %q", tt.image, got.image, tt.want)
			}
		})
	}
}

func readMapsFile(t *testing.T, name string) *mapsFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "imageswap", name+".maps"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseMaps(data, &findings{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sampleImages are the images the translation is checked on: the ones of
// ImageSwap's tests and documentation and the usual spellings of the rest.
var sampleImages = []string{
	"nginx", "nginx:latest", "nginx:1.25", "library/nginx", "docker.io/nginx", "docker.io/library/nginx:1.25",
	"index.docker.io/library/nginx", "bitnami/redis:7", "docker.io/bitnami/redis", "tmobile/magtape:latest",
	"docker.io/tmobile/magtape:latest", "alpine", "ubuntu/ubuntu:latest", "some/random/test/without/registry-or-tag",
	"quay.io/solo/gloo:v1.0", "quay.io/solo/gloo", "quay.io:443/solo/gloo", "gcr.io:443/istio/istiod:latest",
	"gcr.io/distroless/static", "registry.k8s.io/pause:3.9", "ghcr.io/fantasy/coolstuff:v1.0", "ghcr.io/fantasy/coolstuff",
	"ghcr.io/public/foo:1", "ghcr.io/public/a/b:2", "ghcr.io/publicx:1", "myregistry.com/some/random/test/with/registry:latest",
	"harbor.geo.k8s.twr.io/stuff/magtape:latest", "registry.internal.twr.io:443/istio/istiod:latest",
	"registry.internal.twr.io/istio/istiod:latest", "registry.external.twr.io:443/istio/istiod:latest",
	"walrus.io/test/test:latest", "cool.io:443/istio/istiod:latest", "cool.io/x", "gitlab.com/tmobile/pie/proxyman:latest",
	"gitlab.com:5000/a/b", "registry.waldo.com:8443/app:1", "registry.waldo.com/app:1", "registry.foo.com/app",
	"registry.bar.com:8443/team/app:1", "nvcr.io/nvidia:k8s-device-plugin_v0.9.0", "nvcr.io/any-image", "hello-world",
	"hello-world:latest", "ubutun:18.04", "ubuntu:18.04", "mysql/mysql-server", "mysql/mysql-server:5.6", "redis", "redis:7",
	"hello:v1.1", "hello:v1.10", "any-image", "rabbitmq:3.8.18-management", "jmsearcy/app", "example.com/image:latest",
	"external.example.com/image:v1.0", "edge.example.com/image:latest", "harbor.internal.example.com/x/y",
	"kindest/node@sha256:15d3b5c4f521a84896ed1ead1b14e4774d02202d5c65ab68f30eeaf310a3b1a7",
	"nginx:1.25@sha256:15d3b5c4f521a84896ed1ead1b14e4774d02202d5c65ab68f30eeaf310a3b1a7",
	"localhost:5000/app", "localhost/app", "registry:5000/team/app",
}

// misread reports whether ImageSwap takes a different registry for image
// than the kubelet does: a first component without '.' that is a host
// (localhost, a port, upper case), or Docker Hub's index.docker.io alias.
func misread(image string) bool {
	first, _, hasSlash := strings.Cut(image, "/")
	if !hasSlash {
		return false
	}
	return first == "index.docker.io" || !strings.Contains(first, ".") && registryLike(first)
}

var showDiffs = flag.Bool("diffs", false, "log every difference between ImageSwap and the translation, reported or not")

// TestImageSwapTranslationAgreesWithImageSwapOrSaysWhy compares, for every
// testdata MAPS file and sample image, what ImageSwap does (simulated) with
// what image-swapper's compiled rules do with the translation. Where they
// differ, a finding must be on the line that decided in ImageSwap or on the
// line of the rule that decided in image-swapper.
func TestImageSwapTranslationAgreesWithImageSwapOrSaysWhy(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/imageswap/*.maps")
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".maps")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			checkAgreement(t, data, sampleImages)
		})
	}
}

// checkAgreement is the comparison of TestImageSwapTranslationAgreesWithImageSwapOrSaysWhy
// for one MAPS file.
func checkAgreement(t *testing.T, data []byte, images []string) {
	t.Helper()
	cfg, fs, err := ImageSwap(data)
	if err != nil {
		t.Fatalf("ImageSwap: %v", err)
	}
	f, err := parseMaps(data, &findings{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatalf("compiling the translation: %v", err)
	}
	lines := map[int]bool{}
	for _, fd := range fs {
		lines[fd.Line] = true
	}
	for _, image := range images {
		ref, err := reference.Parse(image)
		if err != nil {
			t.Fatalf("sample image %q: %v", image, err)
		}
		if _, produced := set.Produced(ref); produced {
			continue // image-swapper never swaps its own output again, by design
		}
		want := simulateImageSwap(f, image)
		got, gotLine := evaluate(t, cfg, set, ref)
		if agree(want, got) {
			continue
		}
		if *showDiffs {
			t.Logf("DIFF %s: imageswap %q (line %d crash %v) ours %q (line %d)", image, want.image, want.line, want.crashed, got, gotLine)
		}
		switch {
		case misread(image) && lines[0]:
		case lines[want.line] && want.line > 0:
		case lines[gotLine] && gotLine > 0:
		default:
			t.Errorf("%s: ImageSwap gives %q (line %d, crashed %v), image-swapper gives %q (line %d), and no finding says why",
				image, want.image, want.line, want.crashed, got, gotLine)
		}
	}
}

// evaluate returns what image-swapper's rules make of ref: the target
// reference, the original when the image is kept, or "deny"; and the MAPS
// line of the rule that decided.
func evaluate(t *testing.T, cfg *config.Config, set *rules.Set, ref reference.Reference) (string, int) {
	t.Helper()
	var r *rules.Rule
	set.Walk(ref, &rules.Context{}, func(rule *rules.Rule, outOfScope string) bool {
		if outOfScope != "" {
			return true
		}
		r = rule
		return false
	})
	if r == nil {
		return ref.String(), 0
	}
	line := ruleLine(r.Name)
	switch r.Action {
	case config.ActionKeep:
		return ref.String(), line
	case config.ActionDeny:
		return "deny", line
	}
	out, err := r.Target(ref)
	if err != nil {
		t.Fatalf("rule %s renders no valid target for %s: %v", r.Name, ref, err)
	}
	return out.String(), line
}

// ruleLine recovers the MAPS line from a rule name such as
// "imageswap-line-7-port"; sourceRegistries rules give the default's line
// through the caller's findings only, so 0.
func ruleLine(name string) int {
	rest, ok := strings.CutPrefix(name, "imageswap-line-")
	if !ok {
		return 0
	}
	num, _, _ := strings.Cut(rest, "-")
	n, _ := strconv.Atoi(num)
	return n
}

// agree reports whether ImageSwap's result and image-swapper's name the
// same image, comparing normalised references.
func agree(want simResult, got string) bool {
	if want.crashed {
		return false
	}
	if want.image == "" {
		return got == "deny"
	}
	ref, err := reference.Parse(want.image)
	if err != nil {
		return false
	}
	return ref.String() == got
}
