package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// testEvents proves that denials, warnings and fallbacks become Events on
// the Pod's owner, found as `kubectl describe` finds them (by the object's
// kind, name and UID), and that the event recorder's correlator counts a
// repeated denial instead of writing a second Event. There is no
// controller-manager: the Deployment and its ReplicaSet are stored only,
// and the test creates the Pods the ReplicaSet controller would.
func (s *suite) testEvents(t *testing.T) {
	// Images of registry.invalid are never swapped (it is no source), so
	// the lists alone decide on them.
	const banned, unpinned = "registry.invalid/e2e/banned/tool:1.0", "registry.invalid/e2e/unpinned:latest"
	sw := s.startSwapper(t, swapperOptions{id: "events", config: s.config(s.dst.Host, "", `policies:
  denyList: ["registry.invalid/e2e/banned/*"]
  mode: enforce
rules:
  - name: unpinned
    image: `+unpinned+`
    action: deny
    mode: warn
    message: pin a version
`)})
	const ns = "events"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id})
	ctx := context.Background()

	labels := map[string]string{"app": "web"}
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: banned}}},
	}
	deploy, err := s.kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the Deployment: %v", err)
	}
	// The ReplicaSet as the Deployment controller names and labels it.
	const hash = "5d4f8b6c9"
	rsLabels := map[string]string{"app": "web", "pod-template-hash": hash}
	rs := s.replicaSet(t, ns, "web-"+hash, rsLabels, ownedBy(deploy, "apps/v1", "Deployment"))
	podOf := func(owner metav1.Object, kind, name, image string, labels map[string]string) *corev1.Pod {
		p := newPod(name, labels, image)
		p.OwnerReferences = []metav1.OwnerReference{ownedBy(owner, "apps/v1", kind)}
		return p
	}

	t.Run("a denial is one Event on the Deployment, counted, and a dry run adds none", func(t *testing.T) {
		// First, so that an Event it recorded would be in the count.
		c := s.createPod(ns, podOf(rs, "ReplicaSet", "web-"+hash+"-dry00", banned, rsLabels), true)
		expectDenied(t, c, "container app", banned, "policies.denyList")
		for _, name := range []string{"web-" + hash + "-aaaaa", "web-" + hash + "-bbbbb"} {
			c := s.createPod(ns, podOf(rs, "ReplicaSet", name, banned, rsLabels), false)
			expectDenied(t, c, "container app", banned, "policies.denyList")
		}
		ev := s.waitEvent(t, deploy, "ImageDenied", func(ev *corev1.Event) error {
			if ev.Count < 2 {
				return fmt.Errorf("count %d, want 2", ev.Count)
			}
			return nil
		})
		if ev.Count != 2 {
			t.Errorf("the Event counts %d denials, want 2 (a dry run must record none)", ev.Count)
		}
		for _, want := range []string{"container app", banned, "policies.denyList"} {
			if !strings.Contains(ev.Message, want) {
				t.Errorf("the Event's message %q does not name %q", ev.Message, want)
			}
		}
		if ev.Type != corev1.EventTypeWarning || ev.Source.Component != "image-swapper" {
			t.Errorf("the Event is of type %q from %q, want Warning from image-swapper", ev.Type, ev.Source.Component)
		}
		if got := s.eventsOn(t, rs, "ImageDenied"); len(got) != 0 {
			t.Errorf("the ReplicaSet has %d ImageDenied Events; they belong on its Deployment", len(got))
		}
		t.Logf("kubectl describe deployment web would list: %s  %s  (x%d)  %s", ev.Type, ev.Reason, ev.Count, ev.Message)
	})

	t.Run("a fallback at /mutate is an Event on the Deployment", func(t *testing.T) {
		// A source image that is not there: swap: exists keeps it and
		// queues a copy that fails.
		missing := s.source("e2e/events/missing:1.0")
		s.mustCreatePod(t, ns, podOf(rs, "ReplicaSet", "web-"+hash+"-ccccc", missing, rsLabels))
		s.waitEvent(t, deploy, "ImageSwapFallback", func(ev *corev1.Event) error {
			if !strings.Contains(ev.Message, "kept "+missing) {
				return fmt.Errorf("message %q does not say %s was kept", ev.Message, missing)
			}
			return nil
		})
	})

	t.Run("a ReplicaSet without a Deployment gets the Event itself", func(t *testing.T) {
		orphanLabels := map[string]string{"app": "batch"}
		orphan := s.replicaSet(t, ns, "batch", orphanLabels, metav1.OwnerReference{})
		c := s.createPod(ns, podOf(orphan, "ReplicaSet", "batch-xyz12", banned, orphanLabels), false)
		expectDenied(t, c, "container app", banned)
		s.waitEvent(t, orphan, "ImageDenied", nil)
	})

	t.Run("a fallback about a Pod without an owner is an Event on the Pod, with its UID", func(t *testing.T) {
		// At /mutate the Pod has no UID yet; the Event gets it once the Pod
		// is stored, so that kubectl describe pod lists it.
		missing := s.source("e2e/events/missing-bare:1.0")
		s.mustCreatePod(t, ns, newPod("bare-fallback", nil, missing))
		s.waitEvent(t, s.storedPod(t, ns, "bare-fallback"), "ImageSwapFallback", func(ev *corev1.Event) error {
			if !strings.Contains(ev.Message, "kept "+missing) {
				return fmt.Errorf("message %q does not say %s was kept", ev.Message, missing)
			}
			return nil
		})
	})

	t.Run("a warning about a Pod without an owner is an Event on the Pod", func(t *testing.T) {
		c := s.mustCreatePod(t, ns, newPod("unpinned", nil, unpinned))
		expectWarning(t, c.warnings, "pin a version")
		ev := s.waitEvent(t, s.storedPod(t, ns, "unpinned"), "ImageWarning", nil)
		if !strings.Contains(ev.Message, "pin a version") || !strings.Contains(ev.Message, "admitted") {
			t.Errorf("the Event's message %q does not say the rule's message and that the Pod was admitted", ev.Message)
		}
	})
}

