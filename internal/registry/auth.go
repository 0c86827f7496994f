package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/image-swapper/image-swapper/internal/config"
)

// secretTTL is how long a Secret's credentials are reused before the
// loader is asked again: admission must not read a Secret per request,
// and a rotated Secret must be picked up.
const secretTTL = time.Minute

// credentials picks the configured credentials of host for an access and
// the key path that names them. Pulls use pull, then credentials, then
// push (whoever may push may read); pushes use push, then credentials.
func (c *Client) credentials(host string, a access) (*config.Credentials, string) {
	h := c.host(host)
	if h == nil {
		return nil, ""
	}
	base := fmt.Sprintf("registries[%q]", h.key)
	r := h.access
	type choice struct {
		creds *config.Credentials
		key   string
	}
	order := []choice{{r.Pull, "pull"}, {r.Credentials, "credentials"}, {r.Push, "push"}}
	if a == push {
		order = []choice{{r.Push, "push"}, {r.Credentials, "credentials"}}
	}
	for _, o := range order {
		if o.creds != nil {
			return o.creds, base + "." + o.key
		}
	}
	return nil, ""
}

// authenticator resolves who we are for repo: configured credentials,
// else the provider's (ECR, Artifact Registry) for its target host, else
// the copy's own pull credentials (perCopy, from copyAuth), else the
// Client's pull keychain, else anonymous. source names where the
// credentials come from, for error hints; it is "" for anonymous.
func (c *Client) authenticator(ctx context.Context, repo name.Repository, a access, perCopy authn.Authenticator) (authn.Authenticator, string, error) {
	host := canonicalHost(repo.RegistryStr())
	if creds, path := c.credentials(host, a); creds != nil {
		return &configAuth{c: c, creds: creds, path: path, host: host}, path, nil
	}
	if c.isProviderHost(host) {
		return providerAuth{c.provider.(Authorizer)}, "targetProvider", nil
	}
	if perCopy != nil {
		return perCopy, "imagePullSecrets", nil
	}
	if a == pull && c.pullKeychain != nil {
		auth, err := authn.Resolve(ctx, c.pullKeychain, repo)
		if err != nil {
			return nil, "", fmt.Errorf("resolving image pull secrets for %s: %w", host, err)
		}
		if auth != authn.Anonymous {
			return auth, "imagePullSecrets", nil
		}
	}
	return authn.Anonymous, "", nil
}

// isProviderHost reports whether the provider authorizes requests to host.
func (c *Client) isProviderHost(host string) bool {
	_, ok := c.provider.(Authorizer)
	return ok && c.providerHost == host
}

// copyAuth resolves the pull keychain of the running copy
// (CopyOptions.PullKeychain, carried by ctx) for repo, when nothing that
// comes before it in authenticator's order applies. It returns the
// credentials and a digest of them that keys their transport, so that
// copies with the same credentials share a transport and copies with
// others do not; both are zero when the copy has no keychain or the
// keychain nothing for repo. The keychain is not consulted when the
// config has credentials for the host, so that a lazy keychain (the
// webhook's, which reads Secrets) costs nothing then.
func (c *Client) copyAuth(ctx context.Context, repo name.Repository) (authn.Authenticator, string, error) {
	kc := pullKeychainFrom(ctx)
	if kc == nil {
		return nil, "", nil
	}
	host := canonicalHost(repo.RegistryStr())
	if creds, _ := c.credentials(host, pull); creds != nil || c.isProviderHost(host) {
		return nil, "", nil
	}
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, "", fmt.Errorf("resolving image pull secrets for %s: %w", host, err)
	}
	if auth == nil || auth == authn.Anonymous {
		return nil, "", nil
	}
	ac, err := authn.Authorization(ctx, auth)
	if err != nil {
		return nil, "", fmt.Errorf("resolving image pull secrets for %s: %w", host, err)
	}
	h := sha256.New()
	for _, f := range []string{ac.Username, ac.Password, ac.Auth, ac.IdentityToken, ac.RegistryToken} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return authn.FromConfig(*ac), hex.EncodeToString(h.Sum(nil)), nil
}

