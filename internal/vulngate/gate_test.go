package vulngate_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

// fixture is a registry holding one two-platform image, a scanner
// reporting recorded Trivy reports for it, and a SQLite store.
type fixture struct {
	reg       *registrytest.Registry
	client    *registry.Client
	image     reference.Reference // the index, by tag
	index     string
	platforms []registry.PlatformManifest
	scanner   *testenv.ReportScanner
	storePath string
	scanning  config.Scanning
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reg: registrytest.New(t), storePath: filepath.Join(t.TempDir(), "state.db")}
	f.index = f.reg.PushIndex(t, "team/app:1.0", 1, "linux/amd64", "linux/arm64")
	var err error
	if f.image, err = reference.Parse(f.reg.Ref("team/app:1.0")); err != nil {
		t.Fatal(err)
	}
	if f.client, err = registry.New(&config.Config{}); err != nil {
		t.Fatal(err)
	}
	digested := f.image
	digested.Digest = f.index
	plats, _ := registry.ParsePlatform("linux/amd64")
	plats2, _ := registry.ParsePlatform("linux/arm64")
	if _, f.platforms, err = f.client.PlatformManifests(context.Background(), digested, []registry.Platform{plats, plats2}, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.platforms) != 2 {
		t.Fatalf("platform manifests = %v, want 2", f.platforms)
	}
	// amd64 has CVE-2099-0001 (CRITICAL); arm64 and anything else has the
	// Alpine 3.10 report (MEDIUM findings only).
	f.scanner = testenv.NewReportScanner(t, "../scan/testdata/trivy/alpine-310.json")
	f.scanner.Report(t, f.platforms[0].Digest, "../scan/testdata/trivy/trivy-0.74-synthetic-alpine.json")
	f.scanning = config.Scanning{Enabled: true, Provider: "trivy", FailOnCritical: true, Command: f.scanner.Command}
	return f
}

// runs lists the images the scanner was run on.
func (f *fixture) runs(t *testing.T) []string { return f.scanner.Runs(t) }

// open opens the fixture's store and a gate on it; both close when the
// test ends (the writer first, which flushes the scans it holds).
func (f *fixture) open(t *testing.T, s config.Scanning) (*vulngate.Gate, store.Store, *store.Writer) {
	t.Helper()
	st, err := store.Open(context.Background(), &config.Store{Path: f.storePath})
	if err != nil {
		t.Fatal(err)
	}
	w := store.NewWriter(st, store.WriterOptions{})
	g, err := vulngate.New(vulngate.Options{Scanning: s, Registry: f.client, Store: st, Ledger: w, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			g.Close()
			_ = w.Close(context.Background())
			st.Close()
		}
	})
	return g, st, w
}

func TestLookupScansEachPlatformOnceAndRemembersItsFindings(t *testing.T) {
	f := newFixture(t)
	g, _, _ := f.open(t, f.scanning)
	ctx := context.Background()

	got := g.Lookup(ctx, f.image, nil)
	if got.Err != nil || len(got.Pending) != 0 || len(got.Scanned) != 2 {
		t.Fatalf("Lookup = %+v, want both platforms scanned", got)
	}
	if got.Ref.Digest != f.index {
		t.Errorf("resolved digest = %s, want the index %s", got.Ref.Digest, f.index)
	}
	runs := f.runs(t)
	slices.Sort(runs)
	want := []string{f.image.Name() + "@" + f.platforms[0].Digest, f.image.Name() + "@" + f.platforms[1].Digest}
	slices.Sort(want)
	if !slices.Equal(runs, want) {
		t.Errorf("scanner runs = %v, want one per platform manifest %v", runs, want)
	}

	// Known now: the same tag again asks neither the scanner nor the
	// registry (the tag's digest is cached).
	f.reg.Reset()
	again := g.Lookup(ctx, f.image, nil)
	if len(again.Scanned) != 2 || again.Err != nil {
		t.Fatalf("second Lookup = %+v", again)
	}
	if n := len(f.runs(t)); n != 2 {
		t.Errorf("scanner ran %d times in all, want 2", n)
	}
	if reqs := f.reg.Requests(); len(reqs) != 0 {
		t.Errorf("a known verdict asked the registry: %v", reqs)
	}
}

