package e2e_test

import (
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// ref parses "host/repo:tag" for a registry spoken to over plain HTTP.
func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return r
}

// seedImage writes one small random image to every reference in refs (so
// that they all hold the same digest) and returns its digest.
func seedImage(t *testing.T, refs ...string) v1.Hash {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if err := remote.Write(ref(t, r), img); err != nil {
			t.Fatalf("seeding %s: %v", r, err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// seedIndex writes a two-platform image index (linux/amd64, linux/arm64)
// of small random images to ref and returns its digest: a copy must keep
// the whole index, digest unchanged.
func seedIndex(t *testing.T, r string) v1.Hash {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	if err := remote.WriteIndex(ref(t, r), idx); err != nil {
		t.Fatalf("seeding %s: %v", r, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// manifestDigest returns the digest of r's manifest (one HEAD request), or
// an error when the registry does not have it.
func manifestDigest(t *testing.T, r string) (v1.Hash, error) {
	t.Helper()
	desc, err := remote.Head(ref(t, r))
	if err != nil {
		return v1.Hash{}, err
	}
	return desc.Digest, nil
}

// waitForImage polls the registry until r exists and returns its digest.
// A copy of a small image between two local registries takes well under a
// second; the bound is for a loaded CI machine.
func waitForImage(t *testing.T, r string) v1.Hash {
	t.Helper()
	var d v1.Hash
	err := testenv.Eventually(60*time.Second, 100*time.Millisecond, func() error {
		var err error
		d, err = manifestDigest(t, r)
		return err
	})
	if err != nil {
		t.Fatalf("waiting for %s to be copied: %v", r, err)
	}
	return d
}
