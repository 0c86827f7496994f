package registrye2e_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.yaml.in/yaml/v3"

	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// seeded is an index pushed to a source registry.
type seeded struct {
	digest   string   // the index's
	children []string // its manifests' digests, in index order
}

// seedIndex pushes an index of random images, one per platform, each with
// layers random layers, to ref ("127.0.0.1:port/src/app:1.0").
func seedIndex(t *testing.T, ref string, layers int64, platforms ...string) seeded {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	for i, p := range platforms {
		// Layers of different sizes per platform, so that no two
		// platforms share a blob.
		img, err := random.Image(int64(4096*(i+1)), layers)
		if err != nil {
			t.Fatal(err)
		}
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatalf("seeding %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	s := seeded{digest: d.String()}
	for _, m := range im.Manifests {
		s.children = append(s.children, m.Digest.String())
	}
	return s
}

// checkMirrored fails the test unless ref holds exactly what src seeded:
// the index with the same digest, every child manifest with its digest,
// and every blob whole.
func checkMirrored(t *testing.T, ref string, src seeded, auth authn.Authenticator) {
	t.Helper()
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithAuth(auth)}
	desc, err := remote.Head(tag, opts...)
	if err != nil {
		t.Fatalf("HEAD %s at the target: %v", ref, err)
	}
	if got := desc.Digest.String(); got != src.digest {
		t.Fatalf("%s has digest %s at the target, want the source's %s", ref, got, src.digest)
	}
	idx, err := remote.Index(tag, opts...)
	if err != nil {
		t.Fatalf("reading index %s at the target: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var children []string
	for _, m := range im.Manifests {
		children = append(children, m.Digest.String())
		child := tag.Context().Digest(m.Digest.String())
		d, err := remote.Head(child, opts...)
		if err != nil {
			t.Fatalf("HEAD %s at the target: %v", child, err)
		}
		if d.Digest != m.Digest {
			t.Errorf("%s answers with digest %s", child, d.Digest)
		}
	}
	if !slices.Equal(children, src.children) {
		t.Errorf("the target index lists manifests %v, the source's %v", children, src.children)
	}
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatalf("reading image %s of %s at the target: %v", m.Digest, ref, err)
		}
		checkBlobs(t, ref, img)
	}
}

// checkBlobs reads every blob of img (config and layers) and checks its
// digest and size against the manifest.
func checkBlobs(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		t.Fatalf("reading the config of %s: %v", ref, err)
	}
	checkBlob(t, ref, mf.Config, bytes.NewReader(config))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(mf.Layers) {
		t.Fatalf("%s: %d layers, its manifest lists %d", ref, len(layers), len(mf.Layers))
	}
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("reading layer %s of %s: %v", mf.Layers[i].Digest, ref, err)
		}
		checkBlob(t, ref, mf.Layers[i], rc)
		rc.Close()
	}
}

// checkBlob reads r and checks that it has the digest and size of desc.
func checkBlob(t *testing.T, ref string, desc v1.Descriptor, r io.Reader) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Errorf("%s: reading blob %s: %v", ref, desc.Digest, err)
		return
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != desc.Digest.String() || n != desc.Size {
		t.Errorf("%s: blob %s (%d bytes) reads as %s (%d bytes)", ref, desc.Digest, desc.Size, got, n)
	}
}

