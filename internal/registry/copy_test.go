package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestCopyOfAnIndexKeepsItsDigestAndEveryPlatform(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	idx := platformIndex(t, "linux/amd64", "linux/arm64/v8", "linux/s390x")
	want := seed(t, src.Host+"/src/app:1.0", idx).String()
	c := newClient(t, insecureConfig(src, dst))

	var progress []Progress
	res, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{
		Progress: func(p Progress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatalf("Copy() = %v", err)
	}
	if !res.Copied || res.Digest != want {
		t.Errorf("Copy() = %+v, want Copied with digest %s", res, want)
	}
	if got := string(rawManifest(t, dst.Host+"/mirror/app:1.0")); got != string(rawManifest(t, src.Host+"/src/app:1.0")) {
		t.Errorf("target index bytes differ from the source's:\n%s\n%s", got, rawManifest(t, src.Host+"/src/app:1.0"))
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var blobBytes int64
	for _, m := range im.Manifests {
		if _, err := remote.Head(parseRef(t, dst.Host+"/mirror/app@"+m.Digest.String())); err != nil {
			t.Errorf("target lacks child %s (%s): %v", m.Digest, m.Platform, err)
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			n, _ := l.Size()
			blobBytes += n
		}
	}
	if res.Bytes < blobBytes {
		t.Errorf("CopyResult.Bytes = %d, want at least the %d bytes of the layers", res.Bytes, blobBytes)
	}
	if len(progress) == 0 || progress[len(progress)-1].Done != progress[len(progress)-1].Total {
		t.Errorf("progress reports = %v, want some, ending complete", progress)
	}
}

func TestCopyToATargetThatHasTheImageIsOneHead(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	want := seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64", "linux/arm64", "linux/ppc64le")).String()
	c := newClient(t, insecureConfig(src, dst))
	if _, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		src     string
		srcWant []string
		dstWant []string
	}{
		{"a source tag costs one HEAD at each end", "src/app:1.0",
			[]string{"HEAD /v2/src/app/manifests/1.0"}, []string{"HEAD /v2/mirror/app/manifests/1.0"}},
		{"a source digest costs one HEAD at the target only", "src/app@" + want,
			nil, []string{"HEAD /v2/mirror/app/manifests/1.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src.Reset()
			dst.Reset()
			res, err := c.Copy(t.Context(), src.ref(t, tt.src), dst.ref(t, "mirror/app:1.0"), CopyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Copied || res.Digest != want || res.Bytes != 0 {
				t.Errorf("Copy() = %+v, want not copied, digest %s, 0 bytes", res, want)
			}
			if got := src.Requests(); !slices.Equal(got, tt.srcWant) {
				t.Errorf("source requests = %q, want %q", got, tt.srcWant)
			}
			if got := dst.Requests(); !slices.Equal(got, tt.dstWant) {
				t.Errorf("target requests = %q, want %q", got, tt.dstWant)
			}
		})
	}
}

func TestCopyDoesNotResendBlobsTheTargetHas(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	base, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := random.Layer(3000, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	derived, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, src.Host+"/src/base:1", base)
	seed(t, src.Host+"/src/derived:1", derived)
	c := newClient(t, insecureConfig(src, dst))
	if _, err := c.Copy(t.Context(), src.ref(t, "src/base:1"), dst.ref(t, "mirror/base:1"), CopyOptions{}); err != nil {
		t.Fatal(err)
	}

	dst.Reset()
	res, err := c.Copy(t.Context(), src.ref(t, "src/derived:1"), dst.ref(t, "mirror/derived:1"), CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Only the new layer and the new config are uploaded.
	if n := dst.Count(http.MethodPost, "/blobs/uploads"); n != 2 {
		t.Errorf("blob uploads started = %d, want 2 (the extra layer and the config); requests: %q", n, dst.Requests())
	}
	if n := dst.Count(http.MethodPut, "/blobs/uploads"); n != 2 {
		t.Errorf("blob uploads committed = %d, want 2", n)
	}
	layerSize, _ := extra.Size()
	cfg, _ := derived.RawConfigFile()
	if want := layerSize + int64(len(cfg)); res.Bytes != want {
		t.Errorf("CopyResult.Bytes = %d, want %d (extra layer %d + config %d)", res.Bytes, want, layerSize, len(cfg))
	}
}

func TestCopyMountsBlobsFromAnotherRepositoryOfTheSameRegistry(t *testing.T) {
	reg := newTestRegistry(t)
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, reg.Host+"/src/app:1", img)
	_ = img

	// The in-process registry shares blobs between repositories; make it
	// answer per repository, as real registries do, and honour mounts.
	var mounts atomic.Int32
	reg.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/v2/mirror/") {
			return false
		}
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" && r.URL.Query().Get("from") == "src/app" {
			mounts.Add(1)
			w.Header().Set("Docker-Content-Digest", r.URL.Query().Get("mount"))
			w.WriteHeader(http.StatusCreated)
			return true
		}
		return false
	})
	c := newClient(t, insecureConfig(reg))
	reg.Reset()
	res, err := c.Copy(t.Context(), reg.ref(t, "src/app:1"), reg.ref(t, "mirror/app:1"), CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mounts.Load() != 3 || res.Bytes != 0 {
		t.Errorf("mounts = %d, uploaded bytes = %d; want 3 mounts (2 layers, 1 config) and nothing uploaded", mounts.Load(), res.Bytes)
	}
	if n := reg.Count(http.MethodPatch, "/blobs/uploads"); n != 0 {
		t.Errorf("blob PATCH requests = %d, want 0", n)
	}
}

