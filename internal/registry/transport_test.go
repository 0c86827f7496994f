package registry

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
)

// captured records the requests a RoundTripper was given.
type captured struct{ reqs []*http.Request }

func (c *captured) RoundTrip(r *http.Request) (*http.Response, error) {
	c.reqs = append(c.reqs, r)
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

func TestTheRouterSendsEachHostWhereTheConfigSays(t *testing.T) {
	cfg := &config.Config{Registries: map[string]config.RegistryAccess{
		"docker.io": {Endpoint: "https://mirror.example.com/dockerhub/"},
		"quay.io":   {Endpoint: "http://10.0.0.5:5000", Insecure: true},
	}}
	base := &captured{}
	c := newClient(t, cfg, WithTransport(base), WithUserAgent("image-swapper/test"))
	tests := []struct {
		name, url, want string
	}{
		{"go-containerregistry's name for Docker Hub", "https://index.docker.io/v2/", "https://mirror.example.com/dockerhub/v2/"},
		{"Docker Hub's API host", "https://registry-1.docker.io/v2/library/nginx/manifests/1.27", "https://mirror.example.com/dockerhub/v2/library/nginx/manifests/1.27"},
		{"an insecure endpoint over http", "https://quay.io/v2/org/app/blobs/uploads/", "http://10.0.0.5:5000/v2/org/app/blobs/uploads/"},
		{"a host without an entry goes where it names", "https://ghcr.io/v2/", "https://ghcr.io/v2/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tt.url, nil)
			req.Header.Set("User-Agent", "go-containerregistry/v0.22.1")
			resp, err := c.router.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			sent := base.reqs[len(base.reqs)-1]
			if sent.URL.String() != tt.want {
				t.Errorf("sent to %s, want %s", sent.URL, tt.want)
			}
			if resp.Request != req {
				t.Error("the response does not carry the caller's request")
			}
			if ua := sent.Header.Get("User-Agent"); ua != "image-swapper/test go-containerregistry/v0.22.1" {
				t.Errorf("User-Agent = %q", ua)
			}
			if req.URL.String() != tt.url {
				t.Errorf("the caller's request was changed to %s", req.URL)
			}
		})
	}
	t.Run("plain HTTP to a host that is not insecure is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://ghcr.io/v2/", nil)
		_, err := c.router.RoundTrip(req)
		want := `refusing plain HTTP to ghcr.io: set registries["ghcr.io"].insecure: true to allow it`
		if err == nil || err.Error() != want {
			t.Errorf("RoundTrip() = %v, want %s", err, want)
		}
	})
}
