package webhook

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultPullSecretTTL is how long a Secret or ServiceAccount read for a
// Pod's image pull credentials is reused: a burst of Pods costs one GET
// per object, and a rotated Secret is seen within a minute.
const DefaultPullSecretTTL = time.Minute

// pullSecretTimeout bounds each GET, so that a slow API server cannot hold
// a copy for long; the copy then pulls with what was read.
const pullSecretTimeout = 5 * time.Second

// PullSecrets finds the image pull credentials a Pod's images are pulled
// with, as the kubelet does: the Secrets named in the Pod's
// spec.imagePullSecrets, then those of its ServiceAccount ("default" when
// the Pod names none). Secrets of type kubernetes.io/dockerconfigjson and
// kubernetes.io/dockercfg are read; missing Secrets and ServiceAccounts
// are skipped. Objects are read with GETs cached for a TTL, not with an
// informer: only Pods whose images need copying read them, and watching
// every Secret of a cluster would cost more than that. It needs get on
// secrets and serviceaccounts.
type PullSecrets struct {
	client kubernetes.Interface
	log    *slog.Logger
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[objectKey]cachedObject
}

type objectKey struct {
	kind, namespace, name string
}

// cachedObject is a read Secret's credentials or a ServiceAccount's pull
// secret names; found is false for an object that does not exist.
type cachedObject struct {
	fetched time.Time
	found   bool
	creds   []dockerCredential
	names   []string
}

// NewPullSecrets reads pull secrets with client, caching each object for
// ttl (DefaultPullSecretTTL when 0).
func NewPullSecrets(client kubernetes.Interface, log *slog.Logger, ttl time.Duration) *PullSecrets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ttl <= 0 {
		ttl = DefaultPullSecretTTL
	}
	return &PullSecrets{client: client, log: log, ttl: ttl, now: time.Now, cache: map[objectKey]cachedObject{}}
}

// Keychain returns the credentials of a Pod in namespace with spec. It
// reads nothing until the keychain is first asked, which happens only
// when an image of the Pod is copied; then it reads every Secret once.
func (p *PullSecrets) Keychain(namespace string, spec *corev1.PodSpec) authn.Keychain {
	names := make([]string, 0, len(spec.ImagePullSecrets))
	for _, r := range spec.ImagePullSecrets {
		if r.Name != "" {
			names = append(names, r.Name)
		}
	}
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	return &podKeychain{p: p, namespace: namespace, secrets: names, serviceAccount: sa}
}

// podKeychain is one Pod's credentials, loaded on first use.
type podKeychain struct {
	p              *PullSecrets
	namespace      string
	secrets        []string
	serviceAccount string

	once  sync.Once
	creds []dockerCredential
}

// Resolve implements authn.Keychain.
func (k *podKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain: the first matching
// credential of the Pod's Secrets, in the kubelet's order, else anonymous.
func (k *podKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	k.once.Do(func() { k.creds = k.p.load(ctx, k.namespace, k.secrets, k.serviceAccount) })
	host := canonicalHost(r.RegistryStr())
	repo := strings.TrimPrefix(r.String(), r.RegistryStr()+"/")
	for _, c := range k.creds {
		if c.matches(host, repo) {
			return authn.FromConfig(c.auth), nil
		}
	}
	return authn.Anonymous, nil
}

// load reads the credentials of the Pod's Secrets, then of its
// ServiceAccount's.
func (p *PullSecrets) load(ctx context.Context, namespace string, secrets []string, serviceAccount string) []dockerCredential {
	sa := p.get(ctx, objectKey{"ServiceAccount", namespace, serviceAccount})
	names := append(append([]string(nil), secrets...), sa.names...)
	var creds []dockerCredential
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		creds = append(creds, p.get(ctx, objectKey{"Secret", namespace, n}).creds...)
	}
	return creds
}

// get returns an object's cached content, reading it when the cache has
// none younger than the TTL. Read failures are logged and yield nothing,
// as the kubelet skips a pull secret it cannot read; they are cached like
// a missing object, so that a server without the RBAC to read Secrets
// warns once per object and TTL, not once per copy.
func (p *PullSecrets) get(ctx context.Context, key objectKey) cachedObject {
	p.mu.Lock()
	o, ok := p.cache[key]
	p.mu.Unlock()
	if ok && p.now().Sub(o.fetched) < p.ttl {
		return o
	}
	o, err := p.read(ctx, key)
	switch {
	case err != nil && ctx.Err() != nil:
		// The copy was cancelled, which says nothing about the object.
		return cachedObject{}
	case err != nil:
		p.log.Warn("cannot read an image pull secret; copying without it", "kind", key.kind, "namespace", key.namespace, "name", key.name, "error", err)
		o = cachedObject{}
	case !o.found:
		p.log.Debug("image pull secret not found; skipped", "kind", key.kind, "namespace", key.namespace, "name", key.name)
	}
	o.fetched = p.now()
	p.mu.Lock()
	p.sweep()
	p.cache[key] = o
	p.mu.Unlock()
	return o
}

