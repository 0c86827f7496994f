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

// readReview reads and checks an AdmissionReview from an HTTP request.
func readReview(w http.ResponseWriter, r *http.Request) (*admissionv1.AdmissionReview, *requestError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &requestError{status: http.StatusMethodNotAllowed, reason: fmt.Sprintf("method %s: an AdmissionReview is sent with POST", r.Method)}
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: fmt.Sprintf("content type %q: an AdmissionReview is sent as application/json", ct)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("the body is larger than %d bytes", MaxRequestBytes)}
		}
		return nil, badRequest("reading the body: %v", err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, badRequest("the body is not an AdmissionReview: %v", err)
	}
	if review.APIVersion != reviewV1 && review.APIVersion != reviewV1beta1 {
		return nil, badRequest("apiVersion %q: want %s or %s", review.APIVersion, reviewV1, reviewV1beta1)
	}
	if review.Kind != "AdmissionReview" {
		return nil, badRequest("kind %q: want AdmissionReview", review.Kind)
	}
	if review.Request == nil {
		return nil, badRequest("the AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return nil, badRequest("request.uid is missing; the response must echo it")
	}
	return &review, nil
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

// decodePods decodes the Pods of a request: object, and oldObject on
// UPDATE. They are read only; the patch is built from paths, so fields
// that corev1.Pod lacks are never lost.
func decodePods(req *admissionv1.AdmissionRequest) (pod, old *corev1.Pod, err *requestError) {
	if len(req.Object.Raw) == 0 {
		return nil, nil, badRequest("request.object is missing")
	}
	pod = new(corev1.Pod)
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return nil, nil, badRequest("request.object is not a Pod: %v", err)
	}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old = new(corev1.Pod)
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return nil, nil, badRequest("request.oldObject is not a Pod: %v", err)
		}
	}
	return pod, old, nil
}
