package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// podImages is how many images the Pod of every request has (five
// containers), and so how many records each answered request leaves: the
// ledger keeps one record per image decision, under the request's uid and
// endpoint.
const podImages = 5

// podSwaps is how many of them /mutate swaps (all but the k8s.gcr.io image,
// which no rule names).
const podSwaps = 4

// swappedTargets are what the configuration swaps the Pod's images to,
// under the target registry; the fixture's registry holds them, so that
// swap: exists swaps.
var swappedTargets = []string{
	"docker.io/library/nginx:1.27",
	"docker.io/shop/app:2.4.1",
	"docker.io/library/redis:7.4-alpine",
	"quay.io/prometheus/node-exporter:v1.8.2",
}

// fixture is what the serve processes of one test share: the binary, a
// target registry holding the swapped images, a serving certificate and a
// configuration whose store section names the ledger.
type fixture struct {
	binary     string
	dir        string
	configPath string
	certFile   string
	keyFile    string
	pool       *x509.CertPool
	// env is added to the environment of serve and audit (the DSN).
	env []string
}

// newFixture builds the binary and writes a configuration with store as
// its store section (YAML, indented under "store:").
func newFixture(t *testing.T, store string, env ...string) *fixture {
	t.Helper()
	f := &fixture{binary: testenv.ImageSwapper(t), dir: t.TempDir(), env: env}
	target := startTargetRegistry(t)
	f.certFile, f.keyFile, f.pool = testenv.WriteServingCert(t, f.dir)
	f.configPath = filepath.Join(f.dir, "config.yaml")
	config := fmt.Sprintf("sourceRegistries: [docker.io, quay.io]\ntargetRegistry: %s\nstore:\n%s\n", target, store)
	if err := os.WriteFile(f.configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// sqliteStore is the store section of a SQLite ledger in dir.
func sqliteStore(dir string) string {
	return "  path: " + filepath.Join(dir, "state.db")
}

// postgresStore is the store section of a PostgreSQL ledger whose DSN is in
// IMAGE_SWAPPER_DATABASE_URL.
const postgresStore = "  driver: postgres"

// startTargetRegistry starts an in-process registry holding the Pod's
// swapped images and returns its host.
func startTargetRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range swappedTargets {
		ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("seeding %s: %v", ref, err)
		}
	}
	return host
}

// client is an HTTP/2 client over TLS trusting the fixture's certificate,
// as kube-apiserver calls webhooks.
func (f *fixture) client() *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: f.pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 4,
		},
	}
}

// server is one `image-swapper serve` process.
type server struct {
	name   string
	addr   string
	proc   *testenv.Process
	client *http.Client
}

