package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrname "github.com/google/go-containerregistry/pkg/name"
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
// are skipped. Their "auths" keys match images as in the kubelet's
// keyring (host globs such as *.example.com, path prefixes such as
// registry.example.com/team, the most specific key first). Objects are read with GETs cached for a TTL, not with an
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

	once    sync.Once
	keyring *keyring
}

// Resolve implements authn.Keychain.
func (k *podKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain: the credential the
// kubelet would pull the image with, else anonymous. The kubelet tries
// every matching credential in turn; a keychain gives one, the first.
func (k *podKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	k.once.Do(func() { k.keyring = newKeyring(k.p.load(ctx, k.namespace, k.secrets, k.serviceAccount)) })
	if auths := k.keyring.lookup(kubeletImage(r)); len(auths) > 0 {
		return authn.FromConfig(auths[0]), nil
	}
	return authn.Anonymous, nil
}

// kubeletImage names the image of r as the kubelet looks its credentials
// up: the repository as Docker's reference library normalises it, with
// Docker Hub as docker.io (go-containerregistry says index.docker.io).
func kubeletImage(r authn.Resource) string {
	reg := r.RegistryStr()
	repo := strings.TrimPrefix(strings.TrimPrefix(r.String(), reg), "/")
	if reg == ggcrname.DefaultRegistry {
		reg = "docker.io"
	}
	if repo == "" {
		return reg
	}
	return reg + "/" + repo
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
	// key is the entry's registry as the kubelet indexes it: the host,
	// possibly with a glob (*.example.com) and a port, and a path prefix
	// (registry.example.com/team); no scheme and no /v1/ or /v2/.
	key  string
	auth authn.AuthConfig
}

// keyring is the kubelet's credential index (k8s.io/kubernetes
// pkg/credentialprovider, BasicDockerKeyring) over a Pod's pull secrets:
// keys reverse-sorted, so that a longer, more specific key is tried
// before its prefix, and each key's credentials in the order of the
// Secrets.
type keyring struct {
	index []string
	creds map[string][]authn.AuthConfig
}

func newKeyring(creds []dockerCredential) *keyring {
	k := &keyring{creds: map[string][]authn.AuthConfig{}}
	for _, c := range creds {
		if _, ok := k.creds[c.key]; !ok {
			k.index = append(k.index, c.key)
		}
		k.creds[c.key] = append(k.creds[c.key], c.auth)
	}
	slices.Sort(k.index)
	slices.Reverse(k.index)
	return k
}

// lookup returns the credentials for image ("registry/repository"), most
// specific first, as BasicDockerKeyring.Lookup: every key that matches it
// (URLsMatch), else Docker Hub's index.docker.io entry for an image that
// Docker Hub serves.
func (k *keyring) lookup(image string) []authn.AuthConfig {
	var out []authn.AuthConfig
	for _, key := range k.index {
		if urlsMatchStr(key, image) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) == 0 && isDefaultRegistryMatch(image) {
		out = k.creds[defaultRegistryHost]
	}
	return out
}

// defaultRegistryHost is the key of Docker Hub's credentials, from its
// customary "https://index.docker.io/v1/" entry.
const defaultRegistryHost = "index.docker.io"

// isDefaultRegistryMatch reports whether the kubelet takes image to come
// from Docker Hub: no registry host in its first part, or docker.io or
// index.docker.io.
func isDefaultRegistryMatch(image string) bool {
	first, _, hasSlash := strings.Cut(image, "/")
	switch {
	case first == "":
		return false
	case !hasSlash:
		return true
	case first == "docker.io" || first == defaultRegistryHost:
		return true
	}
	return !strings.ContainsAny(first, ".:")
}

// urlsMatchStr is the kubelet's URLsMatchStr: glob matches target when
// their ports are equal, their hosts have as many dot-separated parts and
// each part of target matches the glob's part (filepath.Match, so * and ?
// stay within a part), and glob's path is a string prefix of target's.
func urlsMatchStr(glob, target string) bool {
	g, err := url.Parse("https://" + glob)
	if err != nil {
		return false
	}
	t, err := url.Parse("https://" + target)
	if err != nil {
		return false
	}
	gParts, gPort := splitHost(g.Host)
	tParts, tPort := splitHost(t.Host)
	if gPort != tPort || len(gParts) != len(tParts) || !strings.HasPrefix(t.Path, g.Path) {
		return false
	}
	for i, part := range gParts {
		if ok, err := filepath.Match(part, tParts[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

// splitHost splits a host into its dot-separated parts and its port.
func splitHost(hostport string) ([]string, string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	return strings.Split(host, "."), port
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
// Entries are ordered by key, so that a Pod's credentials do not depend on
// map order; the keyring orders them for matching.
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
		key, ok := keyringKey(k)
		if !ok {
			// The kubelet ignores an entry whose key is no URL.
			continue
		}
		out = append(out, dockerCredential{key: key, auth: ac})
	}
	return out, nil
}

// keyringKey turns an "auths" key ("https://index.docker.io/v1/",
// "ghcr.io", "*.example.com", "registry.example.com/team") into the key the
// kubelet indexes it by (BasicDockerKeyring.Add): without the scheme, and
// with a leading /v1/ or /v2/ API path cut, as Docker does.
func keyringKey(loc string) (string, bool) {
	value := loc
	if !strings.HasPrefix(value, "https://") && !strings.HasPrefix(value, "http://") {
		value = "https://" + value
	}
	u, err := url.Parse(value)
	if err != nil {
		return "", false
	}
	path := u.Path
	if strings.HasPrefix(path, "/v2/") || strings.HasPrefix(path, "/v1/") {
		path = path[3:]
	}
	if path == "" || path == "/" {
		return u.Host, true
	}
	return u.Host + path, true
}
