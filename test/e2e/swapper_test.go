package e2e_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// Labels the tests put on namespaces and Pods.
const (
	// serverLabel on a namespace names the image-swapper process whose
	// webhook configurations see it, so that scenarios stay apart.
	serverLabel = "e2e.image-swapper.io/server"
	// mirrorLabel on a namespace is what the main configuration's
	// mirroring.namespaceSelector selects.
	mirrorLabel = "e2e.image-swapper.io/mirror"
	// optOutLabel is the per-Pod opt-out, with the value "disabled".
	optOutLabel = "image-swapper.io/swap"
)

// Webhook names as the API server's messages quote them.
const (
	mutateWebhook   = "mutate.image-swapper.io"
	validateWebhook = "validate.image-swapper.io"
)

// swapper is one `image-swapper serve` process, registered with the API
// server through its own webhook configurations.
type swapper struct {
	id         string
	addr       string
	ca         *testCA
	certs      *certDir
	configPath string
	proc       *testenv.Process
	client     *http.Client
	// probeNamespace is selected by this server's webhooks and swapped in
	// by its configurations; startSwapper's readiness probe uses it.
	probeNamespace string
}

// swapperOptions configure startSwapper.
type swapperOptions struct {
	// id names the webhook configurations and the serverLabel value;
	// short, lower case.
	id string
	// config is the configuration file's content.
	config string
	// budget is --admission-budget; the webhooks' timeoutSeconds is one
	// second more.
	budget time.Duration
	// env is added to the process's environment ("KEY=value").
	env []string
}

// startSwapper starts image-swapper serve on 127.0.0.1 with a serving
// certificate from a new CA, waits until /readyz says ready, registers its
// webhook configurations and waits until the API server calls them. The
// process and the configurations go away when the test ends.
func (s *suite) startSwapper(t *testing.T, opts swapperOptions) *swapper {
	t.Helper()
	if opts.budget == 0 {
		opts.budget = 8 * time.Second
	}
	began := time.Now()
	ca, err := newCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.issue()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	certs, err := newCertDir(filepath.Join(dir, "tls"), cert)
	if err != nil {
		t.Fatal(err)
	}
	sw := &swapper{
		id:             opts.id,
		ca:             ca,
		certs:          certs,
		configPath:     filepath.Join(dir, "config.yaml"),
		probeNamespace: opts.id + "-probe",
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}},
		},
	}
	if err := os.WriteFile(sw.configPath, []byte(opts.config), 0o600); err != nil {
		t.Fatal(err)
	}

	// The port is free when chosen but may be taken before the server
	// binds it; a server that exits at once is started elsewhere.
	var lastErr error
	for range 3 {
		if lastErr = sw.start(t, s, opts); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatal(lastErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("image-swapper %s said:\n%s", sw.id, sw.proc.Logs())
		}
		// A clean exit on SIGTERM is part of the contract (in-flight
		// requests drained, background work stopped).
		if err := sw.proc.Stop(30 * time.Second); err != nil {
			t.Errorf("image-swapper %s did not shut down cleanly on SIGTERM: %v\n%s", sw.id, err, sw.proc.Logs())
		}
	})

	// Registered after the process's cleanup, so removed before it stops:
	// the API server must not call a server that is gone.
	s.registerWebhooks(t, sw, opts)
	s.namespace(t, sw.probeNamespace, map[string]string{serverLabel: sw.id, mirrorLabel: "true"})
	sw.waitCalled(t, s)
	t.Logf("image-swapper %s on %s: called by the API server %s after its start", sw.id, sw.addr, time.Since(began).Round(time.Millisecond))
	return sw
}

// stateEnv points XDG_STATE_HOME, and so the default SQLite ledger, at
// the server's own directory.
func (sw *swapper) stateEnv() string {
	return "XDG_STATE_HOME=" + filepath.Dir(sw.configPath)
}

