package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// config is a configuration that swaps images of the source registry to
// target, reaching both registries over plain HTTP. mirroring holds the
// lines under "mirroring:", indented by two spaces (empty for the
// defaults); extra is appended as top-level YAML.
func (s *suite) config(target, mirroring, extra string) string {
	if mirroring == "" {
		mirroring = "\n  swap: exists"
	}
	return fmt.Sprintf(`sourceRegistries: [%q]
targetRegistry: %q
mirroring:%s
registries:
  %q: {insecure: true}
  %q: {insecure: true}
%s`, s.src.Host, target, mirroring, s.src.Host, target, extra)
}

// source is the reference of path ("e2e/app:1.0") in the source registry.
func (s *suite) source(path string) string { return s.src.Host + "/" + path }

// mirrorOf is where the default rule puts path in target: the source
// registry's host stays in the path, its ":" written "_", so that two
// sources never collide.
func (s *suite) mirrorOf(target, path string) string {
	return target + "/" + strings.ReplaceAll(s.src.Host, ":", "_") + "/" + path
}

// mutateCalls is how many AdmissionReviews /mutate has answered.
func (sw *swapper) mutateCalls(t *testing.T) float64 {
	t.Helper()
	return sw.metric(t, "image_swapper_admission_duration_seconds_count", `endpoint="mutate"`)
}

