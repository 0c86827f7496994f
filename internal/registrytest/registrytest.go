// Package registrytest runs real, in-process OCI registries for tests
// (go-containerregistry's registry behind httptest), or proxies to
// registries out of process, records what clients send them, and seeds
// them with random multi-platform images.
package registrytest

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Registry is a registry endpoint that records the requests it serves:
// an in-process registry (New) or a proxy to one out of process
// (NewProxy).
type Registry struct {
	*httptest.Server
	// Host is "127.0.0.1:port", as image references name it.
	Host string

	mu   sync.Mutex
	reqs []string // "HEAD /v2/src/app/manifests/1.0"
	// intercept, when set, may answer a request itself (returning true).
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

// New starts an in-process registry and stops it when the test ends. It
// serves the OCI referrers API unless an option says otherwise; opts
// apply after the defaults.
func New(t testing.TB, opts ...ggcrregistry.Option) *Registry {
	t.Helper()
	opts = append([]ggcrregistry.Option{ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))}, opts...)
	return serve(t, ggcrregistry.New(opts...))
}

// NewProxy starts a reverse proxy to the registry at host ("127.0.0.1:port",
// plain HTTP) and stops it when the test ends, so that a test can see
// exactly what was sent to a registry it does not run itself. The proxy
// keeps the Host header, so the registry's upload locations name the
// proxy.
func NewProxy(t testing.TB, host string) *Registry {
	t.Helper()
	return serve(t, httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host}))
}

// serve puts h behind a recording httptest server.
func serve(t testing.TB, h http.Handler) *Registry {
	r := &Registry{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
		intercept := r.intercept
		r.mu.Unlock()
		if intercept != nil && intercept(w, req) {
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	r.Host = strings.TrimPrefix(r.URL, "http://")
	return r
}

// Requests returns the requests served since the last Reset, as
// "METHOD path", in order.
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// Count counts the requests with this method whose path contains part.
func (r *Registry) Count(method, part string) int {
	n := 0
	for _, req := range r.Requests() {
		m, p, _ := strings.Cut(req, " ")
		if m == method && strings.Contains(p, part) {
			n++
		}
	}
	return n
}

// Reset forgets the requests recorded so far.
func (r *Registry) Reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}

// SetIntercept installs f, which sees every request after it is recorded
// and may answer it itself (returning true) to delay or fail it; nil
// removes it.
func (r *Registry) SetIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	r.mu.Lock()
	r.intercept = f
	r.mu.Unlock()
}

// PushIndex pushes a random index of the given platforms ("linux/amd64")
// with layers random layers each to ref (repository:tag within this
// registry, e.g. "team/app:1.0") and returns its digest.
func (r *Registry) PushIndex(t testing.TB, ref string, layers int, platforms ...string) string {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	for _, p := range platforms {
		img, err := random.Image(1024, int64(layers))
		if err != nil {
			t.Fatal(err)
		}
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	tag, err := name.ParseReference(r.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatalf("pushing %s: %v", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Digest returns the digest ref (repository:tag) has here, or "" when it
// is not here.
func (r *Registry) Digest(t testing.TB, ref string) string {
	t.Helper()
	tag, err := name.ParseReference(r.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return ""
		}
		t.Fatalf("HEAD %s: %v", tag, err)
	}
	return desc.Digest.String()
}

// Ref returns the full reference of ref (repository:tag) in this registry.
func (r *Registry) Ref(ref string) string { return fmt.Sprintf("%s/%s", r.Host, ref) }