func TestManyLookupsOfOneImageMakeOneScanPerPlatform(t *testing.T) {
	f := newFixture(t)
	f.scanner.Sleep(t, "0.5")
	g, _, _ := f.open(t, f.scanning)
	done := make(chan scan.ImageScan)
	for range 20 {
		go func() { done <- g.Lookup(context.Background(), f.image, nil) }()
	}
	for range 20 {
		if got := <-done; len(got.Scanned) != 2 {
			t.Errorf("Lookup = %+v, want both platforms", got)
		}
	}
	if n := len(f.runs(t)); n != 2 {
		t.Errorf("20 Pods of one image ran the scanner %d times, want 2 (one per platform)", n)
	}
}

func TestARestartAnswersFromTheStoreWithoutScanning(t *testing.T) {
	f := newFixture(t)
	st, err := store.Open(context.Background(), &config.Store{Path: f.storePath})
	if err != nil {
		t.Fatal(err)
	}
	w := store.NewWriter(st, store.WriterOptions{})
	g, err := vulngate.New(vulngate.Options{Scanning: f.scanning, Registry: f.client, Store: st, Ledger: w})
	if err != nil {
		t.Fatal(err)
	}
	byDigest := f.image
	byDigest.Tag, byDigest.Digest = "", f.index
	if got := g.Lookup(context.Background(), byDigest, nil); len(got.Scanned) != 2 {
		t.Fatalf("Lookup = %+v", got)
	}
	g.Close()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// What the store holds: one record per platform, with the raw report
	// and the index it belongs to.
	for _, m := range f.platforms {
		rec, err := st.LatestScan(context.Background(), m.Digest)
		if err != nil {
			t.Fatalf("no stored scan of %s: %v", m.Digest, err)
		}
		if rec.IndexDigest != f.index || rec.Scanner != "trivy" || len(rec.Report) == 0 {
			t.Errorf("stored scan of %s = index %s scanner %q report %d bytes", m.Digest, rec.IndexDigest, rec.Scanner, len(rec.Report))
		}
	}
	st.Close()

	// A new process: by digest, the first Lookup reads the index's
	// platforms once (the registry), and the findings from the store.
	g2, _, _ := f.open(t, f.scanning)
	got := g2.Lookup(context.Background(), byDigest, nil)
	if len(got.Scanned) != 2 || got.Err != nil || len(got.Pending) != 0 {
		t.Fatalf("Lookup after restart = %+v", got)
	}
	if n := len(f.runs(t)); n != 2 {
		t.Errorf("the scanner ran %d times in all, want 2: a restart must not rescan what the store knows", n)
	}
	critical := 0
	for _, p := range got.Scanned {
		critical += scan.CountFindings(p.Findings).Critical
	}
	if critical != 1 {
		t.Errorf("findings after restart have %d CRITICAL, want 1 (CVE-2099-0001 of amd64)", critical)
	}
}

func TestAStaleVerdictStaysWhileItIsRescanned(t *testing.T) {
	f := newFixture(t)
	s := f.scanning
	s.RescanAfter = &metav1.Duration{Duration: time.Nanosecond}
	g, _, _ := f.open(t, s)
	if got := g.Lookup(context.Background(), f.image, nil); len(got.Scanned) != 2 {
		t.Fatalf("Lookup = %+v", got)
	}
	// The scanner now takes long; a stale verdict must answer at once.
	f.scanner.Sleep(t, "2")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got := g.Lookup(ctx, f.image, nil)
	if len(got.Scanned) != 2 || len(got.Pending) != 0 {
		t.Fatalf("Lookup of a stale verdict = %+v, want the old findings", got)
	}
	waitFor(t, func() bool { return len(f.runs(t)) == 4 }, "the background rescan of both platforms")
}

