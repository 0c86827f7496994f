package policyapi

import (
	"context"
	"errors"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// Objects are policy objects, read from manifests or from the cluster.
type Objects struct {
	Clusters   []ClusterImagePolicy
	Namespaced []ImagePolicy
}

// In returns the ImagePolicies of namespace ns.
func (o *Objects) In(ns string) []ImagePolicy {
	var out []ImagePolicy
	for _, p := range o.Namespaced {
		if p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out
}

// ReadManifests reads ClusterImagePolicies and ImagePolicies from YAML or
// JSON manifests (several documents, or a List), as kubectl apply -f
// takes them. An ImagePolicy without a namespace gets namespace, as with
// kubectl apply -n. Other kinds and unknown fields are errors naming the
// document.
func ReadManifests(r io.Reader, name, namespace string) (*Objects, error) {
	out := &Objects{}
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for doc := 1; ; doc++ {
		var u unstructured.Unstructured
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := out.add(&u, namespace); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
	}
}

func (o *Objects) add(u *unstructured.Unstructured, namespace string) error {
	if u.IsList() {
		return u.EachListItem(func(item runtime.Object) error {
			return o.add(item.(*unstructured.Unstructured), namespace)
		})
	}
	if k := u.GetKind(); k != KindClusterImagePolicy && k != KindImagePolicy {
		return fmt.Errorf("kind %q: want %s or %s", k, KindClusterImagePolicy, KindImagePolicy)
	}
	if u.GetAPIVersion() != APIVersion {
		return fmt.Errorf("%s %q: apiVersion %q: want %s", u.GetKind(), u.GetName(), u.GetAPIVersion(), APIVersion)
	}
	switch u.GetKind() {
	case KindClusterImagePolicy:
		var p ClusterImagePolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &p, true); err != nil {
			return fmt.Errorf("ClusterImagePolicy %q: %w", u.GetName(), err)
		}
		o.Clusters = append(o.Clusters, p)
	case KindImagePolicy:
		var p ImagePolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &p, true); err != nil {
			return fmt.Errorf("ImagePolicy %q: %w", u.GetName(), err)
		}
		if p.Namespace == "" {
			p.Namespace = namespace
		}
		o.Namespaced = append(o.Namespaced, p)
	}
	return nil
}

// List reads the ClusterImagePolicies and the ImagePolicies of namespace
// ns from the cluster (every namespace's when ns is empty).
func List(ctx context.Context, client dynamic.Interface, ns string) (*Objects, error) {
	out := &Objects{}
	clusters, err := client.Resource(ClusterImagePolicies).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing ClusterImagePolicies: %w", err)
	}
	for i := range clusters.Items {
		p, err := fromUnstructured[ClusterImagePolicy](&clusters.Items[i])
		if err != nil {
			return nil, fmt.Errorf("ClusterImagePolicy %s: %w", clusters.Items[i].GetName(), err)
		}
		out.Clusters = append(out.Clusters, p)
	}
	locals, err := client.Resource(ImagePolicies).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing ImagePolicies: %w", err)
	}
	for i := range locals.Items {
		p, err := fromUnstructured[ImagePolicy](&locals.Items[i])
		if err != nil {
			return nil, fmt.Errorf("ImagePolicy %s/%s: %w", locals.Items[i].GetNamespace(), locals.Items[i].GetName(), err)
		}
		out.Namespaced = append(out.Namespaced, p)
	}
	return out, nil
}

// ToUnstructured encodes a policy object for the dynamic client.
func ToUnstructured(obj any) (*unstructured.Unstructured, error) {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: raw}, nil
}
