package report

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// PolicyReportResource is the API resource of PolicyReports.
var PolicyReportResource = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "policyreports"}

// ManagedBySelector selects the PolicyReports image-swapper manages.
const ManagedBySelector = "app.kubernetes.io/managed-by=" + PolicyReportSource

// Applied counts what ApplyPolicyReports changed.
type Applied struct {
	Created, Updated, Unchanged, Deleted int
}

// ApplyPolicyReports makes the PolicyReports that image-swapper manages in
// the cluster (those labelled ManagedBySelector) the reports given: it
// creates the missing ones, updates those whose results changed, and
// deletes the rest (the parts a namespace no longer needs, and the
// namespaces no longer reported). A result's timestamp alone is no
// change, so a report of an unchanged ledger writes nothing. fieldManager
// names the writer in managedFields.
func ApplyPolicyReports(ctx context.Context, client dynamic.Interface, reports []PolicyReport, fieldManager string) (Applied, error) {
	var done Applied
	res := client.Resource(PolicyReportResource)
	list, err := res.Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: ManagedBySelector})
	if err != nil {
		return done, fmt.Errorf("listing PolicyReports (%s): %w", ManagedBySelector, err)
	}
	existing := map[[2]string]*unstructured.Unstructured{}
	for i := range list.Items {
		it := &list.Items[i]
		existing[[2]string{it.GetNamespace(), it.GetName()}] = it
	}
	for i := range reports {
		want, err := toUnstructured(&reports[i])
		if err != nil {
			return done, err
		}
		key := [2]string{want.GetNamespace(), want.GetName()}
		have, ok := existing[key]
		delete(existing, key)
		switch {
		case !ok:
			if _, err := res.Namespace(key[0]).Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
				return done, fmt.Errorf("creating PolicyReport %s/%s: %w", key[0], key[1], err)
			}
			done.Created++
		case sameReport(have, want):
			done.Unchanged++
		default:
			want.SetResourceVersion(have.GetResourceVersion())
			if _, err := res.Namespace(key[0]).Update(ctx, want, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
				return done, fmt.Errorf("updating PolicyReport %s/%s: %w", key[0], key[1], err)
			}
			done.Updated++
		}
	}
	for _, key := range slices.SortedFunc(maps.Keys(existing), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		err := res.Namespace(key[0]).Delete(ctx, key[1], metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return done, fmt.Errorf("deleting stale PolicyReport %s/%s: %w", key[0], key[1], err)
		}
		done.Deleted++
	}
	return done, nil
}

func toUnstructured(p *PolicyReport) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("PolicyReport %s/%s: %w", p.Metadata.Namespace, p.Metadata.Name, err)
	}
	return u, nil
}

// sameReport says have (from the cluster) already holds want's summary,
// results (timestamps aside), labels and annotations. What the API
// server pruned from have (fields its CRD lacks) is pruned from want too,
// so that such a field is no change.
func sameReport(have, want *unstructured.Unstructured) bool {
	if !reflect.DeepEqual(have.GetLabels(), want.GetLabels()) || !reflect.DeepEqual(orNil(have.GetAnnotations()), orNil(want.GetAnnotations())) {
		return false
	}
	hs, _, _ := unstructured.NestedFieldNoCopy(have.Object, "summary")
	ws, _, _ := unstructured.NestedFieldNoCopy(want.Object, "summary")
	if !reflect.DeepEqual(hs, ws) {
		return false
	}
	hr, _, _ := unstructured.NestedSlice(have.Object, "results")
	wr, _, _ := unstructured.NestedSlice(want.Object, "results")
	if len(hr) != len(wr) {
		return false
	}
	for i := range hr {
		h, hok := hr[i].(map[string]any)
		w, wok := wr[i].(map[string]any)
		if !hok || !wok {
			return false
		}
		w = maps.Clone(w)
		delete(w, "timestamp")
		for k := range w {
			if _, ok := h[k]; !ok {
				delete(w, k)
			}
		}
		h = maps.Clone(h)
		delete(h, "timestamp")
		if !reflect.DeepEqual(h, w) {
			return false
		}
	}
	return true
}

func orNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
