package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// DefaultUserAgent is sent when WithUserAgent is not used.
const DefaultUserAgent = "image-swapper"

// maxTransports bounds the cache of authenticated transports (one per
// repository and access); past it, a random entry makes room.
const maxTransports = 512

// Client reaches registries as the config says: per-host endpoints,
// insecure hosts and credentials, and a target provider that creates
// repositories. It is safe for concurrent use and keeps authenticated
// transports (tokens included) between calls, so that a repeated Exists is
// one HEAD request.
type Client struct {
	hosts        map[string]*hostConfig // by canonical host
	router       *router
	pullKeychain authn.Keychain
	secrets      SecretLoader
	getenv       func(string) string
	provider     Provider
	providerHost string // canonical host the provider serves
	jobs         int

	mu         sync.Mutex
	transports map[transportKey]*cachedTransport
	ensured    map[string]bool // repositories the provider has ensured

	creds credentialCache
}

// SecretLoader returns the .dockerconfigjson bytes of the
// kubernetes.io/dockerconfigjson Secret namespace/name.
type SecretLoader func(ctx context.Context, namespace, name string) ([]byte, error)

// hostConfig is one registries entry.
type hostConfig struct {
	key    string // as written in the config
	access config.RegistryAccess
}

// Option configures a Client.
type Option func(*options)

type options struct {
	transport    http.RoundTripper
	pullKeychain authn.Keychain
	secrets      SecretLoader
	userAgent    string
	onLimit      func(RateLimit)
	provider     Provider
	providerSet  bool
	getenv       func(string) string
	jobs         int
}

// WithTransport sets the RoundTripper under everything (tests, proxies,
// instrumentation). Insecure hosts get a TLS-unverified clone only when it
// is an *http.Transport.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithPullKeychain adds credentials for sources that the config has none
// for, such as a Pod's imagePullSecrets at admission. Configured
// credentials win.
func WithPullKeychain(k authn.Keychain) Option { return func(o *options) { o.pullKeychain = k } }

// WithSecretLoader lets credentials name a Secret ("namespace/name").
func WithSecretLoader(l SecretLoader) Option { return func(o *options) { o.secrets = l } }

// WithUserAgent sets the User-Agent of registry requests.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// WithRateLimitHook is called with every rate-limit report a registry
// sends (Docker Hub's RateLimit-Remaining), so that callers can slow down
// before they are refused. It must be cheap and safe for concurrent use.
func WithRateLimitHook(f func(RateLimit)) Option { return func(o *options) { o.onLimit = f } }

// WithProvider replaces the provider that config.TargetProvider would
// build; nil turns repository creation off.
func WithProvider(p Provider) Option {
	return func(o *options) { o.provider, o.providerSet = p, true }
}

// WithJobs bounds how many blobs and manifests one Copy uploads at once
// (default 4).
func WithJobs(n int) Option { return func(o *options) { o.jobs = n } }

// withGetenv replaces os.Getenv, for tests.
func withGetenv(f func(string) string) Option { return func(o *options) { o.getenv = f } }

// New builds a Client for cfg, which it reads once: build a new Client
// when the config changes. It does no network I/O.
func New(cfg *config.Config, opts ...Option) (*Client, error) {
	if cfg == nil {
		cfg = &config.Config{}
	}
	o := options{userAgent: DefaultUserAgent, getenv: os.Getenv, jobs: 4}
	for _, opt := range opts {
		opt(&o)
	}
	if o.transport == nil {
		o.transport = remote.DefaultTransport.(*http.Transport).Clone()
	}
	if o.jobs < 1 {
		o.jobs = 1
	}
	c := &Client{
		hosts:        map[string]*hostConfig{},
		pullKeychain: o.pullKeychain,
		secrets:      o.secrets,
		getenv:       o.getenv,
		jobs:         o.jobs,
		transports:   map[transportKey]*cachedTransport{},
		ensured:      map[string]bool{},
	}
	routes := map[string]*route{}
	for key, access := range cfg.Registries {
		host, err := reference.ParseRegistry(key)
		if err != nil {
			return nil, fmt.Errorf("registries[%q]: %w", key, err)
		}
		host = canonicalHost(host)
		if prev, dup := c.hosts[host]; dup {
			return nil, fmt.Errorf("registries[%q] and registries[%q] name the same registry", prev.key, key)
		}
		c.hosts[host] = &hostConfig{key: key, access: access}
		rt := &route{key: key, insecure: access.Insecure}
		if access.Endpoint != "" {
			u, err := parseEndpoint(key, access)
			if err != nil {
				return nil, err
			}
			rt.endpoint = u
			// Token realms and upload locations on the endpoint itself
			// follow the same insecure setting.
			routes[strings.ToLower(u.Host)] = &route{key: key, insecure: access.Insecure}
		}
		for _, alias := range hostAliases(host) {
			routes[alias] = rt
		}
	}
	c.router = newRouter(o.transport, routes, o.userAgent, o.onLimit)

	if o.providerSet {
		c.provider = o.provider
	} else {
		p, err := NewProvider(cfg)
		if err != nil {
			return nil, err
		}
		c.provider = p
	}
	if c.provider != nil && cfg.TargetRegistry != "" {
		host, _, _ := strings.Cut(cfg.TargetRegistry, "/")
		c.providerHost = canonicalHost(strings.ToLower(host))
	}
	return c, nil
}

