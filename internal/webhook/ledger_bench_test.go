package webhook_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/webhook"
)

// Parameters of BenchmarkLedgerLatencyAt1000PerSecond.
const (
	ledgerBenchRate  = 1000
	ledgerBenchRound = 10 * time.Second
	// ledgerBenchImages is the images of the benchmark's Pod, so the
	// records each request leaves in the ledger.
	ledgerBenchImages = 5
)

// ledgerBenchRounds alternate the two servers (ABBA BA), so that a change
// in the machine's load during the run falls on both alike.
var ledgerBenchRounds = []bool{true, false, false, true, true, false}

// BenchmarkLedgerLatencyAt1000PerSecond compares admission latency with
// the ledger on and off, in one run: two webhook servers built as serve
// builds its server (TLS, HTTP/2, one JSON log line per admission, the
// configuration swapping four of the Pod's five images), one of them
// recording every image decision through a store.Writer into SQLite on
// disk, as serve does by default, the other with no Ledger. Rounds of 10s at
// 1,000 requests a second (open-loop, as bench/loadgen) alternate between
// them; each request is the five-container Pod of
// testdata/requests/pod-5-containers.json with a uid of its own, to
// /mutate. It reports the latency percentiles from sending to the end of
// the answer, per arm, over all of its rounds, and checks that the ledger
// holds five records for each request the recording server answered.
//
// It takes about a minute: go test ./internal/webhook -run XXX -bench LedgerLatency -benchtime 1x
func BenchmarkLedgerLatencyAt1000PerSecond(b *testing.B) {
	if testing.Short() {
		b.Skip("a minute of load")
	}
	dir := b.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte("sourceRegistries: [docker.io, quay.io]\ntargetRegistry: registry.example.com\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	certFile, keyFile, pool := writeBenchCert(b, dir)
	body := readBenchBody(b)

	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "state", "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	on := startBenchServer(b, configPath, certFile, keyFile, pool, st)
	off := startBenchServer(b, configPath, certFile, keyFile, pool, nil)

	var onLatencies, offLatencies []time.Duration
	var rounds []string
	for b.Loop() {
		for i, recording := range ledgerBenchRounds {
			s, arm := off, "off"
			if recording {
				s, arm = on, "on"
			}
			lat, errs := s.load(b, body, fmt.Sprintf("%08x", i))
			if errs > 0 {
				b.Fatalf("round %d (ledger %s): %d of %d requests failed", i+1, arm, errs, len(lat)+errs)
			}
			rounds = append(rounds, fmt.Sprintf("round %d, ledger %-3s: %s", i+1, arm, percentiles(slices.Clone(lat))))
			if recording {
				onLatencies = append(onLatencies, lat...)
			} else {
				offLatencies = append(offLatencies, lat...)
			}
		}
	}
	b.StopTimer()

	// The ledger wrote what the recording server answered.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := on.writer.Close(ctx); err != nil {
		b.Fatal(err)
	}
	recs, err := st.Admissions(ctx, store.Query{})
	if err != nil {
		b.Fatal(err)
	}
	if want := ledgerBenchImages * on.answered; len(recs) != want {
		b.Errorf("the ledger holds %d records; want %d, %d for each of the %d requests the recording server answered", len(recs), want, ledgerBenchImages, on.answered)
	}

	for _, r := range rounds {
		b.Log(r)
	}
	b.Logf("ledger on  (%d requests): %s", len(onLatencies), percentiles(onLatencies))
	b.Logf("ledger off (%d requests): %s", len(offLatencies), percentiles(offLatencies))
	for _, arm := range []struct {
		name string
		lat  []time.Duration
	}{{"on", onLatencies}, {"off", offLatencies}} {
		b.ReportMetric(float64(pct(arm.lat, 50).Microseconds()), "p50-"+arm.name+"-µs")
		b.ReportMetric(float64(pct(arm.lat, 99).Microseconds()), "p99-"+arm.name+"-µs")
	}
	b.ReportMetric(100*(float64(pct(onLatencies, 99))/float64(pct(offLatencies, 99))-1), "p99-on-vs-off-%")
}

// benchServer is a webhook server on 127.0.0.1 over TLS, with or without
// a ledger.
type benchServer struct {
	url    string
	client *http.Client
	writer *store.Writer // nil without a ledger
	// answered counts the requests answered, warm-ups included.
	answered int
}

