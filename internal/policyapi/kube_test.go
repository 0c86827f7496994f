package policyapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/testenv"
	"github.com/image-swapper/image-swapper/internal/webhook"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installed is the control plane with the chart's CRDs, installed once
// per process.
var installed struct {
	once sync.Once
	took time.Duration
	err  error
}

// cluster returns clients of the shared control plane, with the CRDs the
// chart ships installed and established.
func cluster(t *testing.T) (*rest.Config, dynamic.Interface, kubernetes.Interface) {
	t.Helper()
	cp := testenv.SharedControlPlane(t)
	cfg := cp.Config()
	dyn := dynamic.NewForConfigOrDie(cfg)
	kube := kubernetes.NewForConfigOrDie(cfg)
	installed.once.Do(func() {
		start := time.Now()
		installed.err = testenv.InstallChartCRDs(cfg)
		installed.took = time.Since(start)
	})
	if installed.err != nil {
		t.Fatal(installed.err)
	}
	return cfg, dyn, kube
}

func namespace(t *testing.T, kube kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func create(ctx context.Context, dyn dynamic.Interface, obj any) (*unstructured.Unstructured, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		var err error
		if u, err = ToUnstructured(obj); err != nil {
			return nil, err
		}
		delete(u.Object, "status")
	}
	if u.GetNamespace() == "" {
		return dyn.Resource(ClusterImagePolicies).Create(ctx, u, metav1.CreateOptions{})
	}
	return dyn.Resource(ImagePolicies).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
}

func imagePolicy(ns, name string, spec ImagePolicySpec) *ImagePolicy {
	return &ImagePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: APIVersion, Kind: KindImagePolicy},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       spec,
	}
}