// writeConfig writes an image-swapper config that swaps images of source
// into target, with the given registries section and the top-level keys
// of extra, and returns its path.
func writeConfig(t *testing.T, source, target string, registries, extra map[string]any) string {
	t.Helper()
	cfg := map[string]any{
		"sourceRegistries": []string{source},
		"targetRegistry":   target,
		"registries":       registries,
	}
	maps.Copy(cfg, extra)
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// targetOf is where the default rule puts a source image: below the
// target, under the source host with ":" written "_".
func targetOf(target, sourceHost, path string) string {
	return target + "/" + strings.ReplaceAll(sourceHost, ":", "_") + "/" + path
}

func TestMirrorBetweenTwoDockerRegistries(t *testing.T) {
	srcReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	dstReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	// image-swapper reaches both through counting proxies, so that the
	// test sees every request it makes.
	src := registrytest.NewProxy(t, srcReg.Host)
	dst := registrytest.NewProxy(t, dstReg.Host)
	config := writeConfig(t, src.Host, dst.Host, map[string]any{
		src.Host: map[string]any{"insecure": true},
		dst.Host: map[string]any{"insecure": true},
	}, nil)

	app := seedIndex(t, srcReg.Host+"/src/app:1.0", 3, "linux/amd64", "linux/arm64")
	appSource := src.Host + "/src/app:1.0"
	appTarget := targetOf(dst.Host, src.Host, "src/app:1.0")

	ok := t.Run("the first run copies the index and every child manifest with their digests", func(t *testing.T) {
		r := runSwapper(t, "", nil, "mirror", "--config", config, appSource)
		if r.code != 0 || !strings.Contains(r.stdout, "1 copied, 0 already present, 0 failed") {
			t.Fatalf("want one image copied, got:\n%s", r)
		}
		checkMirrored(t, appTarget, app, authn.Anonymous)
	})
	if !ok {
		return
	}

	t.Run("a second run finds the image present with one manifest HEAD at the target and writes nothing", func(t *testing.T) {
		src.Reset()
		dst.Reset()
		r := runSwapper(t, "", nil, "mirror", "--config", config, appSource)
		if r.code != 0 || !strings.Contains(r.stdout, "0 copied, 1 already present, 0 failed") {
			t.Fatalf("want the image already present, got:\n%s", r)
		}
		srcReqs, dstReqs := src.Requests(), dst.Requests()
		t.Logf("requests at the source: %q", srcReqs)
		t.Logf("requests at the target: %q", dstReqs)

		repo := "/v2/" + strings.TrimPrefix(appTarget, dst.Host+"/")
		repo = repo[:strings.LastIndex(repo, ":")]
		wantManifest := []string{"HEAD " + repo + "/manifests/1.0"}
		if got := matching(dstReqs, "/manifests/"); !slices.Equal(got, wantManifest) {
			t.Errorf("manifest requests at the target: %q, want only %q", got, wantManifest)
		}
		if got := matching(dstReqs, "/blobs/"); len(got) > 0 {
			t.Errorf("blob requests at the target: %q, want none", got)
		}
		if got := writes(dstReqs); len(got) > 0 {
			t.Errorf("writes at the target: %q, want none", got)
		}
		for _, req := range append(matching(srcReqs, "/manifests/"), matching(srcReqs, "/blobs/")...) {
			if !strings.HasPrefix(req, "HEAD ") {
				t.Errorf("the source was read (%q); an image already present needs at most a HEAD there", req)
			}
		}
	})

	t.Run("a present image named by digest costs one manifest HEAD at the target and nothing at the source", func(t *testing.T) {
		src.Reset()
		dst.Reset()
		r := runSwapper(t, "", nil, "mirror", "--config", config, appSource+"@"+app.digest)
		if r.code != 0 || !strings.Contains(r.stdout, "0 copied, 1 already present, 0 failed") {
			t.Fatalf("want the image already present, got:\n%s", r)
		}
		if got := src.Requests(); len(got) > 0 {
			t.Errorf("requests at the source: %q, want none: the digest says what to look for", got)
		}
		dstReqs := dst.Requests()
		t.Logf("requests at the target: %q", dstReqs)
		if got := matching(dstReqs, "/manifests/"); len(got) != 1 || !strings.HasPrefix(got[0], "HEAD ") {
			t.Errorf("manifest requests at the target: %q, want one HEAD", got)
		}
		if got := writes(dstReqs); len(got) > 0 {
			t.Errorf("writes at the target: %q, want none", got)
		}
	})

	t.Run("rewrite --copy --pin-digest writes the target at the digest it copied", func(t *testing.T) {
		web := seedIndex(t, srcReg.Host+"/src/web:2.0", 2, "linux/amd64", "linux/arm64")
		webTarget := targetOf(dst.Host, src.Host, "src/web:2.0")
		pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
  - name: web
    image: %s/src/web:2.0
`, src.Host)
		r := runSwapper(t, pod, nil, "rewrite", "--config", config, "--copy", "--pin-digest", "-f", "-")
		if r.code != 0 {
			t.Fatalf("rewrite failed:\n%s", r)
		}
		var out struct {
			Spec struct {
				Containers []struct {
					Image string `yaml:"image"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Spec.Containers) != 1 {
			t.Fatalf("rewrite wrote no Pod with one container (%v):\n%s", err, r)
		}
		repo := webTarget[:strings.LastIndex(webTarget, ":")]
		want := []string{repo + "@" + web.digest, webTarget + "@" + web.digest}
		if got := out.Spec.Containers[0].Image; !slices.Contains(want, got) {
			t.Errorf("rewritten image is %q, want %q (or with the tag kept, %q)", got, want[0], want[1])
		}
		checkMirrored(t, webTarget, web, authn.Anonymous)
	})
}

