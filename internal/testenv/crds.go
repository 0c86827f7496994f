package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// crdResource is apiextensions.k8s.io's CustomResourceDefinitions.
var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdServedTimeout bounds the wait for installed CRDs to be served.
const crdServedTimeout = time.Minute

// InstallCRDs creates the CustomResourceDefinitions of files (YAML or
// JSON, one CRD each; an empty first document, as controller-gen writes,
// and a status are dropped) in the API server of cfg, unless they exist,
// and waits until discovery lists each of them in every version it
// serves and their objects can be listed, so that a test can use them at
// once.
func InstallCRDs(cfg *rest.Config, files ...string) error {
	if len(files) == 0 {
		return errors.New("no CRD files to install")
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), crdServedTimeout)
	defer cancel()
	var want []schema.GroupVersionResource
	for _, f := range files {
		crd, err := readCRD(f)
		if err != nil {
			return err
		}
		if _, err := dyn.Resource(crdResource).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("installing %s: %w", f, err)
		}
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for _, v := range versions {
			if m, ok := v.(map[string]any); ok && m["served"] == true {
				want = append(want, schema.GroupVersionResource{Group: group, Version: fmt.Sprint(m["name"]), Resource: plural})
			}
		}
	}
	for _, gvr := range want {
		for {
			list, err := disco.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
			if err == nil && slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == gvr.Resource }) {
				// Discovery and the handler are set up apart: listing
				// the objects is what a test does next.
				if _, err = dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s is not served %s after installing its CRD (last: %v)", gvr, crdServedTimeout, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// InstallChartCRDs installs the CRDs the chart ships
// (deploy/helm/image-swapper/files/crds) with InstallCRDs.
func InstallChartCRDs(cfg *rest.Config) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "helm", "image-swapper", "files", "crds", "*.yaml"))
	if err != nil {
		return err
	}
	return InstallCRDs(cfg, files...)
}

// readCRD reads the first non-empty document of path, without status.
func readCRD(path string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	crd := &unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for len(crd.Object) == 0 {
		if err := dec.Decode(&crd.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s: no CustomResourceDefinition in it", path)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	delete(crd.Object, "status")
	return crd, nil
}
