package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

func benchmarkEndpoint(b *testing.B, endpoint string) {
	// A CREATE of a Pod of the usual shape (a ReplicaSet's, with resources,
	// env and a projected token volume) with five containers, four of them
	// swapped.
	pod5Containers := readFile(b, filepath.Join("testdata", "requests", "pod-5-containers.json"))
	s := newTestServer(b, "config.yaml", func(o *Options) { o.Logger = nil })
	h := s.Handler()
	if resp := review(b, h, endpoint, pod5Containers); endpoint == "/mutate" && resp.Patch == nil {
		b.Fatalf("the benchmark Pod is not patched")
	}
	b.SetBytes(int64(len(pod5Containers)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, endpoint, bytes.NewReader(pod5Containers))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkMutatePod5Containers measures /mutate on a five-container Pod,
// from the request body to the encoded answer, without TLS.
func BenchmarkMutatePod5Containers(b *testing.B) { benchmarkEndpoint(b, "/mutate") }

// BenchmarkValidatePod5Containers measures /validate on the same Pod.
func BenchmarkValidatePod5Containers(b *testing.B) { benchmarkEndpoint(b, "/validate") }

// BenchmarkMutateSimpleSample measures /mutate on the shared sample.
func BenchmarkMutateSimpleSample(b *testing.B) {
	s := newTestServer(b, "config.yaml", func(o *Options) { o.Logger = nil })
	body := readFile(b, filepath.Join("testdata", "admission", "k8s-image-swapper-admissionreview-simple.json"))
	b.ReportAllocs()
	for b.Loop() {
		if rec := post(s.Handler(), "/mutate", body); rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