func TestCopyNeverMovesATagUnlessAskedTo(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	want := seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64")).String()
	other := seed(t, dst.Host+"/mirror/app:1.0", platformIndex(t, "linux/amd64")).String()
	c := newClient(t, insecureConfig(src, dst))

	_, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{})
	if !errors.Is(err, ErrTagExists) {
		t.Fatalf("Copy() = %v, want ErrTagExists", err)
	}
	wantMsg := "copying " + src.Host + "/src/app:1.0 to " + dst.Host + "/mirror/app:1.0: " + dst.Host + "/mirror/app:1.0 points to " + other + ": " + ErrTagExists.Error()
	if err.Error() != wantMsg {
		t.Errorf("error =\n%s\nwant\n%s", err, wantMsg)
	}
	if Retryable(err) {
		t.Error("Retryable(ErrTagExists) = true, want false")
	}
	if got := string(rawManifest(t, dst.Host+"/mirror/app:1.0")); digestOfBytes(got) != other {
		t.Errorf("the refused copy changed the target tag")
	}

	res, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{Overwrite: true})
	if err != nil || !res.Copied || res.Digest != want {
		t.Fatalf("Copy(Overwrite) = %+v, %v; want copied %s", res, err, want)
	}
	if d, _ := remote.Head(parseRef(t, dst.Host+"/mirror/app:1.0")); d == nil || d.Digest.String() != want {
		t.Errorf("target tag = %s, want %s", d.Digest, want)
	}
}

func digestOfBytes(s string) string {
	h, _, _ := v1.SHA256(strings.NewReader(s))
	return h.String()
}