func clusterImagePolicy(t *testing.T, dyn dynamic.Interface, name string, spec ClusterImagePolicySpec) *ClusterImagePolicy {
	t.Helper()
	t.Cleanup(func() {
		_ = dyn.Resource(ClusterImagePolicies).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return &ClusterImagePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: APIVersion, Kind: KindClusterImagePolicy},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
}

func TestCRDsInstall(t *testing.T) {
	_, dyn, _ := cluster(t)
	t.Logf("CRDs installed and served in %s", installed.took)
	for _, name := range []string{"imagepolicies." + Group, "clusterimagepolicies." + Group} {
		crd, err := dyn.Resource(crdResource).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		established := slices.ContainsFunc(conds, func(c any) bool {
			m, _ := c.(map[string]any)
			return m["type"] == "Established" && m["status"] == "True"
		})
		if !established {
			t.Errorf("%s is not established: %v", name, conds)
		}
	}
}

func TestCELValidation(t *testing.T) {
	_, dyn, kube := cluster(t)
	ctx := context.Background()
	ns := namespace(t, kube, "cel")
	cases := []struct {
		name string
		obj  any
		want string // "" for accepted
	}{
		{"an exception without expiry is rejected", imagePolicy(ns, "no-expiry", ImagePolicySpec{Exceptions: []Exception{{ID: "CVE-2024-1", Reason: "r"}}}), "an exception needs an expiry date"},
		{"an exception with a bad date is rejected", imagePolicy(ns, "bad-date", ImagePolicySpec{Exceptions: []Exception{{ID: "CVE-2024-1", Expires: "31.12.2099", Reason: "r"}}}), "must be a date YYYY-MM-DD"},
		{"an exception on a wildcard id is rejected", imagePolicy(ns, "wild-id", ImagePolicySpec{Exceptions: []Exception{{ID: "CVE-*", Expires: "2099-12-31", Reason: "r"}}}), "without whitespace or wildcards"},
		{"an exception with a blank reason is rejected", imagePolicy(ns, "blank-reason", ImagePolicySpec{Exceptions: []Exception{{ID: "CVE-2024-1", Expires: "2099-12-31", Reason: "  "}}}), "must say why"},
		{"a pattern with whitespace is rejected", imagePolicy(ns, "space", ImagePolicySpec{DenyList: []string{"docker.io/a b"}}), "must not contain whitespace"},
		{"an unknown mode is rejected", imagePolicy(ns, "mode", ImagePolicySpec{Mode: "strict"}), `Unsupported value: "strict"`},
		{"an unknown swap policy is rejected", imagePolicy(ns, "swap", ImagePolicySpec{Swap: "never"}), `Unsupported value: "never"`},
		{"a valid ImagePolicy is accepted", imagePolicy(ns, "valid", ImagePolicySpec{
			AllowList: []string{"docker.io/library/*"}, DenyList: []string{"*:debug"}, Mode: config.ModeEnforce, Swap: config.SwapWait,
			Exceptions: []Exception{{ID: "CVE-2024-6119", Images: []string{"nginx"}, Expires: "2099-12-31", Reason: "TICKET-1"}},
		}), ""},
		{"a rule with two matchers is rejected", clusterImagePolicy(t, dyn, "cel-two-matchers", ClusterImagePolicySpec{Rules: []config.Rule{{Image: "nginx", Repository: "docker.io/x/*", Action: config.ActionKeep}}}), "at most one of image, repository and registry"},
		{"a swap rule without target is rejected", clusterImagePolicy(t, dyn, "cel-no-target", ClusterImagePolicySpec{Rules: []config.Rule{{Registry: "quay.io", Action: config.ActionSwap}}}), "target is required when action is swap"},
		{"an ignore entry without expiry is rejected", clusterImagePolicy(t, dyn, "cel-ignore", ClusterImagePolicySpec{Security: SecurityPolicy{Scanning: ScanningPolicy{Ignore: []config.IgnoreEntry{{ID: "CVE-1", Reason: "r"}}}}}), "an ignore entry needs an expiry date"},
		{"a bad severity is rejected", clusterImagePolicy(t, dyn, "cel-severity", ClusterImagePolicySpec{Security: SecurityPolicy{Scanning: ScanningPolicy{Severity: "SEVERE"}}}), "must be one of UNKNOWN"},
		{"a valid ClusterImagePolicy is accepted", clusterImagePolicy(t, dyn, "cel-valid", ClusterImagePolicySpec{
			Rules:    []config.Rule{{Name: "no-evil", Repository: "docker.io/evil/*", Action: config.ActionDeny, Mode: config.ModeWarn, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}},
			Policies: config.Policies{DenyList: []string{"*:debug"}, Mode: config.ModeEnforce},
			Security: SecurityPolicy{Scanning: ScanningPolicy{Severity: "high", Ignore: []config.IgnoreEntry{{ID: "CVE-1", Namespaces: []string{"team-*"}, Expires: "2099-01-01", Reason: "r"}}}},
		}), ""},
	}
	// As kubectl sends it, written by hand without the key.
	var raw unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(`
apiVersion: policy.image-swapper.io/v1alpha1
kind: ImagePolicy
metadata: {name: no-expiry-key, namespace: `+ns+`}
spec:
  exceptions:
    - {id: CVE-2024-1, reason: "TICKET-1"}
`), &raw.Object); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name string
		obj  any
		want string
	}{"an exception without the expires key is rejected", &raw, "an exception needs an expiry date"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := create(ctx, dyn, tc.obj)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted; want rejected with %q", tc.want)
			case tc.want != "" && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("rejected with %v; want Invalid saying %q", err, tc.want)
			}
		})
	}
}

// chartRoles are the aggregated ClusterRoles of the chart's
// policies-rbac.yaml, with the template directives removed (the roles
// hold none but the name and the common labels).
func chartRoles(t *testing.T) []rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile("../../deploy/helm/image-swapper/templates/policies-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "{{ $fullname }}", "policies-test")
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, "{{") {
			kept = append(kept, line)
		}
	}
	var roles []rbacv1.ClusterRole
	for _, doc := range regexp.MustCompile(`(?m)^---$`).Split(strings.Join(kept, "\n"), -1) {
		var r rbacv1.ClusterRole
		if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatalf("policies-rbac.yaml: %v\n%s", err, doc)
		}
		if r.Kind == "ClusterRole" && r.Labels != nil {
			roles = append(roles, r)
		}
	}
	if len(roles) != 2 {
		t.Fatalf("policies-rbac.yaml has %d aggregated ClusterRoles; want 2 (edit and view)", len(roles))
	}
	return roles
}