// sweep drops expired entries once the cache is large; p.mu is held.
func (p *PullSecrets) sweep() {
	if len(p.cache) < 1024 {
		return
	}
	now := p.now()
	for k, o := range p.cache {
		if now.Sub(o.fetched) >= p.ttl {
			delete(p.cache, k)
		}
	}
}

// read GETs one object.
func (p *PullSecrets) read(ctx context.Context, key objectKey) (cachedObject, error) {
	ctx, cancel := context.WithTimeout(ctx, pullSecretTimeout)
	defer cancel()
	switch key.kind {
	case "ServiceAccount":
		sa, err := p.client.CoreV1().ServiceAccounts(key.namespace).Get(ctx, key.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return cachedObject{}, nil
		}
		if err != nil {
			return cachedObject{}, err
		}
		o := cachedObject{found: true}
		for _, r := range sa.ImagePullSecrets {
			if r.Name != "" {
				o.names = append(o.names, r.Name)
			}
		}
		return o, nil
	default:
		s, err := p.client.CoreV1().Secrets(key.namespace).Get(ctx, key.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return cachedObject{}, nil
		}
		if err != nil {
			return cachedObject{}, err
		}
		creds, err := secretCredentials(s)
		if err != nil {
			// The error names the Secret and the format, never its data.
			return cachedObject{}, err
		}
		return cachedObject{found: true, creds: creds}, nil
	}
}

// dockerCredential is one "auths" entry of a pull secret.
type dockerCredential struct {
	host string // canonical
	path string // repository prefix, "" for the whole registry
	auth authn.AuthConfig
}

// matches reports whether the entry applies to repo at host.
func (c dockerCredential) matches(host, repo string) bool {
	if c.host != host {
		return false
	}
	return c.path == "" || repo == c.path || strings.HasPrefix(repo, c.path+"/")
}

// dockerConfigEntry is an entry of .dockerconfigjson "auths" or of a
// legacy .dockercfg.
type dockerConfigEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// secretCredentials reads a kubernetes.io/dockerconfigjson or
// kubernetes.io/dockercfg Secret; other types hold no pull credentials.
// Entries with a repository prefix come first, longest first, and are
// otherwise ordered by key, so that a Pod's credentials do not depend on
// map order.
func secretCredentials(s *corev1.Secret) ([]dockerCredential, error) {
	var entries map[string]dockerConfigEntry
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		var cfg struct {
			Auths map[string]dockerConfigEntry `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("pull secret %s/%s: %s is not a Docker config.json", s.Namespace, s.Name, corev1.DockerConfigJsonKey)
		}
		entries = cfg.Auths
	case corev1.SecretTypeDockercfg:
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &entries); err != nil {
			return nil, fmt.Errorf("pull secret %s/%s: %s is not a Docker .dockercfg", s.Namespace, s.Name, corev1.DockerConfigKey)
		}
	default:
		return nil, nil
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []dockerCredential
	for _, k := range keys {
		e := entries[k]
		ac := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
		if e.Auth != "" && ac.Username == "" && ac.Password == "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("pull secret %s/%s: the auth of %q is not base64", s.Namespace, s.Name, k)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("pull secret %s/%s: the auth of %q is not user:password", s.Namespace, s.Name, k)
			}
			ac.Username, ac.Password = user, pass
		}
		if ac == (authn.AuthConfig{}) {
			continue
		}
		host, path := configKey(k)
		out = append(out, dockerCredential{host: host, path: path, auth: ac})
	}
	// The longest repository prefix is tried first, as by the kubelet.
	slices.SortStableFunc(out, func(a, b dockerCredential) int { return cmp.Compare(len(b.path), len(a.path)) })
	return out, nil
}

// configKey splits an "auths" key ("https://index.docker.io/v1/",
// "ghcr.io", "registry.example.com/team") into a canonical host and a
// repository prefix. Docker Hub's /v1/ and /v2/ API paths are no prefix.
func configKey(key string) (host, path string) {
	k := key
	if strings.Contains(k, "://") {
		if u, err := url.Parse(k); err == nil {
			k = u.Host + u.Path
		}
	}
	host, path, _ = strings.Cut(k, "/")
	path = strings.Trim(path, "/")
	if path == "v1" || path == "v2" {
		path = ""
	}
	return canonicalHost(host), path
}

// canonicalHost lower-cases a host and names Docker Hub "docker.io", as
// go-containerregistry's "index.docker.io" and the kubelet's
// "https://index.docker.io/v1/" both mean it.
func canonicalHost(host string) string {
	host = strings.ToLower(host)
	switch host {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return host
}
