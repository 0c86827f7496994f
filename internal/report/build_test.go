package report

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/scan"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	now  = time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	day1 = time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	day2 = day1.Add(24 * time.Hour)
)

const (
	nginx       = "docker.io/library/nginx:1.27"
	nginxMirror = "registry.example.com/docker.io/library/nginx:1.27"
	debian      = "docker.io/library/debian:buster"
	redis       = "docker.io/library/redis:7"
	prom        = "quay.io/prometheus/prometheus:v3"
	promMirror  = "registry.example.com/quay.io/prometheus/prometheus:v3"
	nginxDigest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

// scanning is the policy of the seeded ledger: failOnCritical and four
// exceptions, one of each state.
var scanning = config.Scanning{
	Enabled: true, Provider: "trivy", FailOnCritical: true,
	Ignore: []config.IgnoreEntry{
		{ID: "CVE-2099-0001", Images: []string{"docker.io/library/nginx:*"}, Namespaces: []string{"payments"}, Expires: "2027-06-30", Reason: "SEC-1"},
		{ID: "CVE-2019-18224", Images: []string{"debian"}, Expires: "2026-12-20", Reason: "SEC-2"},
		{ID: "CVE-2019-18276", Expires: "2026-12-01", Reason: "SEC-3"},
		{ID: "CVE-2000-0000", Expires: "2027-12-31", Reason: "SEC-4"},
	},
}

// pod is what the webhook records for one container of one Pod at both
// endpoints: /mutate decides on the image as written, /validate on the
// image as it will run.
func pod(at time.Time, uid, ns, image, action, target, rule string, violations ...store.Violation) []store.AdmissionRecord {
	base := store.AdmissionRecord{Time: at, UID: uid, Operation: "CREATE", Endpoint: store.EndpointMutate, Namespace: ns,
		Pod: "web-*", OwnerKind: "ReplicaSet", OwnerName: "web-7d9f", Container: "app", ContainerKind: store.ContainerRegular,
		User: "system:serviceaccount:kube-system:replicaset-controller", Image: image, Normalized: image, Action: action, Target: target,
		Rule: rule, Violations: violations}
	if action == "deny" {
		return []store.AdmissionRecord{base} // the API server calls /validate no more
	}
	v := base
	v.Time, v.Endpoint, v.Image, v.Normalized, v.Action, v.Target, v.Rule = at.Add(5*time.Millisecond), store.EndpointValidate, target, target, "keep", target, ""
	return []store.AdmissionRecord{base, v}
}

// scanRecord is what a scan records: the parsed report of a real
// scanner, by digest.
func scanRecord(t *testing.T, at time.Time, report, image, index, manifest string) store.ScanRecord {
	t.Helper()
	rep, err := scan.ReadFile(filepath.Join("..", "scan", "testdata", "trivy", report))
	if err != nil {
		t.Fatal(err)
	}
	r := store.ScanRecord{Time: at, Image: image, IndexDigest: index, ManifestDigest: manifest, Scanner: "trivy",
		ScannerVersion: rep.ScannerVersion, DBTime: rep.DBTime, Counts: scan.CountFindings(rep.Findings).Map()}
	for _, f := range rep.Findings {
		cvss := 0.0
		if f.HasCVSS {
			cvss = f.CVSS
		}
		r.Findings = append(r.Findings, store.Finding{ID: f.ID, Package: f.Package, InstalledVersion: f.Installed, FixedVersion: f.Fixed,
			Severity: f.Severity.String(), CVSS: cvss, Status: f.Status})
	}
	return r
}

// seed writes the test ledger through the store's batch writer.
func seed(t *testing.T, st store.Store) {
	t.Helper()
	w := store.NewWriter(st, store.WriterOptions{})
	var recs []store.AdmissionRecord
	add := func(rs []store.AdmissionRecord) { recs = append(recs, rs...) }
	// Older than the 30-day window.
	add(pod(now.Add(-40*24*time.Hour), "u0", "shop", nginx, "swap", nginxMirror, "default"))
	add(pod(day1.Add(10*time.Hour), "u1", "shop", nginx, "swap", nginxMirror, "default"))
	add(pod(day2.Add(10*time.Hour), "u2", "shop", nginx, "swap", nginxMirror, "default"))
	add(pod(day2.Add(11*time.Hour), "u3", "payments", nginx, "swap", nginxMirror, "default"))
	add(pod(day2.Add(9*time.Hour), "u4", "legacy", debian, "keep", debian, "keep-debian"))
	deny := store.Violation{Rule: "policies.denyList[0]", Mode: "enforce", Message: "docker.io/library/redis:7 is denied by docker.io/library/redis:*"}
	add(pod(day2.Add(12*time.Hour), "u5", "shop", redis, "deny", "", "policies.denyList[0]", deny))
	add(pod(day2.Add(12*time.Hour+time.Minute), "u6", "shop", redis, "deny", "", "policies.denyList[0]", deny))
	warn := store.Violation{Rule: "policies.allowList", Mode: "warn", Message: "quay.io/prometheus/prometheus:v3 is not in the allowList"}
	add(pod(day2.Add(13*time.Hour), "u7", "monitoring", prom, "swap", promMirror, "default", warn))
	for _, r := range recs {
		w.Record(r)
	}
	w.RecordCopy(store.CopyRecord{Time: day1.Add(10*time.Hour + 30*time.Second), Source: nginx, Target: nginxMirror, Digest: nginxDigest,
		Platforms: []string{"linux/amd64"}, Bytes: 3_500_000, Duration: 1500 * time.Millisecond, Result: "copied"})
	for i := range 2 {
		w.RecordCopy(store.CopyRecord{Time: day2.Add(13*time.Hour + time.Duration(i)*time.Minute), Source: prom, Target: promMirror,
			Result: "failed", Error: "copying quay.io/prometheus/prometheus:v3: 429 Too Many Requests"})
	}
	w.RecordScan(scanRecord(t, day1.Add(10*time.Hour+time.Minute), "trivy-0.74-synthetic-alpine.json", nginxMirror+"@"+nginxDigest, nginxDigest,
		"sha256:091ae1efd5a32fd6071fda320cb4f4a51e208f13515d3c4bf485c2b0bc8b5f19"))
	w.RecordScan(scanRecord(t, day2.Add(9*time.Hour+time.Minute), "debian-buster.json", debian, "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, &store.Batch{Gaps: []store.Gap{{From: day2, To: day2.Add(time.Second), Count: 3}}}); err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, st store.Store, namespace string) *Report {
	t.Helper()
	r, err := Build(context.Background(), st, Options{Since: now.Add(-30 * 24 * time.Hour), Namespace: namespace, Scanning: scanning, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openSQLite(t *testing.T) store.Store {
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestReportSQLite(t *testing.T) {
	st := openSQLite(t)
	seed(t, st)
	r := build(t, st, "")
	checkNumbers(t, r)
	golden(t, "report.json", func(w *bytes.Buffer) error { return WriteJSON(w, r) })
	golden(t, "report.csv", func(w *bytes.Buffer) error { return WriteCSV(w, r) })
	golden(t, "report.txt", func(w *bytes.Buffer) error { return WriteTable(w, r) })
	golden(t, "policyreport.yaml", func(w *bytes.Buffer) error { return WritePolicyReports(w, r, MaxPolicyReportBytes) })
}

// TestReportPostgres builds the same report from PostgreSQL: the JSON is
// byte for byte SQLite's.
func TestReportPostgres(t *testing.T) {
	pg := storetest.StartPostgres(t)
	st, err := store.OpenPostgres(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seed(t, st)
	r := build(t, st, "")
	checkNumbers(t, r)
	golden(t, "report.json", func(w *bytes.Buffer) error { return WriteJSON(w, r) })
}

func TestReportNamespaceFilter(t *testing.T) {
	st := openSQLite(t)
	seed(t, st)
	r := build(t, st, "sh*")
	var images []string
	for _, img := range r.Images {
		images = append(images, img.Image)
		for _, ns := range img.Namespaces {
			if ns != "shop" {
				t.Errorf("%s is reported in %s, outside --namespace sh*", img.Image, ns)
			}
		}
	}
	if want := []string{nginx, redis}; !reflect.DeepEqual(images, want) {
		t.Errorf("images %v, want %v", images, want)
	}
	if len(r.Namespaces) != 1 || r.Namespaces[0].Admissions != 4 {
		t.Errorf("namespaces %+v, want shop with 4 admissions", r.Namespaces)
	}
}

func checkNumbers(t *testing.T, r *Report) {
	t.Helper()
	images := map[string]Image{}
	for _, img := range r.Images {
		images[img.Image] = img
	}
	if len(images) != 4 {
		t.Fatalf("got images %v, want nginx, debian, redis and prometheus (the mirror reference folded into nginx)", keys(images))
	}
	n := images[nginx]
	if n.Admissions != 3 || n.Denials != 0 || n.Target != nginxMirror || !reflect.DeepEqual(n.Namespaces, []string{"payments", "shop"}) {
		t.Errorf("nginx: %d admissions, %d denials, target %s, namespaces %v; want 3, 0, %s, [payments shop]", n.Admissions, n.Denials, n.Target, n.Namespaces, nginxMirror)
	}
	if !n.FirstAdmission.Equal(day1.Add(10*time.Hour)) || !n.LastAdmission.Equal(day2.Add(11*time.Hour+5*time.Millisecond)) {
		t.Errorf("nginx admitted %v to %v", n.FirstAdmission, n.LastAdmission)
	}
	if n.Mirror.Status != MirrorPresent || n.Mirror.LastCopy == nil || n.Mirror.LastCopy.Digest != nginxDigest {
		t.Errorf("nginx mirror: %+v, want present with the copy", n.Mirror)
	}
	if s := n.Scan; s.Status != ScanFail || s.Counts != (scan.Counts{Critical: 1, Low: 1}) || s.Digest != nginxDigest || s.ScannerVersion != "0.74.0" ||
		len(s.Failing) != 1 || s.Failing[0].ID != "CVE-2099-0001" || !reflect.DeepEqual(s.Failing[0].Namespaces, []string{"shop"}) ||
		len(s.Ignored) != 1 || s.Ignored[0].By != "security.scanning.ignore[0] (CVE-2099-0001)" || *s.Ignored[0].Expires != "2027-06-30" ||
		!reflect.DeepEqual(s.Ignored[0].Namespaces, []string{"payments"}) {
		t.Errorf("nginx scan: %+v; want fail in shop, CVE-2099-0001 ignored in payments", s)
	}
	if u := n.Usage; len(u) != 2 || u[0].ScanStatus != ScanPass || u[1].ScanStatus != ScanFail || u[1].Admissions != 2 {
		t.Errorf("nginx usage %+v; want pass in payments, fail in shop with 2 admissions", u)
	}
	if d := images[debian]; d.Admissions != 1 || d.Mirror.Status != MirrorNone || d.Scan.Status != ScanPass || d.Scan.Counts.Critical != 1 ||
		len(d.Scan.Ignored) != 1 || d.Scan.Ignored[0].ID != "CVE-2019-18224" {
		t.Errorf("debian: %+v; want a kept image passing with CVE-2019-18224 ignored", d)
	}
	if rd := images[redis]; rd.Admissions != 2 || rd.Denials != 2 || rd.DenialsByRule["policies.denyList[0]"] != 2 || rd.Scan.Status != ScanPending || rd.Mirror.Status != MirrorNone {
		t.Errorf("redis: %+v; want 2 admissions denied by policies.denyList[0], not scanned", rd)
	}
	if p := images[prom]; p.Admissions != 1 || p.Mirror.Status != MirrorFailed || p.Mirror.LastCopy == nil || !strings.Contains(p.Mirror.LastCopy.Error, "429") ||
		len(p.Violations) != 1 || p.Violations[0] != (Violation{Rule: "policies.allowList", Mode: "warn", Count: 1, Message: "quay.io/prometheus/prometheus:v3 is not in the allowList"}) {
		t.Errorf("prometheus: %+v; want a failed mirror and one warn violation", p)
	}
	wantNS := []Namespace{
		{Namespace: "legacy", Images: 1, Mirrored: 0, Scanned: 1, Counts: scan.Counts{Critical: 1, Low: 1}, CriticalFindings: 1, Admissions: 1},
		{Namespace: "monitoring", Images: 1, Admissions: 1},
		{Namespace: "payments", Images: 1, Mirrored: 1, Scanned: 1, Counts: scan.Counts{Critical: 1, Low: 1}, CriticalFindings: 1, Admissions: 1},
		{Namespace: "shop", Images: 2, Mirrored: 0.5, Scanned: 0.5, FailingImages: 1, Counts: scan.Counts{Critical: 1, Low: 1}, CriticalFindings: 1, Admissions: 4, Denials: 2},
	}
	if !reflect.DeepEqual(r.Namespaces, wantNS) {
		t.Errorf("namespaces:\n got %+v\nwant %+v", r.Namespaces, wantNS)
	}
	thirty := 30.0
	wantTrend := []Day{
		{Date: "2026-12-08", Admissions: 1, Images: 1, ImagesCriticalHigh: 1, Scanned: 1, ScanCoverage: 1, MedianSecondsToMirrored: &thirty},
		{Date: "2026-12-09", Admissions: 6, Denials: 2, Images: 4, ImagesCriticalHigh: 2, Scanned: 2, ScanCoverage: 0.5},
	}
	if !reflect.DeepEqual(r.Trend, wantTrend) {
		t.Errorf("trend:\n got %s\nwant %s", js(r.Trend), js(wantTrend))
	}
	type exc struct {
		status     string
		daysLeft   int
		suppresses []string
		nothing    bool
	}
	var got []exc
	for _, e := range r.Exceptions {
		got = append(got, exc{e.Status, e.DaysLeft, e.Suppresses, e.MatchesNothing})
	}
	wantExc := []exc{
		{ExceptionActive, 202, []string{nginx}, false},
		{ExceptionExpiring, 10, []string{debian}, false},
		{ExceptionExpired, -9, []string{}, true},
		{ExceptionActive, 386, []string{}, true},
	}
	if !reflect.DeepEqual(got, wantExc) {
		t.Errorf("exceptions:\n got %+v\nwant %+v", got, wantExc)
	}
	if r.LostRecords != 3 {
		t.Errorf("lost records %d, want 3", r.LostRecords)
	}
}

func keys(m map[string]Image) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func golden(t *testing.T, name string, write func(*bytes.Buffer) error) {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, buf.String())
	}
}
