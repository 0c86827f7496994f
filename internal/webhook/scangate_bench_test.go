package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

// scanGateBench is /validate over a five-container Pod whose images are in
// a real (in-process) registry and already scanned: the gate answers from
// its cache, as it does for every Pod after an image's first.
type scanGateBench struct {
	body    []byte
	off, on http.Handler
}

func newScanGateBench(b *testing.B) *scanGateBench {
	b.Helper()
	reg := registrytest.New(b)
	var images []string
	for i := range 5 {
		path := fmt.Sprintf("shop/app-%d:1.%d", i, i)
		digest := reg.PushIndex(b, path, 1, "linux/amd64", "linux/arm64")
		image := reg.Ref(path)
		if i == 3 {
			image = reg.Ref(fmt.Sprintf("shop/app-%d", i)) + "@" + digest // one pinned, as in the usual Pod
		}
		images = append(images, image)
	}
	var ar map[string]any
	if err := json.Unmarshal(readFile(b, filepath.Join("testdata", "requests", "pod-5-containers.json")), &ar); err != nil {
		b.Fatal(err)
	}
	containers := ar["request"].(map[string]any)["object"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	for i, c := range containers {
		c.(map[string]any)["image"] = images[i]
	}
	body, err := json.Marshal(ar)
	if err != nil {
		b.Fatal(err)
	}

	// The scanner prints a recorded Trivy report (MEDIUM findings only,
	// so the Pod passes), whatever image it is given.
	dir := b.TempDir()
	report, err := filepath.Abs("../scan/testdata/trivy/alpine-310.json")
	if err != nil {
		b.Fatal(err)
	}
	base := fmt.Sprintf("registries:\n  %q: {insecure: true}\n", reg.Host)
	scanning := config.Scanning{Enabled: true, Provider: "trivy", FailOnCritical: true, Command: []string{"sh", "-c", `cat "$0"`, report}}
	gated := base + fmt.Sprintf(`security:
  scanning:
    enabled: true
    provider: trivy
    failOnCritical: true
    command: [sh, -c, 'cat "$0"', %q]
`, report)
	server := func(name, cfg string, gate ScanGate) http.Handler {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		s, err := New(Options{ConfigPath: path, Namespace: "image-swapper", Namespaces: testNamespaces, Scans: gate})
		if err != nil {
			b.Fatal(err)
		}
		return s.Handler()
	}
	client, err := registry.New(&config.Config{})
	if err != nil {
		b.Fatal(err)
	}
	gate, err := vulngate.New(vulngate.Options{Scanning: scanning, Registry: client})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gate.Close)
	for _, image := range images {
		ref, _ := reference.Parse(image)
		if got := gate.Lookup(context.Background(), ref, nil); len(got.Scanned) != 2 || got.Err != nil {
			b.Fatalf("warming the gate with %s: %+v", image, got)
		}
	}
	sb := &scanGateBench{body: body, off: server("off.yaml", base, nil), on: server("on.yaml", gated, gate)}
	// Both admit the Pod; with the gate on, it was judged.
	for _, h := range []http.Handler{sb.off, sb.on} {
		if resp := review(b, h, "/validate", body); !resp.Allowed {
			b.Fatalf("the benchmark Pod is denied: %+v", resp.Result)
		}
	}
	return sb
}

// BenchmarkValidateScanGate measures /validate of a five-container Pod,
// one request at a time, with the vulnerability gate off and on (verdicts
// cached).
func BenchmarkValidateScanGate(b *testing.B) {
	sb := newScanGateBench(b)
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"off", sb.off}, {"on", sb.on}} {
		b.Run("gate="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rec := post(c.h, "/validate", sb.body); rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
