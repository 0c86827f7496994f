package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/image-swapper/image-swapper/internal/policyapi"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// testImagePolicies installs the chart's policy CRDs and runs a server as
// the least-privileged serverUser: an ImagePolicy created in one namespace
// denies its Pods through the real admission path within seconds, and not
// the Pods of another namespace; its exception, which no
// ClusterImagePolicy allows, is refused in the status the server writes.
func (s *suite) testImagePolicies(t *testing.T) {
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(s.plane.Config())
	if err := testenv.InstallChartCRDs(s.plane.Config()); err != nil {
		t.Fatal(err)
	}
	sw := s.startSwapper(t, swapperOptions{id: "policies", config: s.config(s.dst.Host, "", "")})
	a, b := "policies-a", "policies-b"
	s.namespace(t, a, map[string]string{serverLabel: sw.id})
	s.namespace(t, b, map[string]string{serverLabel: sw.id})
	banned := s.source("e2e/policies/tool:1.0")
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "tool", Image: banned}}},
		}
	}
	began := time.Now()
	s.mustCreatePod(t, a, pod("before"))
	oneAdmission := time.Since(began)

	p, err := policyapi.ToUnstructured(&policyapi.ImagePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: policyapi.APIVersion, Kind: policyapi.KindImagePolicy},
		ObjectMeta: metav1.ObjectMeta{Name: "no-tools", Namespace: a},
		Spec: policyapi.ImagePolicySpec{
			DenyList:   []string{s.source("e2e/policies/*")},
			Exceptions: []policyapi.Exception{{ID: "CVE-2024-6119", Expires: "2099-12-31", Reason: "TICKET-1"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	delete(p.Object, "status")
	// The first object of a new CRD can take the API server seconds to
	// store; the clock starts once it is stored.
	if _, err := dyn.Resource(policyapi.ImagePolicies).Namespace(a).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var denied created
	n := 0
	if err := testenv.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		n++
		denied = s.createPod(a, pod(fmt.Sprintf("after-%d", n)), false)
		if denied.err == nil {
			return fmt.Errorf("pod %s admitted", denied.pod.Name)
		}
		return nil
	}); err != nil {
		t.Fatalf("the ImagePolicy did not deny within 10s: %v", err)
	}
	t.Logf("the ImagePolicy denies Pods %s after it was stored, at attempt %d (a Pod admission before it took %s)", time.Since(start).Round(time.Millisecond), n, oneAdmission.Round(time.Millisecond))
	expectDenied(t, denied, "container tool", banned, "ImagePolicy/"+a+"/no-tools")
	s.mustCreatePod(t, b, pod("other-namespace"))

	if err := testenv.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		u, err := dyn.Resource(policyapi.ImagePolicies).Namespace(a).Get(ctx, "no-tools", metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == policyapi.ConditionExceptionsAccepted && m["status"] == "False" && m["reason"] == policyapi.ReasonNamespaceExceptionsNotAllowed {
				t.Logf("status: %s: %s", m["reason"], m["message"])
				return nil
			}
		}
		return fmt.Errorf("status %v", u.Object["status"])
	}); err != nil {
		t.Fatalf("the server wrote no status refusing the exception: %v", err)
	}
}
