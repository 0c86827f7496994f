package selfsigned_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/image-swapper/image-swapper/internal/selfsigned"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/webhook"
)

// The Source is what the webhook server takes.
var _ webhook.CertificateSource = (*selfsigned.Source)(nil)

// fixture is one test's corner of the control plane: a namespace, the
// webhook configurations (two webhooks each) and a user with exactly the
// RBAC that docs/operations.md documents.
type fixture struct {
	t     *testing.T
	admin kubernetes.Interface
	// kube is a client of the user the Sources run as; userConfig makes
	// more, one per replica, as separate processes would have.
	kube       kubernetes.Interface
	userConfig *rest.Config
	namespace  string
	configName string
	// url is where the webhooks send admissions.
	url string
}

var fixtures atomic.Int64

// newFixture prepares a namespace, the RBAC and a user. Its webhook
// configurations call url; they select ConfigMaps of the namespace only,
// which only the test that serves url creates.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	plane := testenv.SharedControlPlane(t)
	n := fixtures.Add(1)
	f := &fixture{
		t:          t,
		admin:      kubernetes.NewForConfigOrDie(plane.Config()),
		namespace:  fmt.Sprintf("selfsigned-%d", n),
		configName: fmt.Sprintf("image-swapper-%d", n),
		url:        "https://127.0.0.1:9/unused",
	}
	ctx := t.Context()
	if _, err := f.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.kube, f.userConfig = f.user(plane.Env, fmt.Sprintf("image-swapper-%d", n), true)
	return f
}

// replicaClient is a client of its own for the user, as a replica has.
func (f *fixture) replicaClient() kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(rest.CopyConfig(f.userConfig))
}

// user provisions a user with the documented RBAC (or none) and returns
// its client and configuration.
func (f *fixture) user(env *envtest.Environment, name string, granted bool) (kubernetes.Interface, *rest.Config) {
	t := f.t
	t.Helper()
	ctx := t.Context()
	if granted {
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{selfsigned.DefaultSecretName}, Verbs: []string{"get", "update"}},
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
			},
		}
		if _, err := f.admin.RbacV1().Roles(f.namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.namespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
		}
		if _, err := f.admin.RbacV1().RoleBindings(f.namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cr := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules: []rbacv1.PolicyRule{{
				APIGroups:     []string{"admissionregistration.k8s.io"},
				Resources:     []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"},
				ResourceNames: []string{f.configName},
				Verbs:         []string{"get", "list", "watch", "patch"},
			}},
		}
		if _, err := f.admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
		}
		if _, err := f.admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", name, err)
	}
	cfg := u.Config()
	// The client's default rate limit would serialise replicas that
	// share it.
	cfg.QPS, cfg.Burst = 1000, 2000
	return kubernetes.NewForConfigOrDie(cfg), cfg
}

// createConfigs creates the Mutating- and ValidatingWebhookConfiguration,
// two webhooks each, with the given caBundle.
func (f *fixture) createConfigs(caBundle []byte) {
	t := f.t
	t.Helper()
	ctx := t.Context()
	api := f.admin.AdmissionregistrationV1()
	if _, err := api.MutatingWebhookConfigurations().Create(ctx, f.mutatingConfig(caBundle), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, f.validatingConfig(caBundle), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The webhooks fail closed; leave nothing behind that another
		// test could trip on.
		ctx := context.Background()
		_ = api.MutatingWebhookConfigurations().Delete(ctx, f.configName, metav1.DeleteOptions{})
		_ = api.ValidatingWebhookConfigurations().Delete(ctx, f.configName, metav1.DeleteOptions{})
	})
}

func (f *fixture) webhookParts(caBundle []byte) (admissionregistrationv1.WebhookClientConfig, []admissionregistrationv1.RuleWithOperations, *metav1.LabelSelector) {
	cc := admissionregistrationv1.WebhookClientConfig{URL: ptr.To(f.url), CABundle: caBundle}
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: f.namespace}}
	return cc, rules, sel
}