// waitMutateCalls waits until /mutate has answered at least want
// AdmissionReviews. The server counts a review just after answering it, so
// the count can trail the API server's answer by a moment.
func (sw *swapper) waitMutateCalls(t *testing.T, want float64) {
	t.Helper()
	var got float64
	err := testenv.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		if got = sw.mutateCalls(t); got < want {
			return fmt.Errorf("/mutate answered %v AdmissionReviews, want at least %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func (s *suite) testScoping(t *testing.T, sw *swapper) {
	const path = "e2e/app:1.0"
	src, dst := s.source(path), s.mirrorOf(s.dst.Host, path)
	// The mirror has the image, so only scoping can keep it from a swap.
	seedImage(t, src, dst)

	// TestAdmission labelled kube-system and the server's namespace.
	s.namespace(t, "scoping-selected", map[string]string{serverLabel: sw.id, mirrorLabel: "true"})
	s.namespace(t, "scoping-other", map[string]string{serverLabel: sw.id})

	tests := []struct {
		name      string
		namespace string
		labels    map[string]string
		swapped   bool
		// called says whether the API server sends the Pod to the webhook.
		called bool
	}{
		{"a Pod in a namespace mirroring selects is swapped", "scoping-selected", nil, true, true},
		{"a Pod in a namespace mirroring does not select keeps its image", "scoping-other", nil, false, true},
		{"a Pod in kube-system keeps its image though the namespace is selected", "kube-system", nil, false, true},
		{"a Pod labelled image-swapper.io/swap=disabled keeps its image", "scoping-selected", map[string]string{optOutLabel: "disabled"}, false, true},
		{"a Pod in the server's own namespace never reaches the webhook", serverNamespace, nil, false, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.called {
				sw.waitCalledIn(t, s, tt.namespace)
			}
			before := sw.mutateCalls(t)
			c := s.mustCreatePod(t, tt.namespace, newPod(fmt.Sprintf("scoping-%d", i), tt.labels, src))
			stored := s.storedPod(t, tt.namespace, c.pod.Name)
			want, wantOriginals := src, map[string]string(nil)
			if tt.swapped {
				want, wantOriginals = dst, map[string]string{"containers/app": src}
				expectWarning(t, c.warnings, "container app", src+" -> "+dst)
			}
			if got := stored.Spec.Containers[0].Image; got != want {
				t.Errorf("stored image is %s, want %s (warnings %q)", got, want, c.warnings)
			}
			if got := recordedOriginals(t, stored); !maps.Equal(got, wantOriginals) {
				t.Errorf("annotation %s records %v, want %v", originalImagesAnnotation, got, wantOriginals)
			}
			if tt.called {
				// The Pod was kept by the server's decision, not because
				// the webhook was not called.
				sw.waitMutateCalls(t, before+1)
			} else if after := sw.mutateCalls(t); after != before {
				t.Errorf("/mutate answered %v AdmissionReviews for a Pod its webhook configuration excludes", after-before)
			}
		})
	}
}

// waitCalledIn waits until the API server calls the mutating webhook for
// Pods in ns: it matches namespaceSelector against labels from its own
// cache, which can trail a label change. The probes are dry runs.
func (sw *swapper) waitCalledIn(t *testing.T, s *suite, ns string) {
	t.Helper()
	probe := newPod("probe", nil, s.source("e2e/probe:1.0"))
	err := testenv.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		before := sw.mutateCalls(t)
		if c := s.createPod(ns, probe, true); c.err != nil {
			return c.err
		}
		// The server counts a review just after answering it.
		return testenv.Eventually(time.Second, 20*time.Millisecond, func() error {
			if sw.mutateCalls(t) == before {
				return fmt.Errorf("the API server does not send Pods in namespace %s to image-swapper %s", ns, sw.id)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testExists(t *testing.T, sw *swapper) {
	const ns, path = "exists", "e2e/exists:1.0"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id, mirrorLabel: "true"})
	src, dst := s.source(path), s.mirrorOf(s.dst.Host, path)
	srcDigest := seedIndex(t, src)
	fallbacks := sw.metric(t, "image_swapper_fallbacks_total")

	first := s.mustCreatePod(t, ns, newPod("first", nil, src))
	stored := s.storedPod(t, ns, "first")
	if got := stored.Spec.Containers[0].Image; got != src {
		t.Fatalf("the first Pod's image is %s; the mirror does not have the image yet, so it must keep %s", got, src)
	}
	if got := recordedOriginals(t, stored); got != nil {
		t.Errorf("the first Pod was not swapped but records originals %v", got)
	}
	expectWarning(t, first.warnings, "container app", "kept "+src, "queued")
	if got := sw.metric(t, "image_swapper_fallbacks_total"); got != fallbacks+1 {
		t.Errorf("image_swapper_fallbacks_total went from %v to %v, want one more", fallbacks, got)
	}

	// The copy the first Pod queued lands in the target, index and digest
	// unchanged.
	if got := waitForImage(t, dst); got != srcDigest {
		t.Errorf("the mirror holds %s at %s, the source %s: a copy must keep the digest", dst, got, srcDigest)
	}

	second := s.mustCreatePod(t, ns, newPod("second", nil, src))
	stored = s.storedPod(t, ns, "second")
	if got := stored.Spec.Containers[0].Image; got != dst {
		t.Fatalf("the Pod after the copy landed has image %s, want the mirror %s (warnings %q)", got, dst, second.warnings)
	}
	if got, want := recordedOriginals(t, stored), map[string]string{"containers/app": src}; !maps.Equal(got, want) {
		t.Errorf("annotation %s records %v, want %v", originalImagesAnnotation, got, want)
	}
	expectWarning(t, second.warnings, "container app", src+" -> "+dst)
}

func (s *suite) testReinvocationAndUpdate(t *testing.T, sw *swapper) {
	const ns = "reinvocation"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id, mirrorLabel: "true"})
	app, sidecar, app2 := "e2e/reinvoke:1.0", "e2e/sidecar:1.0", "e2e/reinvoke:2.0"
	for _, p := range []string{app, sidecar, app2} {
		seedImage(t, s.source(p), s.mirrorOf(s.dst.Host, p))
	}
	s.startInjector(t, sw, s.source(sidecar))
	// The injector's configuration is new; wait until the API server
	// calls it (a dry run has no side effects).
	probe := newPod("probe", map[string]string{injectLabel: "sidecar"}, s.source(app))
	err := testenv.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		c := s.createPod(ns, probe, true)
		if c.err != nil {
			return c.err
		}
		if _, ok := images(c.pod)["sidecar"]; !ok {
			return fmt.Errorf("no sidecar injected yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the API server does not call the sidecar injector: %v", err)
	}

	before := sw.mutateCalls(t)
	s.mustCreatePod(t, ns, newPod("injected", map[string]string{injectLabel: "sidecar"}, s.source(app)))
	stored := s.storedPod(t, ns, "injected")
	want := map[string]string{"app": s.mirrorOf(s.dst.Host, app), "sidecar": s.mirrorOf(s.dst.Host, sidecar)}
	if got := images(stored); !maps.Equal(got, want) {
		t.Errorf("stored images are %v, want each swapped exactly once: %v", got, want)
	}
	wantOriginals := map[string]string{"containers/app": s.source(app), "containers/sidecar": s.source(sidecar)}
	if got := recordedOriginals(t, stored); !maps.Equal(got, wantOriginals) {
		t.Errorf("annotation %s records %v, want %v", originalImagesAnnotation, got, wantOriginals)
	}
	// Called once, then again after the injector changed the Pod: the
	// second call is what swapped the sidecar.
	sw.waitMutateCalls(t, before+2)

	t.Run("an update of the labels changes neither images nor annotation", func(t *testing.T) {
		before := sw.mutateCalls(t)
		p := s.storedPod(t, ns, "injected")
		annotation := p.Annotations[originalImagesAnnotation]
		p.Labels["touched"] = "yes"
		updated, err := s.kube.CoreV1().Pods(ns).Update(context.Background(), p, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("updating the labels of Pod %s/%s: %v", ns, p.Name, err)
		}
		sw.waitMutateCalls(t, before+1)
		stored := s.storedPod(t, ns, "injected")
		if stored.Labels["touched"] != "yes" || stored.ResourceVersion != updated.ResourceVersion {
			t.Fatalf("the update was not stored: labels %v", stored.Labels)
		}
		if got := images(stored); !maps.Equal(got, want) {
			t.Errorf("after the update the images are %v, want them unchanged: %v", got, want)
		}
		if got := stored.Annotations[originalImagesAnnotation]; got != annotation {
			t.Errorf("after the update annotation %s is %q, want it unchanged: %q", originalImagesAnnotation, got, annotation)
		}
	})

	t.Run("an update of an image swaps the new image and keeps the other's record", func(t *testing.T) {
		p := s.storedPod(t, ns, "injected")
		for i := range p.Spec.Containers {
			if p.Spec.Containers[i].Name == "app" {
				p.Spec.Containers[i].Image = s.source(app2)
			}
		}
		if _, err := s.kube.CoreV1().Pods(ns).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("updating the image of Pod %s/%s: %v", ns, p.Name, err)
		}
		stored := s.storedPod(t, ns, "injected")
		want := map[string]string{"app": s.mirrorOf(s.dst.Host, app2), "sidecar": s.mirrorOf(s.dst.Host, sidecar)}
		if got := images(stored); !maps.Equal(got, want) {
			t.Errorf("after the image update the images are %v, want %v", got, want)
		}
		wantOriginals := map[string]string{"containers/app": s.source(app2), "containers/sidecar": s.source(sidecar)}
		if got := recordedOriginals(t, stored); !maps.Equal(got, wantOriginals) {
			t.Errorf("annotation %s records %v, want %v", originalImagesAnnotation, got, wantOriginals)
		}
	})
}