// pullKeychainKey carries CopyOptions.PullKeychain from Copy to the
// transports it makes, through helpers shared with Exists and Resolve.
type pullKeychainKey struct{}

func withPullKeychain(ctx context.Context, kc authn.Keychain) context.Context {
	if kc == nil {
		return ctx
	}
	return context.WithValue(ctx, pullKeychainKey{}, kc)
}

func pullKeychainFrom(ctx context.Context) authn.Keychain {
	kc, _ := ctx.Value(pullKeychainKey{}).(authn.Keychain)
	return kc
}

// hint says which key to check after a refusal, for StatusError.Hint.
func hint(host string, a access, source string) func(int) string {
	return func(code int) string {
		key := fmt.Sprintf("registries[%q].%s", host, a)
		switch code {
		case 401, 403:
			switch source {
			case "":
				return fmt.Sprintf("anonymous access was refused; configure %s credentials", key)
			case "imagePullSecrets":
				return "check the Pod's imagePullSecrets"
			case "targetProvider":
				return "check the targetProvider's cloud credentials and permissions"
			}
			return "check " + source + " credentials"
		case 429:
			if source == "" {
				return fmt.Sprintf("anonymous requests have a lower limit; configure %s credentials", key)
			}
		}
		return ""
	}
}

// providerAuth adapts a provider's push credentials.
type providerAuth struct{ az Authorizer }

func (p providerAuth) Authorization() (*authn.AuthConfig, error) {
	return p.az.Authorization(context.Background())
}

func (p providerAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	return p.az.Authorization(ctx)
}

// configAuth reads configured credentials when they are used, not when
// the config is loaded, so that rotated files, Secrets and variables take
// effect without a restart.
type configAuth struct {
	c     *Client
	creds *config.Credentials
	path  string // key path, for errors
	host  string // canonical host
}

// Authorization implements authn.Authenticator.
func (a *configAuth) Authorization() (*authn.AuthConfig, error) {
	return a.AuthorizationContext(context.Background())
}

// AuthorizationContext implements authn.ContextAuthenticator.
func (a *configAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	cr := a.creds
	switch {
	case cr.DockerConfig != "":
		data, err := a.c.creds.file(cr.DockerConfig)
		if err != nil {
			return nil, fmt.Errorf("%s.dockerConfig: reading %s: %w", a.path, cr.DockerConfig, unwrapPathError(err))
		}
		auth, err := dockerConfigAuth(data, a.host)
		if err != nil {
			return nil, fmt.Errorf("%s.dockerConfig %s: %w", a.path, cr.DockerConfig, err)
		}
		return auth, nil
	case cr.Secret != "":
		ns, nm, ok := strings.Cut(cr.Secret, "/")
		if !ok {
			return nil, fmt.Errorf("%s.secret: %q must be namespace/name", a.path, cr.Secret)
		}
		if a.c.secrets == nil {
			return nil, fmt.Errorf("%s.secret: reading Secrets needs a Kubernetes client, and this command has none; use dockerConfig or usernameEnv/passwordEnv", a.path)
		}
		data, err := a.c.creds.secret(ctx, a.c.secrets, ns, nm)
		if err != nil {
			return nil, fmt.Errorf("%s.secret: reading Secret %s: %w", a.path, cr.Secret, err)
		}
		auth, err := dockerConfigAuth(data, a.host)
		if err != nil {
			return nil, fmt.Errorf("%s.secret %s: %w", a.path, cr.Secret, err)
		}
		return auth, nil
	case cr.UsernameEnv != "" || cr.PasswordEnv != "":
		user, pass := a.c.getenv(cr.UsernameEnv), a.c.getenv(cr.PasswordEnv)
		if cr.UsernameEnv != "" && user == "" {
			return nil, fmt.Errorf("%s.usernameEnv: environment variable %s is not set", a.path, cr.UsernameEnv)
		}
		if cr.PasswordEnv != "" && pass == "" {
			return nil, fmt.Errorf("%s.passwordEnv: environment variable %s is not set", a.path, cr.PasswordEnv)
		}
		return &authn.AuthConfig{Username: user, Password: pass}, nil
	}
	return nil, fmt.Errorf("%s names no source: set dockerConfig, secret, or usernameEnv and passwordEnv", a.path)
}