func (f *fixture) mutatingConfig(caBundle []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	cc, rules, sel := f.webhookParts(caBundle)
	c := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: f.configName}}
	for _, name := range []string{"mutate-one.image-swapper.io", "mutate-two.image-swapper.io"} {
		c.Webhooks = append(c.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name: name, ClientConfig: cc, Rules: rules, NamespaceSelector: sel,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return c
}

func (f *fixture) validatingConfig(caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	cc, rules, sel := f.webhookParts(caBundle)
	c := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: f.configName}}
	for _, name := range []string{"validate-one.image-swapper.io", "validate-two.image-swapper.io"} {
		c.Webhooks = append(c.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name: name, ClientConfig: cc, Rules: rules, NamespaceSelector: sel,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return c
}

// options are the Source's options for the fixture, on clock.
func (f *fixture) options(clock *fakeClock) selfsigned.Options {
	return selfsigned.Options{
		Namespace:     f.namespace,
		WebhookConfig: f.configName,
		ExtraNames:    []string{"127.0.0.1"},
		Now:           clock.Now,
		Logger:        slog.New(slog.NewTextHandler(testWriter{f.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start creates a Source with opts.
func (f *fixture) start(opts selfsigned.Options) *selfsigned.Source {
	f.t.Helper()
	src, err := selfsigned.New(f.t.Context(), f.kube, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return src
}

// secret reads the Secret.
func (f *fixture) secret() *corev1.Secret {
	f.t.Helper()
	s, err := f.admin.CoreV1().Secrets(f.namespace).Get(f.t.Context(), selfsigned.DefaultSecretName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// bundles are the caBundles of every webhook, by webhook name.
func (f *fixture) bundles() map[string][]byte {
	f.t.Helper()
	ctx := f.t.Context()
	out := map[string][]byte{}
	m, err := f.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, f.configName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, w := range m.Webhooks {
		out[w.Name] = w.ClientConfig.CABundle
	}
	v, err := f.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, f.configName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, w := range v.Webhooks {
		out[w.Name] = w.ClientConfig.CABundle
	}
	return out
}

// bundleErr says how the webhooks' caBundles differ from want, or nil.
func (f *fixture) bundleErr(want []byte) error {
	got := f.bundles()
	if len(got) != 4 {
		return fmt.Errorf("%d webhooks, want 4", len(got))
	}
	for name, b := range got {
		if !bytes.Equal(b, want) {
			return fmt.Errorf("webhook %s has caBundle with %d certificates %q, want %d certificates %q",
				name, len(parseBundle(f.t, b)), subjects(parseBundle(f.t, b)), len(parseBundle(f.t, want)), subjects(parseBundle(f.t, want)))
		}
	}
	return nil
}

// publishedBundle is the caBundle every webhook has; the test fails if
// they differ.
func (f *fixture) publishedBundle() []byte {
	f.t.Helper()
	var first []byte
	for name, b := range f.bundles() {
		if first == nil {
			first = b
		}
		if !bytes.Equal(b, first) {
			f.t.Fatalf("webhook %s has another caBundle than the others", name)
		}
	}
	return first
}

// serviceName is the name the API server would dial for the Service.
func (f *fixture) serviceName() string {
	return selfsigned.DefaultService + "." + f.namespace + ".svc"
}

// leaf is the certificate src serves.
func leaf(t *testing.T, src *selfsigned.Source) *x509.Certificate {
	t.Helper()
	c, err := src.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func parseBundle(t *testing.T, pemData []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := pemData; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("caBundle certificate %d: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
}

func subjects(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = c.Subject.CommonName
	}
	return out
}

// serveTLS serves handler over TLS with src's certificate on 127.0.0.1
// and returns the address.
func serveTLS(t *testing.T, src *selfsigned.Source, handler http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: src.GetCertificate},
		ErrorLog:          slog.NewLogLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil)).Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// handshake connects to addr trusting bundle, as the API server does, at
// the time now, and returns the certificate the server presented.
func handshake(addr, serverName string, bundle []byte, now time.Time) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("the caBundle holds no certificate")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		RootCAs:    pool,
		ServerName: serverName,
		Time:       func() time.Time { return now },
		MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// admissions answers AdmissionReviews with allowed and counts them.
type admissions struct{ calls atomic.Int64 }

func (a *admissions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "want an AdmissionReview with a request", http.StatusBadRequest)
		return
	}
	a.calls.Add(1)
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

// eventually calls f until it returns nil. It gives up, failing with f's
// last error, shortly before the test binary's own deadline (go test
// -timeout), so that the reason is reported rather than a panic.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}
	var last error
	for {
		if last = f(); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fakeClock is a clock that tests move.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