func (s *suite) testDryRun(t *testing.T, sw *swapper) {
	const ns = "dry-run"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id, mirrorLabel: "true"})
	path, sentinel := "e2e/dry-run:1.0", "e2e/sentinel:1.0"
	src, dst := s.source(path), s.mirrorOf(s.dst.Host, path)
	seedImage(t, src)
	seedImage(t, s.source(sentinel))

	c := s.createPod(ns, newPod("dry", nil, src), true)
	if c.err != nil {
		t.Fatalf("dry-run creation of a Pod: %v", c.err)
	}
	if got := c.pod.Spec.Containers[0].Image; got != src {
		t.Errorf("the dry run answers image %s; a dry run gets no patch, so want %s", got, src)
	}
	if got := recordedOriginals(t, c.pod); got != nil {
		t.Errorf("the dry run answers a Pod recording originals %v; want no annotation", got)
	}
	expectWarning(t, c.warnings, "dry run", "container app", src, "would be swapped to "+dst)
	_, err := s.kube.CoreV1().Pods(ns).Get(context.Background(), "dry", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("reading the dry-run Pod back: got error %v, want NotFound: a dry run stores nothing", err)
	}

	// A real Pod queues a copy of another image. Once that copy has
	// landed, a copy the dry run had queued (before it) would have too.
	s.mustCreatePod(t, ns, newPod("sentinel", nil, s.source(sentinel)))
	waitForImage(t, s.mirrorOf(s.dst.Host, sentinel))
	if d, err := manifestDigest(t, dst); err == nil {
		t.Errorf("the mirror holds %s (%s) after a dry run: a dry run must not queue a copy", dst, d)
	}
}