func TestAFailedScanIsAnErrorAndIsNotRunAgainAtOnce(t *testing.T) {
	f := newFixture(t)
	f.scanner.Fail(t)
	s := f.scanning
	g, _, _ := f.open(t, s)
	got := g.Lookup(context.Background(), f.image, nil)
	if got.Err == nil || !strings.Contains(got.Err.Error(), "scanner exploded") {
		t.Fatalf("Lookup of a failing scan: Err = %v, want the scanner's stderr", got.Err)
	}
	runs := len(f.runs(t))
	// Retries with backoff happen inside one scan; a new admission right
	// after does not start another.
	again := g.Lookup(context.Background(), f.image, nil)
	if again.Err == nil {
		t.Fatal("second Lookup has no error")
	}
	if n := len(f.runs(t)); n != runs {
		t.Errorf("the scanner ran %d more times for an admission right after a failure", n-runs)
	}
}

func TestLookupIsPendingWhenTheScanOutlastsTheBudget(t *testing.T) {
	f := newFixture(t)
	f.scanner.Sleep(t, "1")
	g, _, _ := f.open(t, f.scanning)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	got := g.Lookup(ctx, f.image, nil)
	if len(got.Pending) != 2 || len(got.Scanned) != 0 {
		t.Fatalf("Lookup within a short budget = %+v, want both pending", got)
	}
	// The scans go on; a later Lookup sees them.
	final := g.Lookup(context.Background(), f.image, nil)
	if len(final.Scanned) != 2 {
		t.Fatalf("later Lookup = %+v", final)
	}
}

func TestAnUnknownImageIsAnErrorNamingIt(t *testing.T) {
	f := newFixture(t)
	g, _, _ := f.open(t, f.scanning)
	missing, _ := reference.Parse(f.reg.Ref("team/missing:1"))
	got := g.Lookup(context.Background(), missing, nil)
	if got.Err == nil || !strings.Contains(got.Err.Error(), "team/missing") {
		t.Fatalf("Lookup of a missing image: Err = %v, want it named", got.Err)
	}
}

func TestReloadRefusesAChangedConcurrency(t *testing.T) {
	f := newFixture(t)
	g, _, _ := f.open(t, f.scanning)
	s := f.scanning
	s.Concurrency = 7
	if err := g.Reload(s); err == nil || !strings.Contains(err.Error(), "security.scanning.concurrency") {
		t.Fatalf("Reload with a new concurrency: %v, want a refusal naming the key", err)
	}
	s = f.scanning
	s.Platforms = []string{"linux/arm64"}
	if err := g.Reload(s); err != nil {
		t.Fatal(err)
	}
	byDigest := f.image
	byDigest.Digest = f.index
	if got := g.Lookup(context.Background(), byDigest, nil); len(got.Scanned) != 1 || got.Scanned[0].Platform != "linux/arm64" {
		t.Fatalf("after reloading platforms: %+v, want only linux/arm64", got.Scanned)
	}
}

