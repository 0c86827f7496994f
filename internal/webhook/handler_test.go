package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput checks that requests that are not AdmissionReviews get a
// 4xx with the reason, on both admission endpoints.
func TestBadInput(t *testing.T) {
	simple := readFile(t, filepath.Join("testdata", "admission", "k8s-image-swapper-admissionreview-simple.json"))
	cases := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		status      int
		reason      string
	}{
		{"GET is not allowed", http.MethodGet, "application/json", nil, http.StatusMethodNotAllowed, "sent with POST"},
		{"PUT is not allowed", http.MethodPut, "application/json", simple, http.StatusMethodNotAllowed, "sent with POST"},
		{"a text body is the wrong content type", http.MethodPost, "text/plain", simple, http.StatusUnsupportedMediaType, `content type "text/plain"`},
		{"a missing content type is refused", http.MethodPost, "", simple, http.StatusUnsupportedMediaType, `content type ""`},
		{"a charset parameter is fine", http.MethodPost, "application/json; charset=utf-8", simple, http.StatusOK, ""},
		{"malformed JSON is a bad request", http.MethodPost, "application/json", []byte(`{"apiVersion": "admission.k8s.io/v1",`), http.StatusBadRequest, "not an AdmissionReview"},
		{"a JSON array is a bad request", http.MethodPost, "application/json", []byte(`[1, 2]`), http.StatusBadRequest, "not an AdmissionReview"},
		{"an empty body is a bad request", http.MethodPost, "application/json", nil, http.StatusBadRequest, "not an AdmissionReview"},
		{"a body over 3 MiB is too large", http.MethodPost, "application/json", oversized(), http.StatusRequestEntityTooLarge, "larger than 3145728 bytes"},
		{"a review without request is a bad request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), http.StatusBadRequest, "no request"},
		{"a review without uid is a bad request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod","version":"v1"},"operation":"CREATE"}}`), http.StatusBadRequest, "request.uid is missing"},
		{"an unknown review version is a bad request", http.MethodPost, "application/json", bytes.Replace(simple, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v2"`), 1), http.StatusBadRequest, `apiVersion "admission.k8s.io/v2"`},
		{"another kind of document is a bad request", http.MethodPost, "application/json", bytes.Replace(simple, []byte(`"kind": "AdmissionReview"`), []byte(`"kind": "ConfigMap"`), 1), http.StatusBadRequest, `kind "ConfigMap"`},
		{"a Pod request without object is a bad request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"operation":"CREATE"}}`), http.StatusBadRequest, "request.object is missing"},
		{"an object that is not a Pod is a bad request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"operation":"CREATE","object":{"spec":{"containers":"nginx"}}}}`), http.StatusBadRequest, "is not a Pod: json: cannot unmarshal string into Go struct field PodSpec.request.object.spec.containers"},
		{"an oldObject that is not a Pod is a bad request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod","version":"v1"},"operation":"UPDATE","object":{"spec":{}},"oldObject":{"metadata":7}}}`), http.StatusBadRequest, "Pod.request.oldObject.metadata"},
	}
	s := newTestServer(t, "config.yaml")
	for _, c := range cases {
		for _, endpoint := range []string{"/mutate", "/validate"} {
			t.Run(c.name+" on "+endpoint, func(t *testing.T) {
				req := httptest.NewRequest(c.method, endpoint, bytes.NewReader(c.body))
				if c.contentType != "" {
					req.Header.Set("Content-Type", c.contentType)
				}
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, req)
				if rec.Code != c.status {
					t.Fatalf("status %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), c.status)
				}
				if c.reason != "" && !strings.Contains(rec.Body.String(), c.reason) {
					t.Errorf("body %q does not say %q", rec.Body.String(), c.reason)
				}
				if c.status == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
					t.Errorf("Allow header %q, want POST", rec.Header().Get("Allow"))
				}
			})
		}
	}
	if got := metricValue(t, s.metrics, "image_swapper_admission_duration_seconds", "mutate", resultRejected); got == 0 {
		t.Errorf("rejected requests were not measured")
	}
}

// oversized is a syntactically plausible review one byte over the limit.
func oversized() []byte {
	head := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"`)
	body := append(head, bytes.Repeat([]byte("a"), MaxRequestBytes)...)
	return append(body, `"}}`...)
}