func (s *suite) testWait(t *testing.T) {
	sw := s.startSwapper(t, swapperOptions{id: "wait", budget: 8 * time.Second, config: s.config(s.dst.Host, `
  swap: wait
  waitBudget: 6s`, "")})
	const ns, path = "wait", "e2e/wait:1.0"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id})
	src, dst := s.source(path), s.mirrorOf(s.dst.Host, path)
	srcDigest := seedIndex(t, src)
	if _, err := manifestDigest(t, dst); err == nil {
		t.Fatalf("the mirror holds %s before the test copies it", dst)
	}

	c := s.mustCreatePod(t, ns, newPod("first", nil, src))
	stored := s.storedPod(t, ns, "first")
	if got := stored.Spec.Containers[0].Image; got != dst {
		t.Fatalf("with swap: wait the first Pod has image %s, want the mirror %s (warnings %q)", got, dst, c.warnings)
	}
	expectWarning(t, c.warnings, "container app", src+" -> "+dst)
	// The admission waited for the copy, so the mirror has it now.
	got, err := manifestDigest(t, dst)
	if err != nil {
		t.Fatalf("the first Pod was swapped to %s, which the mirror does not have: %v", dst, err)
	}
	if got != srcDigest {
		t.Errorf("the mirror holds %s at %s, the source %s: a copy must keep the digest", dst, got, srcDigest)
	}
}

func (s *suite) testFallback(t *testing.T) {
	target := testenv.StartDockerRegistry(t, testenv.RegistryOptions{AllowDelete: true})
	sw := s.startSwapper(t, swapperOptions{id: "fallback", config: s.config(target.Host, "", "")})
	const ns, path = "fallback", "e2e/fallback:1.0"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id})
	src := s.source(path)
	seedImage(t, src)
	// Its exit status on SIGTERM says nothing; what counts is that it is
	// gone.
	_ = target.Stop()
	fallbacks := sw.metric(t, "image_swapper_fallbacks_total")

	t.Run("the original is kept with a warning when policy allows it", func(t *testing.T) {
		c := s.createPod(ns, newPod("kept", nil, src), false)
		if c.err != nil {
			t.Fatalf("with the target registry down, creating a Pod failed: %v", c.err)
		}
		stored := s.storedPod(t, ns, "kept")
		if got := stored.Spec.Containers[0].Image; got != src {
			t.Errorf("with the target registry down the Pod has image %s, want the original %s", got, src)
		}
		if got := recordedOriginals(t, stored); got != nil {
			t.Errorf("the Pod was not swapped but records originals %v", got)
		}
		w := expectWarning(t, c.warnings, "container app", "kept "+src, "could not be checked")
		t.Logf("kubectl would print: Warning: %s", w)
		if got := sw.metric(t, "image_swapper_fallbacks_total"); got <= fallbacks {
			t.Errorf("image_swapper_fallbacks_total is %v, was %v: the fallback was not counted", got, fallbacks)
		}
	})

	t.Run("the original is denied when only the mirror is allowed", func(t *testing.T) {
		sw.reload(t, s.config(target.Host, "", fmt.Sprintf("policies:\n  allowList: [%q]\n", target.Host+"/*")))
		c := s.createPod(ns, newPod("denied", nil, src), false)
		expectDenied(t, c, "container app", src, "policies.allowList")
		if _, err := s.kube.CoreV1().Pods(ns).Get(context.Background(), "denied", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("reading the denied Pod back: got error %v, want NotFound", err)
		}
	})
}