func startBenchServer(b *testing.B, configPath, certFile, keyFile string, pool *x509.CertPool, st store.Store) *benchServer {
	b.Helper()
	// As serve: JSON log lines (here discarded), metrics, and the writer
	// registered with them.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	metrics := webhook.NewMetrics()
	certs, err := webhook.NewFileCertificate(certFile, keyFile, webhook.FileCertificateOptions{Logger: log, Metrics: metrics})
	if err != nil {
		b.Fatal(err)
	}
	opts := webhook.Options{ConfigPath: configPath, Certificates: certs, Logger: log, Metrics: metrics}
	s := &benchServer{}
	if st != nil {
		s.writer = store.NewWriter(st, store.WriterOptions{Logger: log, Registerer: metrics.Registry(), Retention: config.DefaultRetention})
		// Only when set: a nil *store.Writer in the interface would not
		// be a nil Ledger.
		opts.Ledger = s.writer
	}
	srv, err := webhook.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serving: %v", err)
		}
	})
	s.url = "https://" + ln.Addr().String() + "/mutate"
	s.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
	}
	return s
}

// load warms s up, then sends ledgerBenchRate requests a second to it for
// ledgerBenchRound, open-loop: request i is due at start + i/rate whatever
// happened to the others. It returns the latencies of the answered
// requests and how many failed.
func (s *benchServer) load(b *testing.B, body *benchBody, round string) (latencies []time.Duration, failed int) {
	b.Helper()
	// Warm up: connections, TLS, HTTP/2 streams, the engine's caches.
	for i := range 200 {
		if err := s.send(body, fmt.Sprintf("%s-ffff-4000-8000-%012x", round, i)); err != nil {
			b.Fatalf("warm-up request: %v", err)
		}
		s.answered++
	}
	total := int(ledgerBenchRound.Seconds() * ledgerBenchRate)
	lat := make([]time.Duration, total)
	interval := time.Second / ledgerBenchRate
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			sent := time.Now()
			if err := s.send(body, fmt.Sprintf("%s-0000-4000-8000-%012x", round, i)); err != nil {
				lat[i] = -1
				return
			}
			lat[i] = time.Since(sent)
		})
	}
	wg.Wait()
	for _, d := range lat {
		if d < 0 {
			failed++
			continue
		}
		latencies = append(latencies, d)
	}
	s.answered += len(latencies)
	return latencies, failed
}

func (s *benchServer) send(body *benchBody, uid string) error {
	resp, err := s.client.Post(s.url, "application/json", bytes.NewReader(body.with(uid)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	// The answer names the uid and patches: the request went through the
	// whole admission.
	if !bytes.Contains(b, []byte(`"uid":"`+uid+`"`)) || !bytes.Contains(b, []byte(`"patch":`)) {
		return fmt.Errorf("the answer is not a patch for uid %s: %.300s", uid, b)
	}
	return nil
}

// benchBody is the AdmissionReview of the benchmark, with a mark where the
// uid goes.
type benchBody struct{ before, after []byte }

func readBenchBody(b *testing.B) *benchBody {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "requests", "pod-5-containers.json"))
	if err != nil {
		b.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &review); err != nil {
		b.Fatal(err)
	}
	if n := len(review.Request.Object.Raw); n == 0 {
		b.Fatal("the benchmark request has no object")
	}
	const mark = "@UID@"
	review.Request.UID = mark
	out, err := json.Marshal(&review)
	if err != nil {
		b.Fatal(err)
	}
	before, after, ok := bytes.Cut(out, []byte(mark))
	if !ok || bytes.Contains(after, []byte(mark)) {
		b.Fatal("the uid mark is not in the request once")
	}
	return &benchBody{before: before, after: after}
}

func (bb *benchBody) with(uid string) []byte {
	out := make([]byte, 0, len(bb.before)+len(uid)+len(bb.after))
	return append(append(append(out, bb.before...), uid...), bb.after...)
}

// percentiles formats the latency percentiles of ds, which it sorts.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no requests"
	}
	slices.Sort(ds)
	var parts []string
	for _, p := range []float64{50, 90, 99, 99.9} {
		parts = append(parts, fmt.Sprintf("p%g %s", p, pct(ds, p)))
	}
	return strings.Join(parts, "  ") + fmt.Sprintf("  max %s", ds[len(ds)-1].Round(time.Microsecond))
}

// pct is the p-th percentile of ds, sorted.
func pct(ds []time.Duration, p float64) time.Duration {
	if !slices.IsSorted(ds) {
		slices.Sort(ds)
	}
	i := int(float64(len(ds))*p/100+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return ds[i].Round(time.Microsecond)
}

// writeBenchCert writes a self-signed serving certificate for 127.0.0.1.
func writeBenchCert(b *testing.B, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