// TestSkippedRequests checks that requests the webhook is not meant for
// are allowed unchanged and counted, not refused: refusing them would
// fail the API request under failurePolicy Fail.
func TestSkippedRequests(t *testing.T) {
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"a","image":"nginx"}]}}`
	cases := []struct {
		name    string
		request string
		reason  string
	}{
		{"a ConfigMap is not a Pod", `{"uid":"1","kind":{"version":"v1","kind":"ConfigMap"},"operation":"CREATE","object":{"data":{}}}`, "kind"},
		{"an apps/v1 Pod-like kind is not a Pod", `{"uid":"1","kind":{"group":"apps","version":"v1","kind":"Pod"},"operation":"CREATE","object":` + pod + `}`, "kind"},
		{"a Pod DELETE changes no image", `{"uid":"1","kind":{"version":"v1","kind":"Pod"},"operation":"DELETE","oldObject":` + pod + `}`, "operation"},
		{"a Pod status update holds no image to decide on", `{"uid":"1","kind":{"version":"v1","kind":"Pod"},"subResource":"status","operation":"UPDATE","object":` + pod + `,"oldObject":` + pod + `}`, "subresource"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, "config.yaml")
			body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":` + c.request + `}`)
			for _, endpoint := range []string{"/mutate", "/validate"} {
				resp := review(t, s.Handler(), endpoint, body)
				if !resp.Allowed || resp.Patch != nil || len(resp.Warnings) > 0 {
					t.Errorf("%s: allowed %v, patch %s, warnings %q; want allowed unchanged", endpoint, resp.Allowed, resp.Patch, resp.Warnings)
				}
				if resp.UID != "1" {
					t.Errorf("%s: uid %q, want the request's", endpoint, resp.UID)
				}
			}
			if got := metricValue(t, s.metrics, "image_swapper_admissions_skipped_total", c.reason); got != 2 {
				t.Errorf("skipped count for %s = %v, want 2", c.reason, got)
			}
		})
	}
}

// TestOperationsEndpoints checks /healthz, /readyz and /metrics.
func TestOperationsEndpoints(t *testing.T) {
	unsynced := &syncSwitch{}
	s := newTestServer(t, "config.yaml", func(o *Options) { o.Namespaces = unsynced })
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/healthz"); rec.Code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", rec.Code)
	}
	if rec := get("/readyz"); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "namespace cache") {
		t.Errorf("/readyz before the namespace cache synced: %d %q, want 503 naming the cache", rec.Code, rec.Body)
	}
	unsynced.synced.Store(true)
	if rec := get("/readyz"); rec.Code != http.StatusOK {
		t.Errorf("/readyz once synced: %d %q, want 200", rec.Code, rec.Body)
	}
	s.stopping.Store(true)
	if rec := get("/readyz"); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting down") {
		t.Errorf("/readyz while shutting down: %d %q, want 503", rec.Code, rec.Body)
	}

	review(t, s.Handler(), "/mutate", readFile(t, filepath.Join("testdata", "requests", "policy.json")))
	review(t, s.Handler(), "/validate", readFile(t, filepath.Join("testdata", "requests", "policy.json")))
	rec := get("/metrics")
	for _, want := range []string{
		`image_swapper_admission_duration_seconds_count{endpoint="mutate",result="patched"} 1`,
		`image_swapper_admission_duration_seconds_count{endpoint="validate",result="denied"} 1`,
		`image_swapper_decisions_total{action="swap",endpoint="mutate"} 2`,
		`image_swapper_decisions_total{action="deny",endpoint="validate"} 1`,
		`image_swapper_swaps_total 2`,
		`image_swapper_denials_total{mode="enforce"} 1`,
		`image_swapper_denials_total{mode="warn"} 1`,
		`image_swapper_config_last_reload_successful 1`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestNamespacesLeftAlone checks that kube-system and the server's own
// namespace are left alone unless the configuration includes them.
func TestNamespacesLeftAlone(t *testing.T) {
	dir := t.TempDir()
	including := filepath.Join(dir, "config.yaml")
	writeFile(t, including, append(readFile(t, filepath.Join("testdata", "config.yaml")),
		"namespaces:\n  include: [kube-system, image-swapper]\n"...))
	request := string(readFile(t, filepath.Join("testdata", "requests", "v1beta1.json")))
	cases := []struct {
		name      string
		config    string
		namespace string
		swapped   bool
	}{
		{"kube-system is left alone", filepath.Join("testdata", "config.yaml"), "kube-system", false},
		{"the server's own namespace is left alone", filepath.Join("testdata", "config.yaml"), "image-swapper", false},
		{"kube-system is swapped when included", including, "kube-system", true},
		{"the server's own namespace is swapped when included", including, "image-swapper", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, "", func(o *Options) { o.ConfigPath = c.config })
			body := strings.ReplaceAll(request, `"namespace": "default"`, `"namespace": "`+c.namespace+`"`)
			resp := review(t, s.Handler(), "/mutate", []byte(body))
			if (resp.Patch != nil) != c.swapped {
				t.Errorf("patch %s; want a swap: %v", resp.Patch, c.swapped)
			}
		})
	}
}
