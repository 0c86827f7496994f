package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/store/storetest"
)

// benchLedger writes the benchmark ledger of docs/performance.md: records
// admission records of images distinct images (each admitted at both
// endpoints, in one of 50 namespaces, over 30 days), a copy and a scan
// per image.
func benchLedger(t testing.TB, st store.Store, records, images int) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	const batch = 5000
	b := &store.Batch{}
	flush := func() {
		if err := st.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		b = &store.Batch{}
	}
	for i := range records / 2 {
		img := i % images
		ns := fmt.Sprintf("team-%02d", img%50)
		image := fmt.Sprintf("docker.io/team%02d/app-%05d:1.%d", img%50, img, img%7)
		target := "registry.example.com/" + image
		at := now.Add(-time.Duration(i%(30*24*60)) * time.Minute)
		uid := fmt.Sprintf("uid-%07d", i)
		m := store.AdmissionRecord{Time: at, UID: uid, Operation: "CREATE", Endpoint: store.EndpointMutate, Namespace: ns,
			Pod: fmt.Sprintf("app-%05d-*", img), OwnerKind: "ReplicaSet", OwnerName: fmt.Sprintf("app-%05d-7d9f", img), Container: "app",
			ContainerKind: store.ContainerRegular, User: "system:serviceaccount:kube-system:replicaset-controller",
			Image: image, Normalized: image, Action: "swap", Target: target, Rule: "default"}
		v := m
		v.Time, v.Endpoint, v.Image, v.Normalized, v.Action = at.Add(5*time.Millisecond), store.EndpointValidate, target, target, "keep"
		b.Admissions = append(b.Admissions, m, v)
		if len(b.Admissions) >= batch {
			flush()
		}
	}
	for img := range images {
		image := fmt.Sprintf("docker.io/team%02d/app-%05d:1.%d", img%50, img, img%7)
		digest := fmt.Sprintf("sha256:%064x", img+1)
		b.Copies = append(b.Copies, store.CopyRecord{Time: now.Add(-29 * 24 * time.Hour), Source: image, Target: "registry.example.com/" + image,
			Digest: digest, Bytes: 1 << 20, Duration: time.Second, Result: "copied"})
		sev := []string{"CRITICAL", "HIGH", "MEDIUM", "LOW"}[img%4]
		b.Scans = append(b.Scans, store.ScanRecord{Time: now.Add(-29 * 24 * time.Hour), Image: "registry.example.com/" + image, IndexDigest: digest,
			ManifestDigest: digest, Scanner: "trivy", ScannerVersion: "0.74.0", Counts: map[string]int{sev: 1},
			Findings: []store.Finding{{ID: fmt.Sprintf("CVE-2099-%04d", img%1000), Package: "musl", InstalledVersion: "1.2.5-r0", FixedVersion: "1.2.5-r1", Severity: sev, CVSS: 7.5}}})
		if len(b.Copies) >= batch/5 {
			flush()
		}
	}
	flush()
}

// TestWriteBenchLedger writes the benchmark ledger (docs/performance.md)
// into the SQLite file IMAGE_SWAPPER_BENCH_SQLITE or the PostgreSQL
// database IMAGE_SWAPPER_BENCH_POSTGRES (a DSN; "start" starts a
// throwaway server, kept until the test's end, and is of no use but for
// timing the write); it is skipped without either.
func TestWriteBenchLedger(t *testing.T) {
	path, dsn := os.Getenv("IMAGE_SWAPPER_BENCH_SQLITE"), os.Getenv("IMAGE_SWAPPER_BENCH_POSTGRES")
	if path == "" && dsn == "" {
		t.Skip("set IMAGE_SWAPPER_BENCH_SQLITE=FILE or IMAGE_SWAPPER_BENCH_POSTGRES=DSN to write the benchmark ledger")
	}
	var st store.Store
	var err error
	if path != "" {
		st, err = store.OpenSQLite(context.Background(), path)
	} else {
		if dsn == "start" {
			dsn = storetest.StartPostgres(t).DSN()
		}
		st, err = store.OpenPostgres(context.Background(), dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	benchLedger(t, st, 1_000_000, 10_000)
	t.Logf("wrote 1,000,000 admission records of 10,000 images in %s", time.Since(start).Round(time.Millisecond))
}

// BenchmarkBuildBenchLedger builds and writes the report, in each format,
// of the ledger TestWriteBenchLedger wrote to IMAGE_SWAPPER_BENCH_SQLITE
// or IMAGE_SWAPPER_BENCH_POSTGRES (a DSN), over the last 30 days; it is
// skipped without either. Run it with -cpuprofile or -memprofile to see
// where a report's time goes.
func BenchmarkBuildBenchLedger(b *testing.B) {
	ctx := context.Background()
	st := openBenchLedger(b)
	for _, format := range Formats {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				now := time.Now()
				r, err := Build(ctx, st, Options{Since: now.Add(-30 * 24 * time.Hour), Now: now})
				if err != nil {
					b.Fatal(err)
				}
				if err := Write(io.Discard, r, format); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStaleScansBenchLedger times the rescan loop's query
// (store.StaleScans: every image admitted in 30 days, with a scan older
// than a day) over the ledger TestWriteBenchLedger wrote; it is skipped
// without one.
func BenchmarkStaleScansBenchLedger(b *testing.B) {
	ctx := context.Background()
	st := openBenchLedger(b)
	for b.Loop() {
		now := time.Now()
		stale, err := st.StaleScans(ctx, now.Add(-24*time.Hour), now.Add(-30*24*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		if len(stale) != 10_000 {
			b.Fatalf("%d stale scans, want the ledger's 10,000", len(stale))
		}
	}
}

// openBenchLedger opens the ledger TestWriteBenchLedger wrote to
// IMAGE_SWAPPER_BENCH_SQLITE or IMAGE_SWAPPER_BENCH_POSTGRES (a DSN), and
// skips the benchmark without either; it is closed when b ends.
func openBenchLedger(b *testing.B) store.Store {
	b.Helper()
	path, dsn := os.Getenv("IMAGE_SWAPPER_BENCH_SQLITE"), os.Getenv("IMAGE_SWAPPER_BENCH_POSTGRES")
	if path == "" && dsn == "" {
		b.Skip("set IMAGE_SWAPPER_BENCH_SQLITE=FILE or IMAGE_SWAPPER_BENCH_POSTGRES=DSN to a ledger TestWriteBenchLedger wrote")
	}
	var st store.Store
	var err error
	if path != "" {
		st, err = store.OpenSQLite(context.Background(), path)
	} else {
		st, err = store.OpenPostgres(context.Background(), dsn)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