// startServe starts serve without the Kubernetes API on a free 127.0.0.1
// port and waits until /readyz says ready. shutdownDelay is how long it
// keeps answering after SIGTERM. The test's cleanup kills it if it still
// runs.
func (f *fixture) startServe(t *testing.T, name string, shutdownDelay time.Duration) *server {
	t.Helper()
	var lastErr error
	// The port is free when chosen but may be taken before serve binds it.
	for range 3 {
		s, err := f.tryStartServe(name, shutdownDelay)
		if err == nil {
			s.killAtEnd(t)
			return s
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

func (f *fixture) tryStartServe(name string, shutdownDelay time.Duration) (*server, error) {
	addr, err := testenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	proc, err := testenv.StartProcessWithEnv(name, f.binary, f.env, "serve",
		"--config", f.configPath,
		"--listen", addr,
		"--tls-cert", f.certFile,
		"--tls-key", f.keyFile,
		"--no-kube-api",
		"--log-format", "text",
		"--shutdown-delay", shutdownDelay.String(),
	)
	if err != nil {
		return nil, err
	}
	s := &server{name: name + " on " + addr, addr: addr, proc: proc, client: f.client()}
	err = testenv.Eventually(60*time.Second, 50*time.Millisecond, func() error {
		if !proc.Running() {
			return errors.New("exited")
		}
		resp, err := s.client.Get("https://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		proc.Kill()
		return nil, fmt.Errorf("%s not ready: %w\nits output:\n%s", s.name, err, proc.Logs())
	}
	return s, nil
}

// killAtEnd kills s, if it still runs, when the test ends, and shows
// what it said if the test failed.
func (s *server) killAtEnd(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s said (lines but those of each admission):\n%s", s.name, s.events())
		}
		s.proc.Kill()
	})
}

// events is serve's output without the line each admission gets: what it
// said about the ledger, its start and its shutdown.
func (s *server) events() string {
	var out []string
	for line := range strings.Lines(s.proc.Output()) {
		if !strings.Contains(line, "msg=admission ") {
			out = append(out, line)
		}
	}
	const keep = 200
	if len(out) > keep {
		out = append([]string{"...\n"}, out[len(out)-keep:]...)
	}
	return strings.Join(out, "")
}

// stop sends SIGTERM and fails the test unless serve exits with status 0:
// a clean exit means the writer flushed its queue (serve closes the ledger
// after draining).
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.proc.Stop(60 * time.Second); err != nil {
		t.Fatalf("%s did not exit cleanly on SIGTERM: %v\n%s", s.name, err, s.events())
	}
}

// metric reads one sample (a name with its labels, as /metrics prints
// them) from /metrics, and fails the test when there is none.
func (s *server) metric(t *testing.T, series string) float64 {
	t.Helper()
	v, ok, err := s.sample(series)
	if err == nil && !ok {
		err = fmt.Errorf("%s: /metrics has no %s", s.name, series)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sample reads one series from /metrics; ok is false when s has no such
// sample yet.
func (s *server) sample(series string) (v float64, ok bool, err error) {
	resp, err := s.client.Get("https://" + s.addr + "/metrics")
	if err != nil {
		return 0, false, fmt.Errorf("%s: /metrics: %w", s.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("%s: /metrics: %s", s.name, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), series+" "); found {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				return 0, false, fmt.Errorf("%s: /metrics: %s: %w", s.name, sc.Text(), err)
			}
			return v, true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("%s: /metrics: %w", s.name, err)
	}
	return 0, false, nil
}

// The writer's metrics.
const (
	metricWritten  = "image_swapper_ledger_records_written_total"
	metricDropped  = "image_swapper_ledger_records_dropped_total"
	metricFailures = "image_swapper_ledger_write_failures_total"
	metricQueued   = "image_swapper_ledger_queue_records"
)

// answer is an admission request that got its answer.
type answer struct {
	endpoint string
	at       time.Time
}

// loadResult is what a load run sent and what was answered, by uid.
type loadResult struct {
	answered map[string]answer
	// sentAt is when each request was sent, answered or not.
	sentAt map[string]time.Time
	sent   int
	// failures are the times requests failed.
	failures []time.Time
	firstErr error
}

// merge adds o's answers to r's.
func (r *loadResult) merge(o *loadResult) {
	if r.answered == nil {
		r.answered = map[string]answer{}
	}
	if r.sentAt == nil {
		r.sentAt = map[string]time.Time{}
	}
	for uid, a := range o.answered {
		r.answered[uid] = a
	}
	for uid, at := range o.sentAt {
		r.sentAt[uid] = at
	}
	r.sent += o.sent
	r.failures = append(r.failures, o.failures...)
}

// p99 is the 99th percentile latency of the answered requests sent in
// [from, to), or, with inside false, of those sent outside it; for logs.
func (r *loadResult) p99(from, to time.Time, inside bool) time.Duration {
	var ds []time.Duration
	for uid, a := range r.answered {
		sent := r.sentAt[uid]
		if in := !sent.Before(from) && sent.Before(to); in == inside {
			ds = append(ds, a.at.Sub(sent))
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[(len(ds)*99)/100].Round(time.Microsecond)
}

// failedBefore counts the requests that failed before at.
func (r *loadResult) failedBefore(at time.Time) int {
	n := 0
	for _, f := range r.failures {
		if f.Before(at) {
			n++
		}
	}
	return n
}

// answeredBetween counts the answers in [from, to).
func (r *loadResult) answeredBetween(from, to time.Time) int {
	n := 0
	for _, a := range r.answered {
		if !a.at.Before(from) && a.at.Before(to) {
			n++
		}
	}
	return n
}

// loadgen posts AdmissionReviews of the five-container Pod of
// bench/loadgen/pod5.json, each with a uid of its own, alternately to
// /mutate and /validate.
type loadgen struct {
	body   []byte // with uidMark where the uid goes
	client *http.Client
}

// uidMark stands for the uid in loadgen.body.
var uidMark = []byte("@UID@")

func newLoadgen(t *testing.T, f *fixture) *loadgen {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "bench", "loadgen", "pod5.json"))
	if err != nil {
		t.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatal(err)
	}
	uid := []byte(`"uid":"` + string(review.Request.UID) + `"`)
	if bytes.Count(body, uid) != 1 {
		t.Fatalf("pod5.json names its request uid %d times, want once", bytes.Count(body, uid))
	}
	return &loadgen{body: bytes.Replace(body, uid, append(append([]byte(`"uid":"`), uidMark...), '"'), 1), client: f.client()}
}

// run sends rate requests a second to s, open-loop (request i is due at
// start + i/rate whatever happened to the others), until ctx ends, then
// waits for those in flight. Request i has the uid run-i. A request is
// answered when the server returned 200 with an AdmissionReview answering
// its uid: what kube-apiserver would act on.
func (g *loadgen) run(ctx context.Context, s *server, rate int, run uint32) *loadResult {
	res := &loadResult{answered: map[string]answer{}, sentAt: map[string]time.Time{}}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		inFlight atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.failures = append(res.failures, time.Now())
		if res.firstErr == nil {
			res.firstErr = err
		}
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		timer.Reset(time.Until(start.Add(time.Duration(i) * interval)))
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-timer.C:
		}
		res.sent++
		endpoint := "mutate"
		if i%2 == 1 {
			endpoint = "validate"
		}
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", run, i)
		if inFlight.Add(1) > 2000 {
			inFlight.Add(-1)
			fail(errors.New("more than 2000 requests in flight"))
			continue
		}
		wg.Go(func() {
			defer inFlight.Add(-1)
			sent := time.Now()
			mu.Lock()
			res.sentAt[uid] = sent
			mu.Unlock()
			if err := g.send(s, endpoint, uid); err != nil {
				fail(err)
				return
			}
			at := time.Now()
			mu.Lock()
			res.answered[uid] = answer{endpoint: endpoint, at: at}
			mu.Unlock()
		})
	}
}

func (g *loadgen) send(s *server, endpoint, uid string) error {
	body := bytes.Replace(g.body, uidMark, []byte(uid), 1)
	resp, err := g.client.Post("https://"+s.addr+"/"+endpoint, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/%s: %s: %s", endpoint, resp.Status, bytes.TrimSpace(b))
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &review); err != nil {
		return fmt.Errorf("/%s: %w: %.200s", endpoint, err, b)
	}
	if review.Response == nil || string(review.Response.UID) != uid || !review.Response.Allowed {
		return fmt.Errorf("/%s answered %.300s; want uid %s allowed", endpoint, b, uid)
	}
	return nil
}

// background runs fn in a goroutine and returns a function that waits for
// it and returns its result.
func background[T any](fn func() T) func() T {
	c := make(chan T, 1)
	go func() { c <- fn() }()
	return func() T { return <-c }
}

// auditRecord is what the test reads of an `audit -o json` line.
type auditRecord struct {
	UID      string `json:"uid"`
	Endpoint string `json:"endpoint"`
	Action   string `json:"action"`
	Gap      *struct {
		Count int64     `json:"count"`
		From  time.Time `json:"from"`
		To    time.Time `json:"to"`
	} `json:"gap"`
}

// audit runs `image-swapper audit --config F -o json` and returns its
// admission records and gap records.
func (f *fixture) audit(t *testing.T) (recs []auditRecord, gaps []auditRecord) {
	t.Helper()
	recs, gaps, err := f.tryAudit()
	if err != nil {
		t.Fatal(err)
	}
	return recs, gaps
}

func (f *fixture) tryAudit() (recs []auditRecord, gaps []auditRecord, err error) {
	cmd := exec.Command(f.binary, "audit", "--config", f.configPath, "-o", "json")
	cmd.Env = append(os.Environ(), f.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("image-swapper audit: %v: %s", err, stderr.Bytes())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r auditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, nil, fmt.Errorf("audit printed %q: %v", sc.Text(), err)
		}
		if r.Gap != nil {
			gaps = append(gaps, r)
			continue
		}
		recs = append(recs, r)
	}
	return recs, gaps, sc.Err()
}

