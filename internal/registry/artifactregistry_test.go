package registry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
)

// fakeGoogle serves the Artifact Registry API and the metadata server's
// token with the documents in testdata/artifactregistry.
type fakeGoogle struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []string          // "GET /v1/..." with the query
	bodies  map[string]string // request bodies by call
	auth    []string          // Authorization of API calls
	answers map[string]awsAnswer
}

const garRepo = "/v1/projects/my-project/locations/us-central1/repositories/mirror"
const garOp = "/v1/projects/my-project/locations/us-central1/operations/9e0a5b3c-2f61-4c61-a2c4-8b8f6f1f3d4e"

func newFakeGoogle(t *testing.T) *fakeGoogle {
	t.Helper()
	f := &fakeGoogle{bodies: map[string]string{}, answers: map[string]awsAnswer{
		"GET /computeMetadata/v1/instance/service-accounts/default/token": {200, "metadata-token.json", ""},
		"GET " + garRepo: {404, "not-found.json", ""},
		"POST /v1/projects/my-project/locations/us-central1/repositories?repositoryId=mirror": {200, "operation-pending.json", ""},
		"GET " + garOp: {200, "operation-done.json", ""},
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := r.Method + " " + r.URL.RequestURI()
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.calls = append(f.calls, call)
		f.bodies[call] = string(body)
		if strings.HasPrefix(r.URL.Path, "/computeMetadata/") {
			if r.Header.Get("Metadata-Flavor") != "Google" {
				f.mu.Unlock()
				w.WriteHeader(http.StatusForbidden)
				return
			}
		} else {
			f.auth = append(f.auth, r.Header.Get("Authorization"))
		}
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
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGoogle) provider(vars map[string]string) *ArtifactRegistry {
	g := NewArtifactRegistry(config.ArtifactRegistry{Project: "my-project", Location: "us-central1", Repository: "mirror"}, env(vars))
	g.api = f.URL
	g.metadata = f.URL
	g.poll = time.Millisecond
	return g
}

func (f *fakeGoogle) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func TestArtifactRegistryCreatesTheRepositoryOnce(t *testing.T) {
	f := newFakeGoogle(t)
	g := f.provider(nil)
	for _, repo := range []string{"my-project/mirror/docker.io/library/nginx", "my-project/mirror/quay.io/x"} {
		if err := g.EnsureRepository(t.Context(), repo); err != nil {
			t.Fatalf("EnsureRepository(%s) = %v", repo, err)
		}
	}
	want := []string{
		"GET /computeMetadata/v1/instance/service-accounts/default/token",
		"GET " + garRepo,
		"POST /v1/projects/my-project/locations/us-central1/repositories?repositoryId=mirror",
		"GET " + garOp,
	}
	if got := f.log(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls =\n%q\nwant\n%q", got, want)
	}
	jsonEqual(t, "create", []byte(f.bodies[want[2]]), `{"format":"DOCKER"}`)
	for _, a := range f.auth {
		if a != "Bearer ya29.c.Example-Metadata-Access-Token" {
			t.Errorf("Authorization = %q, want the metadata token", a)
		}
	}
}

func TestArtifactRegistryLeavesAnExistingRepository(t *testing.T) {
	f := newFakeGoogle(t)
	f.answers["GET "+garRepo] = awsAnswer{200, "repository.json", ""}
	g := f.provider(map[string]string{"GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.from-env"})
	if err := g.EnsureRepository(t.Context(), "my-project/mirror/app"); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); !reflect.DeepEqual(got, []string{"GET " + garRepo}) {
		t.Errorf("calls = %q, want only the GET", got)
	}
	if f.auth[0] != "Bearer ya29.from-env" {
		t.Errorf("Authorization = %q, want the token from GOOGLE_OAUTH_ACCESS_TOKEN", f.auth[0])
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
			map[string]awsAnswer{"POST /v1/projects/my-project/locations/us-central1/repositories?repositoryId=mirror": {403, "", `{"error":{"code":403,"message":"Permission 'artifactregistry.repositories.create' denied on resource","status":"PERMISSION_DENIED"}}`}},
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
			err := f.provider(nil).EnsureRepository(t.Context(), tt.repo)
			if err == nil || err.Error() != tt.want {
				t.Errorf("EnsureRepository() =\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
}
