package tagsync_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/tagsync"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/vulngate"
)

// fixture: a source and a target registry, an image mirrored under its
// tag, and a ledger that says admission swapped it.
type fixture struct {
	src, dst *registrytest.Registry
	client   *registry.Client
	st       store.Store
	source   string // src/team/app:1.0
	target   string // dst/<src host>/team/app:1.0
	mirrored string // its digest, in both
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{src: registrytest.New(t), dst: registrytest.New(t)}
	f.mirrored = f.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64", "linux/arm64")
	f.source = f.src.Ref("team/app:1.0")
	f.target = f.dst.Ref("mirror/team/app:1.0")
	var err error
	if f.client, err = registry.New(&config.Config{}); err != nil {
		t.Fatal(err)
	}
	f.copy(t, f.source, f.target)
	if f.st, err = store.Open(context.Background(), &config.Store{Path: filepath.Join(t.TempDir(), "state.db")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	now := time.Now()
	pinned := f.dst.Ref("mirror/team/app") + "@" + f.mirrored
	recs := []store.AdmissionRecord{
		{Time: now.Add(-time.Hour), UID: "a", Endpoint: store.EndpointMutate, Namespace: "web", Image: f.source, Normalized: f.source, Action: "swap", Target: f.target},
		// Under pinDigest the target names the digest; the same tag.
		{Time: now.Add(-time.Minute), UID: "b", Endpoint: store.EndpointMutate, Namespace: "web", Image: f.source, Normalized: f.source, Action: "swap", Target: pinned},
		// A source by digest cannot move; a dry run swapped nothing; an
		// admission older than the window is not kept fresh.
		{Time: now, UID: "c", Endpoint: store.EndpointMutate, Namespace: "web", Image: f.src.Ref("team/app") + "@" + f.mirrored, Normalized: f.src.Ref("team/app") + "@" + f.mirrored, Action: "swap", Target: pinned},
		{Time: now, UID: "d", Endpoint: store.EndpointMutate, DryRun: true, Namespace: "web", Image: f.src.Ref("team/dry:1"), Normalized: f.src.Ref("team/dry:1"), Action: "swap", Target: f.dst.Ref("mirror/team/dry:1")},
		{Time: now.Add(-60 * 24 * time.Hour), UID: "e", Endpoint: store.EndpointMutate, Namespace: "web", Image: f.src.Ref("team/old:1"), Normalized: f.src.Ref("team/old:1"), Action: "swap", Target: f.dst.Ref("mirror/team/old:1")},
	}
	if err := f.st.Write(context.Background(), &store.Batch{Admissions: recs}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) copy(t *testing.T, src, dst string) {
	t.Helper()
	s, _ := reference.Parse(src)
	d, _ := reference.Parse(dst)
	if _, err := f.client.Copy(context.Background(), s, d, registry.CopyOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) engine(t *testing.T, extra string) *engine.Engine {
	t.Helper()
	cfg, err := config.Parse("config.yaml", []byte(fmt.Sprintf("sourceRegistries: [%q]\ntargetRegistry: %q\n%s", f.src.Host, f.dst.Host, extra)))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *fixture) pass(t *testing.T, o tagsync.Options) tagsync.Tag {
	t.Helper()
	o.Ledger, o.Registry = f.st, f.client
	tags, err := tagsync.Pass(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 1 || tags[0].Source != f.source || tags[0].Target != f.target {
		t.Fatalf("pass = %+v, want one tag: %s -> %s (digest sources, dry runs and old admissions left out)", tags, f.source, f.target)
	}
	return tags[0]
}

func TestACurrentTagIsLeftAlone(t *testing.T) {
	f := newFixture(t)
	f.dst.Reset()
	got := f.pass(t, tagsync.Options{Engine: f.engine(t, "")})
	if got.Outcome != tagsync.Current || got.Mirrored != f.mirrored || got.Upstream != f.mirrored {
		t.Fatalf("tag = %+v, want current at %s", got, f.mirrored)
	}
	if n := f.dst.Count("PUT", "/manifests/"); n != 0 {
		t.Errorf("a current tag was written %d times", n)
	}
}

func TestAMovedTagIsFollowed(t *testing.T) {
	f := newFixture(t)
	moved := f.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	e := f.engine(t, "")

	dry := f.pass(t, tagsync.Options{Engine: e, DryRun: true})
	if dry.Outcome != tagsync.WouldMove || dry.Mirrored != f.mirrored || dry.Upstream != moved {
		t.Fatalf("dry run = %+v, want would-move %s -> %s", dry, f.mirrored, moved)
	}
	if got := f.dst.Digest(t, "mirror/team/app:1.0"); got != f.mirrored {
		t.Fatalf("a dry run moved the tag to %s", got)
	}

	metrics := tagsync.NewMetrics(nil)
	var copies []string
	got := f.pass(t, tagsync.Options{Engine: e, Metrics: metrics, OnCopy: func(src, dst reference.Reference, res registry.CopyResult, err error) {
		copies = append(copies, fmt.Sprintf("%s -> %s %s %v", src, dst, res.Digest, err))
	}})
	if got.Outcome != tagsync.Moved || got.Upstream != moved {
		t.Fatalf("tag = %+v, want moved to %s", got, moved)
	}
	if d := f.dst.Digest(t, "mirror/team/app:1.0"); d != moved {
		t.Errorf("the mirrored tag is at %s, want %s", d, moved)
	}
	if len(copies) != 1 {
		t.Errorf("copies = %q, want one, reported", copies)
	}
	// Nothing is deleted: the old digest is still there.
	if ok := f.dst.Digest(t, "mirror/team/app@"+f.mirrored); ok == "" {
		t.Errorf("the old digest %s was deleted from the mirror", f.mirrored)
	}
}

func TestFreezeReportsDrift(t *testing.T) {
	f := newFixture(t)
	moved := f.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	got := f.pass(t, tagsync.Options{Engine: f.engine(t, "mirroring:\n  sync: {policy: freeze}\n")})
	if got.Outcome != tagsync.Drift || got.Upstream != moved || got.Mirrored != f.mirrored {
		t.Fatalf("tag = %+v, want drift %s -> %s", got, f.mirrored, moved)
	}
	if d := f.dst.Digest(t, "mirror/team/app:1.0"); d != f.mirrored {
		t.Errorf("freeze moved the tag to %s", d)
	}
}

func TestPinDigestMovesTheTagOnlyOnceTheGatePasses(t *testing.T) {
	f := newFixture(t)
	moved := f.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	// The new digest's only platform has CVE-2099-0001 (CRITICAL).
	scanner := testenv.NewReportScanner(t, "../scan/testdata/trivy/alpine-310.json")
	client := f.client
	byDigest, _ := reference.Parse(f.src.Ref("team/app") + "@" + moved)
	_, platforms, err := client.PlatformManifests(context.Background(), byDigest, []registry.Platform{{OS: "linux", Architecture: "amd64"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	scanner.Report(t, platforms[0].Digest, "../scan/testdata/trivy/trivy-0.74-synthetic-alpine.json")
	gated := func(extra string) (*engine.Engine, *vulngate.Gate) {
		cfg := fmt.Sprintf("mirroring: {pinDigest: true}\nsecurity:\n  scanning:\n    enabled: true\n    provider: trivy\n    failOnCritical: true\n    command: [%q, %q, %q]\n%s",
			scanner.Command[0], scanner.Command[1], scanner.Command[2], extra)
		e := f.engine(t, cfg)
		g, err := vulngate.New(vulngate.Options{Scanning: e.Config().Security.Scanning, Registry: client})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		return e, g
	}

	e, g := gated("")
	held := f.pass(t, tagsync.Options{Engine: e, Scans: g})
	if held.Outcome != tagsync.Held || held.Upstream != moved {
		t.Fatalf("tag = %+v, want held: the new digest fails the gate", held)
	}
	if d := f.dst.Digest(t, "mirror/team/app:1.0"); d != f.mirrored {
		t.Errorf("the tag moved to %s although the new digest fails", d)
	}
	if d := f.dst.Digest(t, "mirror/team/app@"+moved); d != moved {
		t.Errorf("the new digest is not in the mirror, untagged, for the gate to judge")
	}

	// An exception lets it pass: the next pass moves the tag.
	e, g = gated("    ignore:\n      - {id: CVE-2099-0001, expires: 2099-12-31, reason: \"patched in place; SEC-1\"}\n")
	got := f.pass(t, tagsync.Options{Engine: e, Scans: g})
	if got.Outcome != tagsync.Moved {
		t.Fatalf("tag = %+v, want moved once the gate passes", got)
	}
	if d := f.dst.Digest(t, "mirror/team/app:1.0"); d != moved {
		t.Errorf("the tag is at %s, want %s", d, moved)
	}
}

func TestAFailedTagIsReportedAndThePassGoesOn(t *testing.T) {
	f := newFixture(t)
	f.src.Close() // the source registry is gone
	got := f.pass(t, tagsync.Options{Engine: f.engine(t, ""), Metrics: tagsync.NewMetrics(nil)})
	if got.Outcome != tagsync.Failed || got.Detail == "" {
		t.Fatalf("tag = %+v, want failed with the error", got)
	}
}

func TestLoopPassesEveryIntervalWithTheConfigurationOfTheMoment(t *testing.T) {
	f := newFixture(t)
	moved := f.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	e := f.engine(t, "")
	// Below the configurable minimum, for the test's sake.
	e.Config().Mirroring.Sync.Interval = &metav1.Duration{Duration: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	calls := make(chan struct{}, 100)
	go func() {
		defer close(done)
		tagsync.Loop(ctx, func() tagsync.Options {
			select {
			case calls <- struct{}{}:
			default:
			}
			return tagsync.Options{Engine: e, Ledger: f.st, Registry: f.client}
		})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for f.dst.Digest(t, "mirror/team/app:1.0") != moved {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not move the tag")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if len(calls) < 2 {
		t.Errorf("options was asked %d times, want before each wait and each pass", len(calls))
	}
}

// With a Schedule (the store), the first term passes at once and holds
// the schedule for an interval: a loop started again right after, as on
// the next holder of the Lease, does not pass before the interval is up.
func TestAScheduledLoopKeepsItsIntervalAcrossTerms(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, "mirroring:\n  sync: {interval: 1h}\n")
	// term runs a loop until stop is true, and counts its checks.
	term := func(stop func(checks int) bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		checks := 0
		checked := make(chan int, 100)
		done := make(chan struct{})
		go func() {
			defer close(done)
			tagsync.Loop(ctx, func() tagsync.Options {
				checks++
				select {
				case checked <- checks:
				default:
				}
				return tagsync.Options{Engine: e, Ledger: f.st, Registry: f.client, Schedule: f.st, ScheduleCheck: 10 * time.Millisecond}
			})
		}()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case n := <-checked:
				if stop(n) {
					cancel()
					<-done
					return
				}
			case <-deadline:
				t.Fatal("the loop did not get there within 30s")
			}
		}
	}

	moved := f.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	// The first term: a pass at once, not an hour later.
	term(func(checks int) bool { return f.dst.Digest(t, "mirror/team/app:1.0") == moved })

	// The next term, an upstream move later: the hour is not up.
	again := f.src.PushIndex(t, "team/app:1.0", 2, "linux/amd64")
	f.src.Reset()
	term(func(checks int) bool { return checks >= 5 })
	if got := f.dst.Digest(t, "mirror/team/app:1.0"); got != moved {
		t.Errorf("the next term passed before the interval was up: the mirror has %s (upstream %s), want %s", got, again, moved)
	}
	if reqs := f.src.Requests(); len(reqs) != 0 {
		t.Errorf("the next term asked the source %q before the interval was up", reqs)
	}
}

// mirroring.sync.window bounds the admissions a pass keeps fresh: with a
// window shorter than the age of the fixture's admissions, nothing is
// checked.
func TestTheWindowComesFromTheConfiguration(t *testing.T) {
	f := newFixture(t)
	e := f.engine(t, "mirroring:\n  sync: {window: 30s, interval: 2h}\n")
	if got := e.Config().Mirroring.Sync.SyncInterval(); got != 2*time.Hour {
		t.Errorf("mirroring.sync.interval loaded as %s, want 2h", got)
	}
	tags, err := tagsync.Pass(context.Background(), tagsync.Options{Engine: e, Ledger: f.st, Registry: f.client})
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 0 {
		t.Errorf("a 30s window checked %+v; the admissions are a minute old and more", tags)
	}
}
