package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// answer makes a test registry answer manifest requests with status and
// headers.
func answer(reg *testRegistry, status int, headers map[string]string, body string) {
	reg.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
		return true
	})
}

func TestRetryableClassifiesRegistryAnswers(t *testing.T) {
	reg := newTestRegistry(t)
	c := newClient(t, insecureConfig(reg))
	tests := []struct {
		name   string
		status int
		want   bool
	}{
		{"500 is worth retrying", http.StatusInternalServerError, true},
		{"502 is worth retrying", http.StatusBadGateway, true},
		{"503 is worth retrying", http.StatusServiceUnavailable, true},
		{"429 is worth retrying later", http.StatusTooManyRequests, true},
		{"401 is not", http.StatusUnauthorized, false},
		{"403 is not", http.StatusForbidden, false},
		{"400 is not", http.StatusBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer(reg, tt.status, nil, "")
			_, err := c.Resolve(t.Context(), reg.ref(t, "src/app:1"))
			if err == nil {
				t.Fatal("Resolve() = nil error")
			}
			if got := Retryable(err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
	t.Run("404 is not, and Exists says not found", func(t *testing.T) {
		answer(reg, http.StatusNotFound, nil, "")
		_, err := c.Resolve(t.Context(), reg.ref(t, "src/app:1"))
		if !errors.Is(err, ErrNotFound) || Retryable(err) {
			t.Errorf("Resolve() = %v; want ErrNotFound, not retryable", err)
		}
		if _, ok, err := c.Exists(t.Context(), reg.ref(t, "src/app:1")); ok || err != nil {
			t.Errorf("Exists() = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestRetryableClassifiesNetworkFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cfg := &config.Config{Registries: map[string]config.RegistryAccess{closed: {Insecure: true}}}
	ref, _ := reference.Parse(closed + "/src/app:1")
	_, _, err = newClient(t, cfg).Exists(t.Context(), ref)
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || !Retryable(err) {
		t.Errorf("Exists() on a closed port = %v; want a retryable connection refused", err)
	}

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"a timeout", &net.OpError{Op: "dial", Err: timeoutError{}}, true},
		{"a reset connection", fmt.Errorf("reading: %w", syscall.ECONNRESET), true},
		{"a truncated body", fmt.Errorf("copying: %w", io.ErrUnexpectedEOF), true},
		{"an expired deadline", context.DeadlineExceeded, true},
		{"a cancelled context", fmt.Errorf("x: %w", context.Canceled), false},
		{"a tag that exists", fmt.Errorf("x: %w", ErrTagExists), false},
		{"a digest mismatch", fmt.Errorf("x: %w", ErrDigestMismatch), false},
		{"an unknown host", &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}, false},
		{"a DNS timeout", &net.DNSError{Err: "timeout", Name: "registry.example.com", IsTimeout: true}, true},
		{"ECR throttling", &cloudError{Op: "ECR CreateRepository", StatusCode: 400, Code: "ThrottlingException"}, true},
		{"an ECR invalid parameter", &cloudError{Op: "ECR CreateRepository", StatusCode: 400, Code: "InvalidParameterException"}, false},
		{"a cloud API's 503", &cloudError{Op: "Artifact Registry get repository", StatusCode: 503}, true},
		{"anything else", errors.New("parsing manifest: unexpected end of JSON input"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestA429SaysWhenToRetry(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	body := `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`
	answer(src, http.StatusTooManyRequests, map[string]string{"Retry-After": "7"}, body)
	c := newClient(t, insecureConfig(src, dst))

	_, _, err := c.Exists(t.Context(), src.ref(t, "src/app:1"))
	if d, ok := RetryAfter(err); !ok || d != 7*time.Second {
		t.Errorf("RetryAfter(%v) = %v, %v; want 7s", err, d, ok)
	}
	if !RateLimited(err) || !Retryable(err) {
		t.Errorf("RateLimited, Retryable(%v) = %v, %v; want true, true", err, RateLimited(err), Retryable(err))
	}

	// A GET carries the registry's message; anonymous callers are told
	// that credentials raise the limit.
	_, err = c.Copy(t.Context(), src.ref(t, "src/app:1"), dst.ref(t, "mirror/app:1"), CopyOptions{Platforms: []Platform{{OS: "linux", Architecture: "amd64"}}})
	want := fmt.Sprintf("copying %[1]s/src/app:1 to %[2]s/mirror/app:1: pulling manifest: 429 Too Many Requests: You have reached your pull rate limit. (anonymous requests have a lower limit; configure registries[%[1]q].pull credentials)", src.Host, dst.Host)
	if err == nil || err.Error() != want {
		t.Errorf("Copy() error =\n%v\nwant\n%s", err, want)
	}
	if d, ok := RetryAfter(err); !ok || d != 7*time.Second {
		t.Errorf("RetryAfter(Copy error) = %v, %v; want 7s", d, ok)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, value string
		want        time.Duration
	}{
		{"seconds", "120", 2 * time.Minute},
		{"an HTTP date", "Fri, 02 Jan 2026 03:05:05 GMT", time.Minute},
		{"a date in the past", "Fri, 02 Jan 2026 03:00:00 GMT", 0},
		{"nonsense", "soon", 0},
		{"absent", "", 0},
		{"negative seconds", "-3", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.value, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

func TestRateLimitHeadersReachTheHook(t *testing.T) {
	reg := newTestRegistry(t)
	seed(t, reg.Host+"/library/x:1", platformIndex(t, "linux/amd64"))
	reg.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("RateLimit-Limit", "100;w=21600")
			w.Header().Set("RateLimit-Remaining", "76;w=21600")
		}
		return false
	})
	cfg := &config.Config{Registries: map[string]config.RegistryAccess{"docker.io": {Endpoint: reg.URL, Insecure: true}}}
	var (
		mu  sync.Mutex
		got []RateLimit
	)
	c := newClient(t, cfg, WithRateLimitHook(func(rl RateLimit) {
		mu.Lock()
		got = append(got, rl)
		mu.Unlock()
	}))
	ref, _ := reference.Parse("x:1")
	if _, _, err := c.Exists(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	want := RateLimit{Registry: "docker.io", Limit: 100, Remaining: 76, Window: 6 * time.Hour}
	if len(got) != 1 || got[0] != want {
		t.Errorf("hook got %+v, want [%+v]", got, want)
	}
}
