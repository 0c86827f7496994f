package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/store"
)

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := "store:\n  path: " + db + "\nsecurity:\n  scanning:\n    enabled: true\n    provider: trivy\n    failOnCritical: true\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := func(ago time.Duration, uid, ns string) store.AdmissionRecord {
		return store.AdmissionRecord{Time: now.Add(-ago), UID: uid, Operation: "CREATE", Endpoint: store.EndpointMutate,
			Namespace: ns, Pod: "web-*", OwnerKind: "ReplicaSet", OwnerName: "web", Container: "app", ContainerKind: store.ContainerRegular,
			Image: "nginx:1.27", Normalized: "docker.io/library/nginx:1.27", Action: "swap", Target: "mirror.example.com/docker.io/library/nginx:1.27", Rule: "default"}
	}
	const digest = "sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
	err = st.Write(ctx, &store.Batch{
		Admissions: []store.AdmissionRecord{rec(40*24*time.Hour, "u0", "shop"), rec(time.Hour, "u1", "shop"), rec(time.Minute, "u2", "payments")},
		Copies: []store.CopyRecord{{Time: now.Add(-50 * time.Minute), Source: "docker.io/library/nginx:1.27", Target: "mirror.example.com/docker.io/library/nginx:1.27",
			Digest: digest, Result: "copied"}},
		Scans: []store.ScanRecord{{Time: now.Add(-49 * time.Minute), Image: "mirror.example.com/docker.io/library/nginx:1.27", IndexDigest: digest, ManifestDigest: digest,
			Scanner: "trivy", Counts: map[string]int{"CRITICAL": 1}, Findings: []store.Finding{{ID: "CVE-2099-0001", Package: "musl", InstalledVersion: "1.2.5-r0", FixedVersion: "1.2.5-r1", Severity: "CRITICAL", CVSS: 9.8}}}},
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	report := func(args ...string) (string, string, int) {
		code, out, errOut := runCLI(t, "", append([]string{"report", "--config", cfgPath}, args...)...)
		return out, errOut, code
	}

	out, stderr, code := report("--since", "30d", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		SchemaVersion int `json:"schemaVersion"`
		Images        []struct {
			Image      string   `json:"image"`
			Admissions int64    `json:"admissions"`
			Denials    int64    `json:"denials"`
			Namespaces []string `json:"namespaces"`
			Scan       struct {
				Status string         `json:"status"`
				Counts map[string]int `json:"counts"`
			} `json:"scan"`
		} `json:"images"`
		Generated  time.Time       `json:"generated"`
		Namespaces json.RawMessage `json:"namespaces"`
		Trend      json.RawMessage `json:"trend"`
		Exceptions json.RawMessage `json:"exceptions"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if doc.SchemaVersion != 1 || len(doc.Images) != 1 || doc.Generated.IsZero() || doc.Namespaces == nil || doc.Trend == nil || doc.Exceptions == nil {
		t.Fatalf("json report lacks documented keys:\n%s", out)
	}
	img := doc.Images[0]
	if img.Image != "docker.io/library/nginx:1.27" || img.Admissions != 2 || img.Denials != 0 || strings.Join(img.Namespaces, ",") != "payments,shop" ||
		img.Scan.Status != "fail" || img.Scan.Counts["critical"] != 1 || len(img.Scan.Counts) != 5 {
		t.Errorf("image: %+v; want nginx, 2 admissions in the window, failing with 1 critical", img)
	}

	out, _, code = report("--namespace", "pay*", "-o", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 2 || rows[0][0] != "image" || rows[1][2] != "payments" {
		t.Errorf("csv (exit %d, %v): %q; want a header and the payments row", code, err, rows)
	}

	out, _, code = report("-o", "table")
	if code != 0 || !strings.Contains(out, "docker.io/library/nginx:1.27") || !strings.Contains(out, "NAMESPACE") {
		t.Errorf("table (exit %d):\n%s", code, out)
	}

	out, _, code = report("-o", "html")
	if code != 0 || !strings.HasPrefix(out, "<!DOCTYPE html>") || !strings.Contains(out, "<code>docker.io/library/nginx:1.27</code>") {
		t.Errorf("html (exit %d):\n%.300s", code, out)
	}

	path := filepath.Join(dir, "reports.yaml")
	if _, stderr, code := report("-o", "policyreport", "--output", path); code != 0 {
		t.Fatalf("policyreport exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.Count(string(b), "kind: PolicyReport") != 2 || !strings.Contains(string(b), "result: fail") {
		t.Errorf("--output file (%v):\n%s", err, b)
	}

	// --output /dev/null once replaced the device with a regular file:
	// a FIFO stands for it here.
	fifo := filepath.Join(dir, "report.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte)
	go func() {
		b, _ := os.ReadFile(fifo)
		read <- b
	}()
	if _, stderr, code := report("-o", "csv", "--output", fifo); code != 0 {
		t.Fatalf("--output FIFO: exit %d: %s", code, stderr)
	}
	select {
	case b := <-read:
		if !strings.HasPrefix(string(b), "image,") {
			t.Errorf("--output FIFO: the reader got %q, want the CSV", b)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("--output FIFO: nothing was written to the FIFO")
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("--output FIFO: %v, %v; want the FIFO left in place", fi, err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown format", []string{"-o", "xml"}, "-o \"xml\""},
		{"a negative window", []string{"--since", "-3d"}, "--since"},
		{"a window that is no duration", []string{"--since", "month"}, "--since"},
		{"a bad namespace glob", []string{"--namespace", "a b"}, "--namespace"},
	} {
		_, stderr, code := report(tc.args...)
		if code != exitTrouble || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, %q; want exit 2 naming %s", tc.name, code, stderr, tc.want)
		}
	}
}

// --since takes what the configuration's windows take, and fractional days.
func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "1.5d": 36 * time.Hour, "1d12h": 36 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "": 0,
	} {
		if got, err := parseSince(in); err != nil || got != want {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0d", "-3d", "-1h", "month", "d", "NaNd", "infd", "1d-1h", "100001d"} {
		if d, err := parseSince(in); err == nil || !strings.Contains(err.Error(), "--since") {
			t.Errorf("parseSince(%q) = %v, %v; want an error naming --since", in, d, err)
		}
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"30d", "1.5d", "1d12h", "12h", "0d", "-1d", "1e3d", "NaNd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseSince(s)
		if err == nil && s != "" && d <= 0 {
			t.Errorf("%q parsed to %v, want a positive window", s, d)
		}
		// Whatever the configuration's windows take, --since takes alike.
		if r, rerr := config.ParseRetention(s); rerr == nil && r > 0 && (err != nil || d != r) {
			t.Errorf("%q: config.ParseRetention %v, parseSince %v, %v", s, r, d, err)
		}
	})
}
