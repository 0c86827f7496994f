package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// kubeAccessSetup is a real control plane with two namespaces, one
// labelled for mirroring, and a config that swaps only there. Which
// namespace gets its image swapped shows that serve read the labels from
// that API server.
type kubeAccessSetup struct {
	bin        string
	kubeconfig []byte // the administrator, current-context set
	config     string
	cert, key  string
	on, off    string // namespaces with and without enable-mirroring=true
}

func newKubeAccessSetup(t *testing.T, prefix string) kubeAccessSetup {
	t.Helper()
	cp := testenv.SharedControlPlane(t)
	bin := testenv.ImageSwapper(t)
	user, err := cp.Env.AddUser(envtest.User{Name: prefix + "-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cp.Config())
	s := kubeAccessSetup{bin: bin, kubeconfig: kc, on: prefix + "-on", off: prefix + "-off"}
	for name, labels := range map[string]map[string]string{s.on: {"enable-mirroring": "true"}, s.off: nil} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if _, err := client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s.cert, s.key = writeServingPair(t, dir)
	// Swapping needs no registry with swap: always; the copies it queues
	// fail at once against a closed port and a name that never resolves.
	s.config = filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`sourceRegistries: [src.invalid]
targetRegistry: %s/mirror
mirroring:
  swap: always
  namespaceSelector: {matchLabels: {enable-mirroring: "true"}}
`, closedAddr(t))
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveProcess is image-swapper serve run as a process.
type serveProcess struct {
	addr   string
	client *http.Client
	cmd    *exec.Cmd
	out    *testenv.Buffer
	exited chan struct{}
}

// startServe runs serve with exactly env as its environment (plus PATH),
// and stops it when the test ends.
func (s kubeAccessSetup) startServe(t *testing.T, env []string, args ...string) *serveProcess {
	t.Helper()
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"serve", "--config", s.config, "--listen", addr, "--log-format", "text", "--shutdown-delay", "0s"}
	if !slices.Contains(args, "--self-signed") {
		base = append(base, "--tls-cert", s.cert, "--tls-key", s.key)
	}
	args = append(base, args...)
	p := &serveProcess{addr: addr, out: &testenv.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(s.bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("serve said:\n%s", p.out.Tail())
		}
	})
	pem, err := os.ReadFile(s.cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	p.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return p
}

// waitReady polls /readyz, which answers 200 only once the namespace
// informer has synced with the API server. The bound is generous, for a
// loaded machine; it is not a performance assertion.
func (p *serveProcess) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-p.exited:
			t.Fatalf("serve exited before it was ready:\n%s", p.out.Tail())
		default:
		}
		resp, err := p.client.Get("https://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 2m (last: %v):\n%s", err, p.out.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mutate sends a Pod CREATE for namespace ns and returns the JSON patch.
func (p *serveProcess) mutate(t *testing.T, ns, image string) string {
	t.Helper()
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "11111111-2222-3333-4444-555555555555",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns,
			Name:      "p",
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.client.Post("https://"+p.addr+"/mutate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("/mutate answered %s: %v", resp.Status, err)
	}
	if !out.Response.Allowed {
		t.Fatalf("/mutate refused the Pod: %+v", out.Response.Result)
	}
	return string(out.Response.Patch)
}

// checkSwapsByNamespaceLabels shows that serve knows the namespaces'
// labels, which only the API server it found can tell it.
func (s kubeAccessSetup) checkSwapsByNamespaceLabels(t *testing.T, p *serveProcess) {
	t.Helper()
	const image = "src.invalid/team/app:1.0"
	if patch := p.mutate(t, s.on, image); !strings.Contains(patch, "/mirror/src.invalid/team/app:1.0") {
		t.Errorf("Pod in %s (enable-mirroring=true) not swapped; patch %s", s.on, patch)
	}
	if patch := p.mutate(t, s.off, image); strings.Contains(patch, "/mirror/") {
		t.Errorf("Pod in %s (unlabelled) swapped; patch %s", s.off, patch)
	}
}

// TestServeFindsTheAPIThroughKUBECONFIGAlone runs serve with no
// --kubeconfig, no in-cluster variables and an empty HOME: KUBECONFIG is
// all it has, as for kubectl.
func TestServeFindsTheAPIThroughKUBECONFIGAlone(t *testing.T) {
	s := newKubeAccessSetup(t, "kubeconfig-env")
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, s.kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	// A missing first file is skipped, as client-go skips it.
	list := filepath.Join(t.TempDir(), "missing") + string(os.PathListSeparator) + path
	p := s.startServe(t, []string{"KUBECONFIG=" + list, "HOME=" + t.TempDir()})
	p.waitReady(t)
	s.checkSwapsByNamespaceLabels(t, p)
	if logs := p.out.String(); !strings.Contains(logs, "using the Kubernetes API") || !strings.Contains(logs, "KUBECONFIG="+list) {
		t.Errorf("serve does not log where it found the API:\n%s", logs)
	}
}

// TestServeContextFlagPicksTheContext gives serve a kubeconfig whose
// current-context points at a port nothing listens on; --context selects
// the live one.
func TestServeContextFlagPicksTheContext(t *testing.T) {
	s := newKubeAccessSetup(t, "kubeconfig-context")
	cfg, err := clientcmd.Load(s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	live := cfg.CurrentContext
	liveCtx := cfg.Contexts[live]
	if liveCtx == nil {
		t.Fatalf("envtest's kubeconfig has no context %q", live)
	}
	cfg.Clusters["dead"] = &clientcmdapi.Cluster{Server: "https://" + closedAddr(t), CertificateAuthorityData: cfg.Clusters[liveCtx.Cluster].CertificateAuthorityData}
	cfg.Contexts["dead"] = &clientcmdapi.Context{Cluster: "dead", AuthInfo: liveCtx.AuthInfo}
	cfg.CurrentContext = "dead"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + path, "HOME=" + t.TempDir()}

	// The dead context is what serve would use without --context.
	t.Setenv("KUBECONFIG", path)
	rc, _, err := (&kubeFlags{}).access().restConfig()
	if err != nil || rc.Host != cfg.Clusters["dead"].Server {
		t.Fatalf("without --context: %v, %v; want the dead cluster %s", rc, err, cfg.Clusters["dead"].Server)
	}

	p := s.startServe(t, env, "--context", live)
	p.waitReady(t)
	s.checkSwapsByNamespaceLabels(t, p)
}

// TestServeSelfSignedRotatesOnTheLeaseHolder: with --self-signed, the
// replica holding the leader Lease keeps the webhook configurations'
// caBundle current (a blanked bundle is put back); when it stops, the
// other replica takes the Lease and the rotation with it. Both serve the
// Secret's certificate.
func TestServeSelfSignedRotatesOnTheLeaseHolder(t *testing.T) {
	s := newKubeAccessSetup(t, "selfsigned")
	client := kubernetes.NewForConfigOrDie(testenv.SharedControlPlane(t).Config())
	ctx := context.Background()
	// The configurations exist and are served, as the chart makes them; no
	// object ever matches their selector.
	name := "image-swapper-" + s.on
	none := &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matched"}}
	url := "https://127.0.0.1:1/mutate"
	side := admissionregistrationv1.SideEffectClassNone
	ignore := admissionregistrationv1.Ignore
	cc, versions := admissionregistrationv1.WebhookClientConfig{URL: &url}, []string{"v1"}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "mutate.image-swapper.io", ClientConfig: cc, AdmissionReviewVersions: versions,
			SideEffects: &side, FailurePolicy: &ignore, ObjectSelector: none}}}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "validate.image-swapper.io", ClientConfig: cc, AdmissionReviewVersions: versions,
			SideEffects: &side, FailurePolicy: &ignore, ObjectSelector: none}}}
	api := client.AdmissionregistrationV1()
	if _, err := api.MutatingWebhookConfigurations().Create(ctx, mutating, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, validating, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeTestFile(t, kubeconfig, string(s.kubeconfig))
	env := []string{"KUBECONFIG=" + kubeconfig, "HOME=" + t.TempDir()}
	args := []string{"--self-signed", "--namespace", s.on, "--self-signed-dns", "127.0.0.1", "--webhook-config", name,
		"--self-signed-secret", "tls", "--leader-lease", "leader"}

	published := func() (mutatingBundle, validatingBundle []byte) {
		m, err := api.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := api.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle
	}
	holder := func() string {
		l, err := client.CoordinationV1().Leases(s.on).Get(ctx, "leader", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	// trust makes p's client trust the Secret's CA, and waits until p is
	// ready through it.
	var bundle []byte
	trust := func(p *serveProcess) {
		t.Helper()
		testenv.WaitFor(t, "the Secret", time.Minute, func() bool {
			sec, err := client.CoreV1().Secrets(s.on).Get(ctx, "tls", metav1.GetOptions{})
			if err != nil {
				return false
			}
			bundle = sec.Data["ca.crt"]
			return len(bundle) > 0
		})
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(bundle) {
			t.Fatalf("the Secret's ca.crt holds no certificate: %q", bundle)
		}
		p.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		p.waitReady(t)
	}
	// restored blanks the mutating configuration's caBundle and waits for
	// the Lease holder to put it back.
	restored := func(by string) {
		t.Helper()
		m, err := api.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.Webhooks[0].ClientConfig.CABundle = nil
		if _, err := api.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "the caBundle put back by "+by, time.Minute, func() bool {
			mb, _ := published()
			return bytes.Equal(mb, bundle)
		})
	}

	a := s.startServe(t, env, args...)
	trust(a)
	testenv.WaitFor(t, "replica a holds the Lease", time.Minute, func() bool { return holder() != "" })
	first := holder()
	b := s.startServe(t, env, args...)
	trust(b)
	if mb, vb := published(); !bytes.Equal(mb, bundle) || !bytes.Equal(vb, bundle) {
		t.Fatalf("the configurations carry %d and %d bytes of caBundle, want the Secret's ca.crt (%d bytes)", len(mb), len(vb), len(bundle))
	}
	restored("replica a")
	if got := holder(); got != first {
		t.Fatalf("the Lease moved from %s to %s while replica a ran", first, got)
	}

	// SIGTERM releases the Lease; b takes it and keeps the bundle.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	testenv.WaitFor(t, "replica b takes the Lease", time.Minute, func() bool { h := holder(); return h != "" && h != first })
	restored("replica b")
	if !strings.Contains(b.out.String(), "leading") {
		t.Errorf("replica b's log does not say it leads:\n%s", b.out.Tail())
	}
	// b still serves the Secret's certificate through the new bundle.
	resp, err := b.client.Get("https://" + b.addr + "/readyz")
	if err != nil {
		t.Fatalf("replica b through the Secret's CA: %v", err)
	}
	resp.Body.Close()
}
