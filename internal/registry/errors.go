package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrNotFound: the manifest (or repository) does not exist. Errors that
// carry a 404 match it with errors.Is.
var ErrNotFound = errors.New("not found")

// StatusError is a registry's non-success answer, reduced to what is safe
// to show: the status, the registry's error codes and messages, and a hint
// naming the config key to check. It never holds a URL, a header or a
// credential.
type StatusError struct {
	// StatusCode is the HTTP status, e.g. 401.
	StatusCode int
	// Codes are the registry's error codes ("UNAUTHORIZED",
	// "MANIFEST_UNKNOWN", "TOOMANYREQUESTS"), when it sent any.
	Codes []string
	// Message joins the registry's error messages.
	Message string
	// RetryAfter is the delay a 429 or 503 asked for (0 when none).
	RetryAfter time.Duration
	// Hint names the config key that would fix the problem, if one would.
	Hint string
}

// Error reads "401 Unauthorized: authentication required (check ...)".
func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.StatusCode))
	if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteByte(' ')
		b.WriteString(text)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) true for 404s.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Retryable reports whether an operation that failed with err may succeed
// if tried again later: true for 5xx, 408 and 429 answers, cloud APIs'
// throttling codes (AWS throttles with 400 ThrottlingException), timeouts
// and network errors; false for other 4xx answers (401, 403, 404, 400),
// ErrTagExists, ErrDigestMismatch, a cancelled context and anything not
// recognised.
func Retryable(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrTagExists),
		errors.Is(err, ErrDigestMismatch),
		errors.Is(err, context.Canceled):
		return false
	}
	var ce *cloudError
	if errors.As(err, &ce) && cloudThrottles[ce.Code] {
		return true // AWS throttles with 400 and a code
	}
	if code, ok := statusCode(err); ok {
		return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, io.ErrUnexpectedEOF, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// cloudThrottles are the error codes cloud APIs slow callers down with.
var cloudThrottles = map[string]bool{
	"ThrottlingException":      true,
	"Throttling":               true,
	"TooManyRequestsException": true,
	"RequestLimitExceeded":     true,
	"RESOURCE_EXHAUSTED":       true,
}

// RetryAfter returns the delay a registry asked for with a Retry-After
// header on a 429 (or 503) answer that caused err.
func RetryAfter(err error) (time.Duration, bool) {
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return se.RetryAfter, true
	}
	return 0, false
}

// RateLimited reports whether err is a registry's rate limit (HTTP 429 or
// the TOOMANYREQUESTS error code): callers should slow down, not just retry.
func RateLimited(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		if se.StatusCode == http.StatusTooManyRequests {
			return true
		}
		for _, c := range se.Codes {
			if c == "TOOMANYREQUESTS" {
				return true
			}
		}
	}
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusTooManyRequests
}

// RateLimit is what a registry said about its rate limit on a response
// (Docker Hub's RateLimit-Limit and RateLimit-Remaining headers).
type RateLimit struct {
	// Registry is the host as configured ("docker.io").
	Registry string
	// Limit and Remaining count requests in Window; -1 when not sent.
	Limit, Remaining int
	// Window is the period the limit applies to (0 when not sent).
	Window time.Duration
}

// statusCode finds the HTTP status behind err, from our StatusError, a
// cloud API's error or go-containerregistry's transport.Error.
func statusCode(err error) (int, bool) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode, true
	}
	var ce *cloudError
	if errors.As(err, &ce) && ce.StatusCode != 0 {
		return ce.StatusCode, true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode, true
	}
	return 0, false
}

// fromTransportError turns go-containerregistry's error, which keeps the
// request (and its headers) and prints the URL, into a StatusError.
func fromTransportError(te *transport.Error) *StatusError {
	se := &StatusError{StatusCode: te.StatusCode}
	var msgs []string
	for _, d := range te.Errors {
		if d.Code != "" {
			se.Codes = append(se.Codes, string(d.Code))
		}
		if d.Message != "" {
			msgs = append(msgs, d.Message)
		}
	}
	if len(msgs) == 0 {
		// HEAD answers have no body to say what went wrong.
		switch te.StatusCode {
		case http.StatusUnauthorized:
			msgs = append(msgs, "authentication required")
		case http.StatusForbidden:
			msgs = append(msgs, "access denied")
		case http.StatusNotFound:
			msgs = append(msgs, "not found")
		}
	}
	se.Message = strings.Join(msgs, "; ")
	return se
}

// statusFromResponse builds a StatusError from a response the router
// intercepts (429), reading at most 64 KiB of its body.
func statusFromResponse(resp *http.Response, now time.Time) *StatusError {
	se := &StatusError{StatusCode: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) == nil {
		var msgs []string
		for _, e := range doc.Errors {
			if e.Code != "" {
				se.Codes = append(se.Codes, e.Code)
			}
			if e.Message != "" {
				msgs = append(msgs, e.Message)
			}
		}
		se.Message = strings.Join(msgs, "; ")
	}
	se.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	return se
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// parseRateLimit reads "100;w=21600" into a count and a window.
func parseRateLimit(v string) (n int, window time.Duration, ok bool) {
	count, params, _ := strings.Cut(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil {
		return 0, 0, false
	}
	for _, p := range strings.Split(params, ";") {
		if k, val, found := strings.Cut(strings.TrimSpace(p), "="); found && k == "w" {
			if s, err := strconv.Atoi(val); err == nil {
				window = time.Duration(s) * time.Second
			}
		}
	}
	return n, window, true
}

// cleanError rewrites err for users: registry answers become StatusErrors
// with a hint, and url.Errors lose their URL (which names the endpoint, not
// the image, and is noise next to the image reference the caller adds).
func cleanError(err error, hint func(code int) string) error {
	if err == nil {
		return nil
	}
	var se *StatusError
	if errors.As(err, &se) {
		if se.Hint == "" && hint != nil {
			copied := *se
			copied.Hint = hint(se.StatusCode)
			return &copied
		}
		return se
	}
	var te *transport.Error
	if errors.As(err, &te) {
		se := fromTransportError(te)
		if hint != nil {
			se.Hint = hint(se.StatusCode)
		}
		return se
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Refused reports whether err is a registry's refusal of the credentials
// used (HTTP 401 or 403): other credentials may succeed where these did not.
func Refused(err error) bool {
	code, ok := statusCode(err)
	return ok && (code == http.StatusUnauthorized || code == http.StatusForbidden)
}
