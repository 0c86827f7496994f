package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/webhook"
)

// Parameters of BenchmarkLedgerLatencyAt1000PerSecond: 30 rounds of 2s
// at 1,000 requests a second, 30,000 requests for each arm.
const (
	ledgerBenchRate   = 1000
	ledgerBenchRound  = 2 * time.Second
	ledgerBenchRounds = 30
	// ledgerBenchImages is the images of the benchmark's Pod, so the
	// records each request leaves in the ledger.
	ledgerBenchImages = 5
)

// ledgerOn says whether round i goes to the server with the ledger: the
// rounds alternate ABBA ABBA..., so that each pair of rounds (0 and 1, 2
// and 3, ...) has one of each and a change in the machine's load falls on
// both arms alike.
func ledgerOn(i int) bool { return i%4 == 0 || i%4 == 3 }

// BenchmarkLedgerLatencyAt1000PerSecond compares admission latency with
// the ledger on and off, in one run: two webhook servers built as serve
// builds its server (TLS, HTTP/2, one JSON log line per admission, the
// configuration swapping four of the Pod's five images), one of them
// recording every image decision through a store.Writer into SQLite on
// disk, as serve does by default, the other with no Ledger. Short rounds
// at 1,000 requests a second (open-loop, as bench/loadgen) alternate
// between them; each request is the five-container Pod of
// testdata/requests/pod-5-containers.json with a uid of its own, to
// /mutate. It reports the latency percentiles from sending to the end of
// the answer, per arm over all of its rounds, and the median over pairs of
// rounds of how much higher the p99 with the ledger was (a figure less
// sensitive to other work on the machine than the pooled percentiles). It
// checks that the ledger holds five records for each request the recording
// server answered.
//
// It takes about a minute (-v shows every round):
//
//	go test ./internal/webhook -run XXX -bench LedgerLatency -benchtime 1x -v
func BenchmarkLedgerLatencyAt1000PerSecond(b *testing.B) {
	if testing.Short() {
		b.Skip("a minute of load")
	}
	dir := b.TempDir()
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte("sourceRegistries: [docker.io, quay.io]\ntargetRegistry: registry.example.com\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	certFile, keyFile, pool := testenv.WriteServingCert(b, dir)
	body := readBenchBody(b, nil)

	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "state", "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	base := benchServerOptions{configPath: configPath, certFile: certFile, keyFile: keyFile, pool: pool, endpoint: "/mutate"}
	withLedger := base
	withLedger.ledger = st
	on := startBenchServer(b, withLedger)
	off := startBenchServer(b, base)
	for b.Loop() {
		abba(b, "the ledger", on, off, body)
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
}

// abba runs ledgerBenchRounds rounds of load, alternating between on (with
// what is measured) and off as ledgerOn says, after warming both up, and
// reports the latency percentiles of each arm, the median over pairs of
// rounds of how much higher p99 was with it, and the process's CPU time
// per request of each arm.
func abba(b *testing.B, what string, on, off *benchServer, body *benchBody) {
	for _, s := range []*benchServer{on, off} {
		s.warmUp(b, body)
	}
	var (
		onLatencies, offLatencies []time.Duration
		p99s                      [ledgerBenchRounds]time.Duration
		// cpu is the process's CPU time (servers, writer and client) in
		// the rounds of each arm.
		cpu = map[bool]time.Duration{}
	)
	for i := range ledgerBenchRounds {
		s, arm := off, "off"
		if ledgerOn(i) {
			s, arm = on, "on"
		}
		cpu0 := processCPU()
		lat, errs := s.load(b, body, fmt.Sprintf("%08x", i))
		cpu[ledgerOn(i)] += processCPU() - cpu0
		if errs > 0 {
			b.Fatalf("round %d (%s %s): %d of %d requests failed", i+1, what, arm, errs, len(lat)+errs)
		}
		slices.Sort(lat)
		p99s[i] = pct(lat, 99)
		b.Logf("round %2d, %s %-3s: %s", i+1, what, arm, percentiles(lat))
		if ledgerOn(i) {
			onLatencies = append(onLatencies, lat...)
		} else {
			offLatencies = append(offLatencies, lat...)
		}
	}

	// How much higher the p99 with it was, in each pair of rounds.
	var ratios []float64
	for i := 0; i+1 < ledgerBenchRounds; i += 2 {
		onP99, offP99 := p99s[i], p99s[i+1]
		if !ledgerOn(i) {
			onP99, offP99 = offP99, onP99
		}
		ratios = append(ratios, float64(onP99)/float64(offP99))
	}
	slices.Sort(ratios)
	within := 0
	for _, r := range ratios {
		if r <= 1.1 {
			within++
		}
	}
	paired := 100 * (ratios[len(ratios)/2] - 1)
	slices.Sort(onLatencies)
	slices.Sort(offLatencies)
	b.Logf("%s on  (%d requests): %s", what, len(onLatencies), percentiles(onLatencies))
	b.Logf("%s off (%d requests): %s", what, len(offLatencies), percentiles(offLatencies))
	b.Logf("p99 with %s against without, median over %d pairs of rounds: %+.1f%%; within 10%% in %d of %d pairs", what, len(ratios), paired, within, len(ratios))
	for _, arm := range []struct {
		name string
		lat  []time.Duration
	}{{"on", onLatencies}, {"off", offLatencies}} {
		b.ReportMetric(float64(pct(arm.lat, 50).Microseconds()), "p50-"+arm.name+"-µs")
		b.ReportMetric(float64(pct(arm.lat, 99).Microseconds()), "p99-"+arm.name+"-µs")
	}
	b.ReportMetric(paired, "p99-paired-%")
	if cpu[true] > 0 {
		onCPU, offCPU := cpu[true].Seconds()*1e6/float64(len(onLatencies)), cpu[false].Seconds()*1e6/float64(len(offLatencies))
		b.Logf("CPU time of the process per request: %.0f µs with %s, %.0f µs without", onCPU, what, offCPU)
		b.ReportMetric(onCPU, "cpu-on-µs/req")
		b.ReportMetric(offCPU, "cpu-off-µs/req")
	}
}

// processCPU is the user and system CPU time of this process, from
// /proc/self/stat; 0 where there is none.
func processCPU() time.Duration {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields count from after its ')'.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// benchServer is a webhook server on 127.0.0.1 over TLS, with or without
// a ledger.
type benchServer struct {
	url      string
	endpoint string
	client   *http.Client
	writer   *store.Writer // nil without a ledger
	// answered counts the requests answered, warm-ups included.
	answered int
}

// benchServerOptions say how a benchServer is built: its configuration
// file and certificate, a ledger (nil for none), a vulnerability scanner
// (nil for none), and the endpoint the load goes to.
type benchServerOptions struct {
	configPath, certFile, keyFile string
	pool                          *x509.CertPool
	ledger                        store.Store
	scans                         webhook.ScanGate
	endpoint                      string
}

func startBenchServer(b *testing.B, o benchServerOptions) *benchServer {
	b.Helper()
	// As serve: JSON log lines (here discarded), metrics, and the writer
	// registered with them.
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	metrics := webhook.NewMetrics()
	certs, err := webhook.NewFileCertificate(o.certFile, o.keyFile, webhook.FileCertificateOptions{Logger: log, Metrics: metrics})
	if err != nil {
		b.Fatal(err)
	}
	opts := webhook.Options{ConfigPath: o.configPath, Certificates: certs, Logger: log, Metrics: metrics, Scans: o.scans}
	s := &benchServer{endpoint: o.endpoint}
	if o.ledger != nil {
		s.writer = store.NewWriter(o.ledger, store.WriterOptions{Logger: log, Registerer: metrics.Registry(), Retention: config.DefaultRetention})
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
	s.url = "https://" + ln.Addr().String() + o.endpoint
	s.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: o.pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
	}
	return s
}

// warmUp opens the connection (TLS, HTTP/2) and fills the engine's
// caches.
func (s *benchServer) warmUp(b *testing.B, body *benchBody) {
	b.Helper()
	for i := range 500 {
		if err := s.send(body, fmt.Sprintf("ffffffff-ffff-4000-8000-%012x", i)); err != nil {
			b.Fatalf("warm-up request: %v", err)
		}
		s.answered++
	}
}

// load sends ledgerBenchRate requests a second to it for
// ledgerBenchRound, open-loop: request i is due at start + i/rate whatever
// happened to the others. It returns the latencies of the answered
// requests and how many failed.
func (s *benchServer) load(b *testing.B, body *benchBody, round string) (latencies []time.Duration, failed int) {
	b.Helper()
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
	// The answer names the uid and patches (/mutate) or allows
	// (/validate): the request went through the whole admission.
	want := []byte(`"patch":`)
	if s.endpoint == "/validate" {
		want = []byte(`"allowed":true`)
	}
	if !bytes.Contains(b, []byte(`"uid":"`+uid+`"`)) || !bytes.Contains(b, want) {
		return fmt.Errorf("the answer to uid %s does not have %s: %.300s", uid, want, b)
	}
	return nil
}

// benchBody is the AdmissionReview of the benchmark, with a mark where the
// uid goes.
type benchBody struct{ before, after []byte }

// readBenchBody reads the five-container Pod's AdmissionReview, with the
// containers' images replaced by images when given.
func readBenchBody(b *testing.B, images []string) *benchBody {
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
	if images != nil {
		var pod corev1.Pod
		if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
			b.Fatal(err)
		}
		for i := range pod.Spec.Containers {
			pod.Spec.Containers[i].Image = images[i]
		}
		if review.Request.Object.Raw, err = json.Marshal(&pod); err != nil {
			b.Fatal(err)
		}
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

// percentiles formats the latency percentiles of ds, sorted.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no requests"
	}
	var parts []string
	for _, p := range []float64{50, 90, 99, 99.9} {
		parts = append(parts, fmt.Sprintf("p%g %s", p, pct(ds, p)))
	}
	return strings.Join(parts, "  ") + fmt.Sprintf("  max %s", ds[len(ds)-1].Round(time.Microsecond))
}

// pct is the p-th percentile of ds, sorted.
func pct(ds []time.Duration, p float64) time.Duration {
	i := int(float64(len(ds))*p/100+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return ds[i].Round(time.Microsecond)
}
