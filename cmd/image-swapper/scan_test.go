package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/store"
)

const scanReports = "../../internal/scan/testdata"

// fakeTrivySource prints the report file FAKE_REPORT names, appends its
// last argument (the image) to FAKE_RECORD, or fails when FAKE_EXIT says;
// it takes a second when FAKE_SLEEP is set.
const fakeTrivySource = `package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	if p := os.Getenv("FAKE_RECORD"); p != "" {
		f, _ := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		fmt.Fprintln(f, os.Args[len(os.Args)-1])
		f.Close()
	}
	if os.Getenv("FAKE_SLEEP") != "" {
		time.Sleep(time.Second)
	}
	if os.Getenv("FAKE_EXIT") != "" {
		fmt.Fprintln(os.Stderr, "FATAL image scan error: unable to find the specified image")
		os.Exit(1)
	}
	data, err := os.ReadFile(os.Getenv("FAKE_REPORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Stdout.Write(data)
}
`

// fakeTrivy builds the stand-in into the test's temporary directory.
func fakeTrivy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(fakeTrivySource), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "trivy")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GO111MODULE=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fake scanner: %v\n%s", err, out)
	}
	return bin
}

func writeScanConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runScan(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"scan"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

type scanJSONOut struct {
	Image   string         `json:"image"`
	Digest  string         `json:"digest"`
	Verdict string         `json:"verdict"`
	Counts  map[string]int `json:"counts"`
	Failing []struct {
		ID, Severity, Package, Installed, Fixed, Reason string
		CVSS                                            *float64
	} `json:"failing"`
	Ignored []struct {
		ID, By  string
		Expires *string
	} `json:"ignored"`
}

func decodeScanJSON(t *testing.T, s string) []scanJSONOut {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var out []scanJSONOut
	for dec.More() {
		var o scanJSONOut
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("decoding %q: %v", s, err)
		}
		out = append(out, o)
	}
	return out
}

func TestScanImportsAReportWithoutAskingTheRegistry(t *testing.T) {
	reg := registrytest.New(t)
	cfg := writeScanConfig(t, fmt.Sprintf(`
registries:
  %q: {insecure: true}
security:
  scanning:
    provider: trivy
    failOnCritical: true
    ignore:
      - id: CVE-2019-18276
        images: ["%s/library/debian:*"]
        expires: 2027-01-31
        reason: bash is not reachable; SEC-123
      - id: CVE-2000-0001
        expires: 2027-01-31
        reason: stale entry
`, reg.Host, reg.Host))
	image := reg.Host + "/library/debian:10@sha256:" + strings.Repeat("c", 64)
	code, stdout, stderr := runScan(t, "--config", cfg, "--report", scanReports+"/trivy/debian-buster.json", "-o", "json", image)
	if code != exitDenied {
		t.Fatalf("exit %d, want 1 (a CRITICAL finding under failOnCritical)\n%s%s", code, stdout, stderr)
	}
	if n := len(reg.Requests()); n != 0 {
		t.Errorf("the registry served %d requests (%v) for an image given by digest, want none", n, reg.Requests())
	}
	outs := decodeScanJSON(t, stdout)
	if len(outs) != 1 {
		t.Fatalf("%d JSON objects, want 1", len(outs))
	}
	o := outs[0]
	if o.Image != image || o.Digest != "sha256:"+strings.Repeat("c", 64) || o.Verdict != "fail" {
		t.Errorf("image %q digest %q verdict %q", o.Image, o.Digest, o.Verdict)
	}
	want := map[string]int{"critical": 1, "high": 0, "medium": 0, "low": 1, "unknown": 0}
	if fmt.Sprint(o.Counts) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", o.Counts, want)
	}
	if len(o.Failing) != 1 || o.Failing[0].ID != "CVE-2019-18224" || o.Failing[0].Severity != "CRITICAL" ||
		o.Failing[0].CVSS == nil || *o.Failing[0].CVSS != 9.8 || o.Failing[0].Package != "libidn2-0" ||
		o.Failing[0].Installed != "2.0.5-1" || o.Failing[0].Fixed != "2.0.5-1+deb10u1" || o.Failing[0].Reason == "" {
		t.Errorf("failing = %+v", o.Failing)
	}
	if len(o.Ignored) != 1 || o.Ignored[0].ID != "CVE-2019-18276" || o.Ignored[0].By != "security.scanning.ignore[0] (CVE-2019-18276)" ||
		o.Ignored[0].Expires == nil || *o.Ignored[0].Expires != "2027-01-31" {
		t.Errorf("ignored = %+v", o.Ignored)
	}
	if !strings.Contains(stderr, "ignore entry security.scanning.ignore[1] (CVE-2000-0001) matched no finding") {
		t.Errorf("stderr does not list the unused ignore entry:\n%s", stderr)
	}
	if strings.Contains(stderr, "ignore[0]") {
		t.Errorf("stderr lists the used ignore entry as unused:\n%s", stderr)
	}
}

