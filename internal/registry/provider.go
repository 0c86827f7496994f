package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Provider prepares a target registry for a push. Copy calls it for the
// target repository before writing, once per repository for the Client's
// life (the Client remembers which repositories exist).
type Provider interface {
	// EnsureRepository makes repository (the path below the registry
	// host, "mirror/docker.io/library/nginx") exist.
	EnsureRepository(ctx context.Context, repository string) error
}

// Authorizer is implemented by providers that also supply credentials for
// the target registry; the Client uses them when the config names none.
type Authorizer interface {
	Authorization(ctx context.Context) (*authn.AuthConfig, error)
}

// maxEnsured bounds the memory of ensured repositories; past it the memory
// starts over, which costs one idempotent provider call per repository.
const maxEnsured = 10000

// NewProvider builds the provider that cfg.TargetProvider describes, with
// the clouds' real endpoints, or nil when the config names none. It reads
// cfg once and does no I/O (credentials are found on first use), so it can
// be called again for a reloaded config; New calls it unless WithProvider
// is given, and binds the provider to cfg.TargetRegistry's host.
func NewProvider(cfg *config.Config) (Provider, error) {
	tp := cfg.TargetProvider
	switch {
	case tp == nil:
		return nil, nil
	case tp.ECR != nil && tp.ArtifactRegistry != nil:
		return nil, errors.New("targetProvider: set ecr or artifactRegistry, not both")
	case tp.ECR != nil:
		return NewECR(*tp.ECR), nil
	case tp.ArtifactRegistry != nil:
		return NewArtifactRegistry(*tp.ArtifactRegistry), nil
	}
	return nil, nil
}

// ensureRepository runs the provider for dst unless it has already, or dst
// is not in the provider's registry.
func (c *Client) ensureRepository(ctx context.Context, dst reference.Reference) error {
	if c.provider == nil || (c.providerHost != "" && canonicalHost(dst.Registry) != c.providerHost) {
		return nil
	}
	key := canonicalHost(dst.Registry) + "/" + dst.Repository
	c.mu.Lock()
	done := c.ensured[key]
	c.mu.Unlock()
	if done {
		return nil
	}
	if err := c.provider.EnsureRepository(ctx, dst.Repository); err != nil {
		return err
	}
	c.mu.Lock()
	if len(c.ensured) >= maxEnsured {
		c.ensured = map[string]bool{}
	}
	c.ensured[key] = true
	c.mu.Unlock()
	return nil
}

// cloudError is a cloud API's refusal: the operation, the HTTP status, the
// service's error code and message. It holds no credentials.
type cloudError struct {
	Op         string
	StatusCode int
	Code       string
	Message    string
}

func (e *cloudError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(fmt.Sprint(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// readJSON decodes a successful JSON response into out.
func readJSON(resp *http.Response, out any) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("unexpected response: %w", err)
	}
	return nil
}