// Loopback registries are tried over HTTPS, then plain HTTP, as
// containerd does: mirroring between two docker-registry processes on
// 127.0.0.1 needs no registries section at all.
func TestMirrorBetweenLoopbackRegistriesNeedsNoRegistriesSection(t *testing.T) {
	srcReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	dstReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	if !strings.HasPrefix(srcReg.Host, "127.0.0.1:") || !strings.HasPrefix(dstReg.Host, "127.0.0.1:") {
		t.Fatalf("the registries listen on %s and %s, want 127.0.0.1", srcReg.Host, dstReg.Host)
	}
	config := filepath.Join(t.TempDir(), "config.yaml")
	body := fmt.Sprintf("sourceRegistries:\n- %s\ntargetRegistry: %s/mirror\n", srcReg.Host, dstReg.Host)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	app := seedIndex(t, srcReg.Host+"/src/app:1.0", 2, "linux/amd64", "linux/arm64")

	r := runSwapper(t, "", nil, "mirror", "--config", config, srcReg.Host+"/src/app:1.0")
	if r.code != 0 || !strings.Contains(r.stdout, "1 copied, 0 already present, 0 failed") {
		t.Fatalf("want one image copied with no registries section, got:\n%s", r)
	}
	checkMirrored(t, targetOf(dstReg.Host+"/mirror", srcReg.Host, "src/app:1.0"), app, authn.Anonymous)
}

func TestMirrorToAPasswordProtectedTarget(t *testing.T) {
	const user = "e2e-pusher"
	password := testenv.RandomSecret(t)
	srcReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	dstReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{Htpasswd: testenv.WriteHtpasswd(t, user, password)})
	config := writeConfig(t, srcReg.Host, dstReg.Host, map[string]any{
		srcReg.Host: map[string]any{"insecure": true},
		dstReg.Host: map[string]any{
			"insecure": true,
			"push":     map[string]any{"usernameEnv": "E2E_PUSH_USER", "passwordEnv": "E2E_PUSH_PASSWORD"},
		},
	}, nil)
	basic := &authn.Basic{Username: user, Password: password}

	tests := []struct {
		name     string
		repo     string
		password string
		wantCode int
	}{
		{"the configured push credentials copy the image", "src/signed:1.0", password, 0},
		{"a wrong password fails and the message shows neither username nor password", "src/refused:1.0", "wrong-" + testenv.RandomSecret(t), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := seedIndex(t, srcReg.Host+"/"+tc.repo, 2, "linux/amd64", "linux/arm64")
			target := targetOf(dstReg.Host, srcReg.Host, tc.repo)
			env := []string{"E2E_PUSH_USER=" + user, "E2E_PUSH_PASSWORD=" + tc.password}
			r := runSwapper(t, "", env, "mirror", "--config", config, srcReg.Host+"/"+tc.repo)
			if r.code != tc.wantCode {
				t.Fatalf("want exit %d, got:\n%s", tc.wantCode, r)
			}
			if tc.wantCode == 0 {
				checkMirrored(t, target, img, basic)
				return
			}
			all := r.stdout + r.stderr
			for _, secret := range []string{user, tc.password, password} {
				if strings.Contains(all, secret) {
					t.Errorf("the output shows the secret %q:\n%s", secret, r)
				}
			}
			// The message names the image, what the registry said and
			// the config key to check.
			for _, want := range []string{target, "401", fmt.Sprintf("registries[%q].push", dstReg.Host)} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the error does not say %q:\n%s", want, r)
				}
			}
			tag, err := name.ParseReference(target, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Head(tag, remote.WithAuth(basic)); err == nil {
				t.Errorf("%s exists at the target after a refused push", target)
			}
		})
	}
}

// matching returns the requests whose path contains part.
func matching(reqs []string, part string) []string {
	var out []string
	for _, r := range reqs {
		if strings.Contains(r, part) {
			out = append(out, r)
		}
	}
	return out
}

// writes returns the requests that change a registry.
func writes(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		method, _, _ := strings.Cut(r, " ")
		switch method {
		case "PUT", "POST", "PATCH", "DELETE":
			out = append(out, r)
		}
	}
	return out
}
