package e2e_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// originalImagesAnnotation is where the server records the images it
// swapped, as the webhook package documents it.
const originalImagesAnnotation = "image-swapper.io/original-images"

// warningRecorder hands the API server's warnings (what kubectl prints as
// "Warning: ...") to the collector in the request's context.
type warningRecorder struct{}

type warningsKey struct{}

// warnings collects the warnings of the requests made with its context.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (warningRecorder) HandleWarningHeaderWithContext(ctx context.Context, _ int, _ string, text string) {
	if w, ok := ctx.Value(warningsKey{}).(*warnings); ok {
		w.mu.Lock()
		w.list = append(w.list, text)
		w.mu.Unlock()
	}
}

// withWarnings returns a context whose requests' warnings w collects.
func withWarnings(ctx context.Context, w *warnings) context.Context {
	return context.WithValue(ctx, warningsKey{}, w)
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}

// created is the API server's answer to a Pod creation.
type created struct {
	pod      *corev1.Pod
	warnings []string
	err      error
}

// createPod creates pod in ns through the API server (as a dry run when
// dryRun is set) and returns what it answered, warnings included.
func (s *suite) createPod(ns string, pod *corev1.Pod, dryRun bool) created {
	var w warnings
	ctx := withWarnings(context.Background(), &w)
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	out, err := s.kube.CoreV1().Pods(ns).Create(ctx, pod, opts)
	return created{pod: out, warnings: w.all(), err: err}
}

// mustCreatePod creates pod and fails the test unless the API server
// stored it.
func (s *suite) mustCreatePod(t *testing.T, ns string, pod *corev1.Pod) created {
	t.Helper()
	c := s.createPod(ns, pod, false)
	if c.err != nil {
		t.Fatalf("creating Pod %s/%s: %v", ns, pod.Name, c.err)
	}
	return c
}

// storedPod reads a Pod back from the API server.
func (s *suite) storedPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := s.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading Pod %s/%s back: %v", ns, name, err)
	}
	return p
}

// newPod is a Pod with one container, app, running image.
func newPod(name string, labels map[string]string, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

// images returns the container images of a Pod by container name.
func images(p *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, c := range p.Spec.Containers {
		out[c.Name] = c.Image
	}
	return out
}

// recordedOriginals parses the annotation that records swapped images; nil
// when the Pod has none.
func recordedOriginals(t *testing.T, p *corev1.Pod) map[string]string {
	t.Helper()
	raw, ok := p.Annotations[originalImagesAnnotation]
	if !ok {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("annotation %s of Pod %s/%s is %q, not a JSON object of strings: %v", originalImagesAnnotation, p.Namespace, p.Name, raw, err)
	}
	return m
}

// findWarning returns the first warning containing every part.
func findWarning(ws []string, parts ...string) (string, bool) {
	for _, w := range ws {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(w, p)
		}
		if all {
			return w, true
		}
	}
	return "", false
}

// expectWarning fails the test unless a warning contains every part.
func expectWarning(t *testing.T, ws []string, parts ...string) string {
	t.Helper()
	w, ok := findWarning(ws, parts...)
	if !ok {
		t.Errorf("no warning contains all of %q; the API server returned %q", parts, ws)
	}
	return w
}