// ownedBy is a controller ownerReference to owner.
func ownedBy(owner metav1.Object, apiVersion, kind string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: owner.GetName(), UID: owner.GetUID(), Controller: ptr.To(true)}
}

// replicaSet stores a ReplicaSet of no replicas (nothing would run them),
// owned by owner unless it is empty.
func (s *suite) replicaSet(t *testing.T, ns, name string, labels map[string]string, owner metav1.OwnerReference) *appsv1.ReplicaSet {
	t.Helper()
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
			},
		},
	}
	if owner.UID != "" {
		rs.OwnerReferences = []metav1.OwnerReference{owner}
	}
	got, err := s.kube.AppsV1().ReplicaSets(ns).Create(context.Background(), rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ReplicaSet %s/%s: %v", ns, name, err)
	}
	return got
}

// eventsOn lists the Events with reason about obj, as kubectl describe
// selects them: by the object's kind, namespace, name and UID.
func (s *suite) eventsOn(t *testing.T, obj runtime.Object, reason string) []corev1.Event {
	t.Helper()
	m, err := metaOf(obj)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.kube.CoreV1().Events(m.GetNamespace()).SearchWithContext(context.Background(), scheme.Scheme, obj)
	if err != nil {
		t.Fatalf("listing the Events of %s: %v", m.GetName(), err)
	}
	var out []corev1.Event
	for _, ev := range list.Items {
		if ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits until obj has exactly one Event with reason, and check
// (when set) accepts it, and returns it.
func (s *suite) waitEvent(t *testing.T, obj runtime.Object, reason string, check func(*corev1.Event) error) *corev1.Event {
	t.Helper()
	var got *corev1.Event
	err := testenv.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		evs := s.eventsOn(t, obj, reason)
		if len(evs) != 1 {
			return fmt.Errorf("%d %s Events, want 1: %+v", len(evs), reason, evs)
		}
		got = &evs[0]
		if check != nil {
			return check(got)
		}
		return nil
	})
	if err != nil {
		m, _ := metaOf(obj)
		t.Fatalf("the Events of %T %s: %v", obj, m.GetName(), err)
	}
	return got
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", obj)
	}
	return m, nil
}