func TestScanMetrics(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	g, err := vulngate.New(vulngate.Options{Scanning: f.scanning, Registry: f.client, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.Lookup(context.Background(), f.image, nil)
	if n, err := testutil.GatherAndCount(reg, "image_swapper_scans_total", "image_swapper_scan_duration_seconds", "image_swapper_scan_queue_depth"); err != nil || n != 4 {
		t.Fatalf("metrics: %d series, %v", n, err)
	}
	want := strings.NewReader(`
# HELP image_swapper_scans_total Vulnerability scans of platform manifests, by result (success, error), retries included in one.
# TYPE image_swapper_scans_total counter
image_swapper_scans_total{result="error"} 0
image_swapper_scans_total{result="success"} 2
`)
	if err := testutil.GatherAndCompare(reg, want, "image_swapper_scans_total"); err != nil {
		t.Fatal(err)
	}
}

// waitFor is testenv.WaitFor with the package's bound.
func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	testenv.WaitFor(t, what, 30*time.Second, ok)
}

// The engine judges what the gate knows with the policy in force.
func TestEngineScanVerdicts(t *testing.T) {
	f := newFixture(t)
	g, _, _ := f.open(t, f.scanning)
	g.Lookup(context.Background(), f.image, nil) // scanned and known from here on

	judge := func(t *testing.T, mutate func(*config.Config), namespace string) engine.Decision {
		t.Helper()
		cfg := &config.Config{Security: config.Security{Scanning: f.scanning}}
		if mutate != nil {
			mutate(cfg)
		}
		e, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := engine.Subject{Image: f.image.String()}
		s.Namespace = namespace
		d := e.Gate(s)
		e.Scan(context.Background(), &d, s, g)
		return d
	}

	t.Run("critical fails in enforce mode, naming the CVE and the fix", func(t *testing.T) {
		d := judge(t, nil, "web")
		if !d.Denied() || d.Scan == nil || d.Scan.Result != scan.ResultFail {
			t.Fatalf("decision = %+v", d)
		}
		msg := strings.Join(d.Denials(), "; ")
		for _, want := range []string{f.image.String(), "CVE-2099-0001", "CRITICAL", "musl", "fixed in 1.2.5-r1", "security.scanning.ignore"} {
			if !strings.Contains(msg, want) {
				t.Errorf("denial %q does not name %q", msg, want)
			}
		}
	})
	t.Run("warn mode admits with the violation", func(t *testing.T) {
		d := judge(t, func(c *config.Config) { c.Mode = config.ModeWarn }, "web")
		if d.Denied() || len(d.Violations) != 1 || d.Violations[0].Mode != config.ModeWarn || d.Violations[0].Rule != engine.RuleScanning {
			t.Fatalf("decision = %+v", d)
		}
	})
	future := time.Now().AddDate(0, 1, 0).Format(config.IgnoreDateLayout)
	past := time.Now().AddDate(0, 0, -1).Format(config.IgnoreDateLayout)
	ignore := func(expires string, namespaces ...string) func(*config.Config) {
		return func(c *config.Config) {
			c.Security.Scanning.Ignore = []config.IgnoreEntry{{ID: "CVE-2099-0001", Namespaces: namespaces, Expires: expires, Reason: "musl is patched in place; SEC-1"}}
		}
	}
	t.Run("an ignore entry admits it, without a rescan", func(t *testing.T) {
		runs := len(f.runs(t))
		d := judge(t, ignore(future), "web")
		if d.Denied() || d.Scan.Result != scan.ResultPass {
			t.Fatalf("decision = %+v", d)
		}
		if n := len(f.runs(t)); n != runs {
			t.Errorf("a new exception ran the scanner %d times", n-runs)
		}
	})
	t.Run("an expired ignore entry denies again", func(t *testing.T) {
		if d := judge(t, ignore(past), "web"); !d.Denied() {
			t.Fatalf("decision = %+v", d)
		}
	})
	t.Run("an ignore entry for another namespace does not apply", func(t *testing.T) {
		if d := judge(t, ignore(future, "legacy-*"), "web"); !d.Denied() {
			t.Fatalf("decision = %+v", d)
		}
		if d := judge(t, ignore(future, "legacy-*"), "legacy-billing"); d.Denied() {
			t.Fatalf("decision in legacy-billing = %+v", d)
		}
	})
	t.Run("skipImages are not judged", func(t *testing.T) {
		d := judge(t, func(c *config.Config) { c.Security.Scanning.SkipImages = []string{f.reg.Host + "/team/*"} }, "web")
		if d.Denied() || d.Scan != nil {
			t.Fatalf("decision = %+v", d)
		}
	})
	t.Run("an excluded namespace is not judged", func(t *testing.T) {
		if d := judge(t, nil, "kube-system"); d.Denied() || d.Scan != nil {
			t.Fatalf("decision = %+v", d)
		}
	})
}

func TestEnginePendingPolicies(t *testing.T) {
	f := newFixture(t)
	f.scanner.Sleep(t, "2")
	g, _, _ := f.open(t, f.scanning)
	cases := []struct {
		pending config.PendingPolicy
		mode    config.Mode
		denied  bool
		viol    config.Mode // "" for none
	}{
		{"", config.ModeEnforce, true, config.ModeEnforce}, // deny is the default
		{config.PendingDeny, config.ModeEnforce, true, config.ModeEnforce},
		{config.PendingDeny, config.ModeWarn, false, config.ModeWarn},
		{config.PendingWarn, config.ModeEnforce, false, config.ModeWarn},
		{config.PendingWarn, config.ModeAudit, false, config.ModeAudit},
		{config.PendingAllow, config.ModeEnforce, false, ""},
	}
	for _, c := range cases {
		t.Run(string(c.pending)+"/"+string(c.mode), func(t *testing.T) {
			cfg := &config.Config{Mode: c.mode, Security: config.Security{Scanning: f.scanning}}
			cfg.Security.Scanning.Pending = c.pending
			e, err := engine.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := engine.Subject{Image: f.image.String()}
			d := e.Gate(s)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			e.Scan(ctx, &d, s, g)
			if d.Scan == nil || d.Scan.Result != scan.ResultPending {
				t.Fatalf("scan verdict = %+v, want pending", d.Scan)
			}
			if d.Denied() != c.denied {
				t.Errorf("denied = %v, want %v (%+v)", d.Denied(), c.denied, d)
			}
			if c.viol == "" {
				if len(d.Violations) != 0 {
					t.Errorf("violations = %+v, want none", d.Violations)
				}
				return
			}
			if len(d.Violations) != 1 || d.Violations[0].Mode != c.viol || d.Violations[0].Rule != engine.RuleScanPending {
				t.Fatalf("violations = %+v, want one %s %s", d.Violations, engine.RuleScanPending, c.viol)
			}
			want := f.image.String() + " is being scanned for vulnerabilities; retry in a minute"
			if d.Violations[0].Message != want {
				t.Errorf("message = %q, want %q", d.Violations[0].Message, want)
			}
		})
	}
}

func TestAMovedTagIsSeenAfterItsTTLWithoutWaitingOnTheRegistry(t *testing.T) {
	f := newFixture(t)
	st, err := store.Open(context.Background(), &config.Store{Path: f.storePath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The old digest answers from one TTL to two after the resolve: a
	// long TTL keeps a loaded machine's sleep inside that window.
	const ttl = time.Second
	g, err := vulngate.New(vulngate.Options{Scanning: f.scanning, Registry: f.client, TagTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := g.Lookup(context.Background(), f.image, nil); got.Ref.Digest != f.index {
		t.Fatalf("first Lookup resolved %s, want %s", got.Ref.Digest, f.index)
	}
	moved := f.reg.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	time.Sleep(ttl + 50*time.Millisecond)
	// Expired: the old digest answers at once while the tag is resolved
	// again in the background...
	if got := g.Lookup(context.Background(), f.image, nil); got.Ref.Digest != f.index {
		t.Fatalf("Lookup just after the TTL resolved %s, want the old %s", got.Ref.Digest, f.index)
	}
	// ...and the new digest is judged from then on.
	waitFor(t, func() bool { return g.Lookup(context.Background(), f.image, nil).Ref.Digest == moved }, "the moved tag's digest")
}

// BenchmarkEngineScanKnown is the gate's cost per image at admission once
// its findings are known: resolve (cached), platforms (cached), findings
// (memory) and the verdict.
func BenchmarkEngineScanKnown(b *testing.B) {
	reg := registrytest.New(b)
	reg.PushIndex(b, "team/app:1.0", 1, "linux/amd64", "linux/arm64")
	image, _ := reference.Parse(reg.Ref("team/app:1.0"))
	client, err := registry.New(&config.Config{})
	if err != nil {
		b.Fatal(err)
	}
	scanner := testenv.NewReportScanner(b, "../scan/testdata/trivy/alpine-310.json")
	s := config.Scanning{Enabled: true, Provider: "trivy", FailOnCritical: true, Command: scanner.Command}
	g, err := vulngate.New(vulngate.Options{Scanning: s, Registry: client})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if got := g.Lookup(context.Background(), image, nil); len(got.Scanned) != 2 {
		b.Fatalf("warming: %+v", got)
	}
	e, err := engine.New(&config.Config{Security: config.Security{Scanning: s}})
	if err != nil {
		b.Fatal(err)
	}
	subject := engine.Subject{Image: image.String()}
	subject.Namespace = "web"
	base := e.Gate(subject)
	b.ReportAllocs()
	for b.Loop() {
		d := base
		d.Reasons = d.Reasons[:len(d.Reasons):len(d.Reasons)]
		e.Scan(context.Background(), &d, subject, g)
		if d.Scan == nil || d.Scan.Result != scan.ResultPass {
			b.Fatalf("verdict %+v", d.Scan)
		}
	}
}