// comparison sets the ledger's records against the answered requests.
type comparison struct {
	// expected is podImages records for each answered request; recorded
	// the records audit listed.
	expected, recorded int
	// missing are the answered uids with fewer than podImages records (a
	// uid with none is missing all of them); lost counts those records.
	missing []string
	lost    int
	// unanswered are recorded uids whose request got no answer; doubled
	// those with more than podImages records; wrong those recorded under
	// another endpoint or, for /mutate, not with podSwaps swaps.
	unanswered, doubled, wrong []string
}

func compare(res *loadResult, recs []auditRecord) comparison {
	type seen struct {
		n, swaps  int
		endpoints map[string]bool
	}
	byUID := map[string]*seen{}
	for _, r := range recs {
		s := byUID[r.UID]
		if s == nil {
			s = &seen{endpoints: map[string]bool{}}
			byUID[r.UID] = s
		}
		s.n++
		s.endpoints[r.Endpoint] = true
		if r.Action == "swap" {
			s.swaps++
		}
	}
	c := comparison{expected: podImages * len(res.answered), recorded: len(recs)}
	for uid, a := range res.answered {
		s := byUID[uid]
		switch {
		case s == nil:
			c.missing = append(c.missing, uid)
			c.lost += podImages
		case s.n < podImages:
			c.missing = append(c.missing, uid)
			c.lost += podImages - s.n
		case s.n > podImages:
			c.doubled = append(c.doubled, uid)
		}
		if s != nil && (len(s.endpoints) != 1 || !s.endpoints[a.endpoint] || a.endpoint == "mutate" && s.n == podImages && s.swaps != podSwaps) {
			c.wrong = append(c.wrong, uid)
		}
	}
	for uid := range byUID {
		if _, ok := res.answered[uid]; !ok {
			c.unanswered = append(c.unanswered, uid)
		}
	}
	return c
}

// exact reports whether the ledger holds exactly the answered requests'
// records, each once.
func (c comparison) exact() bool {
	return c.expected == c.recorded && len(c.missing)+len(c.unanswered)+len(c.doubled)+len(c.wrong) == 0
}

func (c comparison) String() string {
	return fmt.Sprintf("%d records for %d expected (%d images for each answered request); %d answered uids missing records (%d records: %s), %d recorded uids never answered (%s), %d uids recorded more than %d times (%s), %d recorded under the wrong endpoint or action (%s)",
		c.recorded, c.expected, podImages, len(c.missing), c.lost, first(c.missing), len(c.unanswered), first(c.unanswered),
		len(c.doubled), podImages, first(c.doubled), len(c.wrong), first(c.wrong))
}

// first lists the first few of uids, for messages.
func first(uids []string) string {
	const n = 5
	if len(uids) > n {
		return strings.Join(uids[:n], ", ") + ", ..."
	}
	return strings.Join(uids, ", ")
}
