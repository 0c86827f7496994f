package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// serve runs s on a loopback port until the test ends, and returns its
// address and a function that stops it and returns Serve's error.
func serve(t *testing.T, s *Server) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return ln.Addr().String(), stop
}

// TestCertificateRotation rotates the serving certificate under a stream
// of requests on new connections: every request succeeds, the new
// certificate is served once both files are written, and a bad pair later
// keeps it in use.
func TestCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := newTestCA(t)
	cert1, key1, serial1 := ca.issue(t)
	writeFile(t, certPath, cert1)
	writeFile(t, keyPath, key1)
	metrics := NewMetrics()
	certs, err := NewFileCertificate(certPath, keyPath, FileCertificateOptions{Interval: 10 * time.Millisecond, Logger: testLogger(t), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, "config.yaml", func(o *Options) { o.Certificates = certs; o.Metrics = metrics })
	addr, _ := serve(t, s)

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool},
		DisableKeepAlives: true, // a handshake per request
	}}
	body := readFile(t, filepath.Join("testdata", "requests", "v1beta1.json"))
	var (
		mu       sync.Mutex
		failures []error
		serials  = map[int64]int{}
		latest   atomic.Int64
		stop     = make(chan struct{})
		loopDone = make(chan struct{})
	)
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Post("https://"+addr+"/mutate", "application/json", bytes.NewReader(body))
			mu.Lock()
			switch {
			case err != nil:
				failures = append(failures, err)
			case resp.StatusCode != http.StatusOK:
				failures = append(failures, errors.New(resp.Status))
			default:
				serial := resp.TLS.PeerCertificates[0].SerialNumber.Int64()
				serials[serial]++
				latest.Store(serial)
			}
			mu.Unlock()
			if resp != nil {
				drain(resp)
			}
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-loopDone:
				t.Fatalf("the request loop stopped before %s", what)
			default:
			}
			pause()
		}
	}
	waitFor("the first certificate is served", func() bool { return latest.Load() == serial1 })

	// Written in place, one file after the other, as a careless rotation
	// does: until the key is written too, the files do not match and the
	// first certificate stays in use.
	cert2, key2, serial2 := ca.issue(t)
	writeFile(t, certPath, cert2)
	waitFor("the half-written pair is rejected", func() bool {
		return metricValue(t, metrics, "image_swapper_tls_cert_reloads_total", "failure") >= 1
	})
	mu.Lock()
	before := serials[serial1]
	mu.Unlock()
	waitFor("requests go on with the first certificate", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return serials[serial1] > before+3
	})
	writeFile(t, keyPath, key2)
	waitFor("the rotated certificate is served", func() bool { return latest.Load() == serial2 })

	failed := metricValue(t, metrics, "image_swapper_tls_cert_reloads_total", "failure")
	writeFile(t, certPath, []byte("not a certificate"))
	waitFor("the bad pair is rejected", func() bool {
		return metricValue(t, metrics, "image_swapper_tls_cert_reloads_total", "failure") > failed
	})
	mu.Lock()
	served := serials[serial2]
	mu.Unlock()
	waitFor("requests go on after the bad pair", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return serials[serial2] > served+3
	})
	close(stop)
	<-loopDone

	mu.Lock()
	defer mu.Unlock()
	t.Logf("requests per serving certificate: %v", serials)
	if len(failures) > 0 {
		t.Errorf("%d requests failed during rotation, first: %v", len(failures), failures[0])
	}
	if len(serials) != 2 {
		t.Errorf("served certificates %v, want only serials %d and %d", serials, serial1, serial2)
	}
	if got := metricValue(t, metrics, "image_swapper_tls_cert_reloads_total", "success"); got != 1 {
		t.Errorf("successful reloads %v, want 1", got)
	}
}