// start starts the process and waits until it is ready.
func (sw *swapper) start(t *testing.T, s *suite, opts swapperOptions) error {
	addr, err := testenv.FreeAddr()
	if err != nil {
		return err
	}
	// Each server keeps its ledger (SQLite) beside its configuration.
	proc, err := testenv.StartProcessWithEnv("image-swapper serve "+sw.id, s.binary, append([]string{sw.stateEnv()}, opts.env...), "serve",
		"--config", sw.configPath,
		"--listen", addr,
		"--tls-cert", sw.certs.CertFile(),
		"--tls-key", sw.certs.KeyFile(),
		"--kubeconfig", s.kubeconfig,
		"--namespace", serverNamespace,
		"--admission-budget", opts.budget.String(),
		"--log-format", "text",
		// Nothing routes to this server but the webhook configurations,
		// which are gone before it stops.
		"--shutdown-delay", "0s",
	)
	if err != nil {
		return err
	}
	sw.addr, sw.proc = addr, proc
	err = testenv.Eventually(60*time.Second, 100*time.Millisecond, func() error {
		if !proc.Running() {
			return errors.New("exited")
		}
		resp, err := sw.client.Get("https://" + addr + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	})
	if err != nil {
		_ = proc.Stop(10 * time.Second)
		return fmt.Errorf("image-swapper serve on %s not ready: %w\nits output:\n%s", addr, err, proc.Logs())
	}
	return nil
}

// registerWebhooks creates the server's Mutating- and
// ValidatingWebhookConfiguration, as a release would, pointing at
// https://127.0.0.1:PORT with the CA as caBundle. They select the
// namespaces labelled for this server, except the server's own namespace.
func (s *suite) registerWebhooks(t *testing.T, sw *swapper, opts swapperOptions) {
	t.Helper()
	ctx := context.Background()
	name := "e2e-" + sw.id + "-image-swapper"
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{""},
			APIVersions: []string{"v1"},
			Resources:   []string{"pods"},
			Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}}
	namespaces := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: serverLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{sw.id}},
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{serverNamespace}},
	}}
	timeout := ptr.To(int32(opts.budget/time.Second) + 1)
	// Fail, so that a webhook that cannot be called fails the Pod and the
	// test, rather than letting it through unchanged.
	failure := ptr.To(admissionregistrationv1.Fail)
	// Copies queued at admission are side effects a dry run must not have.
	sideEffects := ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun)

	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    mutateWebhook,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://" + sw.addr + "/mutate"), CABundle: sw.ca.PEM},
			Rules:                   rules,
			FailurePolicy:           failure,
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       namespaces,
			SideEffects:             sideEffects,
			TimeoutSeconds:          timeout,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
	if _, err := s.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mutating, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering the mutating webhook: %v", err)
	}
	t.Cleanup(func() {
		if err := s.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting MutatingWebhookConfiguration %s: %v", name, err)
		}
	})
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    validateWebhook,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://" + sw.addr + "/validate"), CABundle: sw.ca.PEM},
			Rules:                   rules,
			FailurePolicy:           failure,
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       namespaces,
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun),
			TimeoutSeconds:          timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := s.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, validating, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering the validating webhook: %v", err)
	}
	t.Cleanup(func() {
		if err := s.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting ValidatingWebhookConfiguration %s: %v", name, err)
		}
	})
}

// waitCalled waits until the API server calls both webhooks: it picks up
// new configurations asynchronously. The probe is a dry run, which stores
// nothing and copies nothing, in a namespace where the configuration
// swaps; the mutating webhook answers it with a "would be swapped"
// warning, and the validating webhook shows in the server's metrics.
func (sw *swapper) waitCalled(t *testing.T, s *suite) {
	t.Helper()
	probe := newPod("probe", nil, s.source("e2e/probe:1.0"))
	err := testenv.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		c := s.createPod(sw.probeNamespace, probe, true)
		if c.err != nil {
			return c.err
		}
		if _, ok := findWarning(c.warnings, "would be swapped"); !ok {
			return fmt.Errorf("the mutating webhook is not called yet (warnings %q)", c.warnings)
		}
		if n := sw.metric(t, "image_swapper_admission_duration_seconds_count", `endpoint="validate"`); n == 0 {
			return errors.New("the validating webhook is not called yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the API server does not call image-swapper %s: %v", sw.id, err)
	}
}

// metric sums the samples of the metric name whose labels include every
// one of labels (written as in the exposition format: `result="success"`).
func (sw *swapper) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := sw.client.Get("https://" + sw.addr + "/metrics")
	if err != nil {
		t.Fatalf("reading /metrics of image-swapper %s: %v", sw.id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reading /metrics of image-swapper %s: %s", sw.id, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := cutLast(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labelSet, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(labelSet, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("/metrics of image-swapper %s: line %q: %v", sw.id, line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading /metrics of image-swapper %s: %v", sw.id, err)
	}
	return sum
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// reload replaces the configuration file (atomically, as a ConfigMap
// update does) and waits until the server has loaded it, which its
// config-reload metric says.
func (sw *swapper) reload(t *testing.T, config string) {
	t.Helper()
	okBefore := sw.metric(t, "image_swapper_config_reloads_total", `result="success"`)
	failedBefore := sw.metric(t, "image_swapper_config_reloads_total", `result="failure"`)
	tmp := sw.configPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, sw.configPath); err != nil {
		t.Fatal(err)
	}
	err := testenv.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		if sw.metric(t, "image_swapper_config_reloads_total", `result="failure"`) > failedBefore {
			return errors.New("the server rejected the new configuration")
		}
		if sw.metric(t, "image_swapper_config_reloads_total", `result="success"`) <= okBefore {
			return errors.New("the server has not reloaded its configuration")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reloading the configuration of image-swapper %s: %v\nits output:\n%s", sw.id, err, sw.proc.Logs())
	}
}

// updateWebhooks applies change to the client configuration and namespace
// selector of both of sw's webhooks.
func (s *suite) updateWebhooks(t *testing.T, sw *swapper, change func(*admissionregistrationv1.WebhookClientConfig, *metav1.LabelSelector)) {
	t.Helper()
	ctx := context.Background()
	name := "e2e-" + sw.id + "-image-swapper"
	mutating, err := s.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range mutating.Webhooks {
		change(&mutating.Webhooks[i].ClientConfig, mutating.Webhooks[i].NamespaceSelector)
	}
	if _, err := s.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mutating, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating MutatingWebhookConfiguration %s: %v", name, err)
	}
	validating, err := s.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range validating.Webhooks {
		change(&validating.Webhooks[i].ClientConfig, validating.Webhooks[i].NamespaceSelector)
	}
	if _, err := s.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, validating, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating ValidatingWebhookConfiguration %s: %v", name, err)
	}
}