// aggregate does what kube-controller-manager's clusterrole-aggregation
// controller does (no controller-manager runs here): it sets the rules of
// each ClusterRole with an aggregationRule to those of the ClusterRoles
// its selectors match, until nothing changes (view is part of edit, edit
// of admin).
func aggregate(t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	for range 3 {
		roles, err := kube.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range roles.Items {
			if r.AggregationRule == nil || !slices.Contains([]string{"admin", "edit", "view"}, r.Name) {
				continue
			}
			var rules []rbacv1.PolicyRule
			for _, sel := range r.AggregationRule.ClusterRoleSelectors {
				matched, err := kube.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(&sel)})
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range matched.Items {
					for _, rule := range m.Rules {
						if !slices.ContainsFunc(rules, func(x rbacv1.PolicyRule) bool { return equalRules(x, rule) }) {
							rules = append(rules, rule)
						}
					}
				}
			}
			r.Rules = rules
			if _, err := kube.RbacV1().ClusterRoles().Update(ctx, &r, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func equalRules(a, b rbacv1.PolicyRule) bool {
	return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs) &&
		slices.Equal(a.ResourceNames, b.ResourceNames) && slices.Equal(a.NonResourceURLs, b.NonResourceURLs)
}

func bind(t *testing.T, kube kubernetes.Interface, ns, role, user string) {
	t.Helper()
	_, err := kube.RbacV1().RoleBindings(ns).Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func as(t *testing.T, cfg *rest.Config, user string) dynamic.Interface {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	return dynamic.NewForConfigOrDie(c)
}

func TestNamespaceAdminsManageTheirImagePoliciesOnly(t *testing.T) {
	cfg, dyn, kube := cluster(t)
	ctx := context.Background()
	for _, r := range chartRoles(t) {
		t.Cleanup(func() { _ = kube.RbacV1().ClusterRoles().Delete(context.Background(), r.Name, metav1.DeleteOptions{}) })
		if _, err := kube.RbacV1().ClusterRoles().Create(ctx, &r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	aggregate(t, kube)
	a, b := namespace(t, kube, "team-a"), namespace(t, kube, "team-b")
	bind(t, kube, a, "admin", "alice")
	bind(t, kube, a, "view", "victor")
	alice, victor := as(t, cfg, "alice"), as(t, cfg, "victor")

	spec := ImagePolicySpec{DenyList: []string{"docker.io/library/busybox"}}
	created, err := create(ctx, alice, imagePolicy(a, "strict", spec))
	if err != nil {
		t.Fatalf("alice, admin of %s, cannot create an ImagePolicy there: %v", a, err)
	}
	if _, err := create(ctx, alice, imagePolicy(b, "strict", spec)); !apierrors.IsForbidden(err) {
		t.Errorf("alice created an ImagePolicy in %s, where she is nobody: %v", b, err)
	}
	if _, err := create(ctx, alice, clusterImagePolicy(t, dyn, "alice-was-here", ClusterImagePolicySpec{AllowNamespaceExceptions: true})); !apierrors.IsForbidden(err) {
		t.Errorf("alice created a ClusterImagePolicy: %v", err)
	}
	created.Object["status"] = map[string]any{"observedGeneration": int64(99)}
	if _, err := alice.Resource(ImagePolicies).Namespace(a).UpdateStatus(ctx, created, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice wrote the status of her ImagePolicy, which only the server may: %v", err)
	}
	if _, err := victor.Resource(ImagePolicies).Namespace(a).Get(ctx, "strict", metav1.GetOptions{}); err != nil {
		t.Errorf("victor, viewer of %s, cannot read its ImagePolicy: %v", a, err)
	}
	if _, err := create(ctx, victor, imagePolicy(a, "victor", spec)); !apierrors.IsForbidden(err) {
		t.Errorf("victor, viewer only, created an ImagePolicy: %v", err)
	}
	if err := alice.Resource(ImagePolicies).Namespace(a).Delete(ctx, "strict", metav1.DeleteOptions{}); err != nil {
		t.Errorf("alice cannot delete her ImagePolicy: %v", err)
	}
}

// condition returns the condition typ of the object's status.
func condition(u *unstructured.Unstructured, typ string) (metav1.Condition, int64, bool) {
	s, _ := fromUnstructured[Status](&unstructured.Unstructured{Object: statusOf(u)})
	for _, c := range s.Conditions {
		if c.Type == typ {
			return c, s.ObservedGeneration, true
		}
	}
	return metav1.Condition{}, s.ObservedGeneration, false
}

// eventually polls check every 20ms for up to 10s and returns how long it
// took to succeed.
func eventually(t *testing.T, what string, check func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < 10*time.Second {
		ok, why := check()
		if ok {
			return time.Since(start)
		}
		last = why
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 10s (last: %s)", what, last)
	return 0
}

// startWatcher runs a watcher over base until the test ends, writing the
// statuses too, as the Lease holder does.
func startWatcher(t *testing.T, dyn dynamic.Interface, kube kubernetes.Interface, base *engine.Engine) *Watcher {
	t.Helper()
	w := NewWatcher(dyn, kube.Discovery(), WatcherOptions{DiscoveryInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	current := func() *engine.Engine { return base }
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx, current) })
	wg.Go(func() { w.WriteStatuses(ctx, current) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

func TestImagePolicyTakesEffectWithinSeconds(t *testing.T) {
	_, dyn, kube := cluster(t)
	ctx := context.Background()
	base, err := engine.New(baseConfig(t, mirrorConfig+scanningConfig))
	if err != nil {
		t.Fatal(err)
	}
	w := startWatcher(t, dyn, kube, base)
	eventually(t, "the watcher syncs", func() (bool, string) { return w.HasSynced(), "not synced" })

	a, b := namespace(t, kube, "fast-a"), namespace(t, kube, "fast-b")
	denied := func(ns, image string) bool { return decide(w.Engine(base, ns), ns, image).Denied() }
	if denied(a, "busybox:1.36") {
		t.Fatal("busybox is denied before any ImagePolicy")
	}
	start := time.Now()
	if _, err := create(ctx, dyn, imagePolicy(a, "strict", ImagePolicySpec{
		DenyList:   []string{"docker.io/library/busybox"},
		Exceptions: []Exception{{ID: "CVE-2027-0001", Expires: "2099-12-31", Reason: "TICKET-1"}},
	})); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "the ImagePolicy denies busybox in its namespace", func() (bool, string) {
		return denied(a, "busybox:1.36"), "admitted"
	})
	t.Logf("ImagePolicy in force %s after its create returned (%s after the create started)", took, time.Since(start))
	if denied(b, "busybox:1.36") {
		t.Error("the ImagePolicy of one namespace denies in another")
	}

	get := func() *unstructured.Unstructured {
		u, err := dyn.Resource(ImagePolicies).Namespace(a).Get(ctx, "strict", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	took = eventually(t, "its status says Ready and why its exceptions are refused", func() (bool, string) {
		u := get()
		ready, gen, _ := condition(u, ConditionReady)
		exc, _, _ := condition(u, ConditionExceptionsAccepted)
		return ready.Status == metav1.ConditionTrue && gen == u.GetGeneration() && ready.ObservedGeneration == gen &&
			exc.Status == metav1.ConditionFalse && exc.Reason == ReasonNamespaceExceptionsNotAllowed, fmt.Sprintf("%v", u.Object["status"])
	})
	t.Logf("status written %s later", took)

	// A ClusterImagePolicy that allows namespace exceptions: the status
	// follows, and so does the vulnerability gate.
	f := findings{id: "CVE-2027-0001"}
	if !scanDecision(w.Engine(base, a), a, "ghcr.io/org/app:1", f).Denied() {
		t.Fatal("a refused exception applies")
	}
	if _, err := create(ctx, dyn, clusterImagePolicy(t, dyn, "fast-exceptions", ClusterImagePolicySpec{AllowNamespaceExceptions: true})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the exception applies once a ClusterImagePolicy allows it", func() (bool, string) {
		d := scanDecision(w.Engine(base, a), a, "ghcr.io/org/app:1", f)
		return !d.Denied(), d.LastReason()
	})
	eventually(t, "the status says the exceptions are accepted", func() (bool, string) {
		exc, _, _ := condition(get(), ConditionExceptionsAccepted)
		return exc.Status == metav1.ConditionTrue && exc.Reason == ReasonAllowedByClusterPolicy, exc.Message
	})
	if scanDecision(w.Engine(base, b), b, "ghcr.io/org/app:1", f).Denied() == false {
		t.Error("team a's exception applies in namespace b")
	}

	// An update is followed too, with its generation in the status.
	u := get()
	if err := unstructured.SetNestedStringSlice(u.Object, []string{"docker.io/library/alpine"}, "spec", "denyList"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(ImagePolicies).Namespace(a).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the update takes effect", func() (bool, string) {
		return denied(a, "alpine:3.20") && !denied(a, "busybox:1.36"), "not yet"
	})
	eventually(t, "the status observes generation 2", func() (bool, string) {
		ready, gen, _ := condition(get(), ConditionReady)
		return gen == 2 && ready.ObservedGeneration == 2, fmt.Sprintf("generation %d", gen)
	})
	if err := dyn.Resource(ImagePolicies).Namespace(a).Delete(ctx, "strict", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the delete takes effect", func() (bool, string) { return !denied(a, "alpine:3.20"), "still denied" })
}

func TestInvalidObjectsSayWhyInTheirStatus(t *testing.T) {
	_, dyn, kube := cluster(t)
	ctx := context.Background()
	base, err := engine.New(baseConfig(t, mirrorConfig))
	if err != nil {
		t.Fatal(err)
	}
	startWatcher(t, dyn, kube, base)
	// CEL cannot see that a CEL condition does not compile; the server can.
	if _, err := create(ctx, dyn, clusterImagePolicy(t, dyn, "bad-condition", ClusterImagePolicySpec{
		Rules: []config.Rule{{Registry: "quay.io", Action: config.ActionDeny, Condition: "namespace.nope("}},
	})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ClusterImagePolicy is not accepted, and says why", func() (bool, string) {
		u, err := dyn.Resource(ClusterImagePolicies).Get(ctx, "bad-condition", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		acc, _, _ := condition(u, ConditionAccepted)
		ready, _, _ := condition(u, ConditionReady)
		return acc.Status == metav1.ConditionFalse && acc.Reason == ReasonInvalid && strings.Contains(acc.Message, "spec.rules[0]") &&
			ready.Status == metav1.ConditionFalse, acc.Message
	})
}

// admissionReview is a Pod CREATE in namespace ns running image.
func admissionReview(t *testing.T, ns, image string) []byte {
	t.Helper()
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "00000000-0000-0000-0000-000000000001",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Name: "p", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func validate(t *testing.T, h http.Handler, ns, image string) *admissionv1.AdmissionResponse {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(admissionReview(t, ns, image)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("/validate answered %d: %s", rec.Code, rec.Body)
	}
	return out.Response
}

// TestWebhookFollowsImagePolicies runs the admission server with the
// watcher, as serve does: it is ready once the policies are synced, and
// /validate denies by a new ImagePolicy within seconds, in its namespace
// only, saying which object denied.
func TestWebhookFollowsImagePolicies(t *testing.T) {
	_, dyn, kube := cluster(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(mirrorConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(dyn, kube.Discovery(), WatcherOptions{DiscoveryInterval: 100 * time.Millisecond})
	srv, err := webhook.New(webhook.Options{ConfigPath: path, Policies: w})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Ready() == nil {
		t.Error("ready before the policies are synced")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	eventually(t, "the server is ready", func() (bool, string) {
		err := srv.Ready()
		return err == nil, fmt.Sprint(err)
	})

	a, b := namespace(t, kube, "hook-a"), namespace(t, kube, "hook-b")
	// /validate judges images as they run: swapped by /mutate already,
	// and judged with their source.
	const busybox = "registry.example.com/docker.io/library/busybox:1.36"
	if resp := validate(t, srv.Handler(), a, busybox); !resp.Allowed {
		t.Fatalf("busybox denied before any ImagePolicy: %s", resp.Result.Message)
	}
	if _, err := create(ctx, dyn, imagePolicy(a, "no-busybox", ImagePolicySpec{DenyList: []string{"docker.io/library/busybox"}})); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "/validate denies by the ImagePolicy", func() (bool, string) {
		resp := validate(t, srv.Handler(), a, busybox)
		return !resp.Allowed, "allowed"
	})
	t.Logf("/validate denies %s after the ImagePolicy was created", took)
	resp := validate(t, srv.Handler(), a, busybox)
	if want := "ImagePolicy/" + a + "/no-busybox"; !strings.Contains(resp.Result.Message, want) {
		t.Errorf("denial %q does not name %s", resp.Result.Message, want)
	}
	if resp := validate(t, srv.Handler(), b, busybox); !resp.Allowed {
		t.Errorf("denied in %s, which has no ImagePolicy: %s", b, resp.Result.Message)
	}
}
