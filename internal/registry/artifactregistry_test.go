package registry

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
)

// fakeGoogle serves the Artifact Registry API, the metadata server and an
// OAuth token endpoint with the documents in testdata/artifactregistry.
type fakeGoogle struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []string          // "GET /v1/..." with the query; metadata calls other than the token are left out
	bodies  map[string]string // request bodies by call
	auth    []string          // Authorization of API calls
	answers map[string]awsAnswer
}

const (
	garRepo      = "/v1/projects/my-project/locations/us-central1/repositories/mirror"
	garOp        = "/v1/projects/my-project/locations/us-central1/operations/9e0a5b3c-2f61-4c61-a2c4-8b8f6f1f3d4e"
	garCreate    = "/v1/projects/my-project/locations/us-central1/repositories?repositoryId=mirror"
	metadataCall = "GET /computeMetadata/v1/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"
)

func newFakeGoogle(t *testing.T) *fakeGoogle {
	t.Helper()
	f := &fakeGoogle{bodies: map[string]string{}, answers: map[string]awsAnswer{
		metadataCall:        {200, "metadata-token.json", ""},
		"POST /token":       {200, "oauth-token.json", ""},
		"GET " + garRepo:    {404, "not-found.json", ""},
		"POST " + garCreate: {200, "operation-pending.json", ""},
		"GET " + garOp:      {200, "operation-done.json", ""},
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := r.Method + " " + r.URL.RequestURI()
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/computeMetadata/"):
			if r.Header.Get("Metadata-Flavor") != "Google" {
				f.mu.Unlock()
				w.WriteHeader(http.StatusForbidden)
				return
			}
			if strings.HasSuffix(r.URL.Path, "/token") {
				f.calls = append(f.calls, call)
			}
		case r.URL.Path == "/token":
			f.calls = append(f.calls, call)
		default:
			f.calls = append(f.calls, call)
			f.auth = append(f.auth, r.Header.Get("Authorization"))
		}
		f.bodies[call] = string(body)
		a, ok := f.answers[call]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if a.file != "" {
			data, err := os.ReadFile(filepath.Join("testdata", "artifactregistry", a.file))
			if err != nil {
				t.Error(err)
			}
			a.body = string(data)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.Close)
	return f
}

// googleEnv gives the test a Google environment of its own: no
// credentials of the machine's (HOME is empty, so gcloud's
// application_default_credentials.json is not found), then vars. A test
// that reaches the metadata server sets GCE_METADATA_HOST, which also
// tells the metadata client it runs on GCE without probing.
func googleEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	for _, k := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "GCE_METADATA_HOST"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// provider builds the provider against the fake, with the metadata
// server's token unless vars say otherwise.
func (f *fakeGoogle) provider(t *testing.T, vars map[string]string) *ArtifactRegistry {
	t.Helper()
	if vars == nil {
		vars = map[string]string{"GCE_METADATA_HOST": strings.TrimPrefix(f.URL, "http://")}
	}
	googleEnv(t, vars)
	g := NewArtifactRegistry(config.ArtifactRegistry{Project: "my-project", Location: "us-central1", Repository: "mirror"})
	g.api = f.URL
	g.poll = time.Millisecond
	return g
}

func (f *fakeGoogle) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeGoogle) authorizations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth...)
}

func TestArtifactRegistryCreatesTheRepositoryOnce(t *testing.T) {
	f := newFakeGoogle(t)
	g := f.provider(t, nil)
	for _, repo := range []string{"my-project/mirror/docker.io/library/nginx", "my-project/mirror/quay.io/x"} {
		if err := g.EnsureRepository(t.Context(), repo); err != nil {
			t.Fatalf("EnsureRepository(%s) = %v", repo, err)
		}
	}
	want := []string{metadataCall, "GET " + garRepo, "POST " + garCreate, "GET " + garOp}
	if got := f.log(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls =\n%q\nwant\n%q", got, want)
	}
	jsonEqual(t, "create", []byte(f.bodies["POST "+garCreate]), `{"format":"DOCKER"}`)
	for _, a := range f.authorizations() {
		if a != "Bearer ya29.c.Example-Metadata-Access-Token" {
			t.Errorf("Authorization = %q, want the metadata token", a)
		}
	}
}