// parseEndpoint checks a registries[...].endpoint.
func parseEndpoint(key string, access config.RegistryAccess) (*url.URL, error) {
	u, err := url.Parse(access.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("registries[%q].endpoint: %q must be a URL such as https://mirror.example.com", key, access.Endpoint)
	}
	if u.User != nil {
		return nil, fmt.Errorf("registries[%q].endpoint must not hold credentials; use registries[%q].credentials", key, key)
	}
	// An endpoint names its scheme: http:// is a choice the config
	// validation also holds to insecure: true, loopback or not.
	if u.Scheme == "http" && !access.Insecure {
		return nil, fmt.Errorf("registries[%q].endpoint %q is plain HTTP; set registries[%q].insecure: true to allow it", key, access.Endpoint, key)
	}
	return u, nil
}

// canonicalHost lower-cases a host and names Docker Hub "docker.io".
func canonicalHost(host string) string {
	host = strings.ToLower(host)
	switch host {
	case "index.docker.io", "registry-1.docker.io":
		return reference.DefaultRegistry
	}
	return host
}

// hostAliases are the hosts requests for a canonical host are sent to:
// go-containerregistry calls Docker Hub index.docker.io, and its API is
// served from registry-1.docker.io.
func hostAliases(host string) []string {
	if host == reference.DefaultRegistry {
		return []string{"docker.io", "index.docker.io", "registry-1.docker.io"}
	}
	return []string{host}
}

// host returns the registries entry for a reference's registry, if any.
func (c *Client) host(registry string) *hostConfig {
	return c.hosts[canonicalHost(registry)]
}

// repository converts a reference's name for go-containerregistry.
func (c *Client) repository(ref reference.Reference) (name.Repository, error) {
	var opts []name.Option
	if h := c.host(ref.Registry); h != nil && h.access.Insecure && h.access.Endpoint == "" {
		// Lets go-containerregistry fall back to HTTP; the router allows
		// it because the host is insecure. (Loopback hosts fall back in
		// the router itself, only when HTTPS is answered in plain HTTP.)
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(ref.Registry+"/"+ref.Repository, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%s: %w", ref.Name(), err)
	}
	return repo, nil
}

// target is a reference's manifest as go-containerregistry names it: by
// digest when it has one, else by tag.
func target(repo name.Repository, ref reference.Reference) name.Reference {
	if ref.Digest != "" {
		return repo.Digest(ref.Digest)
	}
	return repo.Tag(ref.Tag)
}

// access says what a transport may do.
type access int

const (
	pull access = iota
	push
)

func (a access) String() string {
	if a == push {
		return "push"
	}
	return "pull"
}

type transportKey struct {
	repo   string
	access access
	extra  string // further scopes, for cross-repository mounts
	// auth tells apart transports made with a copy's own pull credentials
	// (CopyOptions.PullKeychain): a digest of them, "" for the Client's.
	auth string
}

type cachedTransport struct {
	done   chan struct{} // closed when rt, source and err are set
	rt     http.RoundTripper
	source string // where the credentials come from, for hints
	err    error
}

// handshakeTimeout bounds the ping and token request that make a
// transport; they run detached from the caller's context so that one
// cancelled caller does not fail the others waiting for the same transport.
const handshakeTimeout = 30 * time.Second

// transport returns an authenticated RoundTripper for repo, creating it
// (one ping and, for token registries, one token request) on first use.
// mountFrom adds pull access to another repository of the same registry.
// It also says where the credentials come from ("" when anonymous).
func (c *Client) transport(ctx context.Context, repo name.Repository, a access, mountFrom ...name.Repository) (http.RoundTripper, string, error) {
	scopes := []string{repo.Scope(transport.PullScope)}
	if a == push {
		scopes[0] = repo.Scope(transport.PushScope)
	}
	var extra []string
	for _, m := range mountFrom {
		if m.RegistryStr() == repo.RegistryStr() && m.String() != repo.String() {
			extra = append(extra, m.Scope(transport.PullScope))
		}
	}
	scopes = append(scopes, extra...)
	key := transportKey{repo: repo.String(), access: a, extra: strings.Join(extra, " ")}
	var perCopy authn.Authenticator
	if a == pull {
		var err error
		if perCopy, key.auth, err = c.copyAuth(ctx, repo); err != nil {
			return nil, "imagePullSecrets", err
		}
	}

	c.mu.Lock()
	ct, ok := c.transports[key]
	if !ok {
		if len(c.transports) >= maxTransports {
			c.evictOne()
		}
		ct = &cachedTransport{done: make(chan struct{})}
		c.transports[key] = ct
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handshakeTimeout)
		go func() {
			defer cancel()
			defer close(ct.done)
			auth, source, err := c.authenticator(hctx, repo, a, perCopy)
			ct.source = source
			if err != nil {
				ct.err = err
				return
			}
			ct.rt, ct.err = transport.NewWithContext(hctx, repo.Registry, auth, c.router, scopes)
		}()
	}
	c.mu.Unlock()

	select {
	case <-ct.done:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	if ct.err != nil {
		// Do not keep failures: the next call tries again.
		c.mu.Lock()
		if c.transports[key] == ct {
			delete(c.transports, key)
		}
		c.mu.Unlock()
		return nil, ct.source, ct.err
	}
	return ct.rt, ct.source, nil
}

// evictOne drops a random cached transport; c.mu is held.
func (c *Client) evictOne() {
	n := rand.IntN(len(c.transports))
	for k := range c.transports {
		if n == 0 {
			delete(c.transports, k)
			return
		}
		n--
	}
}

// remoteOptions are the options of every go-containerregistry call: our
// authenticated transport (which go-containerregistry then uses as is,
// without its own retries: callers retry with Retryable and RetryAfter)
// and the caller's context.
func remoteOptions(ctx context.Context, rt http.RoundTripper, more ...remote.Option) []remote.Option {
	return append([]remote.Option{remote.WithTransport(rt), remote.WithContext(ctx)}, more...)
}