// expectDenied fails the test unless the API server refused the Pod with
// the message kubectl prints after "Error from server (Forbidden): ",
// naming the validating webhook and each of parts.
func expectDenied(t *testing.T, c created, parts ...string) {
	t.Helper()
	if c.err == nil {
		t.Fatalf("the Pod was created (image %s, warnings %q); want it denied", c.pod.Spec.Containers[0].Image, c.warnings)
	}
	if !apierrors.IsForbidden(c.err) {
		t.Errorf("the API server answered %v, want Forbidden", c.err)
	}
	msg := c.err.Error()
	prefix := fmt.Sprintf("admission webhook %q denied the request: image-swapper: ", validateWebhook)
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("the denial reads %q, want it to begin %q", msg, prefix)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("the denial %q does not name %q", msg, p)
		}
	}
	t.Logf("kubectl would print: Error from server (Forbidden): %s", msg)
}

func (s *suite) testGate(t *testing.T) {
	banned := s.source("e2e/banned/tool:1.0")
	gate := func(mode string) string {
		return s.config(s.dst.Host, "", fmt.Sprintf("policies:\n  denyList: [%q]\n  mode: %s\n", s.source("e2e/banned/*"), mode))
	}
	sw := s.startSwapper(t, swapperOptions{id: "gate", config: gate("enforce")})
	const ns = "gate"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id})
	seedImage(t, banned)
	tool := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "tool", Image: banned}}},
		}
	}

	t.Run("enforce mode denies with the container, the image and the rule", func(t *testing.T) {
		c := s.createPod(ns, tool("enforced"), false)
		expectDenied(t, c, "container tool", banned, "policies.denyList")
		if _, err := s.kube.CoreV1().Pods(ns).Get(context.Background(), "enforced", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("reading the denied Pod back: got error %v, want NotFound", err)
		}
	})

	t.Run("warn mode, hot reloaded, admits with a warning", func(t *testing.T) {
		sw.reload(t, gate("warn"))
		c := s.createPod(ns, tool("warned"), false)
		if c.err != nil {
			t.Fatalf("in warn mode the Pod was refused: %v", c.err)
		}
		s.storedPod(t, ns, "warned")
		w := expectWarning(t, c.warnings, "container tool", banned, "warn mode")
		t.Logf("kubectl would print: Warning: %s", w)
	})

	t.Run("dryRun: true, hot reloaded, denies nothing and says what it would deny", func(t *testing.T) {
		sw.reload(t, "dryRun: true\n"+gate("enforce"))
		c := s.createPod(ns, tool("dry"), false)
		if c.err != nil {
			t.Fatalf("with dryRun: true the Pod was refused: %v", c.err)
		}
		if got := s.storedPod(t, ns, "dry").Spec.Containers[0].Image; got != banned {
			t.Errorf("the stored Pod runs %s, want %s unchanged", got, banned)
		}
		w := expectWarning(t, c.warnings, "dryRun: would deny the Pod", "container tool", banned, "policies.denyList")
		t.Logf("kubectl would print: Warning: %s", w)
		if got := sw.metric(t, "image_swapper_dry_run_decisions_total", `endpoint="validate"`, `would="deny"`); got < 1 {
			t.Errorf("image_swapper_dry_run_decisions_total{endpoint=\"validate\",would=\"deny\"} is %v, want at least 1", got)
		}
	})
}

