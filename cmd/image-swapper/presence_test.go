package main

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registrytest"
)

// TestPresenceCacheKeyIsActedOn builds the mirroring of serve from a
// configuration and deletes an image from the target after it was seen:
// by default (30s) the mirror still believes it is there; with
// mirroring.presenceCache.positiveTTL: 0s it sees the deletion at once.
func TestPresenceCacheKeyIsActedOn(t *testing.T) {
	cases := []struct {
		name      string
		mirroring string
		believed  bool
	}{
		{"the default caches a found image", "", true},
		{"positiveTTL 0s asks the registry every time", "mirroring:\n  presenceCache: {positiveTTL: 0s}\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := registrytest.New(t)
			cfg, err := config.Parse("config.yaml", []byte(fmt.Sprintf("targetRegistry: %s/mirror\nregistries:\n  %q: {insecure: true}\n%s", dst.Host, dst.Host, c.mirroring)))
			if err != nil {
				t.Fatal(err)
			}
			m, err := newMirroring(cfg, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			digest := dst.PushIndex(t, "mirror/app:1.0", 1, "linux/amd64")
			ref, err := reference.Parse(dst.Ref("mirror/app:1.0"))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if got, ok, err := m.service.Present(ctx, ref); err != nil || !ok || got != digest {
				t.Fatalf("Present = %q, %v, %v; want %s", got, ok, err, digest)
			}
			// The in-memory registry keeps the tag and the digest apart.
			for _, r := range []string{"mirror/app:1.0", "mirror/app@" + digest} {
				n, err := name.ParseReference(dst.Ref(r), name.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				if err := remote.Delete(n); err != nil {
					t.Fatalf("deleting %s: %v", r, err)
				}
			}
			if _, ok, err := m.service.Present(ctx, ref); err != nil || ok != c.believed {
				t.Errorf("Present after the deletion = %v, %v; want %v", ok, err, c.believed)
			}
		})
	}
}
