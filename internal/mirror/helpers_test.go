package mirror

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/registrytest"
)

// testRegistry is a real in-memory OCI registry (go-containerregistry's
// pkg/registry) behind an httptest server that records requests and may
// intercept them to delay or fail them. Unlike registrytest's default it
// serves no referrers API: where a copy looks for referrers it reads the
// sha256-<hex> fallback tag, and the tag counts the tests expect include
// those reads.
type testRegistry struct {
	*registrytest.Registry
	t testing.TB
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	return &testRegistry{Registry: registrytest.New(t, ggcrregistry.WithReferrersSupport(false)), t: t}
}

// requestKind names a request for counting: "GET manifest tag",
// "PUT manifest digest", "HEAD blob" and so on.
func requestKind(method, path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		if strings.Contains(path[strings.LastIndex(path, "/"):], "sha256:") {
			return method + " manifest digest"
		}
		return method + " manifest tag"
	case strings.Contains(path, "/blobs/"):
		return method + " blob"
	}
	return method + " other"
}

// count returns how many requests of the kinds were served since the last
// Reset.
func (r *testRegistry) count(kinds ...string) int {
	n := 0
	for _, req := range r.Requests() {
		method, path, _ := strings.Cut(req, " ")
		if slices.Contains(kinds, requestKind(method, path)) {
			n++
		}
	}
	return n
}

// manifestPuts counts manifest uploads, by tag and by digest.
func (r *testRegistry) manifestPuts() int {
	return r.count("PUT manifest tag", "PUT manifest digest")
}

// ref parses a reference into this registry.
func (r *testRegistry) ref(repoTag string) reference.Reference {
	r.t.Helper()
	ref, err := reference.Parse(r.Host + "/" + repoTag)
	if err != nil {
		r.t.Fatal(err)
	}
	return ref
}

// pushImage uploads a random single-platform image and returns its reference
// and digest.
func (r *testRegistry) pushImage(repoTag string) (reference.Reference, string) {
	r.t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		r.t.Fatal(err)
	}
	ref := r.ref(repoTag)
	if err := remote.Write(mustName(r.t, ref), img); err != nil {
		r.t.Fatalf("seeding %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return ref, d.String()
}

// pushIndex uploads a random two-platform index.
func (r *testRegistry) pushIndex(repoTag string) (reference.Reference, string) {
	r.t.Helper()
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		r.t.Fatal(err)
	}
	ref := r.ref(repoTag)
	if err := remote.WriteIndex(mustName(r.t, ref), idx); err != nil {
		r.t.Fatalf("seeding %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		r.t.Fatal(err)
	}
	return ref, d.String()
}

func mustName(t testing.TB, ref reference.Reference) name.Reference {
	t.Helper()
	n, err := name.ParseReference(ref.String())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// countingRegistry is the real registry client, configured for the test
// registries, with Copy instrumented to count copies in flight.
type countingRegistry struct {
	*registry.Client

	mu          sync.Mutex
	copying     int // copies in flight
	maxCopying  int // most copies ever in flight at once
	copyStarted atomic.Int64
}

// newCountingRegistry returns a client that reaches the hosts over plain
// HTTP, as the config must allow explicitly.
func newCountingRegistry(t testing.TB, hosts ...string) *countingRegistry {
	t.Helper()
	cfg := &config.Config{Registries: map[string]config.RegistryAccess{}}
	for _, h := range hosts {
		cfg.Registries[h] = config.RegistryAccess{Insecure: true}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	c, err := registry.New(cfg, registry.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	return &countingRegistry{Client: c}
}

func (c *countingRegistry) Copy(ctx context.Context, src, dst reference.Reference, opts registry.CopyOptions) (registry.CopyResult, error) {
	c.copyStarted.Add(1)
	c.mu.Lock()
	c.copying++
	c.maxCopying = max(c.maxCopying, c.copying)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.copying--
		c.mu.Unlock()
	}()
	return c.Client.Copy(ctx, src, dst, opts)
}

func (c *countingRegistry) maxInFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxCopying
}

// blocker holds intercepted requests until the test releases them.
type blocker struct {
	arrived chan string   // receives the path of each held request
	release chan struct{} // each send releases one held request
	all     chan struct{} // closed to release every request, now and later
	once    sync.Once
}

func newBlocker(t testing.TB) *blocker {
	b := &blocker{arrived: make(chan string, 1000), release: make(chan struct{}), all: make(chan struct{})}
	// Runs before the servers close (cleanups run last-in first-out), so
	// that no handler is left blocked.
	t.Cleanup(b.releaseAll)
	return b
}

func (b *blocker) releaseAll() { b.once.Do(func() { close(b.all) }) }

// firstOfCopy is the kind of request every copy of a tag starts with: the
// client resolves the source tag with a HEAD.
const firstOfCopy = "HEAD manifest tag"

// hold is an interceptor that holds the first request of every copy.
func (b *blocker) hold(w http.ResponseWriter, r *http.Request) bool {
	if requestKind(r.Method, r.URL.Path) == firstOfCopy {
		b.arrived <- r.URL.Path
		select {
		case <-b.release:
		case <-b.all:
		}
	}
	return false
}

// fakeClock is a settable clock for the existence cache.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a goroutine-safe log sink.
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

// eventually polls cond, yielding between tries, and fails the test with
// what after many tries. It replaces sleeps where the test must wait for
// other goroutines to reach a state it cannot be told about.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("never happened: %s", what)
}

// waiters returns how many Ensure calls wait for the copy of src to dst.
func (s *Service) waiters(src, dst reference.Reference) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.inflight[copyKey{src, dst}]; c != nil {
		return c.waiters
	}
	return 0
}

// serviceGoroutines returns the stacks of goroutines running Service code.
func serviceGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "internal/mirror.(*Service)") && !strings.Contains(g, "serviceGoroutines") {
			found = append(found, g)
		}
	}
	return found
}
