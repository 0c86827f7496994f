package policyapi

import (
	"strings"
	"testing"
)

func TestReadManifests(t *testing.T) {
	const manifests = `
apiVersion: policy.image-swapper.io/v1alpha1
kind: ClusterImagePolicy
metadata: {name: base}
spec:
  allowNamespaceExceptions: true
  security: {scanning: {maxCVSS: 7}}
---
apiVersion: v1
kind: List
items:
  - apiVersion: policy.image-swapper.io/v1alpha1
    kind: ImagePolicy
    metadata: {name: a, namespace: team-a}
    spec: {denyList: ["busybox"]}
  - apiVersion: policy.image-swapper.io/v1alpha1
    kind: ImagePolicy
    metadata: {name: b}
    spec: {mode: enforce}
`
	o, err := ReadManifests(strings.NewReader(manifests), "policies.yaml", "team-b")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Clusters) != 1 || !o.Clusters[0].Spec.AllowNamespaceExceptions || *o.Clusters[0].Spec.Security.Scanning.MaxCVSS != 7 {
		t.Errorf("clusters %+v", o.Clusters)
	}
	if a, b := o.In("team-a"), o.In("team-b"); len(a) != 1 || a[0].Name != "a" || len(b) != 1 || b[0].Name != "b" {
		t.Errorf("team-a %v, team-b %v: an ImagePolicy without a namespace gets the one given", a, b)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"an unknown field", "apiVersion: policy.image-swapper.io/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\nspec: {denylist: [a]}\n", `document 1: ImagePolicy "x"`},
		{"another kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", `kind "ConfigMap"`},
		{"another version", "apiVersion: policy.image-swapper.io/v1\nkind: ImagePolicy\nmetadata: {name: x}\n", `apiVersion "policy.image-swapper.io/v1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadManifests(strings.NewReader(tc.doc), "p.yaml", "ns")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "p.yaml: ") {
				t.Fatalf("error %v; want one naming the file and %q", err, tc.want)
			}
		})
	}
}
