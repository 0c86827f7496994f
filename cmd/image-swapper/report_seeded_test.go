package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/mirror"
	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/report"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/vulngate"
	"github.com/image-swapper/image-swapper/internal/webhook"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files")

// seededGoldens are the goldens of TestReportFromRecordedLedger, beside the
// report package's own.
const seededGoldens = "../../internal/report/testdata"

// seededNow is the report's clock: the exceptions of seededConfig expire
// relative to it. At admission (the real clock) every entry is in force.
var seededNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// seededScanner is the scanner command of the recorded ledger: it prints
// the recorded real report named after the scanned digest
// (DIR/<hex>.json, else DIR/default.json), as internal/vulngate's tests do.
const seededScanner = `#!/bin/sh
dir=$1
for last; do :; done
d=${last##*@sha256:}
if [ -f "$dir/$d.json" ]; then cat "$dir/$d.json"; else cat "$dir/default.json"; fi
`

// fixedImage is an image whose digest is the same on every run: a static
// layer and a config without timestamps.
func fixedImage(t *testing.T, seed, platform string) v1.Image {
	t.Helper()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, static.NewLayer([]byte("layer of "+seed+" for "+platform), types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushFixed pushes ref (repository:tag of reg): one fixedImage, or an
// index of one per platform when there are several. It returns the
// digests of the pushed manifest and of each platform's.
func pushFixed(t *testing.T, reg *registrytest.Registry, ref string, platforms ...string) (string, []string) {
	t.Helper()
	tag, err := name.ParseReference(reg.Ref(ref), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var manifests []string
	if len(platforms) == 1 {
		img := fixedImage(t, ref, platforms[0])
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String(), []string{d.String()}
	}
	var idx v1.ImageIndex = empty.Index
	for _, p := range platforms {
		img := fixedImage(t, ref, p)
		plat, _ := v1.ParsePlatform(p)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
		d, _ := img.Digest()
		manifests = append(manifests, d.String())
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return d.String(), manifests
}

// seededConfig is the configuration serve, mirror and scan run with.
func seededConfig(src, dst, db, scanner, reports string) string {
	return fmt.Sprintf(`sourceRegistries: [%[1]q]
targetRegistry: %[2]s/mirror
registries:
  %[1]q: {insecure: true}
  %[2]q: {insecure: true}
mirroring:
  swap: wait
  waitBudget: 5s
policies:
  denyList: ["%[1]s/library/redis:*"]
rules:
  - name: keep-debian
    image: %[1]s/library/debian:10
    action: keep
  - name: no-ghosts
    repository: "%[1]s/team/ghost"
    action: deny
    mode: warn
    message: ghost images are being retired
store:
  path: %[3]s
security:
  scanning:
    enabled: true
    provider: trivy
    failOnCritical: true
    pending: allow
    # One scan at a time: an index's platforms are scanned in its order,
    # so which scan is the newest (whose scanner version the report
    # shows) is the same on every run.
    concurrency: 1
    command: [sh, %[4]q, %[5]q]
    ignore:
      - id: CVE-2099-0001
        images: ["%[1]s/library/nginx:*", "%[2]s/mirror/*"]
        namespaces: [payments]
        expires: "2031-06-30"
        reason: SEC-1 musl is not reachable
      - id: CVE-2019-18224
        images: ["%[1]s/library/debian:*"]
        expires: "2030-06-10"
        reason: SEC-2 libidn2 fix scheduled
      - id: CVE-2019-18276
        expires: "2030-05-01"
        reason: SEC-3 bash is not reachable
      - id: CVE-2000-0000
        expires: "2031-12-31"
        reason: SEC-4 stale entry
`, src, dst, db, scanner, reports)
}

// serveWiring is what serve builds, in the order serve.go builds it: the
// ledger, the mirror service recording its copies, the vulnerability gate
// recording its scans, and the webhook recording its admissions.
type serveWiring struct {
	ledger  *copyLedger
	mirror  *mirroring
	gate    *vulngate.Gate
	handler http.Handler
}

func wireServe(t *testing.T, cfgPath string) *serveWiring {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	w := &serveWiring{}
	if w.ledger, err = openLedger(ctx, cfg, log, store.WriterOptions{Logger: log, Interval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	recordCopy := w.ledger.onCopy()
	if w.mirror, err = newMirroring(cfg, log, func(ev mirror.Event) { recordCopy(ev) }); err != nil {
		t.Fatal(err)
	}
	if w.gate, err = vulngate.New(vulngate.Options{Scanning: cfg.Security.Scanning, Registry: w.mirror.client, Store: w.ledger.st,
		Ledger: w.ledger.w, Logger: log}); err != nil {
		t.Fatal(err)
	}
	srv, err := webhook.New(webhook.Options{Mirror: w.mirror.engineMirror(), MirrorConfig: cfg, ConfigPath: cfgPath, Namespace: "image-swapper",
		Ledger: w.ledger.w, Scans: w.gate, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	w.handler = srv.Handler()
	return w
}

// close stops what serve stops at its end, in its order, which flushes
// the ledger.
func (w *serveWiring) close() {
	w.gate.Close()
	w.mirror.Close()
	w.ledger.close()
}

// review posts one AdmissionReview to the handler and returns its
// response.
func (w *serveWiring) review(t *testing.T, path string, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	body, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	w.handler.ServeHTTP(rec, hr)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("%s: %v: %s", path, err, rec.Body)
	}
	return out.Response
}

// admitPod does what the API server does for a ReplicaSet's new Pod: it
// calls /mutate, applies the patch, and calls /validate with the result
// unless /mutate denied it. It returns whether the Pod was admitted.
func (w *serveWiring) admitPod(t *testing.T, uid, ns, owner, image string) bool {
	t.Helper()
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: owner + "-", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: owner, UID: k8stypes.UID("rs-" + owner), Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	req := &admissionv1.AdmissionRequest{UID: k8stypes.UID("uid-" + uid), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: ns, Operation: admissionv1.Create,
		UserInfo: authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:replicaset-controller"},
		Object:   runtime.RawExtension{Raw: raw}}
	resp := w.review(t, "/mutate", req)
	if !resp.Allowed {
		t.Logf("/mutate denied pod %s: %v", uid, resp.Result)
		return false
	}
	if len(resp.Patch) > 0 {
		patch, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatal(err)
		}
		if req.Object.Raw, err = patch.Apply(raw); err != nil {
			t.Fatal(err)
		}
	}
	resp = w.review(t, "/validate", req)
	if !resp.Allowed {
		t.Logf("/validate denied pod %s: %v", uid, resp.Result)
	}
	return resp.Allowed
}

// TestReportFromRecordedLedger builds the report from a ledger recorded
// the way serve, mirror and scan record it: the mirror CLI copies one
// image and the scan CLI imports a real Grype report for it; then the
// webhook, wired as serve wires it over two real (in-process) registries,
// admits Pods: it copies at admission (swap: wait), denies by a list,
// warns by a rule, and has the vulnerability gate scan each platform
// manifest in the background with a scanner that prints recorded real
// Trivy reports. The goldens are the JSON and CSV reports, with the
// registries' addresses and the times the test ran at replaced (the
// report's own clock is fixed).
func TestReportFromRecordedLedger(t *testing.T) {
	start := time.Now().UTC()
	src, dst := registrytest.New(t), registrytest.New(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	reports := filepath.Join(dir, "reports")
	if err := os.Mkdir(reports, 0o755); err != nil {
		t.Fatal(err)
	}
	scanner := filepath.Join(dir, "scanner.sh")
	writeTestFile(t, scanner, seededScanner)

	_, nginx := pushFixed(t, src, "library/nginx:1.27", "linux/amd64", "linux/arm64")
	_, debian := pushFixed(t, src, "library/debian:10", "linux/amd64")
	pushFixed(t, src, "library/redis:7", "linux/amd64")
	pushFixed(t, src, "team/tools:2.0", "linux/amd64")
	// nginx's amd64 manifest has CVE-2099-0001 (CRITICAL); its arm64 one
	// and anything else the Alpine 3.10 report (MEDIUM and below).
	copyTestFile(t, scanReports+"/trivy/trivy-0.74-synthetic-alpine.json", filepath.Join(reports, strings.TrimPrefix(nginx[0], "sha256:")+".json"))
	copyTestFile(t, scanReports+"/trivy/debian-buster.json", filepath.Join(reports, strings.TrimPrefix(debian[0], "sha256:")+".json"))
	copyTestFile(t, scanReports+"/trivy/alpine-310.json", filepath.Join(reports, "default.json"))
	cfgPath := filepath.Join(dir, "config.yaml")
	writeTestFile(t, cfgPath, seededConfig(src.Host, dst.Host, db, scanner, reports))

	// The CLI: mirror copies tools, scan imports a Grype report for it.
	if code, out, errOut := runCLI(t, "", "mirror", "--config", cfgPath, src.Ref("team/tools:2.0")); code != 0 {
		t.Fatalf("mirror: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "", "scan", "--config", cfgPath, "--report", scanReports+"/grype/keycloak-rhel9.json", src.Ref("team/tools:2.0")); code != 0 {
		t.Fatalf("scan: exit %d\n%s%s", code, out, errOut)
	}

	w := wireServe(t, cfgPath)
	closed := false
	defer func() {
		if !closed {
			w.close()
		}
	}()
	type pod struct {
		uid, ns, owner, image string
		admitted              bool
	}
	// The first Pods' verdicts do not depend on whether the gate has
	// finished a scan (pending: allow, and the findings it would see are
	// ignored or below the threshold).
	first := []pod{
		{"1", "payments", "pay-5c4b", src.Ref("library/nginx:1.27"), true},
		{"2", "legacy", "old-6b8c", src.Ref("library/debian:10"), true},
		{"3", "shop", "cache-8f7e", src.Ref("library/redis:7"), false},
		{"4", "shop", "tools-9a1b", src.Ref("team/tools:2.0"), true},
		// Never pushed: its copy fails, the Pod keeps the source.
		{"5", "monitoring", "ghost-2d3e", src.Ref("team/ghost:1.0"), true},
	}
	for _, p := range first {
		if got := w.admitPod(t, p.uid, p.ns, p.owner, p.image); got != p.admitted {
			t.Fatalf("pod %s in %s (%s): admitted %v, want %v", p.uid, p.ns, p.image, got, p.admitted)
		}
	}
	// The gate scans nginx's two platforms and debian in the background
	// (tools is known from the scan CLI's record); the next admissions are
	// judged.
	waitForScans(t, w.ledger.st, 4)
	second := []pod{
		// CVE-2099-0001 fails nginx in shop, is ignored in payments.
		{"6", "shop", "web-7d9f", src.Ref("library/nginx:1.27"), false},
		{"7", "payments", "pay-5c4b", src.Ref("library/nginx:1.27"), true},
		// CVE-2019-18224 is ignored (until 2030-06-10).
		{"8", "legacy", "old-6b8c", src.Ref("library/debian:10"), true},
		{"9", "shop", "cache-8f7e", src.Ref("library/redis:7"), false},
	}
	for _, p := range second {
		if got := w.admitPod(t, p.uid, p.ns, p.owner, p.image); got != p.admitted {
			t.Fatalf("pod %s in %s (%s): admitted %v, want %v", p.uid, p.ns, p.image, got, p.admitted)
		}
	}
	w.close()
	closed = true
	end := time.Now().UTC()

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := report.Build(context.Background(), st, report.Options{Scanning: cfg.Security.Scanning, Now: seededNow})
	if err != nil {
		t.Fatal(err)
	}
	checkSeeded(t, r, src)
	n := normaliser{start: start, end: end, hosts: []string{src.Host, dst.Host}}
	for _, g := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"recorded.json", func(b *bytes.Buffer) error { return report.WriteJSON(b, r) }},
		{"recorded.csv", func(b *bytes.Buffer) error { return report.WriteCSV(b, r) }},
	} {
		var buf bytes.Buffer
		if err := g.write(&buf); err != nil {
			t.Fatal(err)
		}
		compareGolden(t, filepath.Join(seededGoldens, g.name), n.normalise(buf.String()))
	}
}

// waitForScans waits until the ledger holds n scan records.
func waitForScans(t *testing.T, st store.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		scans, err := st.Scans(context.Background(), store.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if len(scans) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scan records after 30s, want %d: %+v", len(scans), n, scans)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkSeeded checks what the goldens show, so that a golden rewritten by
// -update cannot silently lose it.
func checkSeeded(t *testing.T, r *report.Report, src *registrytest.Registry) {
	t.Helper()
	images := map[string]report.Image{}
	for _, img := range r.Images {
		images[img.Image] = img
	}
	nginx := images[src.Ref("library/nginx:1.27")]
	if nginx.Admissions != 3 || nginx.Denials != 1 || nginx.Mirror.Status != report.MirrorPresent || nginx.Scan.Status != report.ScanFail ||
		nginx.Scan.Counts.Critical != 1 || len(nginx.Scan.Manifests) != 2 {
		t.Errorf("nginx: %d admissions, %d denials, mirror %s, scan %+v; want 3, 1 (by the gate), present, fail with 1 critical over 2 manifests",
			nginx.Admissions, nginx.Denials, nginx.Mirror.Status, nginx.Scan)
	}
	// Both endpoints record each denial; the report counts it once.
	rule := fmt.Sprintf("policies.denyList[0] %q", src.Ref("library/redis:*"))
	if redis := images[src.Ref("library/redis:7")]; redis.Denials != 2 || redis.DenialsByRule[rule] != 2 || len(redis.DenialsByRule) != 1 {
		t.Errorf("redis: %d denials %v, want 2 by %s", redis.Denials, redis.DenialsByRule, rule)
	}
	if tools := images[src.Ref("team/tools:2.0")]; tools.Scan.Scanner != "grype" || tools.Mirror.Status != report.MirrorPresent {
		t.Errorf("tools: scan by %q, mirror %s; want the scan CLI's grype import and the mirror CLI's copy", tools.Scan.Scanner, tools.Mirror.Status)
	}
	if ghost := images[src.Ref("team/ghost:1.0")]; ghost.Mirror.Status != report.MirrorFailed || len(ghost.Violations) != 1 {
		t.Errorf("ghost: mirror %s, violations %+v; want failed and the warn rule", ghost.Mirror.Status, ghost.Violations)
	}
	var status []string
	for _, e := range r.Exceptions {
		status = append(status, fmt.Sprintf("%s:%s:%v", e.ID, e.Status, e.MatchesNothing))
	}
	want := "[CVE-2099-0001:active:false CVE-2019-18224:expiring:false CVE-2019-18276:expired:true CVE-2000-0000:active:true]"
	if fmt.Sprint(status) != want {
		t.Errorf("exceptions %v, want %s", status, want)
	}
}

// normaliser makes a report of a recorded ledger comparable across runs:
// the registries' addresses become REGISTRY-1 and REGISTRY-2 (also as
// the default rule writes them into a target path), timestamps taken
// while the test ran become "<recorded>", their dates "<today>", and copy
// durations 0.
type normaliser struct {
	start, end time.Time
	hosts      []string
}

var (
	timestampPattern = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	durationPattern  = regexp.MustCompile(`"durationSeconds": [0-9.e+-]+`)
	medianPattern    = regexp.MustCompile(`"medianSecondsToMirrored": [0-9.e+-]+`)
)

func (n normaliser) normalise(s string) string {
	for i, h := range n.hosts {
		s = strings.ReplaceAll(s, h, fmt.Sprintf("REGISTRY-%d", i+1))
		s = strings.ReplaceAll(s, strings.ReplaceAll(h, ":", "_"), fmt.Sprintf("REGISTRY-%d", i+1))
	}
	s = timestampPattern.ReplaceAllStringFunc(s, func(ts string) string {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || t.Before(n.start.Add(-time.Second)) || t.After(n.end.Add(time.Second)) {
			return ts
		}
		return "<recorded>"
	})
	for d := n.start; !d.After(n.end.Add(24 * time.Hour)); d = d.Add(24 * time.Hour) {
		if d.After(n.end) && d.Format(time.DateOnly) != n.end.Format(time.DateOnly) {
			break
		}
		s = strings.ReplaceAll(s, `"`+d.Format(time.DateOnly)+`"`, `"<today>"`)
	}
	s = durationPattern.ReplaceAllString(s, `"durationSeconds": 0`)
	// Copies at admission finish before the admission is recorded: the
	// median is 0 or, for a copy the CLI made before, negative clipped
	// to 0; a slow machine may still record a few milliseconds.
	s = medianPattern.ReplaceAllStringFunc(s, func(m string) string {
		var v float64
		fmt.Sscanf(strings.TrimPrefix(m, `"medianSecondsToMirrored": `), "%g", &v)
		return fmt.Sprintf(`"medianSecondsToMirrored": %.0f`, v)
	})
	return s
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		writeTestFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -run %s -update rewrites it):\n%s", path, t.Name(), got)
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTestFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, to, string(b))
}
