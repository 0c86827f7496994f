package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// maxStderr bounds how much of a failed scanner's stderr an error quotes.
const maxStderr = 2048

// Runner runs the scanner command for one image and parses its report.
//
// The command is executed directly (never through a shell) with the image
// as its last argument, "registry/repository@sha256:…". Registry
// credentials reach the scanner through its environment: a temporary
// DOCKER_CONFIG directory holding a config.json (mode 0600), removed when
// the scanner exits. They are never in its argv, where any user of the
// machine could read them.
type Runner struct {
	// Command is the scanner's argv before the image.
	Command []string
	// Timeout bounds one run; 0 means no bound beyond the context's.
	Timeout time.Duration
	// Auth returns the credentials for pulling ref, or nil for anonymous
	// access (the scanner then uses its own configuration).
	Auth func(ctx context.Context, ref reference.Reference) (*authn.AuthConfig, error)
	// Env is the scanner's environment, without DOCKER_CONFIG, which the
	// Runner sets when Auth gives credentials; nil means this process's
	// environment.
	Env []string
}

// NewRunner is the Runner that security.scanning describes: its command
// (or the provider's default) and timeout.
func NewRunner(s config.Scanning) *Runner {
	return &Runner{Command: s.EffectiveCommand(), Timeout: s.ScanTimeout()}
}

// ScanError is a scanner run that failed: it could not start, exited with
// a non-zero status, or ran out of time. Stderr is its truncated standard
// error with any credential removed.
type ScanError struct {
	Image    string
	Command  string // the executable
	ExitCode int    // -1 when it did not exit by itself
	TimedOut bool
	Timeout  time.Duration
	Stderr   string
	Err      error
}

// Error says which image and executable failed, how, and the end of its
// stderr.
func (e *ScanError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scanning %s with %s: ", e.Image, e.Command)
	switch {
	case e.TimedOut:
		fmt.Fprintf(&b, "timed out after %s", e.Timeout)
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	default:
		b.WriteString(e.Err.Error())
	}
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap returns the underlying exec or context error.
func (e *ScanError) Unwrap() error { return e.Err }

// Scan runs the scanner on ref, which must have a digest, and parses its
// standard output as a Trivy or Grype report.
func (r *Runner) Scan(ctx context.Context, ref reference.Reference) (*Report, error) {
	if len(r.Command) == 0 || r.Command[0] == "" {
		return nil, errors.New("scanning: no scanner command")
	}
	if ref.Digest == "" {
		return nil, fmt.Errorf("scanning %s: the image has no digest; scans are by digest", ref)
	}
	image := ref.Name() + "@" + ref.Digest
	env := r.Env
	if env == nil {
		env = os.Environ()
	}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "DOCKER_CONFIG=") })

	var secrets []string
	if r.Auth != nil {
		auth, err := r.Auth(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("scanning %s: getting registry credentials: %w", image, err)
		}
		if auth != nil && *auth != (authn.AuthConfig{}) {
			dir, err := writeDockerConfig(ref.Registry, auth)
			if err != nil {
				return nil, fmt.Errorf("scanning %s: %w", image, err)
			}
			defer os.RemoveAll(dir)
			env = append(env, "DOCKER_CONFIG="+dir)
			secrets = secretsOf(auth)
		}
	}

	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, r.Command[0], append(slices.Clone(r.Command[1:]), image)...)
	cmd.Env = env
	// A scanner whose children keep its pipes open must not outlive its
	// timeout by more than this.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		se := &ScanError{Image: image, Command: r.Command[0], ExitCode: -1, Timeout: r.Timeout, Err: err,
			Stderr: tail(redact(stderr.String(), secrets), maxStderr)}
		var exit *exec.ExitError
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Timeout > 0:
			se.TimedOut = true
		case ctx.Err() != nil:
			se.Err = ctx.Err()
		case errors.As(err, &exit):
			se.ExitCode = exit.ExitCode()
		}
		return nil, se
	}
	return Parse(fmt.Sprintf("output of %s for %s", r.Command[0], image), stdout.Bytes())
}

// writeDockerConfig writes a Docker config.json with auth for registry
// into a new private directory and returns the directory.
func writeDockerConfig(registry string, auth *authn.AuthConfig) (string, error) {
	dir, err := os.MkdirTemp("", "image-swapper-scan-")
	if err != nil {
		return "", fmt.Errorf("creating DOCKER_CONFIG: %w", err)
	}
	entry := map[string]string{}
	if auth.Auth != "" {
		entry["auth"] = auth.Auth
	} else if auth.Username != "" || auth.Password != "" {
		entry["auth"] = base64.StdEncoding.EncodeToString([]byte(auth.Username + ":" + auth.Password))
	}
	if auth.IdentityToken != "" {
		entry["identitytoken"] = auth.IdentityToken
	}
	if auth.RegistryToken != "" {
		entry["registrytoken"] = auth.RegistryToken
	}
	hosts := []string{registry}
	if reference.CanonicalRegistry(registry) == reference.DefaultRegistry {
		// Docker's keychain looks Docker Hub up under its legacy key.
		hosts = append(hosts, "https://index.docker.io/v1/")
	}
	auths := map[string]any{}
	for _, h := range hosts {
		auths[h] = entry
	}
	data, err := json.Marshal(map[string]any{"auths": auths})
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("writing DOCKER_CONFIG: %w", err)
	}
	return dir, nil
}

// secretsOf lists the strings of auth that must never appear in an error.
func secretsOf(a *authn.AuthConfig) []string {
	out := nonEmpty(a.Password, a.Auth, a.IdentityToken, a.RegistryToken)
	if a.Username != "" || a.Password != "" {
		out = append(out, base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)))
	}
	return out
}

// redact replaces every secret in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 { // shorter strings would redact ordinary text
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// tail returns the last n bytes of s, trimmed, marked when cut: the cause
// of a failure is usually last.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + strings.ToValidUTF8(s[len(s)-n:], "")
}
