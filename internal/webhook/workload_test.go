package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/manifest"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// webDeployment is a Deployment whose own metadata differs from its pod
// template's, so that a condition can tell which one it sees.
const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app.kubernetes.io/name: web-chart}
  annotations: {deployment.kubernetes.io/revision: "3"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web, tier: frontend}
      annotations: {team: payments}
    spec:
      containers:
        - name: app
          image: nginx:1.27
`

// webPod is the Pod the Deployment controller makes of webDeployment,
// through ReplicaSet web-7d9f6b5c4, as /mutate receives it (not named yet).
const webPod = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
 "uid":"7a4c1f00-0000-4000-8000-000000000001","kind":{"group":"","version":"v1","kind":"Pod"},
 "resource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop","operation":"CREATE",
 "object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-7d9f6b5c4-","namespace":"shop",
  "labels":{"app":"web","tier":"frontend","pod-template-hash":"7d9f6b5c4"},
  "annotations":{"team":"payments"},
  "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f6b5c4","uid":"5b0d4f2e-0000-4000-8000-000000000002","controller":true,"blockOwnerDeletion":true}]},
  "spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}}}`

// TestCELSeesTheSameInRewriteAndAtAdmission runs one condition over a
// Deployment through rewrite and over its Pod through the webhook: both
// must reach one decision, whether the condition looks at the Pod
// (object) or at the workload that owns it.
func TestCELSeesTheSameInRewriteAndAtAdmission(t *testing.T) {
	const target = "registry.example.com/docker.io/library/nginx:1.27"
	cases := []struct {
		name      string
		condition string
		swapped   bool
	}{
		{"the workload is the Deployment, in CI and at admission", `workload.kind == "Deployment" && workload.name == "web"`, true},
		{"the object is the Pod, in CI and at admission", `object.kind == "Pod"`, true},
		{"the object is never the Deployment", `object.kind == "Deployment"`, false},
		{"the ReplicaSet between them is not the workload", `workload.kind == "ReplicaSet"`, false},
		{"the object's annotations are the pod template's", `object.annotations["team"] == "payments"`, true},
		{"the object's labels are the pod template's", `object.labels["tier"] == "frontend"`, true},
		{"the Deployment's own labels are not the object's", `"app.kubernetes.io/name" in object.labels`, false},
		{"the namespace is the same", `namespaceObject.name == "shop"`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := "targetRegistry: registry.example.com\nrules:\n  - registry: docker.io\n    target: \"{target}/{registry}/{repository}\"\n    condition: '" + c.condition + "'\n"
			inCI := rewriteDecision(t, cfg)
			atAdmission := mutatedImage(t, cfg)
			want := "nginx:1.27"
			if c.swapped {
				want = target
			}
			if inCI.Target != want || atAdmission != want {
				t.Errorf("condition %s: rewrite gives %s (%s), admission gives %s; want %s in both", c.condition, inCI.Target, inCI.LastReason(), atAdmission, want)
			}
		})
	}
}

// TestCELDenyRuleDeniesInRewriteAndAtAdmission checks the gate side: a
// deny rule scoped to the workload denies in CI and at /validate.
func TestCELDenyRuleDeniesInRewriteAndAtAdmission(t *testing.T) {
	cfg := "rules:\n  - image: nginx:1.27\n    action: deny\n    message: web must pin a digest\n    condition: 'workload.kind == \"Deployment\" && workload.name == \"web\"'\n"
	if d := rewriteDecision(t, cfg); !d.Denied() {
		t.Errorf("rewrite: %s, want denied", d.Summary())
	}
	s := newTestServer(t, "", func(o *Options) { o.ConfigPath = writeConfig(t, cfg) })
	resp := review(t, s.Handler(), "/validate", []byte(webPod))
	if resp.Allowed {
		t.Errorf("/validate allowed the Deployment's Pod, want it denied by the rule")
	}
}

// rewriteDecision is what `image-swapper rewrite` decides for the image of
// webDeployment under cfg.
func rewriteDecision(t *testing.T, cfg string) engine.Decision {
	t.Helper()
	c, err := config.Parse("config.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(c)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := manifest.NewRewriter(e, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rw.Rewrite([]byte(webDeployment))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 {
		t.Fatalf("rewrite found %d images, want 1", len(res.Findings))
	}
	return res.Findings[0].Decision
}

