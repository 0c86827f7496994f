package registry

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// attach pushes an artifact whose subject is the manifest at
// repo@subject, as `oras attach` or `cosign attest --registry-referrers`
// do, and returns its digest.
func attach(t *testing.T, repo string, subject v1.Descriptor) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/vnd.example.sbom+json")
	img = mutate.Subject(img, subject).(v1.Image)
	d := digestOf(t, img)
	seed(t, repo+"@"+d, img)
	return d
}

// referrersOf lists what a registry says refers to repo@digest.
func referrersOf(t *testing.T, repo, digest string) []string {
	t.Helper()
	d, err := name.NewDigest(repo+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatalf("listing referrers of %s@%s: %v", repo, digest, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range im.Manifests {
		out = append(out, m.Digest.String())
	}
	return out
}

func TestCopySignaturesCopiesCosignTagsAndReferrers(t *testing.T) {
	tests := []struct {
		name           string
		srcAPI, dstAPI bool // whether the registries have the referrers API
	}{
		{"both registries have the referrers API", true, true},
		{"the source has only the fallback tag", false, true},
		{"the target has only the fallback tag", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newTestRegistry(t, ggcrregistry.WithReferrersSupport(tt.srcAPI))
			dst := newTestRegistry(t, ggcrregistry.WithReferrersSupport(tt.dstAPI))
			idx := platformIndex(t, "linux/amd64", "linux/arm64")
			digest := seed(t, src.Host+"/src/app:1.0", idx).String()
			sig, err := random.Image(128, 1)
			if err != nil {
				t.Fatal(err)
			}
			sigTag := strings.Replace(digest, ":", "-", 1) + ".sig"
			sigDigest := seed(t, src.Host+"/src/app:"+sigTag, sig).String()

			im, _ := idx.IndexManifest()
			child := im.Manifests[1]
			mt, _ := idx.MediaType()
			size, _ := idx.Size()
			topRef := attach(t, src.Host+"/src/app", v1.Descriptor{MediaType: mt, Digest: mustHash(t, digest), Size: size})
			childRef := attach(t, src.Host+"/src/app", child)

			c := newClient(t, insecureConfig(src, dst))
			res, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{CopySignatures: true})
			if err != nil || !res.Copied {
				t.Fatalf("Copy() = %+v, %v", res, err)
			}
			if d, err := remote.Head(parseRef(t, dst.Host+"/mirror/app:"+sigTag)); err != nil || d.Digest.String() != sigDigest {
				t.Errorf("target %s = %v, %v; want %s", sigTag, d, err, sigDigest)
			}
			if got := referrersOf(t, dst.Host+"/mirror/app", digest); len(got) != 1 || got[0] != topRef {
				t.Errorf("target referrers of the index = %v, want [%s]", got, topRef)
			}
			if got := referrersOf(t, dst.Host+"/mirror/app", child.Digest.String()); len(got) != 1 || got[0] != childRef {
				t.Errorf("target referrers of %s = %v, want [%s]", child.Platform, got, childRef)
			}
		})
	}
}

func TestCopySignaturesWithoutSignaturesCopiesOnlyTheImage(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	digest := seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64")).String()
	c := newClient(t, insecureConfig(src, dst))
	res, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{CopySignatures: true})
	if err != nil || !res.Copied || res.Digest != digest {
		t.Fatalf("Copy() = %+v, %v", res, err)
	}
	for _, suffix := range cosignSuffixes {
		tag := strings.Replace(digest, ":", "-", 1) + suffix
		if _, err := remote.Head(parseRef(t, dst.Host+"/mirror/app:"+tag)); err == nil {
			t.Errorf("target has %s, which the source has not", tag)
		}
	}
}

func TestCopySignaturesBringsLaterSignaturesToAnExistingImage(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	digest := seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64")).String()
	c := newClient(t, insecureConfig(src, dst))
	if _, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{CopySignatures: true}); err != nil {
		t.Fatal(err)
	}
	sig, _ := random.Image(128, 1)
	sigTag := strings.Replace(digest, ":", "-", 1) + ".sig"
	sigDigest := seed(t, src.Host+"/src/app:"+sigTag, sig).String()

	res, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{CopySignatures: true})
	if err != nil || res.Copied {
		t.Fatalf("Copy() = %+v, %v; want the image not copied again", res, err)
	}
	if d, err := remote.Head(parseRef(t, dst.Host+"/mirror/app:"+sigTag)); err != nil || d.Digest.String() != sigDigest {
		t.Errorf("target %s = %v, %v; want %s", sigTag, d, err, sigDigest)
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