func TestArtifactRegistryLeavesAnExistingRepository(t *testing.T) {
	f := newFakeGoogle(t)
	f.answers["GET "+garRepo] = awsAnswer{200, "repository.json", ""}
	g := f.provider(t, map[string]string{"GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.from-env"})
	if err := g.EnsureRepository(t.Context(), "my-project/mirror/app"); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); !reflect.DeepEqual(got, []string{"GET " + garRepo}) {
		t.Errorf("calls = %q, want only the GET", got)
	}
	if a := f.authorizations(); a[0] != "Bearer ya29.from-env" {
		t.Errorf("Authorization = %q, want the token from GOOGLE_OAUTH_ACCESS_TOKEN", a[0])
	}
	auth, err := g.Authorization(t.Context())
	if err != nil || auth.Username != "oauth2accesstoken" || auth.Password != "ya29.from-env" {
		t.Errorf("Authorization() = %+v, %v", auth, err)
	}
}

func TestArtifactRegistryReportsProblems(t *testing.T) {
	tests := []struct {
		name    string
		repo    string
		answers map[string]awsAnswer
		want    string
	}{
		{"an image outside the repository", "other-project/mirror/app", nil,
			`"other-project/mirror/app" is not inside the Artifact Registry repository projects/my-project/locations/us-central1/repositories/mirror: image paths must start with "my-project/mirror/"`},
		{"a refused creation", "my-project/mirror/app",
			map[string]awsAnswer{"POST " + garCreate: {403, "", `{"error":{"code":403,"message":"Permission 'artifactregistry.repositories.create' denied on resource","status":"PERMISSION_DENIED"}}`}},
			"Artifact Registry create repository projects/my-project/locations/us-central1/repositories/mirror: 403 Forbidden: PERMISSION_DENIED: Permission 'artifactregistry.repositories.create' denied on resource"},
		{"a failed operation", "my-project/mirror/app",
			map[string]awsAnswer{"GET " + garOp: {200, "", `{"name":"x","done":true,"error":{"code":9,"message":"Repository format DOCKER is not allowed by policy"}}`}},
			"creating Artifact Registry repository projects/my-project/locations/us-central1/repositories/mirror: Repository format DOCKER is not allowed by policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeGoogle(t)
			for k, v := range tt.answers {
				f.answers[k] = v
			}
			err := f.provider(t, nil).EnsureRepository(t.Context(), tt.repo)
			if err == nil || err.Error() != tt.want {
				t.Errorf("EnsureRepository() =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}

// serviceAccountKey writes a service account key file, as the IAM console
// downloads it, with a fresh RSA key and token_uri at the fake.
func serviceAccountKey(t *testing.T, tokenURI string) (path string, pub *rsa.PublicKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]string{
		"type":                        "service_account",
		"project_id":                  "my-project",
		"private_key_id":              "3f1e8f7c0c2a4b6d9e8f7a6b5c4d3e2f1a0b9c8d",
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                "image-swapper@my-project.iam.gserviceaccount.com",
		"client_id":                   "113758264016513942381",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/image-swapper%40my-project.iam.gserviceaccount.com",
		"universe_domain":             "googleapis.com",
	})
	return writeFile(t, "key.json", string(doc)), &key.PublicKey
}

// verifyAssertion checks a JWT bearer grant (RFC 7523) as Google's token
// endpoint does: RS256 by the service account's key, for the
// cloud-platform scope, addressed to the token endpoint, valid an hour.
func verifyAssertion(t *testing.T, form url.Values, pub *rsa.PublicKey, aud string) {
	t.Helper()
	if g := form.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		t.Errorf("grant_type = %q", g)
	}
	parts := strings.Split(form.Get("assertion"), ".")
	if len(parts) != 3 {
		t.Fatalf("assertion %q is not a JWT", form.Get("assertion"))
	}
	var header struct{ Alg, Typ, Kid string }
	var claims struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	for i, out := range []any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
	if header.Alg != "RS256" || header.Typ != "JWT" || header.Kid != "3f1e8f7c0c2a4b6d9e8f7a6b5c4d3e2f1a0b9c8d" {
		t.Errorf("JWT header = %+v, want RS256 with the key's id", header)
	}
	if claims.Iss != "image-swapper@my-project.iam.gserviceaccount.com" || claims.Scope != cloudPlatformScope || claims.Aud != aud || claims.Exp-claims.Iat != 3600 {
		t.Errorf("JWT claims = %+v", claims)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("the assertion is not signed by the service account's key: %v", err)
	}
}

// Application Default Credentials from GOOGLE_APPLICATION_CREDENTIALS:
// the token exchange has the shape Google's token endpoint expects, and
// its token authorizes the API calls and the push.
func TestArtifactRegistryUsesApplicationDefaultCredentials(t *testing.T) {
	t.Run("a service account key", func(t *testing.T) {
		f := newFakeGoogle(t)
		f.answers["GET "+garRepo] = awsAnswer{200, "repository.json", ""}
		keyFile, pub := serviceAccountKey(t, f.URL+"/token")
		g := f.provider(t, map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": keyFile})
		if err := g.EnsureRepository(t.Context(), "my-project/mirror/app"); err != nil {
			t.Fatal(err)
		}
		auth, err := g.Authorization(t.Context())
		if err != nil || auth.Username != "oauth2accesstoken" || auth.Password != "ya29.c.Example-ServiceAccount-Access-Token" {
			t.Errorf("Authorization() = %+v, %v", auth, err)
		}
		if got := f.log(); !reflect.DeepEqual(got, []string{"POST /token", "GET " + garRepo}) {
			t.Errorf("calls = %q, want one token exchange, reused", got)
		}
		form, err := url.ParseQuery(f.bodies["POST /token"])
		if err != nil {
			t.Fatal(err)
		}
		verifyAssertion(t, form, pub, f.URL+"/token")
		if a := f.authorizations(); a[0] != "Bearer ya29.c.Example-ServiceAccount-Access-Token" {
			t.Errorf("API Authorization = %q", a[0])
		}
	})
	t.Run("an authorized_user file from gcloud auth application-default login", func(t *testing.T) {
		f := newFakeGoogle(t)
		f.answers["GET "+garRepo] = awsAnswer{200, "repository.json", ""}
		file := writeFile(t, "adc.json", fmt.Sprintf(`{"type":"authorized_user","client_id":"764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com","client_secret":"d-FL95Q19q7MQmFpd7hHD0Ty","refresh_token":"1//0example-refresh-token","token_uri":%q}`, f.URL+"/token"))
		g := f.provider(t, map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": file})
		if err := g.EnsureRepository(t.Context(), "my-project/mirror/app"); err != nil {
			t.Fatal(err)
		}
		form, _ := url.ParseQuery(f.bodies["POST /token"])
		want := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"1//0example-refresh-token"},
			"client_id": {"764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com"}, "client_secret": {"d-FL95Q19q7MQmFpd7hHD0Ty"}}
		if !reflect.DeepEqual(form, want) {
			t.Errorf("refresh form = %v, want %v", form, want)
		}
		if a := f.authorizations(); a[0] != "Bearer ya29.c.Example-ServiceAccount-Access-Token" {
			t.Errorf("API Authorization = %q", a[0])
		}
	})
	t.Run("a refused exchange is reported without the key", func(t *testing.T) {
		f := newFakeGoogle(t)
		f.answers["POST /token"] = awsAnswer{400, "oauth-invalid-grant.json", ""}
		keyFile, _ := serviceAccountKey(t, f.URL+"/token")
		g := f.provider(t, map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": keyFile})
		_, err := g.Authorization(t.Context())
		want := "Google OAuth token: 400 Bad Request: invalid_grant: Invalid JWT Signature."
		if err == nil || err.Error() != want {
			t.Errorf("Authorization() = %v, want %s", err, want)
		}
		if strings.Contains(fmt.Sprint(err), "PRIVATE KEY") || strings.Contains(fmt.Sprint(err), "assertion") {
			t.Error("the error reveals the key or the signed assertion")
		}
	})
	t.Run("a missing credentials file is named", func(t *testing.T) {
		g := newFakeGoogle(t).provider(t, map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": filepath.Join(t.TempDir(), "missing.json")})
		_, err := g.Authorization(t.Context())
		if err == nil || !strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") || !strings.Contains(err.Error(), "missing.json") {
			t.Errorf("Authorization() = %v, want the variable and the file named", err)
		}
	})
}
