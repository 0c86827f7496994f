package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// route says how requests for one host are sent.
type route struct {
	// key is the registries key the route comes from, for messages.
	key string
	// endpoint, when set, replaces the scheme and host of requests (and
	// prefixes their path).
	endpoint *url.URL
	// insecure allows plain HTTP and skips TLS verification.
	insecure bool
}

// router is the innermost RoundTripper of every registry request. It
// serves hosts from their configured endpoints, so that references keep
// their real names everywhere else; refuses plain HTTP unless the host is
// insecure (go-containerregistry would try HTTP for localhost and private
// addresses on its own), except that a loopback host (see Loopback) that
// answers HTTPS in plain HTTP is then spoken to in plain HTTP, as
// containerd's docker.NewHTTPFallback does; turns 429 answers into StatusErrors that keep
// Retry-After; reports rate-limit headers; and counts uploaded blob bytes.
type router struct {
	routes    map[string]*route // by lower-case request host, aliases included
	secure    http.RoundTripper
	insecure  http.RoundTripper
	userAgent string
	onLimit   func(RateLimit)
	now       func() time.Time

	mu sync.Mutex
	// plain are the loopback hosts ("127.0.0.1:5000") that answered
	// HTTPS in plain HTTP: they are spoken to in plain HTTP from then on.
	plain map[string]bool
}

// newRouter builds the router over base. When base is an *http.Transport,
// insecure hosts get a clone that skips TLS verification; another
// RoundTripper (WithTransport) is used as is for both.
func newRouter(base http.RoundTripper, routes map[string]*route, userAgent string, onLimit func(RateLimit)) *router {
	r := &router{routes: routes, secure: base, insecure: base, userAgent: userAgent, onLimit: onLimit, now: time.Now, plain: map[string]bool{}}
	if t, ok := base.(*http.Transport); ok {
		it := t.Clone()
		if it.TLSClientConfig == nil {
			it.TLSClientConfig = &tls.Config{}
		}
		it.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // only for hosts configured insecure: true
		r.insecure = it
	}
	return r
}

// RoundTrip sends req as configured for its host.
func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := r.routes[strings.ToLower(req.URL.Host)]
	out := req.Clone(req.Context())
	if rt != nil && rt.endpoint != nil {
		out.URL.Scheme = rt.endpoint.Scheme
		out.URL.Host = rt.endpoint.Host
		if p := strings.TrimSuffix(rt.endpoint.Path, "/"); p != "" {
			// Concatenated, not path.Join: "/v2/" keeps its slash.
			out.URL.Path = p + req.URL.Path
			out.URL.RawPath = ""
		}
		out.Host = ""
	}
	insecure := rt != nil && rt.insecure
	// A loopback registry is tried over HTTPS, then plain HTTP; an
	// endpoint's scheme is the config's choice and stays as written.
	fallback := !insecure && (rt == nil || rt.endpoint == nil) && Loopback(out.URL.Host)
	if fallback {
		// go-containerregistry may ask for http:// itself (it pings
		// localhost both ways): HTTPS is still tried first.
		out.URL.Scheme = "https"
		r.mu.Lock()
		if r.plain[strings.ToLower(out.URL.Host)] {
			out.URL.Scheme = "http"
		}
		r.mu.Unlock()
	}
	if out.URL.Scheme == "http" && !insecure && !fallback {
		return nil, insecureError(req.URL.Host, rt)
	}
	if r.userAgent != "" {
		ua := r.userAgent
		if prev := req.Header.Get("User-Agent"); prev != "" {
			ua += " " + prev
		}
		out.Header.Set("User-Agent", ua)
	}
	if s := statsFrom(req.Context()); s != nil && out.Body != nil && out.Body != http.NoBody && strings.Contains(out.URL.Path, "/blobs/uploads") {
		out.Body = &countingBody{ReadCloser: out.Body, stats: s}
	}

	base := r.secure
	if insecure {
		base = r.insecure
	}
	resp, err := base.RoundTrip(out)
	var rh tls.RecordHeaderError
	if err != nil && errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
		if !fallback {
			return nil, fmt.Errorf("%s answers plain HTTP, not HTTPS: %w", out.URL.Host, insecureError(req.URL.Host, rt))
		}
		resp, err = r.plainHTTP(out)
	}
	if err != nil {
		return nil, err
	}
	// Keep the request as its caller made it: relative Location headers
	// resolve against the registry's name and come back through the route.
	resp.Request = req
	r.observe(req.URL.Host, rt, resp)
	if resp.StatusCode == http.StatusTooManyRequests {
		se := statusFromResponse(resp, r.now())
		resp.Body.Close()
		return nil, se
	}
	return resp, nil
}

// plainHTTP sends again, in plain HTTP, a request to a loopback host that
// answered HTTPS in plain HTTP, and remembers the host. The handshake
// failed before the body was sent; a body that cannot be had again
// (GetBody) is not sent twice, but the first request to a registry is its
// ping, which has none.
func (r *router) plainHTTP(out *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.plain[strings.ToLower(out.URL.Host)] = true
	r.mu.Unlock()
	again := out.Clone(out.Context())
	again.URL.Scheme = "http"
	if out.Body != nil && out.Body != http.NoBody {
		if out.GetBody == nil {
			return nil, fmt.Errorf("%s answers plain HTTP, not HTTPS; the request cannot be sent again, try again", out.URL.Host)
		}
		body, err := out.GetBody()
		if err != nil {
			return nil, err
		}
		again.Body = body
	}
	return r.secure.RoundTrip(again)
}

// insecureError explains why plain HTTP was refused and which key allows it.
func insecureError(host string, rt *route) error {
	key := host
	if rt != nil {
		key = rt.key
	}
	return fmt.Errorf("refusing plain HTTP to %s: set registries[%q].insecure: true to allow it", host, key)
}

// observe reports Docker Hub style rate-limit headers.
func (r *router) observe(host string, rt *route, resp *http.Response) {
	if r.onLimit == nil {
		return
	}
	rem := resp.Header.Get("RateLimit-Remaining")
	if rem == "" {
		return
	}
	rl := RateLimit{Registry: host, Limit: -1, Remaining: -1}
	if rt != nil {
		rl.Registry = rt.key
	}
	if n, w, ok := parseRateLimit(rem); ok {
		rl.Remaining, rl.Window = n, w
	}
	if n, w, ok := parseRateLimit(resp.Header.Get("RateLimit-Limit")); ok {
		rl.Limit = n
		if rl.Window == 0 {
			rl.Window = w
		}
	}
	r.onLimit(rl)
}

// copyStats counts what one Copy uploads; the router finds it in the
// request context.
type copyStats struct {
	uploaded atomic.Int64
}

type statsKey struct{}

func withStats(ctx context.Context, s *copyStats) context.Context {
	return context.WithValue(ctx, statsKey{}, s)
}

func statsFrom(ctx context.Context) *copyStats {
	s, _ := ctx.Value(statsKey{}).(*copyStats)
	return s
}

// countingBody counts the bytes of a blob upload as they are sent.
type countingBody struct {
	io.ReadCloser
	stats *copyStats
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.stats.uploaded.Add(int64(n))
	return n, err
}
