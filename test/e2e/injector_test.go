package e2e_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// injectLabel on a Pod asks the sidecar injector for its sidecar.
const injectLabel = "e2e.image-swapper.io/inject"

// startInjector registers a second mutating webhook that runs after
// image-swapper's and adds a "sidecar" container with image, the way
// service meshes and agents inject theirs. Because it changes the Pod
// after image-swapper has seen it, the API server calls image-swapper
// again (reinvocationPolicy IfNeeded), which is what the reinvocation
// scenario needs. It serves from this process, on 127.0.0.1, with a
// certificate from sw's CA.
func (s *suite) startInjector(t *testing.T, sw *swapper, image string) {
	t.Helper()
	cert, err := sw.ca.issue()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		injectSidecar(t, w, r, image)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// Webhook configurations are called in the order of their names; this
	// one sorts after image-swapper's.
	name := "e2e-" + sw.id + "-zz-sidecar-injector"
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "sidecar.e2e.image-swapper.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(srv.URL + "/inject"), CABundle: sw.ca.PEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{serverLabel: sw.id}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{injectLabel: "sidecar"}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To(int32(5)),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}
	if _, err := s.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering the sidecar injector: %v", err)
	}
	t.Cleanup(func() {
		if err := s.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting MutatingWebhookConfiguration %s: %v", name, err)
		}
	})
}

// injectSidecar answers an AdmissionReview with a patch that appends the
// sidecar, unless the Pod has one.
func injectSidecar(t *testing.T, w http.ResponseWriter, r *http.Request, image string) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		t.Errorf("sidecar injector: undecodable AdmissionReview: %v", err)
		http.Error(w, "bad AdmissionReview", http.StatusBadRequest)
		return
	}
	var pod corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
		t.Errorf("sidecar injector: undecodable Pod: %v", err)
		http.Error(w, "bad Pod", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	has := false
	for _, c := range pod.Spec.Containers {
		has = has || c.Name == "sidecar"
	}
	if !has {
		patch, err := json.Marshal([]map[string]any{{
			"op": "add", "path": "/spec/containers/-",
			"value": corev1.Container{Name: "sidecar", Image: image},
		}})
		if err != nil {
			t.Errorf("sidecar injector: %v", err)
		}
		resp.Patch, resp.PatchType = patch, ptr.To(admissionv1.PatchTypeJSONPatch)
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Errorf("sidecar injector: writing the response: %v", err)
	}
}