func TestScanImportResolvesATagThroughTheRegistry(t *testing.T) {
	reg := registrytest.New(t)
	digest := reg.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	cfg := writeScanConfig(t, fmt.Sprintf("registries:\n  %q: {insecure: true}\nsecurity:\n  scanning: {provider: grype, severity: HIGH}\n", reg.Host))
	code, stdout, stderr := runScan(t, "--config", cfg, "--report", scanReports+"/grype/keycloak-rhel9.json", "-o", "json", reg.Host+"/team/app:1.0")
	if code != 0 {
		t.Fatalf("exit %d, want 0 (only Low findings under severity HIGH)\n%s%s", code, stdout, stderr)
	}
	o := decodeScanJSON(t, stdout)[0]
	if o.Digest != digest || o.Verdict != "pass" || o.Counts["low"] != 6 || len(o.Failing) != 0 {
		t.Errorf("got %+v, want digest %s, pass, 6 low", o, digest)
	}
}

func TestScanRunsTheScannerOncePerPlatformDigest(t *testing.T) {
	scanner := fakeTrivy(t)
	record := filepath.Join(t.TempDir(), "record")
	abs, _ := filepath.Abs(scanReports + "/trivy/alpine-310.json")
	t.Setenv("FAKE_REPORT", abs)
	t.Setenv("FAKE_RECORD", record)
	reg := registrytest.New(t)
	index := reg.PushIndex(t, "app:1.0", 1, "linux/amd64", "linux/arm64", "linux/s390x")
	reg.PushIndex(t, "app:1.1", 1, "linux/amd64", "linux/arm64", "linux/s390x")
	reg.PushIndex(t, "base/debian:10", 1, "linux/amd64")
	cfg := writeScanConfig(t, fmt.Sprintf(`
security:
  scanning:
    provider: trivy
    command: [%q, image, --format, json]
    maxCVSS: 5.0
    skipImages: [%q]
`, scanner, reg.Host+"/base/*"))
	d := "@" + index
	code, stdout, stderr := runScan(t, "--config", cfg, "-o", "json",
		reg.Ref("app:1.0"), reg.Ref("app")+d, reg.Ref("base/debian:10"))
	if code != exitDenied {
		t.Fatalf("exit %d, want 1 (CVSS 5.3 above maxCVSS 5.0)\n%s%s", code, stdout, stderr)
	}
	outs := decodeScanJSON(t, stdout)
	if len(outs) != 3 || outs[0].Verdict != "fail" || outs[1].Verdict != "fail" || len(outs[0].Failing) != 4 {
		t.Fatalf("verdicts %+v", outs)
	}
	if outs[0].Digest != index || outs[1].Digest != index {
		t.Errorf("digests %s and %s, want the index %s for both", outs[0].Digest, outs[1].Digest, index)
	}
	if outs[2].Verdict != "pass" || !strings.Contains(stderr, reg.Ref("base/debian:10")+": skipped") {
		t.Errorf("a skipImages image: verdict %q, stderr %q; want pass and a note", outs[2].Verdict, stderr)
	}
	runs, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(runs))
	// The tag and the digest name one index: its linux/amd64 and
	// linux/arm64 manifests are scanned once each, by their own digests
	// (s390x is not in the default platforms).
	if len(got) != 2 || got[0] == got[1] {
		t.Fatalf("the scanner ran for %q, want once per scanned platform", got)
	}
	for _, r := range got {
		if !strings.HasPrefix(r, reg.Ref("app")+"@sha256:") || r == reg.Ref("app")+d {
			t.Errorf("the scanner ran for %s, want a platform manifest of %s", r, reg.Ref("app"))
		}
	}
}