func (s *suite) testCertRotation(t *testing.T) {
	sw := s.startSwapper(t, swapperOptions{id: "rotate", config: s.config(s.dst.Host, "", "")})
	const ns, path = "rotate", "e2e/rotate:1.0"
	s.namespace(t, ns, map[string]string{serverLabel: sw.id})
	src, dst := s.source(path), s.mirrorOf(s.dst.Host, path)
	seedImage(t, src, dst)

	// Two workers create Pods back to back until told to stop; every
	// creation must succeed and be swapped, which proves that the webhook
	// answered it (failurePolicy is Fail).
	var (
		mu       sync.Mutex
		total    int
		failures []string
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return total }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				c := s.createPod(ns, newPod(name, nil, src), false)
				mu.Lock()
				total++
				switch {
				case c.err != nil:
					failures = append(failures, fmt.Sprintf("%s: %v", name, c.err))
				case c.pod.Spec.Containers[0].Image != dst:
					failures = append(failures, fmt.Sprintf("%s: image %s, want %s (warnings %q)", name, c.pod.Spec.Containers[0].Image, dst, c.warnings))
				}
				mu.Unlock()
			}
		})
	}
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()
	waitCount := func(n int) {
		t.Helper()
		if err := testenv.Eventually(60*time.Second, 20*time.Millisecond, func() error {
			if got := count(); got < n {
				return fmt.Errorf("%d Pods created, waiting for %d", got, n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	waitCount(5)
	old, err := servedSerial(sw.addr, sw.ca)
	if err != nil {
		t.Fatal(err)
	}
	next, err := sw.ca.issue()
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.certs.write(next); err != nil {
		t.Fatalf("rotating the serving certificate: %v", err)
	}
	err = testenv.Eventually(30*time.Second, 50*time.Millisecond, func() error {
		got, err := servedSerial(sw.addr, sw.ca)
		if err != nil {
			return err
		}
		if got.Cmp(next.Serial) != 0 {
			return fmt.Errorf("the server still serves serial %x (the first certificate's is %x), want %x", got, old, next.Serial)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after rotating the certificate files: %v", err)
	}

	// The API server keeps its connections to a webhook open, so on its
	// own it would not make a handshake with the new certificate for a
	// long time. A configuration with another caBundle gets a new client
	// and new connections: the bundle gains a second CA, as the first step
	// of a CA rotation would. The webhooks also select a second namespace,
	// whose Pods show when the API server uses the new configuration.
	const probeNS = "rotate-reconnect"
	s.namespace(t, probeNS, map[string]string{serverLabel: probeNS})
	nextCA, err := newCA()
	if err != nil {
		t.Fatal(err)
	}
	s.updateWebhooks(t, sw, func(cc *admissionregistrationv1.WebhookClientConfig, sel *metav1.LabelSelector) {
		cc.CABundle = append(append([]byte(nil), sw.ca.PEM...), nextCA.PEM...)
		sel.MatchExpressions[0].Values = append(sel.MatchExpressions[0].Values, probeNS)
	})
	err = testenv.Eventually(60*time.Second, 100*time.Millisecond, func() error {
		c := s.createPod(probeNS, newPod("probe", nil, src), true)
		if c.err != nil {
			return c.err
		}
		if _, ok := findWarning(c.warnings, "container app"); !ok {
			return fmt.Errorf("the API server does not use the updated webhook configurations yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keep creating Pods for a while through the new connections.
	waitCount(count() + 10)
	halt()

	t.Logf("%d Pods created during the rotation", total)
	if len(failures) > 0 {
		t.Errorf("%d of %d Pod creations failed or were not swapped during the rotation:\n%s", len(failures), total, strings.Join(failures, "\n"))
	}
	// At least one: a check that stats the files across the swap of ..data
	// loads the new pair, and the next check loads it once more.
	if got := sw.metric(t, "image_swapper_tls_cert_reloads_total", `result="success"`); got < 1 {
		t.Errorf("image_swapper_tls_cert_reloads_total{result=\"success\"} is %v, want at least 1", got)
	}
	if got := sw.metric(t, "image_swapper_tls_cert_reloads_total", `result="failure"`); got != 0 {
		t.Errorf("image_swapper_tls_cert_reloads_total{result=\"failure\"} is %v, want 0: the atomic swap of ..data never shows a mismatched pair", got)
	}
}
