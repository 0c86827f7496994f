package webhook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

// BenchmarkScanGateLatencyAt1000PerSecond compares /validate latency with
// the vulnerability gate on (verdicts known: every image was scanned
// before the load) and off, in one run, as BenchmarkLedgerLatency does
// for the ledger: two servers built as serve builds its server, the
// five-container Pod with its images in a real registry (in process),
// rounds at 1,000 requests a second alternating ABBA.
//
//	go test ./internal/webhook -run XXX -bench ScanGateLatency -benchtime 1x -v
func BenchmarkScanGateLatencyAt1000PerSecond(b *testing.B) {
	if testing.Short() {
		b.Skip("a minute of load")
	}
	reg := registrytest.New(b)
	var images []string
	for i := range ledgerBenchImages {
		path := fmt.Sprintf("shop/app-%d:1.%d", i, i)
		digest := reg.PushIndex(b, path, 1, "linux/amd64", "linux/arm64")
		image := reg.Ref(path)
		if i == 3 {
			image = reg.Ref(fmt.Sprintf("shop/app-%d", i)) + "@" + digest // one pinned, as in the usual Pod
		}
		images = append(images, image)
	}
	// A recorded Trivy report with MEDIUM findings only: the Pod passes.
	scanner := testenv.NewReportScanner(b, "../scan/testdata/trivy/alpine-310.json")
	scanning := config.Scanning{Enabled: true, Provider: "trivy", FailOnCritical: true, Command: scanner.Command}
	client, err := registry.New(&config.Config{})
	if err != nil {
		b.Fatal(err)
	}
	gate, err := vulngate.New(vulngate.Options{Scanning: scanning, Registry: client})
	if err != nil {
		b.Fatal(err)
	}
	defer gate.Close()
	for _, image := range images {
		ref, _ := reference.Parse(image)
		if got := gate.Lookup(context.Background(), ref, nil); len(got.Scanned) != 2 || got.Err != nil {
			b.Fatalf("scanning %s before the load: %+v", image, got)
		}
	}

	dir := b.TempDir()
	base := fmt.Sprintf("registries:\n  %q: {insecure: true}\n", reg.Host)
	gated := base + fmt.Sprintf("security:\n  scanning:\n    enabled: true\n    provider: trivy\n    failOnCritical: true\n    command: [%q, %q, %q]\n",
		scanner.Command[0], scanner.Command[1], scanner.Command[2])
	certFile, keyFile, pool := testenv.WriteServingCert(b, dir)
	server := func(name, cfg string, scans *vulngate.Gate) *benchServer {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		o := benchServerOptions{configPath: path, certFile: certFile, keyFile: keyFile, pool: pool, endpoint: "/validate"}
		if scans != nil {
			o.scans = scans
		}
		return startBenchServer(b, o)
	}
	on, off := server("on.yaml", gated, gate), server("off.yaml", base, nil)
	body := readBenchBody(b, images)
	for b.Loop() {
		abba(b, "the gate", on, off, body)
	}
}