// TestNewFileCertificateNamesBadFiles checks the startup error.
func TestNewFileCertificateNamesBadFiles(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_, err := NewFileCertificate(certPath, keyPath, FileCertificateOptions{})
	if err == nil || !strings.Contains(err.Error(), certPath) {
		t.Errorf("missing files: error %v, want one naming %s", err, certPath)
	}
	ca := newTestCA(t)
	cert1, _, _ := ca.issue(t)
	_, key2, _ := ca.issue(t)
	writeFile(t, certPath, cert1)
	writeFile(t, keyPath, key2)
	_, err = NewFileCertificate(certPath, keyPath, FileCertificateOptions{})
	if err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Errorf("mismatched pair: error %v, want a mismatch", err)
	}
}

// TestConfigReload checks that a valid new configuration takes effect and
// an invalid one is logged with its key path while the last good one stays.
func TestConfigReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, readFile(t, filepath.Join("testdata", "config.yaml")))
	var logs syncBuffer
	s := newTestServer(t, "", func(o *Options) {
		o.ConfigPath = path
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	body := readFile(t, filepath.Join("testdata", "requests", "v1beta1.json"))
	swappedTo := func() string {
		resp := review(t, s.Handler(), "/mutate", body)
		if len(resp.Warnings) != 1 {
			t.Fatalf("warnings %q, want one swap", resp.Warnings)
		}
		return resp.Warnings[0][strings.LastIndex(resp.Warnings[0], " ")+1:]
	}
	if got := swappedTo(); got != "registry.example.com/docker.io/library/nginx:1.27" {
		t.Fatalf("initial target %s", got)
	}

	writeFile(t, path, []byte("sourceRegistries: [docker.io]\ntargetRegistry: mirror.example.org\n"))
	s.config.check()
	if got := swappedTo(); got != "mirror.example.org/docker.io/library/nginx:1.27" {
		t.Errorf("after a valid reload: target %s, want mirror.example.org/...", got)
	}
	if g := metricValue(t, s.metrics, "image_swapper_config_last_reload_successful"); g != 1 {
		t.Errorf("last reload successful = %v, want 1", g)
	}

	writeFile(t, path, []byte("sourceRegistries: [docker.io]\ntargetRegistry: other.example.org\nmirroring:\n  swapp: wait\n"))
	s.config.check()
	if got := swappedTo(); got != "mirror.example.org/docker.io/library/nginx:1.27" {
		t.Errorf("after an invalid reload: target %s, want the last good mirror.example.org/...", got)
	}
	if g := metricValue(t, s.metrics, "image_swapper_config_last_reload_successful"); g != 0 {
		t.Errorf("last reload successful = %v, want 0", g)
	}
	if g := metricValue(t, s.metrics, "image_swapper_config_reloads_total", "failure"); g != 1 {
		t.Errorf("failed reloads = %v, want 1", g)
	}
	if !strings.Contains(logs.String(), `mirroring.swapp: unknown key (did you mean \"swap\"?)`) {
		t.Errorf("the log does not name the bad key:\n%s", logs.String())
	}
	// The same bad content is reported once, not at every check.
	s.config.check()
	if n := strings.Count(logs.String(), "new configuration rejected"); n != 1 {
		t.Errorf("the bad configuration was reported %d times, want once", n)
	}
}

// TestConfigReloadFollowsConfigMapSymlinkSwap changes the configuration
// the way the kubelet updates a mounted ConfigMap: config.yaml is a link
// into ..data, a link to a versioned directory that is swapped atomically.
func TestConfigReloadFollowsConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for v, target := range map[string]string{"..v1": "registry.example.com", "..v2": "mirror.example.org"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, v, "config.yaml"), []byte("sourceRegistries: [docker.io]\ntargetRegistry: "+target+"\n"))
	}
	mustSymlink(t, "..v1", filepath.Join(dir, "..data"))
	mustSymlink(t, filepath.Join("..data", "config.yaml"), filepath.Join(dir, "config.yaml"))
	s := newTestServer(t, "", func(o *Options) {
		o.ConfigPath = filepath.Join(dir, "config.yaml")
		o.ReloadInterval = 10 * time.Millisecond
	})
	addr, stop := serve(t, s)
	_ = addr

	mustSymlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for s.Engine().Config().TargetRegistry != "mirror.example.org" {
		pause()
	}
	if err := stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func mustSymlink(t *testing.T, oldname, newname string) {
	t.Helper()
	if err := os.Symlink(oldname, newname); err != nil {
		t.Fatal(err)
	}
}

