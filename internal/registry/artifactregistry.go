package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
)

// Google's endpoints; GCE_METADATA_HOST overrides the metadata server's, as
// Google's libraries allow.
const (
	defaultArtifactRegistryAPI = "https://artifactregistry.googleapis.com"
	defaultMetadataHost        = "metadata.google.internal"
	// garOperationWait bounds how long a repository creation is awaited,
	// and garPoll is how often the operation is asked about meanwhile.
	garOperationWait = time.Minute
	garPoll          = 500 * time.Millisecond
)

// ArtifactRegistry keeps images in one Google Artifact Registry Docker
// repository (projects/P/locations/L/repositories/R), with the image path
// below it: it creates the repository when it is missing and supplies push
// credentials. Its OAuth token comes from GOOGLE_OAUTH_ACCESS_TOKEN (read
// at use time) or the metadata server (GKE Workload Identity, GCE).
type ArtifactRegistry struct {
	cfg      config.ArtifactRegistry
	api      string
	metadata string
	getenv   func(string) string
	client   *http.Client
	now      func() time.Time
	poll     time.Duration

	mu           sync.Mutex
	ensured      bool
	token        string
	tokenExpires time.Time
}

// NewArtifactRegistry builds the Artifact Registry provider for cfg.
func NewArtifactRegistry(cfg config.ArtifactRegistry, getenv func(string) string) *ArtifactRegistry {
	return &ArtifactRegistry{
		cfg:      cfg,
		api:      defaultArtifactRegistryAPI,
		metadata: "http://" + firstNonEmpty(getenv("GCE_METADATA_HOST"), defaultMetadataHost),
		getenv:   getenv,
		client:   &http.Client{Timeout: time.Minute},
		now:      time.Now,
		poll:     garPoll,
	}
}

// name is the repository's resource name.
func (g *ArtifactRegistry) name() string {
	return "projects/" + g.cfg.Project + "/locations/" + g.cfg.Location + "/repositories/" + g.cfg.Repository
}

// garOperation is a google.longrunning.Operation.
type garOperation struct {
	Name  string `json:"name"`
	Done  bool   `json:"done"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// EnsureRepository checks that repository lies in the configured
// Artifact Registry repository and creates that repository (format DOCKER)
// if it does not exist, waiting for the creation to finish.
func (g *ArtifactRegistry) EnsureRepository(ctx context.Context, repository string) error {
	prefix := strings.ReplaceAll(g.cfg.Project, ":", "/") + "/" + g.cfg.Repository + "/"
	if !strings.HasPrefix(repository, prefix) {
		return fmt.Errorf("%q is not inside the Artifact Registry repository %s: image paths must start with %q", repository, g.name(), prefix)
	}
	g.mu.Lock()
	done := g.ensured
	g.mu.Unlock()
	if done {
		return nil
	}

	err := g.do(ctx, "get repository", http.MethodGet, g.api+"/v1/"+g.name(), nil, nil)
	var ce *cloudError
	switch {
	case err == nil:
	case errors.As(err, &ce) && ce.StatusCode == http.StatusNotFound:
		if err := g.create(ctx); err != nil {
			return err
		}
	default:
		return err
	}
	g.mu.Lock()
	g.ensured = true
	g.mu.Unlock()
	return nil
}

// create creates the repository and waits for the operation.
func (g *ArtifactRegistry) create(ctx context.Context) error {
	parent := "projects/" + g.cfg.Project + "/locations/" + g.cfg.Location
	u := g.api + "/v1/" + parent + "/repositories?repositoryId=" + url.QueryEscape(g.cfg.Repository)
	var op garOperation
	err := g.do(ctx, "create repository", http.MethodPost, u, []byte(`{"format":"DOCKER"}`), &op)
	var ce *cloudError
	if errors.As(err, &ce) && ce.StatusCode == http.StatusConflict {
		return nil // created meanwhile
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, garOperationWait)
	defer cancel()
	for !op.Done {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for Artifact Registry operation %s: %w", op.Name, ctx.Err())
		case <-time.After(g.poll):
		}
		if err := g.do(ctx, "get operation", http.MethodGet, g.api+"/v1/"+op.Name, nil, &op); err != nil {
			return err
		}
	}
	if op.Error != nil {
		return fmt.Errorf("creating Artifact Registry repository %s: %s", g.name(), op.Error.Message)
	}
	return nil
}

// do sends one authorised API request.
func (g *ArtifactRegistry) do(ctx context.Context, op, method, u string, body []byte, out any) error {
	token, err := g.accessToken(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("calling Artifact Registry to %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := readJSON(resp, out); err != nil {
			return fmt.Errorf("calling Artifact Registry to %s: %w", op, err)
		}
		return nil
	}
	var fault struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	_ = readJSON(resp, &fault)
	return &cloudError{Op: "Artifact Registry " + op + " " + g.name(), StatusCode: resp.StatusCode, Code: fault.Error.Status, Message: fault.Error.Message}
}

// Authorization returns push credentials for LOCATION-docker.pkg.dev.
func (g *ArtifactRegistry) Authorization(ctx context.Context) (*authn.AuthConfig, error) {
	token, err := g.accessToken(ctx)
	if err != nil {
		return nil, err
	}
	return &authn.AuthConfig{Username: "oauth2accesstoken", Password: token}, nil
}

// accessToken returns an OAuth access token for the cloud-platform scope.
func (g *ArtifactRegistry) accessToken(ctx context.Context) (string, error) {
	if t := g.getenv("GOOGLE_OAUTH_ACCESS_TOKEN"); t != "" {
		return t, nil
	}
	g.mu.Lock()
	if g.token != "" && g.now().Before(g.tokenExpires.Add(-time.Minute)) {
		t := g.token
		g.mu.Unlock()
		return t, nil
	}
	g.mu.Unlock()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.metadata+"/computeMetadata/v1/instance/service-accounts/default/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Metadata-Flavor", "Google")
	resp, err := g.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("no Google credentials: GOOGLE_OAUTH_ACCESS_TOKEN is not set and the metadata server failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", &cloudError{Op: "Google metadata token", StatusCode: resp.StatusCode}
	}
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := readJSON(resp, &out); err != nil {
		return "", fmt.Errorf("reading the Google metadata token: %w", err)
	}
	if out.AccessToken == "" {
		return "", errors.New("the Google metadata server answered no access_token")
	}
	g.mu.Lock()
	g.token, g.tokenExpires = out.AccessToken, g.now().Add(time.Duration(out.ExpiresIn)*time.Second)
	g.mu.Unlock()
	return out.AccessToken, nil
}
