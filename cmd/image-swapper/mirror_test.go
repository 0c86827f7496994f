package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/manifest"
	"github.com/image-swapper/image-swapper/internal/registrytest"
)

// mirrorSetup is a source and a target registry and a config between them.
type mirrorSetup struct {
	src, dst *registrytest.Registry
	config   string
}

func newMirrorSetup(t *testing.T) mirrorSetup {
	t.Helper()
	s := mirrorSetup{src: registrytest.New(t), dst: registrytest.New(t)}
	cfg := fmt.Sprintf(`sourceRegistries: [%q]
targetRegistry: %s/mirror
registries:
  %q: {insecure: true}
  %q: {insecure: true}
`, s.src.Host, s.dst.Host, s.src.Host, s.dst.Host)
	s.config = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// targetOf is where the default rule sends repo (repository:tag of src).
func (s mirrorSetup) targetOf(repo string) string {
	return "mirror/" + strings.ReplaceAll(s.src.Host, ":", "_") + "/" + repo
}

func TestMirrorCopiesMultiArchWithTheSameDigest(t *testing.T) {
	s := newMirrorSetup(t)
	digest := s.src.PushIndex(t, "team/app:1.0", 3, "linux/amd64", "linux/arm64", "linux/s390x")
	code, out, errOut := runCLI(t, "", "mirror", "--config", s.config, s.src.Ref("team/app:1.0"))
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if got := s.dst.Digest(t, s.targetOf("team/app:1.0")); got != digest {
		t.Fatalf("target digest %q, want the source digest %q", got, digest)
	}
	if !strings.Contains(out, "1 copied, 0 already present, 0 failed") {
		t.Errorf("summary does not report one copy:\n%s", out)
	}
	if !strings.Contains(errOut, "copied  "+s.src.Ref("team/app:1.0")) {
		t.Errorf("no plain progress line off a terminal:\n%s", errOut)
	}

	// Mirroring again costs one HEAD at the target.
	s.dst.Reset()
	code, out, _ = runCLI(t, "", "mirror", "--config", s.config, s.src.Ref("team/app:1.0"))
	if code != 0 || !strings.Contains(out, "0 copied, 1 already present") {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if n := s.dst.Count("PUT", ""); n != 0 {
		t.Errorf("second run made %d PUT requests at the target", n)
	}
}

func TestMirrorFromManifestsAndListDeduplicates(t *testing.T) {
	s := newMirrorSetup(t)
	s.src.PushIndex(t, "team/web:2", 1, "linux/amd64")
	s.src.PushIndex(t, "team/db:3", 1, "linux/amd64")
	list := filepath.Join(t.TempDir(), "images.txt")
	if err := os.WriteFile(list, []byte("# images\n"+s.src.Ref("team/web:2")+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	manifests := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: %q}\n  - {name: b, image: %q}\n", s.src.Ref("team/web:2"), s.src.Ref("team/db:3"))
	code, out, errOut := runCLI(t, manifests, "mirror", "--config", s.config, "-f", list, "--from-manifests", "-")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "2 copied, 0 already present, 0 failed") {
		t.Errorf("want two copies (web deduplicated):\n%s", out)
	}
}

func TestMirrorDryRunCopiesNothing(t *testing.T) {
	s := newMirrorSetup(t)
	code, out, _ := runCLI(t, "", "mirror", "--config", s.config, "--dry-run", s.src.Ref("team/app:1.0"), "registry.k8s.io/pause:3.10")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := fmt.Sprintf("would copy %s -> %s/%s\n", s.src.Ref("team/app:1.0"), s.dst.Host, s.targetOf("team/app:1.0"))
	if out != want {
		t.Errorf("dry run printed\n%s\nwant\n%s", out, want)
	}
	if n := s.dst.Count("", ""); n != 0 {
		t.Errorf("dry run made %d requests at the target", n)
	}
}

func TestMirrorFailureExits1WithTheReason(t *testing.T) {
	s := newMirrorSetup(t)
	s.src.PushIndex(t, "team/ok:1", 1, "linux/amd64")
	code, out, errOut := runCLI(t, "", "mirror", "--config", s.config, s.src.Ref("team/ok:1"), s.src.Ref("team/missing:1"))
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "1 copied, 0 already present, 1 failed") {
		t.Errorf("summary:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 2 image(s) failed") || !strings.Contains(errOut, s.src.Ref("team/missing:1")) {
		t.Errorf("stderr does not name the failed image:\n%s", errOut)
	}
}

func podManifest(image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: app\n    image: %s\n", image)
}

func TestRewriteCopyPinAndMappings(t *testing.T) {
	s := newMirrorSetup(t)
	digest := s.src.PushIndex(t, "team/app:1.0", 2, "linux/amd64", "linux/arm64")
	mappings := filepath.Join(t.TempDir(), "mappings.json")
	in := podManifest(s.src.Ref("team/app:1.0"))
	code, out, errOut := runCLI(t, in, "rewrite", "--config", s.config, "--copy", "--pin-digest", "--write-mappings", mappings)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	pinned := s.dst.Host + "/" + strings.Replace(s.targetOf("team/app:1.0"), ":1.0", ":1.0@"+digest, 1)
	if want := podManifest(pinned); out != want {
		t.Fatalf("output\n%s\nwant\n%s", out, want)
	}
	lock, err := manifest.ReadLock(mappings)
	if err != nil {
		t.Fatal(err)
	}
	entry := lock.Images[s.src.Ref("team/app:1.0")]
	if entry.Target != pinned || entry.Digest != digest || entry.SourceDigest != digest {
		t.Fatalf("mappings entry %+v, want target %s and both digests %s", entry, pinned, digest)
	}

	// Upstream moves the tag: a run with the mappings keeps the locked
	// reference and reports the move.
	moved := s.src.PushIndex(t, "team/app:1.0", 2, "linux/amd64")
	code, out, errOut = runCLI(t, in, "rewrite", "--config", s.config, "--mappings", mappings)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if want := podManifest(pinned); out != want {
		t.Errorf("with mappings: output\n%s\nwant\n%s", out, want)
	}
	if !strings.Contains(errOut, "upstream digest changed") || !strings.Contains(errOut, moved) {
		t.Errorf("stderr does not report the moved tag:\n%s", errOut)
	}
}

func TestRewriteCheckFailsForMissingImages(t *testing.T) {
	s := newMirrorSetup(t)
	s.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	code, out, errOut := runCLI(t, podManifest(s.src.Ref("team/app:1.0")), "rewrite", "--config", s.config, "--check")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing written", code, out)
	}
	if !strings.Contains(errOut, "is not in the mirror (use --copy to copy it)") {
		t.Errorf("stderr:\n%s", errOut)
	}
	// After a copy the check passes.
	if code, _, errOut := runCLI(t, "", "mirror", "--config", s.config, s.src.Ref("team/app:1.0")); code != 0 {
		t.Fatalf("mirror: %s", errOut)
	}
	if code, _, errOut := runCLI(t, podManifest(s.src.Ref("team/app:1.0")), "rewrite", "--config", s.config, "--check"); code != 0 {
		t.Fatalf("check after copy: exit %d\n%s", code, errOut)
	}
}

func TestMappingsFileIsJSONWithVersion(t *testing.T) {
	l := &manifest.Lock{Version: manifest.LockVersion, Images: map[string]manifest.LockEntry{"docker.io/library/nginx:1.27": {Target: "r.example.com/x@sha256:" + strings.Repeat("a", 64)}}}
	path := filepath.Join(t.TempDir(), "m.json")
	if err := l.Write(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil || raw["version"] != float64(1) {
		t.Fatalf("mappings file %s: %v", data, err)
	}
	if err := os.WriteFile(path, []byte(`{"version": 2, "images": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.ReadLock(path); err == nil || !strings.Contains(err.Error(), "mappings version 2") {
		t.Errorf("ReadLock of version 2: %v", err)
	}
}

// productExample is the configuration of the product's own example
// (/work/shared/design.md, "Configuration"), verbatim: it swaps only in
// namespaces labelled enable-mirroring=true.
const productExample = `sourceRegistries: [docker.io, quay.io]
targetRegistry: registry.example.com
mirroring:
  enabled: true
  namespaceSelector: {matchLabels: {enable-mirroring: "true"}}
security:
  scanning: {enabled: true, provider: trivy, failOnCritical: true}
policies:
  allowList: ["registry.example.com/*"]
  denyList: ["docker.io/unknown/*"]
`

// productExampleSetup writes productExample followed by a registries
// section that serves docker.io and registry.example.com from in-process
// registries; the example's own lines are unchanged.
func productExampleSetup(t *testing.T) (src, dst *registrytest.Registry, config string) {
	t.Helper()
	src, dst = registrytest.New(t), registrytest.New(t)
	cfg := productExample + fmt.Sprintf(`registries:
  docker.io: {endpoint: "http://%s", insecure: true}
  registry.example.com: {endpoint: "http://%s", insecure: true}
`, src.Host, dst.Host)
	config = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return src, dst, config
}

// withoutScanning turns the vulnerability gate of a productExample
// configuration file off.
func withoutScanning(t *testing.T, config string) {
	t.Helper()
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(data), "scanning: {enabled: true,", "scanning: {enabled: false,", 1)
	if off == string(data) {
		t.Fatal("the product example has no scanning section to turn off")
	}
	if err := os.WriteFile(config, []byte(off), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorPrewarmsWithTheProductExample: without --namespace, mirror
// copies what some namespace could swap, although the example swaps only
// in labelled namespaces; what only the deny list would touch is skipped.
func TestMirrorPrewarmsWithTheProductExample(t *testing.T) {
	src, dst, config := productExampleSetup(t)
	digest := src.PushIndex(t, "library/nginx:1.27", 2, "linux/amd64", "linux/arm64")
	src.PushIndex(t, "unknown/db:1", 1, "linux/amd64")
	code, out, errOut := runCLI(t, "", "mirror", "--config", config, "nginx:1.27", "docker.io/unknown/db:1")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if got := dst.Digest(t, "docker.io/library/nginx:1.27"); got != digest {
		t.Fatalf("target digest %q, want the source digest %q", got, digest)
	}
	if !strings.Contains(out, "1 copied, 0 already present, 0 failed") {
		t.Errorf("summary does not report one copy:\n%s", out)
	}
	if !strings.Contains(errOut, "skipped docker.io/unknown/db:1: denied") || !strings.Contains(errOut, "denyList") {
		t.Errorf("the denied image is not reported as skipped:\n%s", errOut)
	}
	if n := dst.Count("", "unknown/db"); n != 0 {
		t.Errorf("the denied image reached the target: %d requests", n)
	}
}

// TestMirrorForANamespaceDecidesForIt: with --namespace or
// --namespace-label, mirror judges the selector for that namespace: an
// unlabelled one swaps nothing, and the allowList then refuses the image.
func TestMirrorForANamespaceDecidesForIt(t *testing.T) {
	_, dst, config := productExampleSetup(t)
	code, _, errOut := runCLI(t, "", "mirror", "--config", config, "--dry-run", "--namespace", "shop", "nginx:1.27")
	if code != exitTrouble || !strings.Contains(errOut, "skipped nginx:1.27: denied: denied by policies.allowList") {
		t.Errorf("--namespace shop: exit %d, stderr:\n%s", code, errOut)
	}
	code, out, errOut := runCLI(t, "", "mirror", "--config", config, "--dry-run", "--namespace", "shop", "--namespace-label", "enable-mirroring=true", "nginx:1.27")
	if want := "would copy docker.io/library/nginx:1.27 -> registry.example.com/docker.io/library/nginx:1.27\n"; code != 0 || out != want {
		t.Errorf("labelled namespace: exit %d, stdout %q, want %q\n%s", code, out, want, errOut)
	}
	if n := dst.Count("", ""); n != 0 {
		t.Errorf("dry runs made %d requests at the target", n)
	}
}

// TestMirrorPrewarmsManifestImages: images from --from-manifests are
// pre-warmed too, since which namespace a manifest lands in, and its
// labels, are not known to mirror.
func TestMirrorPrewarmsManifestImages(t *testing.T) {
	_, _, config := productExampleSetup(t)
	code, out, errOut := runCLI(t, podManifest("quay.io/team/app:2"), "mirror", "--config", config, "--dry-run", "--from-manifests", "-")
	if want := "would copy quay.io/team/app:2 -> registry.example.com/quay.io/team/app:2\n"; code != 0 || out != want {
		t.Errorf("exit %d, stdout %q, want %q\n%s", code, out, want, errOut)
	}
}

// TestRewriteKeepsNamespaceSemantics: rewrite decides for the namespace
// it is given (none: a namespace without labels), so the product example
// swaps nothing outside labelled namespaces.
func TestRewriteKeepsNamespaceSemantics(t *testing.T) {
	_, _, config := productExampleSetup(t)
	// The example's vulnerability gate would judge nginx, which is not in
	// the test's registry (pending: deny); rewrite's gate is tested in
	// scan_test.go.
	withoutScanning(t, config)
	in := podManifest("registry.example.com/docker.io/library/nginx:1.27")
	code, out, errOut := runCLI(t, podManifest("nginx:1.27"), "rewrite", "--config", config, "--namespace-label", "enable-mirroring=true")
	if code != 0 || out != in {
		t.Errorf("labelled: exit %d, output\n%s\nwant\n%s\n%s", code, out, in, errOut)
	}
	code, out, errOut = runCLI(t, podManifest("nginx:1.27"), "rewrite", "--config", config)
	if code != 1 || out != "" || !strings.Contains(errOut, "policies.allowList") {
		t.Errorf("unlabelled: exit %d, stdout %q, want a denial by the allowList (nothing swapped)\n%s", code, out, errOut)
	}
}