// TestGracefulShutdown stops the server while a request waits on the
// mirror: the listener closes, the request still completes, and Serve
// returns nil.
func TestGracefulShutdown(t *testing.T) {
	m := &fakeMirror{present: map[string]bool{}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := newTestServer(t, "config.yaml", func(o *Options) { o.Mirror = m })
	addr, stop := serve(t, s)

	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/mutate", "application/json",
			bytes.NewReader(readFile(t, filepath.Join("testdata", "requests", "v1beta1.json"))))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: b, err: err}
	}()
	<-m.entered // the request is in flight

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Wait until the listener is closed: new connections are refused.
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		pause()
	}
	if err := s.Ready(); err == nil {
		t.Errorf("ready while shutting down")
	}
	close(m.release)

	r := <-done
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("in-flight request: status %d, error %v; want 200", r.status, r.err)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(r.body, &out); err != nil || out.Response == nil || !out.Response.Allowed {
		t.Errorf("in-flight request answered %s (%v), want an allowed review", r.body, err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v, want nil after a clean shutdown", err)
	}
}

// TestNamespaceInformer checks that labels come from the informer cache,
// that a namespace the cache does not know yet is read once from the API,
// and that a server using it swaps by namespace labels.
func TestNamespaceInformer(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"enable-mirroring": "true"}, Annotations: map[string]string{"big": "x"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	)
	metrics := NewMetrics()
	ni := NewNamespaceInformer(client, testLogger(t), metrics)
	ctx := t.Context()

	// Before the cache syncs, a lookup reads the namespace from the API.
	labels, err := ni.Labels(ctx, "default")
	if err != nil || labels["enable-mirroring"] != "true" {
		t.Fatalf("uncached default: labels %v, error %v", labels, err)
	}
	if got := metricValue(t, metrics, "image_swapper_namespace_cache_misses_total"); got != 1 {
		t.Errorf("cache misses %v, want 1", got)
	}

	s := newTestServer(t, "config.yaml", func(o *Options) { o.Namespaces = ni; o.Metrics = metrics })
	if s.Ready() == nil {
		t.Errorf("ready before the namespace cache synced")
	}
	serve(t, s)
	if !cache.WaitForCacheSync(ctx.Done(), ni.HasSynced) {
		t.Fatal("the namespace cache did not sync")
	}
	if err := s.Ready(); err != nil {
		t.Errorf("not ready once synced: %v", err)
	}
	cached, err := ni.lister.Get("default")
	if err != nil || len(cached.Annotations) != 0 || cached.Labels["enable-mirroring"] != "true" {
		t.Errorf("cached namespace %+v (%v): want labels only", cached, err)
	}

	body := readFile(t, filepath.Join("testdata", "requests", "v1beta1.json"))
	if resp := review(t, s.Handler(), "/mutate", body); resp.Patch == nil {
		t.Errorf("no swap in the labelled namespace default")
	}
	plain := []byte(strings.ReplaceAll(string(body), `"default"`, `"plain"`))
	if resp := review(t, s.Handler(), "/mutate", plain); resp.Patch != nil {
		t.Errorf("swapped in the unlabelled namespace plain")
	}
	if got := metricValue(t, metrics, "image_swapper_namespace_cache_misses_total"); got != 1 {
		t.Errorf("cache misses %v after cached lookups, want still 1", got)
	}
	if _, err := ni.Labels(ctx, "missing"); err == nil || !strings.Contains(err.Error(), "not in the cache") {
		t.Errorf("missing namespace: error %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
