package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/image-swapper/image-swapper/internal/config"
)

const (
	defaultArtifactRegistryAPI = "https://artifactregistry.googleapis.com"
	// cloudPlatformScope is the OAuth scope Artifact Registry accepts
	// for both its API and docker pushes.
	cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
	// garOperationWait bounds how long a repository creation is awaited,
	// and garPoll is how often the operation is asked about meanwhile.
	garOperationWait = time.Minute
	garPoll          = 500 * time.Millisecond
)

// ArtifactRegistry keeps images in one Google Artifact Registry Docker
// repository (projects/P/locations/L/repositories/R), with the image path
// below it: it creates the repository when it is missing and supplies push
// credentials. Its OAuth token comes from GOOGLE_OAUTH_ACCESS_TOKEN when it
// is set (read at each use), else from Google's Application Default
// Credentials (golang.org/x/oauth2/google): the file
// GOOGLE_APPLICATION_CREDENTIALS names (a service account key, an
// authorized_user or an external_account for workload identity
// federation), gcloud's application_default_credentials.json, then the
// metadata server (GKE Workload Identity, GCE; GCE_METADATA_HOST moves it).
type ArtifactRegistry struct {
	cfg    config.ArtifactRegistry
	api    string
	client *http.Client
	poll   time.Duration

	mu      sync.Mutex
	ensured bool
	tokens  oauth2.TokenSource // Application Default Credentials, found on first use
}

// NewArtifactRegistry builds the Artifact Registry provider for cfg. It
// does no I/O: credentials are found on first use.
func NewArtifactRegistry(cfg config.ArtifactRegistry) *ArtifactRegistry {
	return &ArtifactRegistry{
		cfg:    cfg,
		api:    defaultArtifactRegistryAPI,
		client: &http.Client{Timeout: time.Minute},
		poll:   garPoll,
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
	if t := os.Getenv("GOOGLE_OAUTH_ACCESS_TOKEN"); t != "" {
		return t, nil
	}
	g.mu.Lock()
	ts := g.tokens
	g.mu.Unlock()
	if ts == nil {
		// The token source keeps this context for its refreshes: it must
		// outlive the call that happens to find the credentials, and its
		// HTTP client bounds each token exchange.
		tctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, g.client)
		creds, err := google.FindDefaultCredentials(tctx, cloudPlatformScope)
		if err != nil {
			return "", fmt.Errorf("no Google credentials: GOOGLE_OAUTH_ACCESS_TOKEN is not set and Application Default Credentials failed: %w", err)
		}
		g.mu.Lock()
		if g.tokens == nil {
			g.tokens = creds.TokenSource
		}
		ts = g.tokens
		g.mu.Unlock()
	}
	tok, err := ts.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			ce := &cloudError{Op: "Google OAuth token", StatusCode: re.Response.StatusCode, Code: re.ErrorCode, Message: re.ErrorDescription}
			if ce.Code == "" {
				// The service-account exchange leaves RFC 6749's error
				// body unparsed.
				var body struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				if json.Unmarshal(re.Body, &body) == nil {
					ce.Code, ce.Message = body.Error, body.Description
				}
			}
			return "", ce
		}
		return "", fmt.Errorf("getting a Google access token: %w", err)
	}
	return tok.AccessToken, nil
}
