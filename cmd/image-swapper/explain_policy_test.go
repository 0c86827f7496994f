package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/image-swapper/image-swapper/internal/policyapi"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

const examplePolicies = "../../examples/policies.yaml"

func TestExplainWithPolicyFiles(t *testing.T) {
	code, out, errOut := runCLI(t, "", "explain", "--config", exampleConfig, "-n", "payments", "--policy", examplePolicies, "busybox:1.36", "alpine:latest", "nginx:1.26")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	for _, want := range []string{
		`rule:       ImagePolicy/payments/payments spec.denyList[0] "docker.io/library/busybox"`,
		"policy:     ImagePolicy/payments/payments",
		"rule:       ClusterImagePolicy/baseline no-latest-alpine",
		"policy:     ClusterImagePolicy/baseline",
		"policy:     the configuration file",
		"mode:       at least enforce in namespace payments (ImagePolicy/payments/payments)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if errOut != "" {
		t.Errorf("warnings for the example policies: %s", errOut)
	}

	// In another namespace the ImagePolicy does not apply; the
	// ClusterImagePolicy does.
	code, out, errOut = runCLI(t, "", "explain", "--config", exampleConfig, "-n", "shop", "--policy", examplePolicies, "-o", "json", "busybox:1.36", "nginx:debug")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	var got []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		got = append(got, obj)
	}
	if len(got) != 2 || got[0]["action"] != "swap" || got[0]["policy"] != "the configuration file" ||
		got[1]["action"] != "deny" || got[1]["policy"] != "ClusterImagePolicy/baseline" {
		t.Errorf("in namespace shop: %v", got)
	}
}

func TestExplainWarnsOfPoliciesNotApplied(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policies.yaml")
	manifest := `apiVersion: policy.image-swapper.io/v1alpha1
kind: ImagePolicy
metadata: {name: exceptions}
spec:
  exceptions: [{id: CVE-2024-1, expires: "2099-01-01", reason: "TICKET-1"}]
---
apiVersion: policy.image-swapper.io/v1alpha1
kind: ImagePolicy
metadata: {name: broken}
spec:
  denyList: ["a b"]
`
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "explain", "--config", exampleConfig, "-n", "team", "--policy", file, "nginx")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	for _, want := range []string{
		"ImagePolicy/team/exceptions: exceptions not applied (NamespaceExceptionsNotAllowed)",
		"ImagePolicy/team/broken is not applied (Invalid): spec.denyList[0]",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	code, _, errOut = runCLI(t, "", "explain", "--config", exampleConfig, "--policy", exampleConfig, "nginx")
	if code == 0 || !strings.Contains(errOut, "document 1") {
		t.Errorf("a configuration file as --policy: exit %d, stderr %s", code, errOut)
	}
}

func TestExplainReadsClusterPolicies(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	cfg := cp.Config()
	dyn := dynamic.NewForConfigOrDie(cfg)
	kube := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if err := testenv.InstallChartCRDs(cfg); err != nil {
		t.Fatal(err)
	}

	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "explain-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policyapi.ToUnstructured(&policyapi.ImagePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: policyapi.APIVersion, Kind: policyapi.KindImagePolicy},
		ObjectMeta: metav1.ObjectMeta{Name: "strict", Namespace: ns.Name},
		Spec:       policyapi.ImagePolicySpec{DenyList: []string{"docker.io/library/busybox"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	delete(p.Object, "status")
	if _, err := dyn.Resource(policyapi.ImagePolicies).Namespace(ns.Name).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := adminKubeconfig(t, cp, "explain-admin")
	code, out, errOut := runCLI(t, "", "explain", "--config", exampleConfig, "-n", ns.Name, "--cluster-policies", "--kubeconfig", kubeconfig, "busybox:1.36")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	if want := "policy:     ImagePolicy/" + ns.Name + "/strict"; !strings.Contains(out, want) || !strings.Contains(out, "action:     deny") {
		t.Errorf("output lacks a denial by %q:\n%s", want, out)
	}
}
