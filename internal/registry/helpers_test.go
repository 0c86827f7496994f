package registry

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registrytest"
)

// testRegistry is an in-process OCI registry that records the requests it
// serves, with references parsed the way this package takes them.
type testRegistry struct {
	*registrytest.Registry
}

// newTestRegistry starts a registry with the referrers API unless told
// otherwise.
func newTestRegistry(t testing.TB, opts ...ggcrregistry.Option) *testRegistry {
	t.Helper()
	return &testRegistry{registrytest.New(t, opts...)}
}

// ref parses a reference in this registry: tr.ref(t, "src/app:1.0").
func (tr *testRegistry) ref(t testing.TB, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(tr.Host + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// insecureConfig allows plain HTTP to the given registries.
func insecureConfig(regs ...*testRegistry) *config.Config {
	cfg := &config.Config{Registries: map[string]config.RegistryAccess{}}
	for _, r := range regs {
		cfg.Registries[r.Host] = config.RegistryAccess{Insecure: true}
	}
	return cfg
}

func newClient(t testing.TB, cfg *config.Config, opts ...Option) *Client {
	t.Helper()
	c, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return c
}

// platformIndex builds an OCI index of random images, one per platform,
// with annotations on the index and on each entry.
func platformIndex(t testing.TB, platforms ...string) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		img, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: pl.OS, Architecture: pl.Architecture, Variant: pl.Variant},
			Annotations: map[string]string{"org.example.platform": p},
		}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	return mutate.Annotations(idx, map[string]string{"org.opencontainers.image.source": "https://example.com/app"}).(v1.ImageIndex)
}

// seed writes an index or image to a registry with plain go-containerregistry.
func seed(t testing.TB, where string, t2 remote.Taggable) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(where, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Push(ref, t2); err != nil {
		t.Fatalf("pushing %s: %v", where, err)
	}
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// rawManifest reads a manifest's bytes from a registry.
func rawManifest(t testing.TB, where string) []byte {
	t.Helper()
	ref, err := name.ParseReference(where, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(ref)
	if err != nil {
		t.Fatalf("reading %s: %v", where, err)
	}
	return d.Manifest
}

func digestOf(t testing.TB, d interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func parseRef(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
