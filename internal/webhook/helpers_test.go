package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// testNamespaces are the namespaces the tests' cluster has. kube-system
// and the server's own namespace are labelled like default, to show that
// they are left alone by name.
var testNamespaces = staticNamespaces{
	"default":       {"enable-mirroring": "true"},
	"kube-system":   {"enable-mirroring": "true"},
	"image-swapper": {"enable-mirroring": "true"},
	"test-ns":       {},
}

// staticNamespaces is a NamespaceSource with fixed labels.
type staticNamespaces map[string]map[string]string

func (s staticNamespaces) Labels(_ context.Context, name string) (map[string]string, error) {
	labels, ok := s[name]
	if !ok {
		return nil, errors.New("namespace " + name + " not found")
	}
	return labels, nil
}
func (staticNamespaces) HasSynced() bool         { return true }
func (staticNamespaces) Run(ctx context.Context) { <-ctx.Done() }

// fakeMirror is an engine.Mirror in memory.
type fakeMirror struct {
	mu       sync.Mutex
	present  map[string]bool
	down     bool
	queued   []string
	calls    int
	entered  chan struct{} // receives once per Present call, if set
	release  chan struct{} // Present waits for it, if set
	ensureOK bool
}

func (m *fakeMirror) Present(ctx context.Context, dst reference.Reference) (string, bool, error) {
	if m.entered != nil {
		m.entered <- struct{}{}
	}
	if m.release != nil {
		<-m.release
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.down {
		return "", false, errors.New("dial tcp 127.0.0.1:5000: connect: connection refused")
	}
	return "", m.present[dst.String()], nil
}

func (m *fakeMirror) Enqueue(_, dst reference.Reference, _ authn.Keychain) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queued = append(m.queued, dst.String())
}

func (m *fakeMirror) Ensure(ctx context.Context, _, dst reference.Reference, _ authn.Keychain) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ensureOK {
		return "", context.DeadlineExceeded
	}
	m.present[dst.String()] = true
	return "", nil
}

// newTestServer builds a server over a configuration file in testdata.
func newTestServer(t testing.TB, configFile string, mutate ...func(*Options)) *Server {
	t.Helper()
	opts := Options{
		ConfigPath: filepath.Join("testdata", configFile),
		Namespace:  "image-swapper",
		Namespaces: testNamespaces,
		Logger:     testLogger(t),
	}
	for _, m := range mutate {
		m(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// testLogger writes the server's log lines to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// post sends body to the handler as the API server would.
func post(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// review posts a request file and decodes the answer.
func review(t testing.TB, h http.Handler, path string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	rec := post(h, path, body)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST %s: status %d (%s), want 200", path, rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("POST %s: the answer is not an AdmissionReview: %v\n%s", path, err, rec.Body)
	}
	if out.Response == nil {
		t.Fatalf("POST %s: the answer has no response:\n%s", path, rec.Body)
	}
	return out.Response
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// counterValue reads a counter or gauge, with label values in order.
func metricValue(t testing.TB, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			if !labelsAre(metric, labels) {
				continue
			}
			switch {
			case metric.Counter != nil:
				return metric.Counter.GetValue()
			case metric.Gauge != nil:
				return metric.Gauge.GetValue()
			case metric.Histogram != nil:
				return float64(metric.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func labelsAre(m *dto.Metric, values []string) bool {
	if len(m.GetLabel()) != len(values) {
		return false
	}
	for i, l := range m.GetLabel() {
		if l.GetValue() != values[i] {
			return false
		}
	}
	return true
}

// testCA issues serving certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	next int64
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "image-swapper test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, next: 100}
}

// issue returns a PEM certificate and key for 127.0.0.1 with a new serial.
func (ca *testCA) issue(t testing.TB) (certPEM, keyPEM []byte, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.next++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.next),
		Subject:      pkix.Name{CommonName: "image-swapper.image-swapper.svc"},
		DNSNames:     []string{"image-swapper.image-swapper.svc"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), ca.next
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// drain reads and closes a response body so that its connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// syncSwitch is testNamespaces with a cache that syncs when told.
type syncSwitch struct{ synced atomic.Bool }

func (s *syncSwitch) Labels(ctx context.Context, name string) (map[string]string, error) {
	return testNamespaces.Labels(ctx, name)
}
func (s *syncSwitch) HasSynced() bool         { return s.synced.Load() }
func (s *syncSwitch) Run(ctx context.Context) { <-ctx.Done() }

// blockingMirror has nothing, and its copies finish only when ctx ends.
type blockingMirror struct{}

func (blockingMirror) Present(context.Context, reference.Reference) (string, bool, error) {
	return "", false, nil
}
func (blockingMirror) Enqueue(_, _ reference.Reference, _ authn.Keychain) {}
func (blockingMirror) Ensure(ctx context.Context, _, _ reference.Reference, _ authn.Keychain) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

// pause yields between checks of a condition that another goroutine
// makes true; the test's own timeout bounds the wait.
func pause() { time.Sleep(2 * time.Millisecond) }
