package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/report"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// reportLedger writes a configuration whose store is a new SQLite file,
// and returns its path and the store, open.
func reportLedger(t *testing.T) (string, store.Store) {
	t.Helper()
	dir := t.TempDir()
	example, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := string(example) + "\nstore:\n  path: " + filepath.Join(dir, "state.db") + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), c.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return cfgPath, st
}

// admit records one Pod's admission of image, as the webhook records it.
func admit(t *testing.T, st store.Store, uid, ns, image string) {
	t.Helper()
	admitAt(t, st, time.Now().UTC().Add(-time.Minute), uid, ns, image)
}

// admitAt records an admission of image in namespace ns at time at.
func admitAt(t *testing.T, st store.Store, at time.Time, uid, ns, image string) {
	t.Helper()
	err := st.Write(context.Background(), &store.Batch{Admissions: []store.AdmissionRecord{{Time: at, UID: uid,
		Operation: "CREATE", Endpoint: store.EndpointMutate, Namespace: ns, Pod: "web-*", OwnerKind: "ReplicaSet", OwnerName: "web",
		Container: "app", ContainerKind: store.ContainerRegular, Image: image, Normalized: image, Action: "keep", Target: image, Rule: "default"}}})
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func jsonImages(t *testing.T, body string) []string {
	t.Helper()
	var doc struct {
		Images []struct {
			Image string `json:"image"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, body)
	}
	var out []string
	for _, img := range doc.Images {
		out = append(out, img.Image)
	}
	return out
}

func TestServeReportListenerServesTheLedgerLive(t *testing.T) {
	cfgPath, st := reportLedger(t)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	admit(t, st, "u1", "shop", "docker.io/library/nginx:1.27")
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := reportServerFlags{listen: "127.0.0.1:0"}
	rs, err := f.start(ctx, ":8443", func() *config.Config { return cfg }, st, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.stop()
	base := "http://" + rs.addr.String()

	resp, body := get(t, base+"/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(body, "docker.io/library/nginx:1.27") || !strings.Contains(body, `<svg class="plot" id="chart-requests"`) {
		t.Fatalf("GET /: %s %v\n%.500s", resp.Status, resp.Header, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != report.PageCSP+"; frame-ancestors 'none'" {
		t.Errorf("Content-Security-Policy %q, want the page's with frame-ancestors 'none'", csp)
	}
	for _, h := range []string{"Cache-Control", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}

	// Live: a record written after the server started is in the next
	// report.
	admit(t, st, "u2", "payments", "docker.io/library/redis:7")
	resp, body = get(t, base+"/?format=json")
	if got := jsonImages(t, body); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		strings.Join(got, " ") != "docker.io/library/nginx:1.27 docker.io/library/redis:7" {
		t.Errorf("GET /?format=json: %s, images %v; want nginx and the redis admitted since", resp.Status, got)
	}
	if _, body = get(t, base+"/?format=json&namespace=pay*&since=all"); strings.Join(jsonImages(t, body), " ") != "docker.io/library/redis:7" {
		t.Errorf("?namespace=pay*: %v, want redis alone", jsonImages(t, body))
	}

	// An invalid configuration keeps the last valid one.
	if err := os.WriteFile(cfgPath, []byte("mirroring:\n  swapp: wait\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, base+"/?format=csv"); resp.StatusCode != http.StatusOK {
		t.Errorf("with an invalid configuration: %s, want the report by the last valid one", resp.Status)
	}

	for _, c := range []struct {
		name, method, path string
		status             int
	}{
		{"an unknown format is refused", "GET", "/?format=xml", http.StatusBadRequest},
		{"a window that is no duration is refused", "GET", "/?since=month", http.StatusBadRequest},
		{"a bad namespace glob is refused", "GET", "/?namespace=a%20b", http.StatusBadRequest},
		{"another path is not found", "GET", "/metrics", http.StatusNotFound},
		{"the report is read only", "POST", "/", http.StatusMethodNotAllowed},
		{"HEAD is answered", "HEAD", "/", http.StatusOK},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %s %s: %s, want %d", c.name, c.method, c.path, resp.Status, c.status)
		}
	}

	// The server stops with serve's context.
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := http.Get(base + "/")
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the report server still answers after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs.stop()
	if !strings.Contains(logs.String(), "report server stopped") {
		t.Errorf("no log of the stop:\n%s", logs.String())
	}
}

func TestServeReportListenRefusesTheWebhookPort(t *testing.T) {
	for _, c := range []struct {
		name, report, webhook string
		want                  string
	}{
		{"the webhook's address", "127.0.0.1:8443", "127.0.0.1:8443", "port 8443 is the webhook's"},
		{"the webhook's port on another host", "127.0.0.1:8443", ":8443", "port 8443 is the webhook's"},
		{"the webhook's port by service name", "localhost:https", "0.0.0.0:443", "port 443 is the webhook's"},
		{"an address without a port", "localhost", ":8443", "want host:port"},
		{"another port", "127.0.0.1:8090", ":8443", ""},
		{"a port the system picks", "127.0.0.1:0", ":0", ""},
	} {
		err := checkReportListen(c.report, c.webhook)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: --report-listen %s with --listen %s: %v, want %q", c.name, c.report, c.webhook, err, c.want)
		}
	}
}

// TestServeReportListen runs serve with --report-listen, reads the page
// from it while the webhook serves, and stops serve: the report stops
// with it. serve refuses the webhook's own port.
func TestServeReportListen(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	cfgPath, st := reportLedger(t)
	admit(t, st, "u1", "shop", "docker.io/library/nginx:1.27")
	cert, key := writeServingPair(t, t.TempDir())
	webhookAddr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	reportAddr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", cfgPath, "--no-kube-api", "--tls-cert", cert, "--tls-key", key, "--listen", webhookAddr,
		"--shutdown-delay", "0s", "--log-format", "text"}

	code, _, errOut := runCLI(t, "", append(args, "--report-listen", webhookAddr)...)
	if code != exitTrouble || !strings.Contains(errOut, "--report-listen "+webhookAddr+": port") {
		t.Errorf("--report-listen on the webhook's address: exit %d, %s; want exit 2 naming --report-listen", code, errOut)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCommand()
	root.SetArgs(append(args, "--report-listen", reportAddr))
	var stderr testenv.Buffer
	root.SetOut(io.Discard)
	root.SetErr(&stderr)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + reportAddr + "/?format=json")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /?format=json: %s\n%s", resp.Status, body)
			}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before the report answered:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the report never answered on %s: %v\n%s", reportAddr, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := jsonImages(t, body); strings.Join(got, " ") != "docker.io/library/nginx:1.27" {
		t.Errorf("served images %v, want the ledger's nginx", got)
	}
	if resp, page := get(t, "http://"+reportAddr+"/"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Image compliance report") {
		t.Errorf("GET /: %s", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop:\n%s", stderr.String())
	}
	if resp, err := http.Get("http://" + reportAddr + "/"); err == nil {
		resp.Body.Close()
		t.Error("the report still answers after serve stopped")
	}
	if !strings.Contains(stderr.String(), "report server stopped") {
		t.Errorf("serve's log does not say the report server stopped:\n%s", stderr.String())
	}
}