// mutatedImage is the image webPod runs with after /mutate under cfg.
func mutatedImage(t *testing.T, cfg string) string {
	t.Helper()
	s := newTestServer(t, "", func(o *Options) { o.ConfigPath = writeConfig(t, cfg) })
	resp := review(t, s.Handler(), "/mutate", []byte(webPod))
	if resp.Patch == nil {
		return "nginx:1.27"
	}
	var ops []patchOp
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatalf("the patch is not JSON: %v", err)
	}
	for _, op := range ops {
		if op.Path == "/spec/containers/0/image" {
			return op.Value.(string)
		}
	}
	t.Fatalf("the patch %s does not replace the image", resp.Patch)
	return ""
}

func writeConfig(t *testing.T, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPodWorkload checks which workload a Pod is taken to belong to, from
// its ownerReferences and labels alone.
func TestPodWorkload(t *testing.T) {
	controller := func(apiVersion, kind, name string) []metav1.OwnerReference {
		yes := true
		return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, Controller: &yes}}
	}
	hash := map[string]string{podTemplateHashLabel: "7d9f6b5c4"}
	cases := []struct {
		name string
		meta metav1.ObjectMeta
		want rules.Workload
	}{
		{"a Deployment's ReplicaSet leads to the Deployment", metav1.ObjectMeta{Labels: hash, OwnerReferences: controller("apps/v1", "ReplicaSet", "web-7d9f6b5c4")}, rules.Workload{Kind: "Deployment", Name: "web"}},
		{"a Deployment name with dashes survives", metav1.ObjectMeta{Labels: hash, OwnerReferences: controller("apps/v1", "ReplicaSet", "my-web-app-7d9f6b5c4")}, rules.Workload{Kind: "Deployment", Name: "my-web-app"}},
		{"a ReplicaSet without the hash label is the workload", metav1.ObjectMeta{OwnerReferences: controller("apps/v1", "ReplicaSet", "web-7d9f6b5c4")}, rules.Workload{Kind: "ReplicaSet", Name: "web-7d9f6b5c4"}},
		{"a hash that is not the name's suffix leaves the ReplicaSet", metav1.ObjectMeta{Labels: hash, OwnerReferences: controller("apps/v1", "ReplicaSet", "web")}, rules.Workload{Kind: "ReplicaSet", Name: "web"}},
		{"a ReplicaSet named only the hash leaves the ReplicaSet", metav1.ObjectMeta{Labels: hash, OwnerReferences: controller("apps/v1", "ReplicaSet", "-7d9f6b5c4")}, rules.Workload{Kind: "ReplicaSet", Name: "-7d9f6b5c4"}},
		{"another group's ReplicaSet is not taken for a Deployment's", metav1.ObjectMeta{Labels: hash, OwnerReferences: controller("example.com/v1", "ReplicaSet", "web-7d9f6b5c4")}, rules.Workload{Kind: "ReplicaSet", Name: "web-7d9f6b5c4"}},
		{"a StatefulSet is the workload", metav1.ObjectMeta{OwnerReferences: controller("apps/v1", "StatefulSet", "db")}, rules.Workload{Kind: "StatefulSet", Name: "db"}},
		{"a Job is the workload, even when a CronJob made it", metav1.ObjectMeta{OwnerReferences: controller("batch/v1", "Job", "nightly-29012345")}, rules.Workload{Kind: "Job", Name: "nightly-29012345"}},
		{"a Pod without owner is its own workload", metav1.ObjectMeta{Name: "debug"}, rules.Workload{Kind: "Pod", Name: "debug"}},
		{"an owner that is not the controller does not count", metav1.ObjectMeta{Name: "debug", OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x"}}}, rules.Workload{Kind: "Pod", Name: "debug"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := podWorkload(&corev1.Pod{ObjectMeta: c.meta}); got != c.want {
				t.Errorf("podWorkload = %+v, want %+v", got, c.want)
			}
		})
	}
}