func TestScanFailureIsAnErrorVerdict(t *testing.T) {
	scanner := fakeTrivy(t)
	t.Setenv("FAKE_EXIT", "1")
	t.Setenv("FAKE_RECORD", "")
	reg := registrytest.New(t)
	index := reg.PushIndex(t, "app:1.0", 1, "linux/amd64")
	cfg := writeScanConfig(t, fmt.Sprintf("security:\n  scanning: {provider: trivy, command: [%q], failOnCritical: true}\n", scanner))
	code, stdout, stderr := runScan(t, "--config", cfg, "-o", "json", reg.Ref("app")+"@"+index)
	if code != exitTrouble {
		t.Fatalf("exit %d, want 2 for a scan that could not run\n%s%s", code, stdout, stderr)
	}
	if o := decodeScanJSON(t, stdout); len(o) != 1 || o[0].Verdict != "error" {
		t.Errorf("verdicts %+v, want one error", o)
	}
	if !strings.Contains(stderr, "exit status 1") || !strings.Contains(stderr, "unable to find the specified image") {
		t.Errorf("stderr lacks the scanner's exit status and message:\n%s", stderr)
	}
}

func TestScanRecordsInTheStoreWithAStoreSection(t *testing.T) {
	scanner := fakeTrivy(t)
	abs, _ := filepath.Abs(scanReports + "/trivy/trivy-0.74-synthetic-alpine.json")
	t.Setenv("FAKE_REPORT", abs)
	t.Setenv("FAKE_RECORD", "")
	reg := registrytest.New(t)
	index := reg.PushIndex(t, "app:1.0", 1, "linux/amd64", "linux/arm64")
	db := filepath.Join(t.TempDir(), "state.db")
	cfg := writeScanConfig(t, fmt.Sprintf("store: {path: %q}\nsecurity:\n  scanning: {provider: trivy, command: [%q], failOnCritical: true}\n", db, scanner))
	if code, stdout, stderr := runScan(t, "--config", cfg, reg.Ref("app:1.0")); code != exitDenied {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	imported := reg.Ref("other") + "@sha256:" + strings.Repeat("d", 64)
	if code, stdout, stderr := runScan(t, "--config", cfg, "--report", abs, imported); code != exitDenied {
		t.Fatalf("import: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	st, err := store.Open(context.Background(), &config.Store{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	scans, err := st.Scans(context.Background(), store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(scans) != 3 {
		t.Fatalf("the store has %d scans, want 3 (two platforms, one import): %+v", len(scans), scans)
	}
	platforms := 0
	for _, sc := range scans {
		if sc.Counts["CRITICAL"] != 1 || sc.Scanner != "trivy" {
			t.Errorf("stored scan %+v, want trivy's with 1 CRITICAL", sc)
		}
		if sc.IndexDigest == index && sc.ManifestDigest != index {
			platforms++
		}
	}
	if platforms != 2 {
		t.Errorf("%d stored scans are platforms of %s, want 2", platforms, index)
	}
	rec, err := st.LatestScan(context.Background(), "sha256:"+strings.Repeat("d", 64))
	if err != nil || len(rec.Report) == 0 || len(rec.Findings) != 2 {
		t.Errorf("the imported report: %+v, %v; want it with its raw report and 2 findings", rec, err)
	}
}

func TestScanTablePassesAndRejectsBadUsage(t *testing.T) {
	cfg := writeScanConfig(t, "security:\n  scanning: {provider: trivy, failOnCritical: true}\n")
	image := "registry.example.com/app@sha256:" + strings.Repeat("e", 64)
	code, stdout, stderr := runScan(t, "--config", cfg, "--report", scanReports+"/trivy/alpine-310.json", image)
	if code != 0 || !strings.Contains(stdout, "VERDICT") || !strings.Contains(stdout, " pass ") {
		t.Errorf("exit %d, table:\n%s%s", code, stdout, stderr)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"--report with two images", []string{"--config", cfg, "--report", scanReports + "/trivy/alpine-310.json", image, image}, "2 images were given"},
		{"an unknown output format", []string{"--config", cfg, "-o", "yaml", image}, `-o "yaml"`},
		{"a report that is neither format", []string{"--config", cfg, "--report", "scan_test.go", image}, "scan_test.go: not a Trivy"},
		{"an invalid image", []string{"--config", cfg, "--report", scanReports + "/trivy/alpine-310.json", "Nginx"}, "Nginx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runScan(t, tc.args...)
			if code != exitTrouble || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
}

// rewrite and explain apply the gate as admission does: with scanning
// enabled, a failing image is denied naming its CVE, an exception admits
// it, and a scan that outlasts --scan-timeout is pending.
func TestRewriteAndExplainApplyTheVulnerabilityGate(t *testing.T) {
	scanner := fakeTrivy(t)
	abs, _ := filepath.Abs(scanReports + "/trivy/trivy-0.74-synthetic-alpine.json")
	t.Setenv("FAKE_REPORT", abs)
	t.Setenv("FAKE_RECORD", "")
	reg := registrytest.New(t)
	reg.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
	image := reg.Ref("team/app:1.0")
	scanning := func(extra string) string {
		return writeScanConfig(t, fmt.Sprintf(`
security:
  scanning:
    enabled: true
    provider: trivy
    command: [%q]
    failOnCritical: true
%s`, scanner, extra))
	}
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: "+image+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(args, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	cfg := scanning("")
	code, stdout, stderr := runCLI("rewrite", "--config", cfg, "-f", manifest)
	if code != exitDenied || stdout != "" || !strings.Contains(stderr, "CVE-2099-0001") || !strings.Contains(stderr, `container "app"`) {
		t.Errorf("rewrite of a failing image: exit %d, stdout %q, stderr %q; want 1 naming CVE-2099-0001 and nothing written", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI("explain", "--config", cfg, "-o", "json", image)
	var d struct {
		Action string
		Scan   struct {
			Result  string
			Failing []string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &d); err != nil || code != 0 {
		t.Fatalf("explain: exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
	if d.Action != "deny" || d.Scan.Result != "fail" || len(d.Scan.Failing) != 1 || d.Scan.Failing[0] != "CVE-2099-0001" {
		t.Errorf("explain = %+v, want deny with scan fail [CVE-2099-0001]", d)
	}

	excepted := scanning(`    ignore:
      - {id: CVE-2099-0001, expires: 2099-12-31, reason: "musl is patched in place; SEC-1"}
`)
	if code, stdout, stderr := runCLI("rewrite", "--config", excepted, "-f", manifest); code != 0 || !strings.Contains(stdout, image) {
		t.Errorf("rewrite with an exception: exit %d\n%s%s", code, stdout, stderr)
	}

	t.Setenv("FAKE_SLEEP", "1")
	slow := scanning("")
	code, _, stderr = runCLI("rewrite", "--config", slow, "--scan-timeout", "1ms", "-f", manifest)
	if code != exitDenied || !strings.Contains(stderr, "is being scanned for vulnerabilities") {
		t.Errorf("rewrite with a scan outlasting --scan-timeout: exit %d, stderr %q; want 1, pending", code, stderr)
	}
}
