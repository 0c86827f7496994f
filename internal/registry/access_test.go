package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

func TestAnEndpointServesAHostUnderItsRealName(t *testing.T) {
	mirror, dst := newTestRegistry(t), newTestRegistry(t)
	want := seed(t, mirror.Host+"/library/x:1", platformIndex(t, "linux/amd64")).String()
	cfg := insecureConfig(dst)
	cfg.Registries["docker.io"] = config.RegistryAccess{Endpoint: mirror.URL, Insecure: true}
	c := newClient(t, cfg)

	src, err := reference.Parse("x:1") // docker.io/library/x:1
	if err != nil {
		t.Fatal(err)
	}
	mirror.Reset()
	d, ok, err := c.Exists(t.Context(), src)
	if err != nil || !ok || d.Digest != want {
		t.Fatalf("Exists(%s) = %+v, %v, %v; want %s", src, d, ok, err, want)
	}
	if n := mirror.Count(http.MethodHead, "/v2/library/x/manifests/1"); n != 1 {
		t.Errorf("the endpoint served %d HEADs for library/x:1, want 1; requests: %q", n, mirror.Requests())
	}
	target, err := reference.Parse(dst.Host + "/mirror/docker.io/library/x:1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Copy(t.Context(), src, target, CopyOptions{})
	if err != nil || res.Digest != want {
		t.Fatalf("Copy() = %+v, %v", res, err)
	}
}

func TestAnHTTPSEndpointIsVerifiedUnlessInsecure(t *testing.T) {
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewUnstartedServer(inner)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	ref := parseRef(t, host+"/library/x:1")
	if err := remote.Push(ref, platformIndex(t, "linux/amd64"), remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	src, _ := reference.Parse("quay.io/library/x:1")

	tests := []struct {
		name     string
		insecure bool
		wantErr  string
	}{
		{"a self-signed certificate is refused by default", false, "certificate signed by unknown authority"},
		{"insecure skips verification", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Registries: map[string]config.RegistryAccess{
				"quay.io": {Endpoint: srv.URL, Insecure: tt.insecure},
			}}
			_, ok, err := newClient(t, cfg).Exists(t.Context(), src)
			if tt.wantErr == "" {
				if err != nil || !ok {
					t.Errorf("Exists() = %v, %v; want found", ok, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Exists() error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestAnHTTPEndpointNeedsInsecure(t *testing.T) {
	// An endpoint names its scheme; http:// is allowed only by insecure,
	// even on loopback, as the config validation says.
	_, err := New(&config.Config{Registries: map[string]config.RegistryAccess{"docker.io": {Endpoint: "http://127.0.0.1:5001"}}})
	want := `registries["docker.io"].endpoint "http://127.0.0.1:5001" is plain HTTP; set registries["docker.io"].insecure: true to allow it`
	if err == nil || err.Error() != want {
		t.Errorf("New() = %v, want %s", err, want)
	}
}

// tokenAuth makes a test registry demand a bearer token from its /token
// endpoint, which wants basic credentials user:pass (as Docker Hub does),
// or, with basic set, demand basic credentials directly (htpasswd).
func tokenAuth(reg *testRegistry, user, pass string, basic bool) (tokens *atomic.Int32) {
	tokens = &atomic.Int32{}
	reg.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		good := ok && u == user && p == pass
		if r.URL.Path == "/token" {
			if !good {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"details":"incorrect username or password"}`)
				return true
			}
			tokens.Add(1)
			io.WriteString(w, `{"token":"good-token","expires_in":300}`)
			return true
		}
		if basic && good || !basic && r.Header.Get("Authorization") == "Bearer good-token" {
			return false
		}
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		} else {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, reg.URL))
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return true
	})
	return tokens
}

func TestARefusalNamesTheKeyToCheckAndNoSecret(t *testing.T) {
	for _, basic := range []bool{false, true} {
		name := "token registry"
		if basic {
			name = "basic registry"
		}
		t.Run(name, func(t *testing.T) {
			src, dst := newTestRegistry(t), newTestRegistry(t)
			seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64"))
			tokenAuth(src, "alice", "right-password", basic)
			cfg := insecureConfig(src, dst)
			cfg.Registries[src.Host] = config.RegistryAccess{Insecure: true, Pull: &config.Credentials{UsernameEnv: "REG_USER", PasswordEnv: "REG_PASS"}}
			env := map[string]string{"REG_USER": "alice", "REG_PASS": "s3cret-Pa55"}
			c := newClient(t, cfg, withGetenv(func(k string) string { return env[k] }))

			_, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{})
			want := fmt.Sprintf(`copying %[1]s/src/app:1.0 to %[2]s/mirror/app:1.0: resolving source: 401 Unauthorized: authentication required (check registries[%[1]q].pull credentials)`, src.Host, dst.Host)
			if err == nil || err.Error() != want {
				t.Fatalf("Copy() error =\n%v\nwant\n%s", err, want)
			}
			for _, secret := range []string{"alice", "s3cret-Pa55", base64.StdEncoding.EncodeToString([]byte("alice:s3cret-Pa55"))} {
				if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), secret) {
					t.Errorf("the error reveals %q: %#v", secret, err)
				}
			}
			if Retryable(err) {
				t.Error("Retryable(401) = true, want false")
			}

			// The variable is read when used: fixing it needs no new Client.
			env["REG_PASS"] = "right-password"
			res, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{})
			if err != nil || !res.Copied {
				t.Errorf("Copy() after fixing the password = %+v, %v", res, err)
			}
		})
	}
}

func TestAnonymousRefusalsSuggestCredentials(t *testing.T) {
	reg := newTestRegistry(t)
	seed(t, reg.Host+"/src/app:1", platformIndex(t, "linux/amd64"))
	tokenAuth(reg, "alice", "pw", false)
	_, _, err := newClient(t, insecureConfig(reg)).Exists(t.Context(), reg.ref(t, "src/app:1"))
	want := fmt.Sprintf(`checking %s/src/app:1: 401 Unauthorized: authentication required (anonymous access was refused; configure registries[%q].pull credentials)`, reg.Host, reg.Host)
	if err == nil || err.Error() != want {
		t.Errorf("Exists() error =\n%v\nwant\n%s", err, want)
	}
}

func TestCredentialsComeFromEachConfiguredSource(t *testing.T) {
	dir := t.TempDir()
	writeConfig := func(host, user, pass string) string {
		p := filepath.Join(dir, "config-"+user+".json")
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		if err := os.WriteFile(p, fmt.Appendf(nil, `{"auths":{"https://%s/v1/":{"auth":%q}}}`, host, auth), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		creds func(host string) *config.Credentials
	}{
		{"a Docker config file", func(host string) *config.Credentials {
			return &config.Credentials{DockerConfig: writeConfig(host, "bob", "pw-file")}
		}},
		{"a dockerconfigjson Secret", func(string) *config.Credentials { return &config.Credentials{Secret: "infra/regcred"} }},
		{"environment variables", func(string) *config.Credentials {
			return &config.Credentials{UsernameEnv: "U", PasswordEnv: "P"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := newTestRegistry(t), newTestRegistry(t)
			seed(t, src.Host+"/src/app:1", platformIndex(t, "linux/amd64"))
			tokenAuth(src, "bob", "pw-file", false)
			tokenAuth(dst, "carol", "pw-push", false)
			cfg := insecureConfig(src, dst)
			cfg.Registries[src.Host] = config.RegistryAccess{Insecure: true, Credentials: tt.creds(src.Host)}
			cfg.Registries[dst.Host] = config.RegistryAccess{Insecure: true,
				Pull: &config.Credentials{UsernameEnv: "NOBODY", PasswordEnv: "NOBODY"},
				Push: &config.Credentials{UsernameEnv: "PUSH_U", PasswordEnv: "PUSH_P"}}
			env := map[string]string{"U": "bob", "P": "pw-file", "PUSH_U": "carol", "PUSH_P": "pw-push"}
			var loads atomic.Int32
			loader := func(_ context.Context, ns, name string) ([]byte, error) {
				loads.Add(1)
				if ns != "infra" || name != "regcred" {
					return nil, fmt.Errorf("secrets %q not found", ns+"/"+name)
				}
				auth := base64.StdEncoding.EncodeToString([]byte("bob:pw-file"))
				return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, src.Host, auth), nil
			}
			c := newClient(t, cfg, withGetenv(func(k string) string { return env[k] }), WithSecretLoader(loader))
			for _, tag := range []string{"1", "2"} {
				if _, err := c.Copy(t.Context(), src.ref(t, "src/app:1"), dst.ref(t, "mirror/app:"+tag), CopyOptions{}); err != nil {
					t.Fatalf("Copy() = %v", err)
				}
			}
			if loads.Load() > 1 {
				t.Errorf("the Secret was read %d times, want at most once within %s", loads.Load(), secretTTL)
			}
		})
	}
}

func TestAPodsPullSecretsAreUsedWhenTheConfigHasNone(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	seed(t, src.Host+"/src/app:1", platformIndex(t, "linux/amd64"))
	tokenAuth(src, "pod", "pod-pw", false)
	kc := keychainFunc(func(r authn.Resource) (authn.Authenticator, error) {
		if r.RegistryStr() == src.Host {
			return &authn.Basic{Username: "pod", Password: "pod-pw"}, nil
		}
		return authn.Anonymous, nil
	})
	c := newClient(t, insecureConfig(src, dst), WithPullKeychain(kc))
	if _, err := c.Copy(t.Context(), src.ref(t, "src/app:1"), dst.ref(t, "mirror/app:1"), CopyOptions{}); err != nil {
		t.Fatal(err)
	}
}

type keychainFunc func(authn.Resource) (authn.Authenticator, error)

func (f keychainFunc) Resolve(r authn.Resource) (authn.Authenticator, error) { return f(r) }

func TestDockerConfigAuthReadsEveryFormOfCredentials(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, doc, host string
		want            authn.AuthConfig
		wantErr         string
	}{
		{"auth is base64 user:password", `{"auths":{"ghcr.io":{"auth":"` + b64("u:p:with:colons") + `"}}}`, "ghcr.io",
			authn.AuthConfig{Username: "u", Password: "p:with:colons"}, ""},
		{"username and password", `{"auths":{"ghcr.io":{"username":"u","password":"p"}}}`, "ghcr.io",
			authn.AuthConfig{Username: "u", Password: "p"}, ""},
		{"an identity token", `{"auths":{"myregistry.azurecr.io":{"username":"00000000-0000-0000-0000-000000000000","identitytoken":"refresh"}}}`, "myregistry.azurecr.io",
			authn.AuthConfig{Username: "00000000-0000-0000-0000-000000000000", IdentityToken: "refresh"}, ""},
		{"Docker Hub's legacy URL key", `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("hub:pw") + `"}}}`, "docker.io",
			authn.AuthConfig{Username: "hub", Password: "pw"}, ""},
		{"a key with a port", `{"auths":{"localhost:5000":{"auth":"` + b64("l:pw") + `"}}}`, "localhost:5000",
			authn.AuthConfig{Username: "l", Password: "pw"}, ""},
		{"no entry for the host", `{"auths":{"ghcr.io":{"auth":"` + b64("u:p") + `"}}}`, "quay.io",
			authn.AuthConfig{}, `has no "auths" entry for quay.io`},
		{"a credential helper is not run", `{"credHelpers":{"123456789012.dkr.ecr.us-east-1.amazonaws.com":"ecr-login"}}`, "123456789012.dkr.ecr.us-east-1.amazonaws.com",
			authn.AuthConfig{}, `uses the credential helper "ecr-login" for 123456789012.dkr.ecr.us-east-1.amazonaws.com, which image-swapper does not run; put the credentials under "auths"`},
		{"a credential store is not read", `{"credsStore":"desktop"}`, "docker.io",
			authn.AuthConfig{}, `has no "auths" entry for docker.io, and its credential store "desktop" is not supported; put the credentials under "auths"`},
		{"not JSON", `auths: {}`, "docker.io", authn.AuthConfig{}, "not a Docker config.json: invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dockerConfigAuth([]byte(tt.doc), tt.host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("dockerConfigAuth() = %+v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || *got != tt.want {
				t.Errorf("dockerConfigAuth() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestMissingCredentialSourcesAreNamed(t *testing.T) {
	reg := newTestRegistry(t)
	seed(t, reg.Host+"/src/app:1", platformIndex(t, "linux/amd64"))
	tokenAuth(reg, "u", "p", false)
	tests := []struct {
		name  string
		creds config.Credentials
		want  string
	}{
		{"an unset variable", config.Credentials{UsernameEnv: "NOT_SET_U", PasswordEnv: "NOT_SET_P"},
			fmt.Sprintf(`registries[%q].pull.usernameEnv: environment variable NOT_SET_U is not set`, reg.Host)},
		{"a missing file", config.Credentials{DockerConfig: "/nonexistent/config.json"},
			fmt.Sprintf(`registries[%q].pull.dockerConfig: reading /nonexistent/config.json: no such file or directory`, reg.Host)},
		{"a Secret without a Kubernetes client", config.Credentials{Secret: "ns/name"},
			fmt.Sprintf(`registries[%q].pull.secret: reading Secrets needs a Kubernetes client, and this command has none; use dockerConfig or usernameEnv/passwordEnv`, reg.Host)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := insecureConfig(reg)
			creds := tt.creds
			cfg.Registries[reg.Host] = config.RegistryAccess{Insecure: true, Pull: &creds}
			c := newClient(t, cfg, withGetenv(func(string) string { return "" }))
			_, _, err := c.Exists(t.Context(), reg.ref(t, "src/app:1"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Exists() = %v, want an error containing %s", err, tt.want)
			}
		})
	}
}

func TestExistsAndResolve(t *testing.T) {
	reg := newTestRegistry(t)
	want := seed(t, reg.Host+"/src/app:1", platformIndex(t, "linux/amd64", "linux/arm64")).String()
	c := newClient(t, insecureConfig(reg))
	tests := []struct {
		name  string
		ref   string
		found bool
	}{
		{"a tag that exists", "src/app:1", true},
		{"a digest that exists", "src/app@" + want, true},
		{"a tag and digest are looked up by digest", "src/app:nope@" + want, true},
		{"a missing tag", "src/app:2", false},
		{"a missing repository", "src/other:1", false},
		{"a missing digest", "src/app@sha256:" + strings.Repeat("a", 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok, err := c.Exists(t.Context(), reg.ref(t, tt.ref))
			if err != nil || ok != tt.found {
				t.Fatalf("Exists() = %+v, %v, %v; want found=%v", d, ok, err, tt.found)
			}
			if ok && (d.Digest != want || d.MediaType != "application/vnd.oci.image.index.v1+json" || d.Size <= 0) {
				t.Errorf("Exists() = %+v, want the index %s", d, want)
			}
			r, err := c.Resolve(t.Context(), reg.ref(t, tt.ref))
			if tt.found != (err == nil) || !tt.found && !errors.Is(err, ErrNotFound) || tt.found && r != d {
				t.Errorf("Resolve() = %+v, %v", r, err)
			}
		})
	}
	t.Run("a repeated Exists is one HEAD", func(t *testing.T) {
		reg.Reset()
		for range 3 {
			if _, _, err := c.Exists(t.Context(), reg.ref(t, "src/app:1")); err != nil {
				t.Fatal(err)
			}
		}
		if got := reg.Requests(); len(got) != 3 || reg.Count(http.MethodHead, "/manifests/1") != 3 {
			t.Errorf("requests = %q, want 3 HEADs", got)
		}
	})
}

func TestConcurrentCallersShareOneHandshake(t *testing.T) {
	reg := newTestRegistry(t)
	seed(t, reg.Host+"/src/app:1", platformIndex(t, "linux/amd64"))
	tokens := tokenAuth(reg, "u", "p", false)
	cfg := insecureConfig(reg)
	cfg.Registries[reg.Host] = config.RegistryAccess{Insecure: true, Pull: &config.Credentials{UsernameEnv: "U", PasswordEnv: "P"}}
	c := newClient(t, cfg, withGetenv(func(k string) string { return map[string]string{"U": "u", "P": "p"}[k] }))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, ok, err := c.Exists(t.Context(), reg.ref(t, "src/app:1")); err != nil || !ok {
				t.Errorf("Exists() = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
	if n := tokens.Load(); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}

func TestAHeadWithoutDigestIsAskedAgainWithGet(t *testing.T) {
	reg := newTestRegistry(t)
	want := seed(t, reg.Host+"/src/app:1", platformIndex(t, "linux/amd64")).String()
	reg.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
			return true // no Docker-Content-Digest, as some registries answer
		}
		return false
	})
	d, ok, err := newClient(t, insecureConfig(reg)).Exists(t.Context(), reg.ref(t, "src/app:1"))
	if err != nil || !ok || d.Digest != want || d.Size <= 0 {
		t.Errorf("Exists() = %+v, %v, %v; want %s", d, ok, err, want)
	}
	if n := reg.Count(http.MethodGet, "/manifests/1"); n != 1 {
		t.Errorf("GETs = %d, want 1", n)
	}
}
