package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// patternReader yields n bytes of a deterministic pattern without
// allocating.
type patternReader struct {
	n, off int64
	state  uint64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if rest := r.n - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	for i := range p {
		r.state ^= r.state << 13
		r.state ^= r.state >> 7
		r.state ^= r.state << 17
		p[i] = byte(r.state)
	}
	r.off += int64(len(p))
	return len(p), nil
}

func (r *patternReader) Close() error { return nil }

func newPattern(n int64) *patternReader { return &patternReader{n: n, state: 88172645463325252} }

// generatedBlobs serves one large generated blob and small stored ones.
type generatedBlobs struct {
	big   v1.Hash
	size  int64
	small map[v1.Hash][]byte
}

func (g *generatedBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	if h == g.big {
		return newPattern(g.size), nil
	}
	if b, ok := g.small[h]; ok {
		return io.NopCloser(strings.NewReader(string(b))), nil
	}
	return nil, ggcrregistry.ErrNotFound
}

func (g *generatedBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	if h == g.big {
		return g.size, nil
	}
	if b, ok := g.small[h]; ok {
		return int64(len(b)), nil
	}
	return 0, ggcrregistry.ErrNotFound
}

// sinkRegistry accepts uploads by hashing them as they arrive, keeping no
// blob content, so that what a copy allocates is what the client holds.
type sinkRegistry struct {
	mu        sync.Mutex
	blobs     map[string]int64
	uploads   map[string]hash.Hash
	manifests map[string][2]string // ref -> media type, body
	next      int
}

func (s *sinkRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := r.URL.Path
	switch {
	case path == "/v2/":
	case strings.Contains(path, "/blobs/uploads/"):
		id := path[strings.LastIndex(path, "/")+1:]
		switch r.Method {
		case http.MethodPost:
			s.next++
			id = fmt.Sprint(s.next)
			s.uploads[id] = sha256.New()
			w.Header().Set("Location", strings.TrimSuffix(path, "/")+"/"+id)
			w.WriteHeader(http.StatusAccepted)
		case http.MethodPatch:
			h := s.uploads[id]
			s.mu.Unlock() // hash without holding up other requests
			_, err := io.Copy(h, r.Body)
			s.mu.Lock()
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Location", path)
			w.WriteHeader(http.StatusAccepted)
		case http.MethodPut:
			io.Copy(s.uploads[id], r.Body)
			got := "sha256:" + hex.EncodeToString(s.uploads[id].Sum(nil))
			if got != r.URL.Query().Get("digest") {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			s.blobs[got] = 1
			w.WriteHeader(http.StatusCreated)
		}
	case strings.Contains(path, "/blobs/"):
		if _, ok := s.blobs[path[strings.LastIndex(path, "/")+1:]]; !ok {
			w.WriteHeader(http.StatusNotFound)
		}
	case strings.Contains(path, "/manifests/"):
		ref := path[strings.LastIndex(path, "/")+1:]
		if r.Method == http.MethodPut {
			body, _ := io.ReadAll(r.Body)
			sum := sha256.Sum256(body)
			d := "sha256:" + hex.EncodeToString(sum[:])
			s.manifests[ref] = [2]string{r.Header.Get("Content-Type"), string(body)}
			s.manifests[d] = s.manifests[ref]
			w.Header().Set("Docker-Content-Digest", d)
			w.WriteHeader(http.StatusCreated)
			return
		}
		m, ok := s.manifests[ref]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		sum := sha256.Sum256([]byte(m[1]))
		w.Header().Set("Content-Type", m[0])
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.Header().Set("Content-Length", fmt.Sprint(len(m[1])))
		if r.Method == http.MethodGet {
			io.WriteString(w, m[1])
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestCopyStreamsBlobsWithoutHoldingThemInMemory(t *testing.T) {
	const size = 48 << 20
	h := sha256.New()
	io.Copy(h, newPattern(size))
	big := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + big.String() + `"]}}`)
	cfgHash, _, _ := v1.SHA256(strings.NewReader(string(cfgBlob)))
	blobs := &generatedBlobs{big: big, size: size, small: map[v1.Hash][]byte{cfgHash: cfgBlob}}

	src := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithBlobHandler(blobs), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer src.Close()
	dst := httptest.NewServer(&sinkRegistry{blobs: map[string]int64{}, uploads: map[string]hash.Hash{}, manifests: map[string][2]string{}})
	defer dst.Close()
	manifest, _ := json.Marshal(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     "application/vnd.oci.image.manifest.v1+json",
		Config:        v1.Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Size: int64(len(cfgBlob)), Digest: cfgHash},
		Layers:        []v1.Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: size, Digest: big}},
	})
	req, _ := http.NewRequest(http.MethodPut, src.URL+"/v2/src/big/manifests/1", strings.NewReader(string(manifest)))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("seeding the manifest: %v %v", resp, err)
	}

	srcHost, dstHost := strings.TrimPrefix(src.URL, "http://"), strings.TrimPrefix(dst.URL, "http://")
	c := newClient(t, &config.Config{Registries: map[string]config.RegistryAccess{srcHost: {Insecure: true}, dstHost: {Insecure: true}}})
	from, _ := reference.Parse(srcHost + "/src/big:1")
	to, _ := reference.Parse(dstHost + "/mirror/big:1")

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := c.Copy(t.Context(), from, to, CopyOptions{})
	runtime.ReadMemStats(&after)
	if err != nil || !res.Copied {
		t.Fatalf("Copy() = %+v, %v", res, err)
	}
	if res.Bytes != size+int64(len(cfgBlob)) {
		t.Errorf("CopyResult.Bytes = %d, want %d", res.Bytes, size+int64(len(cfgBlob)))
	}
	// Both servers and the client live in this process; all of them
	// together allocate a small fraction of the layer.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("copying a %d MiB layer allocated %d KiB in total", size>>20, alloc>>10)
	if alloc > size/4 {
		t.Errorf("copying a %d MiB layer allocated %d MiB; it should stream", size>>20, alloc>>20)
	}
}