func TestCopyWithPlatformsWritesAFilteredIndex(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	idx := platformIndex(t, "linux/amd64", "linux/arm64/v8", "linux/arm/v7")
	srcDigest := seed(t, src.Host+"/src/app:1.0", idx).String()
	c := newClient(t, insecureConfig(src, dst))

	tests := []struct {
		name      string
		platforms []Platform
		want      []string
	}{
		{"one platform", []Platform{{OS: "linux", Architecture: "amd64"}}, []string{"linux/amd64"}},
		{"arm64 without a variant matches v8", []Platform{{OS: "linux", Architecture: "arm64"}}, []string{"linux/arm64/v8"}},
		{"two platforms keep the index order", []Platform{{OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "amd64"}}, []string{"linux/amd64", "linux/arm/v7"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := "f" + string(rune('0'+i))
			res, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:"+tag), CopyOptions{Platforms: tt.platforms})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Copied || res.Digest == srcDigest {
				t.Errorf("Copy() = %+v, want a copy with a new digest", res)
			}
			raw := rawManifest(t, dst.Host+"/mirror/app:"+tag)
			if digestOfBytes(string(raw)) != res.Digest {
				t.Errorf("target digest %s, CopyResult.Digest %s", digestOfBytes(string(raw)), res.Digest)
			}
			var im v1.IndexManifest
			if err := json.Unmarshal(raw, &im); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range im.Manifests {
				got = append(got, platformString(m.Platform))
				if m.Annotations["org.example.platform"] != platformString(m.Platform) {
					t.Errorf("entry %s lost its annotations: %v", m.Digest, m.Annotations)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("platforms = %v, want %v", got, tt.want)
			}
			if im.Annotations["org.opencontainers.image.source"] != "https://example.com/app" {
				t.Errorf("index annotations = %v, want the source's", im.Annotations)
			}
			// Again: the filtered index is there, one HEAD at the target.
			dst.Reset()
			again, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:"+tag), CopyOptions{Platforms: tt.platforms})
			if err != nil || again.Copied || again.Digest != res.Digest {
				t.Errorf("second Copy() = %+v, %v; want not copied, digest %s", again, err, res.Digest)
			}
			if got := dst.Requests(); len(got) != 1 {
				t.Errorf("second copy's target requests = %q, want one HEAD", got)
			}
		})
	}

	t.Run("no matching platform says what the index has", func(t *testing.T) {
		_, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:none"), CopyOptions{Platforms: []Platform{{OS: "windows", Architecture: "amd64"}}})
		want := "the index has none of the platforms windows/amd64 (it has linux/amd64, linux/arm64/v8, linux/arm/v7)"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Copy() = %v, want an error containing %q", err, want)
		}
	})
}

func TestCopyVerifiesTheTargetDigest(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64"))
	c := newClient(t, insecureConfig(src, dst))
	// A target that re-serialises what it stores answers another digest.
	var puts atomic.Int32
	dst.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/1.0") {
			puts.Add(1)
		}
		if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, "/manifests/1.0") && puts.Load() > 0 {
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
			w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
			w.Header().Set("Content-Length", "10")
			return true
		}
		return false
	})
	_, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Copy() = %v, want ErrDigestMismatch", err)
	}
	if Retryable(err) {
		t.Error("Retryable(ErrDigestMismatch) = true, want false")
	}
}

// fakeProvider records EnsureRepository calls.
type fakeProvider struct {
	calls []string
	err   error
}

func (f *fakeProvider) EnsureRepository(_ context.Context, repository string) error {
	f.calls = append(f.calls, repository)
	return f.err
}

func TestCopyEnsuresTheTargetRepositoryOnce(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	seed(t, src.Host+"/src/a:1", platformIndex(t, "linux/amd64"))
	seed(t, src.Host+"/src/a:2", platformIndex(t, "linux/amd64"))
	seed(t, src.Host+"/src/b:1", platformIndex(t, "linux/amd64"))
	cfg := insecureConfig(src, dst)
	cfg.TargetRegistry = dst.Host + "/mirror"
	p := &fakeProvider{}
	c := newClient(t, cfg, WithProvider(p))
	for _, s := range []string{"a:1", "a:2", "b:1"} {
		if _, err := c.Copy(t.Context(), src.ref(t, "src/"+s), dst.ref(t, "mirror/"+s), CopyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"mirror/a", "mirror/b"}; !slices.Equal(p.calls, want) {
		t.Errorf("EnsureRepository calls = %q, want %q", p.calls, want)
	}

	p.err = &cloudError{Op: "ECR CreateRepository", StatusCode: 400, Code: "InvalidParameterException", Message: "Invalid parameter"}
	_, err := c.Copy(t.Context(), src.ref(t, "src/a:1"), dst.ref(t, "mirror/c:1"), CopyOptions{})
	want := "creating repository " + dst.Host + "/mirror/c: ECR CreateRepository: 400 Bad Request: InvalidParameterException: Invalid parameter"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Copy() = %v, want an error containing %q", err, want)
	}
	if Retryable(err) {
		t.Error("Retryable(400 from the provider) = true, want false")
	}
}