// unwrapPathError drops the path an *os.PathError repeats.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// dockerConfigAuth finds host's credentials in a Docker config.json (or a
// .dockerconfigjson Secret, the same format): "auths" entries with "auth"
// (base64 user:password), username/password, identitytoken or
// registrytoken. Entries may be written as hosts or URLs; Docker Hub's may
// be docker.io, index.docker.io, registry-1.docker.io or
// https://index.docker.io/v1/. Credential helpers are not run.
func dockerConfigAuth(data []byte, host string) (*authn.AuthConfig, error) {
	cf := configfile.New("")
	if err := cf.LoadFromReader(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("not a Docker config.json: %w", err)
	}
	keys := make([]string, 0, len(cf.AuthConfigs))
	for k := range cf.AuthConfigs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when two spellings name one host
	for _, k := range keys {
		if configHost(k) != host {
			continue
		}
		ac := cf.AuthConfigs[k]
		if ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
			continue
		}
		return &authn.AuthConfig{
			Username:      ac.Username,
			Password:      ac.Password,
			IdentityToken: ac.IdentityToken,
			RegistryToken: ac.RegistryToken,
		}, nil
	}
	for k, helper := range cf.CredentialHelpers {
		if configHost(k) == host {
			return nil, fmt.Errorf("uses the credential helper %q for %s, which image-swapper does not run; put the credentials under \"auths\"", helper, host)
		}
	}
	if cf.CredentialsStore != "" {
		return nil, fmt.Errorf("has no \"auths\" entry for %s, and its credential store %q is not supported; put the credentials under \"auths\"", host, cf.CredentialsStore)
	}
	return nil, fmt.Errorf("has no \"auths\" entry for %s", host)
}

// configHost reduces an "auths" key ("https://index.docker.io/v1/",
// "ghcr.io") to a canonical host.
func configHost(key string) string {
	k := key
	if strings.Contains(k, "://") {
		if u, err := url.Parse(k); err == nil {
			k = u.Host
		}
	}
	k, _, _ = strings.Cut(k, "/")
	return canonicalHost(k)
}

// credentialCache keeps Docker config files (until they change) and
// Secrets (for secretTTL).
type credentialCache struct {
	mu      sync.Mutex
	files   map[string]cachedFile
	secrets map[string]cachedSecret
	now     func() time.Time
}

type cachedFile struct {
	modTime time.Time
	size    int64
	data    []byte
}

type cachedSecret struct {
	fetched time.Time
	data    []byte
}

func readFileInfo(path string) ([]byte, os.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	return data, fi, err
}

// file returns path's content, reading it again only when its size or
// modification time changed.
func (cc *credentialCache) file(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	f, ok := cc.files[path]
	cc.mu.Unlock()
	if ok && f.modTime.Equal(fi.ModTime()) && f.size == fi.Size() {
		return f.data, nil
	}
	data, fi, err := readFileInfo(path)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	if cc.files == nil {
		cc.files = map[string]cachedFile{}
	}
	cc.files[path] = cachedFile{modTime: fi.ModTime(), size: fi.Size(), data: data}
	cc.mu.Unlock()
	return data, nil
}

// secret returns a Secret's data, asking the loader at most once per
// secretTTL.
func (cc *credentialCache) secret(ctx context.Context, load SecretLoader, namespace, name string) ([]byte, error) {
	now := time.Now
	if cc.now != nil {
		now = cc.now
	}
	key := namespace + "/" + name
	cc.mu.Lock()
	s, ok := cc.secrets[key]
	cc.mu.Unlock()
	if ok && now().Sub(s.fetched) < secretTTL {
		return s.data, nil
	}
	data, err := load(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	if cc.secrets == nil {
		cc.secrets = map[string]cachedSecret{}
	}
	cc.secrets[key] = cachedSecret{fetched: now(), data: data}
	cc.mu.Unlock()
	return data, nil
}
