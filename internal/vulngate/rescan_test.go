package vulngate_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

// TestRescansRenewTheScansOfImagesInUse: a pass rescans the platform
// manifests of an admitted image whose scans are older than rescanAfter,
// and neither a fresh scan nor an image no Pod used; the loop does the
// same on its own and says when its last pass ended.
func TestRescansRenewTheScansOfImagesInUse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st, err := store.Open(ctx, &config.Store{Path: f.storePath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
	image := f.image.String() + "@" + f.index
	seed := &store.Batch{
		Admissions: []store.AdmissionRecord{{Time: time.Now().Add(-time.Minute), UID: "a1", Operation: "CREATE", Endpoint: store.EndpointValidate,
			Namespace: "shop", Image: f.image.String(), Normalized: f.image.String(), Action: "keep", Target: f.image.String()}},
		Scans: []store.ScanRecord{{Time: old, Image: "registry.example.com/team/unused:1@" + f.platforms[0].Digest, IndexDigest: f.platforms[0].Digest,
			ManifestDigest: "sha256:" + strings.Repeat("0", 64), Scanner: "trivy"}},
	}
	for _, m := range f.platforms {
		seed.Scans = append(seed.Scans, store.ScanRecord{Time: old, Image: image, IndexDigest: f.index, ManifestDigest: m.Digest, Scanner: "trivy"})
	}
	if err := st.Write(ctx, seed); err != nil {
		t.Fatal(err)
	}
	s := f.scanning
	s.RescanAfter = &metav1.Duration{Duration: time.Hour}
	w := store.NewWriter(st, store.WriterOptions{})
	reg := prometheus.NewRegistry()
	g, err := vulngate.New(vulngate.Options{Scanning: s, Registry: f.client, Store: st, Ledger: w, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		_ = w.Close(context.Background())
	})

	n, err := g.Rescan(ctx, 24*time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("Rescan = %d, %v; want both platforms of the image in use queued", n, err)
	}
	waitFor(t, func() bool { return len(f.runs(t)) == 2 }, "both rescans")
	runs := f.runs(t)
	slices.Sort(runs)
	want := []string{f.image.Name() + "@" + f.platforms[0].Digest, f.image.Name() + "@" + f.platforms[1].Digest}
	slices.Sort(want)
	if !slices.Equal(runs, want) {
		t.Errorf("the scanner ran on %q, want the image in use's platforms %q", runs, want)
	}
	waitFor(t, func() bool {
		for _, m := range f.platforms {
			if rec, err := st.LatestScan(ctx, m.Digest); err != nil || !rec.Time.After(old) {
				return false
			}
		}
		return true
	}, "the rescans in the store")
	if got := testenv.Gathered(t, reg, "image_swapper_rescans_total"); got != 2 {
		t.Errorf("image_swapper_rescans_total = %v, want 2", got)
	}

	// Fresh now: the next pass has nothing to do.
	if n, err := g.Rescan(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Errorf("Rescan of fresh scans = %d, %v; want 0", n, err)
	}
	// Used, but not within the window asked.
	if err := g.Reload(config.Scanning{Enabled: true, Provider: "trivy", Command: f.scanner.Command, RescanAfter: &metav1.Duration{Duration: time.Nanosecond}}); err != nil {
		t.Fatal(err)
	}
	if n, err := g.Rescan(ctx, time.Second); err != nil || n != 0 {
		t.Errorf("Rescan of an image admitted a minute ago with a 1s window = %d, %v; want 0", n, err)
	}

	// The loop: a pass at once, with the settings of the moment.
	loopCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.RescanLoop(loopCtx, func() vulngate.RescanSettings { return vulngate.RescanSettings{Enabled: true, UsedWithin: time.Hour} })
	}()
	waitFor(t, func() bool { return len(f.runs(t)) >= 4 }, "the loop's first pass rescanning both platforms")
	waitFor(t, func() bool { return testenv.Gathered(t, reg, "image_swapper_rescan_last_pass_timestamp_seconds") > 0 }, "the last pass's time")
	stop()
	<-done
}
