package e2e_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// registryBinary is where Debian's docker-registry package installs
// Distribution 2.8.
const registryBinary = "/usr/bin/docker-registry"

// registry is one running docker-registry.
type registry struct {
	// Host is "127.0.0.1:port", as image references name it.
	Host string
	proc *process
}

// startRegistry starts a docker-registry with filesystem storage on a free
// 127.0.0.1 port, waits until /v2/ answers, and stops it when the test
// ends (earlier with stop).
func startRegistry(t *testing.T) *registry {
	t.Helper()
	_, err := os.Stat(registryBinary)
	require(t, err == nil, "%s is missing (%v); `bash .ci/tools.sh apt docker-registry` installs it", registryBinary, err)
	// The port is free when chosen but may be taken before the registry
	// binds it; a registry that exits at once is started elsewhere.
	var lastErr error
	for range 3 {
		r, err := tryStartRegistry(t)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("starting %s: %v", registryBinary, lastErr)
	return nil
}

func tryStartRegistry(t *testing.T) (*registry, error) {
	host, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: image-swapper-e2e
`, filepath.Join(dir, "storage"), host)
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	proc, err := startProcess("docker-registry on "+host, registryBinary, "serve", configPath)
	if err != nil {
		return nil, err
	}
	r := &registry{Host: host, proc: proc}
	if err := r.waitReady(); err != nil {
		_ = proc.stop(10 * time.Second)
		return nil, fmt.Errorf("docker-registry on %s: %w\nits output:\n%s", host, err, proc.logs())
	}
	t.Cleanup(func() {
		// A registry's exit status on SIGTERM says nothing about the test.
		_ = r.stop()
		if t.Failed() {
			t.Logf("docker-registry on %s said:\n%s", host, proc.logs())
		}
	})
	return r, nil
}

// waitReady polls /v2/ until the registry answers or exits.
func (r *registry) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	return eventually(30*time.Second, 100*time.Millisecond, func() error {
		if !r.proc.running() {
			return errors.New("exited before it answered /v2/")
		}
		resp, err := client.Get("http://" + r.Host + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
}

// stop stops the registry; the test goes on without it.
func (r *registry) stop() error { return r.proc.stop(10 * time.Second) }

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
	err := eventually(60*time.Second, 100*time.Millisecond, func() error {
		var err error
		d, err = manifestDigest(t, r)
		return err
	})
	if err != nil {
		t.Fatalf("waiting for %s to be copied: %v", r, err)
	}
	return d
}
