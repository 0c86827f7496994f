package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// MaxRequestBytes bounds an AdmissionReview body. kube-apiserver limits
// objects to about 1.5 MiB and a review can hold two of them (object and
// oldObject).
const MaxRequestBytes = 3 << 20

// The AdmissionReview versions served. v1beta1 has the same JSON shape as
// v1, so both decode into the v1 types and are answered in the version
// they were asked in.
const (
	reviewV1      = "admission.k8s.io/v1"
	reviewV1beta1 = "admission.k8s.io/v1beta1"
)

// requestError is a request that cannot be answered with an
// AdmissionReview: it gets an HTTP status and a reason.
type requestError struct {
	status int
	reason string
}

func (e *requestError) Error() string { return e.reason }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, reason: fmt.Sprintf(format, args...)}
}

// readBody reads at most MaxRequestBytes, in one allocation when the
// client sent a Content-Length (kube-apiserver does).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if n := r.ContentLength; n > 0 && n <= MaxRequestBytes {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

// podReview is an AdmissionReview as this server reads it.
type podReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *podRequest `json:"request,omitempty"`
}

// podRequest is an AdmissionRequest whose object and oldObject decode as
// Pods in the same pass as the review: the fields shadow the embedded
// RawExtensions, which would have the JSON scanned twice more. The Pods
// are read only; the patch is built from paths, so fields that corev1.Pod
// lacks are never lost.
type podRequest struct {
	admissionv1.AdmissionRequest `json:",inline"`
	Object                       *corev1.Pod `json:"object,omitempty"`
	OldObject                    *corev1.Pod `json:"oldObject,omitempty"`
}

// readReview reads and checks an AdmissionReview from an HTTP request.
func readReview(w http.ResponseWriter, r *http.Request) (*podReview, *requestError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &requestError{status: http.StatusMethodNotAllowed, reason: fmt.Sprintf("method %s: an AdmissionReview is sent with POST", r.Method)}
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: fmt.Sprintf("content type %q: an AdmissionReview is sent as application/json", ct)}
	}
	body, err := readBody(w, r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("the body is larger than %d bytes", MaxRequestBytes)}
		}
		return nil, badRequest("reading the body: %v", err)
	}
	var rv podReview
	if err := json.Unmarshal(body, &rv); err != nil {
		return readOther(body, err)
	}
	if rerr := checkReview(rv.TypeMeta, rv.Request != nil, func() types.UID { return rv.Request.UID }); rerr != nil {
		return nil, rerr
	}
	return &rv, nil
}

// readOther reads a review whose objects do not decode as Pods. That is
// no error for another kind, which is answered unchanged; for a Pod it is.
func readOther(body []byte, podErr error) (*podReview, *requestError) {
	var other admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &other); err != nil {
		return nil, badRequest("the body is not an AdmissionReview: %v", err)
	}
	if rerr := checkReview(other.TypeMeta, other.Request != nil, func() types.UID { return other.Request.UID }); rerr != nil {
		return nil, rerr
	}
	if _, _, ok := skipReason(other.Request); ok {
		return nil, badRequest("request.object or request.oldObject is not a Pod: %v", podErr)
	}
	req := &podRequest{AdmissionRequest: *other.Request}
	// Skipped requests never read the objects.
	req.AdmissionRequest.Object, req.AdmissionRequest.OldObject = runtime.RawExtension{}, runtime.RawExtension{}
	return &podReview{TypeMeta: other.TypeMeta, Request: req}, nil
}

// checkReview checks what every review must have.
func checkReview(tm metav1.TypeMeta, hasRequest bool, uid func() types.UID) *requestError {
	if tm.APIVersion != reviewV1 && tm.APIVersion != reviewV1beta1 {
		return badRequest("apiVersion %q: want %s or %s", tm.APIVersion, reviewV1, reviewV1beta1)
	}
	if tm.Kind != "AdmissionReview" {
		return badRequest("kind %q: want AdmissionReview", tm.Kind)
	}
	if !hasRequest {
		return badRequest("the AdmissionReview has no request")
	}
	if uid() == "" {
		return badRequest("request.uid is missing; the response must echo it")
	}
	return nil
}

// skipReason says why a request is not one for a decision: its metric
// label and a sentence; ok is true when it is one.
func skipReason(req *admissionv1.AdmissionRequest) (label, why string, ok bool) {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" {
		return "kind", fmt.Sprintf("kind %s is not a Pod", req.Kind.String()), false
	}
	switch req.SubResource {
	case "", "ephemeralcontainers":
	default:
		return "subresource", fmt.Sprintf("subresource %s holds no image to decide on", req.SubResource), false
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return "operation", fmt.Sprintf("operation %s changes no image", req.Operation), false
	}
	return "", "", true
}
